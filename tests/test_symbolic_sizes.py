"""Sizes written as expressions over symbolic dims (`reshape: [N, "${x.height // 7}", 7, ...]`,
`pad: {pads: ["${(7 - x.width % 7) % 7}", ...]}`) stay symbolic at check time and are computed
from the input's own dims on every call — through the build, ONNX (dynamic dims), TorchScript
and the Python export."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

import specgraph
from specgraph.diagnostics import SpecError
from specgraph.torch.export.formats import example_inputs, to_onnx, to_torchscript
from specgraph.torch.export.python import python_source

# ShuffleNet's channel shuffle after a stride-2 conv: H and W are derived (⌈H/2⌉), so the
# reshape must read them from its input — before, only the spec's own input symbols could be named.
SHUFFLE = """
specgraph: 1
name: shuffle
inputs:
  x: {shape: [N, 3, H, W]}
graph:
  s: {op: conv2d, out: 8, kernel: 3, stride: 2, padding: 1, from: x}
  g: {op: reshape, shape: [N, 2, "${s.channels // 2}", "${s.height}", "${s.width}"]}
  t: {op: transpose, dim0: 1, dim1: 2}
  y: {op: reshape, shape: [N, "${s.channels}", "${s.height}", "${s.width}"]}
outputs: [y]
"""

# Swin's window partition: [N, H, W, C] -> [N * H/7 * W/7, 7, 7, C], exact only where 7 divides H and W.
WINDOWS = """
specgraph: 1
name: windows
inputs:
  x: {shape: [N, H, W, 4]}
graph:
  parts: {op: reshape, shape: [N, "${x.shape[1] // 7}", 7, "${x.shape[2] // 7}", 7, 4]}
  order: {op: permute, dims: [0, 1, 3, 2, 4, 5]}
  windows: {op: reshape, shape: [-1, 7, 7, 4]}
outputs: [windows]
"""

# Padding to a multiple of the window, the amount an expression of the input's width and height.
PAD = """
specgraph: 1
name: pad_to_window
inputs:
  x: {shape: [N, 2, H, W]}
graph:
  y: {op: pad, pads: [0, "${7 * ((x.width + 6) // 7) - x.width}", 0, "${(7 - x.height % 7) % 7}"]}
outputs: [y]
"""

# A position table sized by a param, sliced to the length of another tensor (T, from the spec's
# input), a stop the shapes prove (the padded map cropped back) and one checked on every call.
SLICE = """
specgraph: 1
name: positions
inputs:
  tokens: {shape: [N, T, 4]}
graph:
  table:     {op: parameter, shape: [1, 16, 4], initializer: normal}
  positions: {op: slice, dim: 1, stop: "${tokens.shape[1]}", from: table}
  placed:    {op: add, from: [tokens, positions]}
  padded:    {op: pad, pads: [0, 0, 0, "${5 * ((tokens.shape[1] + 4) // 5) - tokens.shape[1]}"]}
  cropped:   {op: slice, dim: 1, stop: "${tokens.shape[1]}"}
  shifted:   {op: slice, dim: 1, start: 1}
outputs: [shifted]
"""


def channel_shuffle(model, x):
    s = model.s(x)
    return F.channel_shuffle(s, 2)


@pytest.mark.parametrize("size", [(8, 8), (9, 13), (1, 2)])
def test_channel_shuffle_at_derived_sizes(size):
    graph = specgraph.check(SHUFFLE)
    assert str(graph.outputs[0].value.type) == "[N, 8, ⌈H/2⌉, ⌈W/2⌉]"
    model = specgraph.build(SHUFFLE).eval()
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        torch.testing.assert_close(model(x), channel_shuffle(model, x))


def window_partition(x, w=7):
    n, h, wd, c = x.shape
    return x.view(n, h // w, w, wd // w, w, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, w, w, c)


def test_window_partition_is_exact_where_the_window_divides_the_size():
    graph = specgraph.check(WINDOWS)
    assert str(graph.node("parts").outputs["out"]) == "[N, ⌊H/7⌋, 7, ⌊W/7⌋, 7, 4]"
    assert str(graph.outputs[0].value.type) == "[N*⌊H/7⌋*⌊W/7⌋, 7, 7, 4]"
    model = specgraph.build(WINDOWS)
    for h, w in ((7, 14), (21, 7)):
        x = torch.randn(2, h, w, 4)
        torch.testing.assert_close(model(x), window_partition(x))
    # 15 is no multiple of 7: the spec's shapes do not hold, and the call says which dim and why,
    # where: the model's input check, at the reshape's line (and, without it, the reshape itself)
    with pytest.raises(specgraph.InputError, match=r"error\[E403\] node 'parts': reshape to \[N, ⌊H/7⌋, 7, ⌊W/7⌋, 7, 4\] "
                                                   r"needs H divisible by 7\n  this call gives H = 15"):
        model(torch.randn(1, 15, 14, 4))
    with pytest.raises(ValueError, match=r"reshape to \[N, ⌊H/7⌋, 7, ⌊W/7⌋, 7, 4\] needs H divisible by 7, "
                                         r"but this input has H = 15"):
        specgraph.build(WINDOWS, check_inputs=False)(torch.randn(1, 15, 14, 4))


def test_exact_division_is_checked_on_the_dim_the_spec_divides():
    # x.height of a stride-2 conv is ⌈H/2⌉; `// 2` of it is what must be exact, not H itself
    text = """
