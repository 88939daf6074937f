"""The JSON Schema for editors (`specgraph schema`): current, valid draft-07, true to the models,
accepting every spec in specs/ and refusing the mistakes it can see without evaluating anything.

jsonschema validates here the way yaml-language-server does in the editor.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest
import yaml
from pydantic import BaseModel, ConfigDict
from typer.testing import CliRunner

from conftest import ROOT, SPECS
from specgraph.cli.app import app
from specgraph.lang.marked_yaml import load_yaml_file
from specgraph.ops import Op, OpParams
from specgraph.ops.base import PositiveInt, Probability
from specgraph.api import language_schema, schema_text
from specgraph.ir.traits import Trait
from specgraph.ops.registry import builtin_ops
from specgraph.lang.document import NODE_KEYS, BlockDef, OutputDef, SpecDoc

SCHEMA_FILE = ROOT / "docs" / "specgraph.schema.json"
ALL_SPECS = sorted(SPECS.rglob("*.yaml"))  # block libraries too: editors open them as well
IDS = [str(p.relative_to(SPECS)) for p in ALL_SPECS]


@pytest.fixture(scope="module")
def schema() -> dict:
    return language_schema(builtin_ops())


@pytest.fixture(scope="module")
def validator(schema) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(schema)


def problems(validator, text: str) -> list[tuple[list, str]]:
    """(path, message) of every error and, for anyOf/oneOf, of each alternative's errors."""
    found = []

    def walk(errors):
        for e in errors:
            found.append((list(e.absolute_path), e.message))
            walk(e.context or [])

    walk(validator.iter_errors(yaml.safe_load(text)))
    return found


# ---- the file stays current and the schema stays true to the models ------------------------

def test_committed_schema_is_generated_from_the_code():
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_text(builtin_ops()), (
        "docs/specgraph.schema.json is stale: run `specgraph schema -o docs/specgraph.schema.json`")


def test_schema_is_valid_draft_07(schema):
    jsonschema.Draft7Validator.check_schema(schema)
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"


def test_schema_keys_match_the_spec_models(schema):
    defs = schema["definitions"]
    assert set(schema["properties"]) == set(SpecDoc.model_fields)
    assert set(defs["block"]["properties"]) == set(BlockDef.model_fields)
    node_keys = set(defs["node"]["properties"]).union(*(kind["properties"] for kind in defs["node"]["oneOf"]))
    assert node_keys == set(NODE_KEYS)
    assert {f"node.{k}" for k in NODE_KEYS} <= set(defs)
    output = schema["properties"]["outputs"]["anyOf"][2]["additionalProperties"]["anyOf"][1]
    assert set(output["properties"]) == {f.alias or n for n, f in OutputDef.model_fields.items()}
    for key in schema["properties"]:
        assert schema["properties"][key].get("markdownDescription"), key


def test_every_builtin_op_and_param_is_in_the_schema(schema):
    rules = {r["if"]["properties"]["op"]["const"]: r["then"] for r in schema["definitions"]["node"]["allOf"] if "op" in r["if"]["required"]}
    names = {n for n, op in builtin_ops().items() if Trait.COMPILER_MADE not in op.traits}
    assert set(rules) == names
    assert schema["definitions"]["node.op"]["anyOf"][0]["enum"] == sorted(names)
    for name in names:
        assert set(builtin_ops()[name].Params.model_fields) <= set(rules[name]["properties"]), name


class _Window(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    size: PositiveInt


class _Fancy(Op):
    """A user op."""
    name = "fancy"

    class Params(OpParams):
        window: _Window
        pads: tuple[int, int] = (0, 0)
        p: Probability = 0.5


class _Opaque(Op):
    name = "opaque"

    class Params(OpParams):
        model_config = ConfigDict(arbitrary_types_allowed=True)
        thing: type  # pydantic has no JSON Schema for it


def test_user_op_params_become_schema_too():
    """Nested models, tuples and union bounds of a user op's params; params pydantic cannot describe."""
    schema = language_schema({"fancy": _Fancy(), "opaque": _Opaque()})
    assert schema["definitions"]["node.op"]["anyOf"][0]["enum"] == ["fancy", "opaque"]
    assert "fancy._Window" in schema["definitions"]
    jsonschema.Draft7Validator.check_schema(schema)
    v = jsonschema.Draft7Validator(schema)
    head = "specgraph: 1\ngraph:\n  f: "
    assert problems(v, head + "{op: fancy, window: {size: $w}, pads: [$a, 1], p: 0.3}") == []
    assert problems(v, head + "{op: opaque, thing: whatever}") == []
    assert problems(v, head + "{op: fancy, window: {size: 0}}")
    assert problems(v, head + "{op: fancy, window: {size: 2, sise: 3}}")
    assert problems(v, head + "{op: fancy, window: {size: 2}, pads: [1, 2, 3]}")
    assert problems(v, head + "{op: fancy, window: {size: 2}, p: 2}")


# ---- specs -------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ALL_SPECS, ids=IDS)
def test_every_spec_validates(path, validator):
    data, _ = load_yaml_file(path)
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message[:300]}" for e in validator.iter_errors(data)]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("path", ALL_SPECS, ids=IDS)
def test_every_spec_points_its_editor_at_the_schema(path):
    first = path.read_text(encoding="utf-8").splitlines()[0]
    prefix = "# yaml-language-server: $schema="
    assert first.startswith(prefix), f"{path.name} should start with {prefix}<relative path to docs/specgraph.schema.json>"
    target = (path.parent / first[len(prefix):].strip()).resolve()
    assert target == SCHEMA_FILE.resolve(), first
    assert first[len(prefix):].strip() == Path(os.path.relpath(SCHEMA_FILE, path.parent)).as_posix()


