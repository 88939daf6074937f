"""Spec names that reach generated code never shadow what that code uses: an input called `self`
or `torch`, a node called `F` or `operator`, run as any other name in the built module, its
TorchScript and its standalone Python source (before, `self` lost the input and `torch`
broke every torch call after it)."""

from __future__ import annotations

import keyword

import pytest
import torch

import specgraph
from specgraph.torch.export.python import python_source
from specgraph.torch.input_check import input_check_off
from specgraph.torch.names import GENERATED_CODE_NAMES

# every name the generated code reads, and a few Python keywords (always mangled)
NAMES = sorted(GENERATED_CODE_NAMES - {"_container"}) + ["from", "lambda", "class", "None", "True"]


def spec(input_name: str, node_name: str) -> str:
    return f"""
specgraph: 1
name: names
inputs: {{"{input_name}": {{shape: [N, 4]}}}}
graph:
  "{node_name}": {{op: linear, out: 3, from: "{input_name}"}}
  act: {{op: relu}}
  parts: {{op: chunk, chunks: 3, dim: 1}}
  out: {{op: add, from: [parts.0, parts.1, "{node_name}.out" ]}}
outputs: [out]
"""


def run_everywhere(text: str, tmp_path):
    model = specgraph.build(text).eval()
    x = torch.randn(2, 4)
    with torch.no_grad():
        weight, bias = next(m for m in model.modules() if isinstance(m, torch.nn.Linear)).parameters()
        y = x @ weight.T + bias
        parts = torch.relu(y).chunk(3, 1)
        want = parts[0] + parts[1] + y
        torch.testing.assert_close(model(x), want)
        with input_check_off(model):  # TorchScript cannot compile the Python input check
            torch.testing.assert_close(torch.jit.script(model)(x), want)
        namespace: dict = {}
        exec(compile(python_source(model), "generated", "exec"), namespace)
        generated = [v for v in namespace.values() if isinstance(v, type) and issubclass(v, torch.nn.Module)][-1]()
        generated.load_state_dict(model.state_dict(), strict=True)
        torch.testing.assert_close(generated.eval()(x), want)


@pytest.mark.parametrize("name", NAMES)
def test_an_input_named_like_generated_code_runs(name, tmp_path):
    run_everywhere(spec(name, "fc"), tmp_path)


@pytest.mark.parametrize("name", [n for n in NAMES if not keyword.iskeyword(n)])
def test_a_node_named_like_generated_code_runs(name, tmp_path):
    from specgraph.lang.names import RESERVED_NAMES

    if name in RESERVED_NAMES:  # a Module attribute: refused at check (E204), tested in test_errors
        pytest.fail(f"{name} is reserved")
    run_everywhere(spec("x", name), tmp_path)


def ports_and_blocks(name: str) -> str:
    """A spec whose chunk ports, block name, block input and block outputs are all ``name``."""
    return f"""
specgraph: 1
name: ports
inputs: {{x: {{shape: [N, 4]}}}}
blocks:
  "{name}":
    inputs: ["{name}"]
    outputs: {{"{name}": r}}
    nodes:
      r: {{op: relu, from: "{name}"}}
graph:
  parts: {{op: chunk, chunks: 2, dim: 1, names: ["{name}", other], from: x}}
  b: {{block: "{name}", from: "parts.{name}"}}
  out: {{op: add, from: ["b.{name}", parts.other]}}
outputs: [out]
"""


@pytest.mark.parametrize("name", [n for n in NAMES if n.isidentifier() and not keyword.iskeyword(n)])
def test_ports_and_block_names_like_generated_code_run(name):
    """Ports become fx values prefixed by their node's path (``parts_self``), block names and a
    block's inputs and outputs never reach the code: all run, in the module, its TorchScript and
    its Python source."""
    model = specgraph.build(ports_and_blocks(name)).eval()
    x = torch.randn(2, 4)
    a, c = x.chunk(2, 1)
    want = torch.relu(a) + c
    torch.testing.assert_close(model(x), want)
    with input_check_off(model):
        torch.testing.assert_close(torch.jit.script(model)(x), want)
    namespace: dict = {}
    exec(compile(python_source(model), "generated", "exec"), namespace)
    generated = [v for v in namespace.values() if isinstance(v, type) and issubclass(v, torch.nn.Module)][-1]()
    torch.testing.assert_close(generated.eval()(x), want)