specgraph: 1
name: halves
inputs:
  x: {shape: [N, 1, H, 4]}
graph:
  s: {op: conv2d, out: 2, kernel: 3, stride: 2, padding: 1, from: x}
  y: {op: reshape, shape: [N, 2, "${s.height // 2}", 2, 2]}
outputs: [y]
"""
    model = specgraph.build(text)
    assert model(torch.randn(1, 1, 8, 4)).shape == (1, 2, 2, 2, 2)
    with pytest.raises(specgraph.InputError, match=r"needs ⌈H/2⌉ divisible by 2\n  this call gives ⌈H/2⌉ = 3"):
        model(torch.randn(1, 1, 6, 4))
    with pytest.raises(ValueError, match="needs ⌈H/2⌉ divisible by 2, but this input has ⌈H/2⌉ = 3"):
        specgraph.build(text, check_inputs=False)(torch.randn(1, 1, 6, 4))


def test_pad_to_a_multiple_of_the_window():
    graph = specgraph.check(PAD)
    model = specgraph.build(PAD)
    out = graph.outputs[0].value.type
    assert str(out).endswith(", 7*⌈W/7⌉]")  # W + (7⌈W/7⌉ - W): the sum cancels
    for h, w in ((7, 7), (9, 15), (1, 20)):
        x = torch.randn(1, 2, h, w)
        want = F.pad(x, (0, (7 - w % 7) % 7, 0, (7 - h % 7) % 7))
        torch.testing.assert_close(model(x), want)
        assert [specgraph.ir.dims.evaluate(d, {"N": 1, "H": h, "W": w}) for d in out.shape] == list(want.shape)


def test_symbols_are_read_or_solved_from_the_input_and_refused_where_it_hides_them():
    # [N, 2H, 2W] shows H and W as 2*H and 2*W: the run solves them (x.size(1) // 2)
    text = """
specgraph: 1
name: doubled
inputs:
  x: {shape: [N, H, W]}
graph:
  a: {op: concat, dim: 1, from: [x, x]}
  b: {op: concat, dim: 2, from: [a, a]}
  y: {op: reshape, shape: [N, 2, "${x.shape[1]}", 2, "${x.shape[2]}"]}
outputs: [y]
"""
    model = specgraph.build(text)
    x = torch.randn(2, 3, 5)
    b = torch.cat([torch.cat([x, x], 1)] * 2, 2)
    torch.testing.assert_close(model(x), b.reshape(2, 2, 3, 2, 5))
    # [N, H*W] hides them, but the spec's input x shows them: the run reads them there
    hidden = """
specgraph: 1
name: hidden
inputs:
  x: {shape: [N, H, W]}
graph:
  f: {op: flatten, from: x}
  y: {op: reshape, shape: [N, "${x.shape[1]}", "${x.shape[2]}"]}
outputs: [y]
"""
    model = specgraph.build(hidden)
    assert "x.size(1)" in model.code and "x.size(2)" in model.code
    x = torch.randn(2, 3, 5)
    torch.testing.assert_close(model(x), x)
    # inside a scan's cell only the op's own input is read (the cell's graphs take other inputs):
    # [N, K*S] hides S and K, so check refuses what would not run
    in_cell = """
specgraph: 1
name: hidden_in_cell
inputs:
  y: [N, T, 4]
  enc: [N, S, K]
blocks:
  step:
    states: {h: 4}
    context: [enc]
    inputs: [y, h, enc]
    nodes:
      flat:   {op: flatten, from: enc}
      back:   {op: reshape, shape: [N, "${enc.shape[1]}", "${enc.shape[2]}"]}
      pooled: {op: mean, dim: [1, 2]}
      h_new:  {op: add, from: [pooled, h]}
graph:
  run: {scan: step, from: y, context: {enc: enc}}