# ---- mistakes the schema sees --------------------------------------------------------------

GOOD = """
specgraph: 1
inputs: {image: [N, 3, 32, 32]}
graph:
  conv: {op: conv2d, out: 16, kernel: 3}
  relu: {op: relu}
"""

MISTAKES = {
    # name: (spec text, path of the error, words of its message)
    "unknown top-level key": (GOOD + "outptus: [relu]\n", [], "'outptus' was unexpected"),
    "typo'd op param": (GOOD.replace("kernel: 3", "kernal: 3"), ["graph", "conv"], "'kernal' was unexpected"),
    "missing required op param": (GOOD.replace(", kernel: 3", ""), ["graph", "conv"], "'kernel' is a required property"),
    "unknown op": (GOOD.replace("op: relu", "op: rleu"), ["graph", "relu", "op"], "'rleu' is not one of"),
    "compiler-made op": (GOOD.replace("op: relu", "op: scan"), ["graph", "relu", "op"], "'scan' is not one of"),
    "quoted int": (GOOD.replace("out: 16", 'out: "64"'), ["graph", "conv", "out"], "'64' is not of type 'integer'"),
    "quoted bool": (GOOD.replace("kernel: 3", 'kernel: 3, bias: "false"'), ["graph", "conv", "bias"], "is not of type 'boolean'"),
    "bad enum value": (GOOD.replace("kernel: 3", "kernel: 3, padding_mode: mirror"), ["graph", "conv", "padding_mode"],
                       "'mirror' is not one of"),
    "non-positive int": (GOOD.replace("out: 16", "out: 0"), ["graph", "conv", "out"], "less than or equal to the minimum"),
    "probability over 1": (GOOD + "  drop: {op: dropout, p: 1.5}\n", ["graph", "drop", "p"], "greater than the maximum"),
    "pair of three": (GOOD.replace("kernel: 3", "kernel: [3, 3, 3]"), ["graph", "conv", "kernel"], "is too long"),
    "seq not a list": (GOOD + "  head: {seq: {op: relu}}\n", ["graph", "head", "seq"], "is not of type 'array'"),
    "seq item not a node": (GOOD + "  head: {seq: [relu]}\n", ["graph", "head", "seq", 0], "is not of type 'object'"),
    "extra key on a seq node": (GOOD + "  head: {seq: [{op: relu}], out: 3}\n", ["graph", "head"], "'out' was unexpected"),
    "node without op/block/seq/scan": (GOOD + "  head: {from: conv}\n", ["graph", "head"], "'op' is a required property"),
    "node with op and block": (GOOD + "  head: {op: relu, block: unit}\n", ["graph", "head"], "is valid under each of"),
    "node not a mapping": (GOOD + "  head: relu\n", ["graph", "head"], "is not of type 'object'"),
    "bad node name": (GOOD + "  my-head: {op: relu}\n", ["graph"], "does not match"),
    "inline on an op": (GOOD.replace("op: relu}", "op: relu, inline: true}"), ["graph", "relu"], "'inline' was unexpected"),
    "repeat negative": (GOOD.replace("op: relu}", "op: relu, repeat: -1}"), ["graph", "relu", "repeat"], "less than the minimum"),
    "when a string": (GOOD.replace("op: relu}", "op: relu, when: yes please}"), ["graph", "relu", "when"], "is not of type 'boolean'"),
    "from a number": (GOOD.replace("op: relu}", "op: relu, from: 3}"), ["graph", "relu", "from"], "is not of type 'string'"),
    "specgraph: 2": (GOOD.replace("specgraph: 1", "specgraph: 2"), ["specgraph"], "1 was expected"),
    "no specgraph key": (GOOD.replace("specgraph: 1\n", ""), [], "'specgraph' is a required property"),
    "inputs a list": (GOOD.replace("inputs: {image: [N, 3, 32, 32]}", "inputs: [image]"), ["inputs"], "is not of type 'object'"),
    "input shape not a list": (GOOD.replace("[N, 3, 32, 32]", '"N, 3, 32, 32"'), ["inputs", "image"], "is not of type 'array'"),
    "input dim zero": (GOOD.replace("[N, 3, 32, 32]", "[N, 0, 32, 32]"), ["inputs", "image", 1], "less than the minimum"),
    "input dim not a symbol": (GOOD.replace("[N, 3, 32, 32]", "[N, 3, H/2, 32]"), ["inputs", "image", 2], "does not match"),
    "unknown dtype": (GOOD.replace("[N, 3, 32, 32]", "{shape: [N, 3, 32, 32], dtype: float8}"), ["inputs", "image", "dtype"],
                      "'float8' is not one of"),
    "block inputs not a list": (GOOD + "blocks:\n  unit: {inputs: x, nodes: {r: {op: relu}}}\n",
                                ["blocks", "unit", "inputs"], "is not of type 'array'"),
    "block without nodes": (GOOD + "blocks:\n  unit: {params: {width: int}}\n", ["blocks", "unit"], "'nodes' is a required property"),
    "unknown block key": (GOOD + "blocks:\n  unit: {node: {r: {op: relu}}, nodes: {}}\n", ["blocks", "unit"], "'node' was unexpected"),
    "unknown param type": (GOOD + "params: {width: {type: integer}}\n", ["params", "width", "type"], "'integer' is not one of"),
    "output with unknown key": (GOOD + "outputs: {logits: {from: relu, train: true}}\n", ["outputs", "logits"], "'train' was unexpected"),
    "include not a list": (GOOD + "include: lib/resnet.yaml\n", ["include"], "is not of type 'array'"),
}