outputs: [run.h]
"""
    with pytest.raises(SpecError) as e:
        specgraph.check(in_cell)
    assert e.value.codes == ["E406"] and "cannot compute S, K from the input [N, K*S]" in e.value.format()


def test_a_minus_one_that_is_a_floored_quotient_is_checked_like_an_entry_written_so():
    # [N, H, W, 4] -> [N, -1, 7, W/7, 7, 4]: the -1 is H/7, which fits only where 7 divides H
    text = WINDOWS.replace('shape: [N, "${x.shape[1] // 7}", 7,', 'shape: [N, -1, 7,')
    graph = specgraph.check(text)
    assert str(graph.node("parts").outputs["out"]) == "[N, ⌊H/7⌋, 7, ⌊W/7⌋, 7, 4]"
    model = specgraph.build(graph)
    x = torch.randn(2, 14, 21, 4)
    torch.testing.assert_close(model(x), window_partition(x))
    # the input check says so first, at the reshape's line; without it, the reshape itself
    with pytest.raises(specgraph.InputError, match=r"error\[E403\] node 'parts': reshape to \[N, -1, 7, ⌊W/7⌋, 7, 4\] "
                                                   r"needs H divisible by 7\n  this call gives H = 15"):
        model(torch.randn(1, 15, 14, 4))
    with pytest.raises(ValueError, match=r"reshape to \[N, -1, 7, ⌊W/7⌋, 7, 4\] needs H divisible by 7, "
                                         r"but this input has H = 15"):
        specgraph.build(graph, check_inputs=False)(torch.randn(1, 15, 14, 4))
    # a -1 that would be no quotient of the input's dims (2500·N / 2401) is a mismatch, as before
    with pytest.raises(SpecError) as e:
        specgraph.check("specgraph: 1\ninputs: {x: [N, 50, 50]}\ngraph:\n  y: {op: reshape, shape: [-1, 7, 7, 7, 7]}\n")
    assert e.value.codes == ["E403"]


def test_a_slice_stops_at_another_tensors_length():
    graph = specgraph.check(SLICE)
    assert [str(graph.node(n).out) for n in ("positions", "padded", "cropped", "shifted")] == [
        "[1, T, 4]", "[N, 5*⌈T/5⌉, 4]", "[N, T, 4]", "[N, T - 1, 4]"]
    model = specgraph.build(graph)
    # T is read from the spec's input; only the bounds the shapes cannot prove are checked on the call
    assert "tokens.size(1)" in model.code and model.code.count("slice_stop(") == 2  # positions', shifted's
    for t in (2, 5, 16):
        x = torch.randn(3, t, 4)
        torch.testing.assert_close(model(x), (x + model.table[:, :t])[:, 1:])
    # the input check tells it first, at the slice's line; without it, the slice itself
    with pytest.raises(specgraph.InputError, match=r"error\[E405\] node 'positions': slice \[0:T\] of dim 1 of "
                                                   r"\[1, 16, 4\] stops past the end of the dim: it needs 0 <= 0 < T <= 16"):
        model(torch.randn(1, 17, 4))
    with pytest.raises(specgraph.InputError, match=r"error\[E404\] node 'shifted': slice \[1:\] of dim 1 of "
                                                   r"\[N, T, 4\] is empty: it needs 0 <= 1 < T <= T"):
        model(torch.randn(1, 1, 4))  # nothing would be left: torch would give an empty tensor
    unchecked = specgraph.build(graph, check_inputs=False)
    with pytest.raises(ValueError, match=r"slice \[0:T\] of dim 1 needs 0 <= 0 < T <= 16, but this input has T = 17$"):
        unchecked(torch.randn(1, 17, 4))
    with pytest.raises(ValueError, match=r"slice \[1:\] of dim 1 needs 0 <= 1 < T <= T, but this input has T = 1$"):
        unchecked(torch.randn(1, 1, 4))


def test_slice_bounds_the_shapes_refute_or_cannot_compute_are_located_errors():
    refuted = "specgraph: 1\ninputs: {x: [N, T, 4]}\ngraph:\n  y: {op: slice, dim: 2, start: \"${x.shape[1]}\", stop: 2}\n"
    with pytest.raises(SpecError) as e:
        specgraph.check(refuted.replace('stop: 2', 'stop: "${x.shape[1]}"'))
    assert e.value.codes == ["E404"] and "slice [T:T] of dim 2 (4) of [N, T, 4] is empty" in e.value.format()
    # inside a scan's cell only the op's own input is read: a bound from a hidden dim is refused
    in_cell = """
specgraph: 1
inputs:
  y: [N, T, 4]
  enc: [N, S, K]
blocks:
  step:
    states: {h: 4}
    context: [enc]
    inputs: [y, h, enc]
    nodes:
      flat:  {op: flatten, from: enc}
      first: {op: slice, dim: 1, stop: "${enc.shape[1]}"}
      h_new: {op: add, from: [y, h]}
graph:
  run: {scan: step, from: y, context: {enc: enc}}
outputs: [run.h]
"""
    with pytest.raises(SpecError) as e:
        specgraph.check(in_cell)
    assert e.value.codes == ["E406"] and "the bound S cannot be computed at run time" in e.value.format()


@pytest.mark.parametrize("text,sizes", [(WINDOWS, [(2, 14, 21, 4), (1, 7, 7, 4)]),
                                        (SLICE, [(2, 8, 4), (1, 13, 4)]),
                                        (SHUFFLE, [(2, 3, 8, 8), (1, 3, 11, 5)]),
                                        (PAD, [(2, 2, 9, 15), (1, 2, 14, 3)])])
def test_exports_compute_the_sizes_from_their_inputs(text, sizes, tmp_path):
    graph = specgraph.check(text)
    model = specgraph.build(graph).eval()
    first, other = (torch.randn(*s) for s in sizes)
    with torch.no_grad():
        want = model(other)
    # ONNX keeps N, H and W dynamic: the sizes are computed in the graph
    file = to_onnx(model, graph, tmp_path / "m.onnx", example_inputs(graph, model, dims={"N": 2, "H": 14, "W": 14, "T": 8}))
    session = ort.InferenceSession(str(file), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: other.numpy()})
    torch.testing.assert_close(torch.from_numpy(np.asarray(got)), want, atol=1e-5, rtol=1e-5)
    # TorchScript and the standalone Python source
    assert to_torchscript(model, graph, tmp_path / "m.pt", (first,)) == "script"
    scripted = torch.jit.load(str(tmp_path / "m.pt"))
    torch.testing.assert_close(scripted(other), want)
    namespace: dict = {}
    exec(compile(python_source(model), "generated", "exec"), namespace)
    generated = [v for v in namespace.values() if isinstance(v, type) and issubclass(v, torch.nn.Module)][-1]()
    generated.load_state_dict(model.state_dict(), strict=True)
    torch.testing.assert_close(generated.eval()(other), want)


def test_memory_walk_sizes_symbolic_entries():
    # the walk reruns each shape rule at concrete sizes: symbol and expression entries go with it
    from specgraph.analysis.memory.walk import memory_report

    graph = specgraph.check(WINDOWS)
    report = memory_report(graph, batch_size=2, dims={"H": 14, "W": 21})
    assert report.nodes["windows"].activation_bytes == 2 * 14 * 21 * 4 * 4  # a copy of the permuted view
    flat = specgraph.check("specgraph: 1\nname: flat\ninputs: {x: {shape: [N, H, W, 4]}}\n"
                           "graph:\n  flat: {op: reshape, shape: [N, -1]}\n")
    assert memory_report(flat, batch_size=3, dims={"H": 7, "W": 7}).nodes["flat"].activation_bytes == 3 * 7 * 7 * 4 * 4


def test_a_coarser_floor_is_read_off_the_input_not_the_spec_input():
    """⌈⌊W/4⌋/7⌉ = ⌊(W + 24)/28⌋ is computed from the op's input's ⌊W/4⌋ (as (d + 6) // 7), so a
    block's code needs nothing from outside it; checked against the value for every W up to 200."""
    from specgraph.ir.dims import Sym, add, floordiv
    from specgraph.ops.runtime_sizes import reading_sizes_from, size_program

    quarter = floordiv(Sym(terms=(("W", 1),)), 4)
    windows = floordiv(add(quarter, 6), 7)
    assert windows == floordiv(add(Sym(terms=(("W", 1),)), 24), 28)
    with reading_sizes_from([(1, 3, 7, Sym(terms=(("W", 1),)))]):  # the spec's input shows W, unused
        program = size_program(windows, (1, quarter, 96))
    assert program == ("affine", ((("dim", 1), 1),), 6, 7)
    _, ((_, _),), const, div = program
    for w in range(1, 200):  # the program on an input of width ⌊w/4⌋ is the dim at W = w
        assert (w // 4 + const) // div == (w + 24) // 28


def test_size_sources_given_as_a_function_are_made_only_when_a_size_is_read_from_them():
    """The check sets the size sources around every shape rule as a function (most rules never
    read them): it is called only where the op's input does not show a symbol, then once."""
    from specgraph.ir.dims import Sym
    from specgraph.ops.runtime_sizes import reading_sizes_from, size_program

    w, h = Sym(terms=(("W", 1),)), Sym(terms=(("H", 1),))
    calls = []

    def sources():
        calls.append(1)
        return [(1, h, w)]

    with reading_sizes_from(sources):
        assert size_program(w, (1, w)) == ("dim", 1)  # the input shows W: no source is made
        assert calls == []
        assert size_program(h, (1, w)) == ("source", 0, 1)  # H only the spec's input shows
        assert size_program(h, (1, w)) == ("source", 0, 1)
    assert calls == [1]