@pytest.mark.parametrize("name", MISTAKES)
def test_schema_level_mistakes_are_rejected(name, validator):
    text, where, words = MISTAKES[name]
    found = problems(validator, text)
    assert found, f"the schema accepts: {name}"
    assert any(path == where and words in message for path, message in found), "\n".join(f"{p}: {m}" for p, m in found)


def test_the_good_spec_of_the_mistakes_is_accepted(validator):
    assert problems(validator, GOOD) == []


EXPRESSIONS = """
specgraph: 1
params: {width: 64, act: relu, k: 3, deep: true, size: 224, depth: 2, unit: unit, act_type: {type: str, default: relu}}
let: {wide: "${width * 4}"}
inputs:
  image: [N, 3, $size, "${size // 1}"]
  tokens: {shape: [N, T], dtype: int64}
blocks:
  unit:
    params: {width: int, stride: 1}
    states: {h: $width}
    inputs: [x]
    outputs: drop
    nodes:
      conv: {op: conv2d, out: "${width * 4}", kernel: [$k, 1], stride: $stride, padding: "${k // 2}", bias: $deep}
      act: {op: $act, slope: 0.2}
      drop: {op: dropout, p: "${0.1 if deep else 0.0}", when: $deep}
      norm: {op: $$literal_dollar, from: act}
graph:
  stem: {block: unit, width: $width, stride: "${2 if deep else 1}", repeat: $depth, inline: false}
  body: {seq: [{op: relu}, {block: $unit, width: 8}], when: "${depth > 1}"}
  pool: {op: adaptive_avgpool2d, size: ["${size // 32}", $k]}
  rnn: {scan: unit, width: 8, from: tokens, init: {h: stem}, reverse: true}
  pick: {op: chunk, chunks: $depth, names: [$a, b]}
outputs:
  logits: stem
  aux: {from: body, train_only: true, when: $deep}
"""


def test_expressions_are_accepted_wherever_the_compiler_evaluates(validator):
    assert problems(validator, EXPRESSIONS) == []


# ---- the command -------------------------------------------------------------------------

def test_cli_prints_the_schema_and_writes_it(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == json.loads(schema_text())
    target = tmp_path / "s.json"
    result = runner.invoke(app, ["schema", "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_text(encoding="utf-8") == schema_text()


# ---- the error corpus: what it marks as schema-level, the schema rejects -----------------------

from test_error_corpus import FILES as CORPUS_FILES  # noqa: E402
from test_error_corpus import read_corpus_file  # noqa: E402


@pytest.mark.parametrize("path", CORPUS_FILES, ids=[p.stem for p in CORPUS_FILES])
def test_corpus_mistakes_marked_schema_level_are_rejected(path, validator):
    """`schema: reject` files are refused by the schema (an editor flags them as you type);
    `accept` ones pass it (their mistake needs the compiler, and the schema must not cry wolf);
    `no-yaml` ones are not YAML data at all."""
    case = read_corpus_file(path)
    text = path.read_bytes().decode("utf-8", "replace")
    if case.schema == "no-yaml":
        with pytest.raises(yaml.YAMLError):
            yaml.safe_load(text)
        return
    found = problems(validator, text)
    if case.schema == "reject":
        assert found, f"the schema accepts {path.name}"
    else:
        assert not found, "\n".join(f"{p}: {m}" for p, m in found)


def test_the_corpus_has_schema_level_mistakes():
    assert sum(read_corpus_file(p).schema == "reject" for p in CORPUS_FILES) >= 20
