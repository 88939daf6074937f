"""The index ops (index_select, gather), Swin's relative position index (a buffer's named
initializer) and its shifted-window mask, in one network against plain PyTorch and
torchvision's own code, through every export (ONNX in onnxruntime, torch.export, Python); and
the located errors a wrong index or map gets."""

from __future__ import annotations

import itertools

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torchvision.models.swin_transformer import ShiftedWindowAttention

import specgraph
from specgraph import SpecError
from specgraph.ops.tensors import relative_position_index
from specgraph.ops.windows import shifted_window_mask
from specgraph.torch.export.python import python_source

SPEC = """
specgraph: 1
inputs:
  x: [N, 8, 9, 6]                                   # a channels-last map
  rows: {shape: [5], dtype: int64}
  picks: {shape: [N, 8, 9, 2], dtype: int64}
graph:
  table:  {op: parameter, shape: [35, 2], initializer: normal}   # (2·4 - 1)·(2·3 - 1) relative positions
  index:  {op: buffer, shape: [144], dtype: int64, initializer: relative_position_index, window: [4, 3]}
  bias:   {op: index_select, from: [table, index], dim: 0}       # [144, 2]
  chosen: {op: index_select, from: [x, rows], dim: -1}           # [N, 8, 9, 5]
  taken:  {op: gather, from: [x, picks], dim: 3}                 # [N, 8, 9, 2]
  mask:   {op: shifted_window_mask, from: x, window: [4, 3], shift: [2, 1]}   # [6, 12, 12]
outputs: [bias, chosen, taken, mask]
"""


def torchvision_mask(pad_h: int, pad_w: int, window: list[int], shift: list[int]) -> torch.Tensor:
    """The mask torchvision's shifted_window_attention builds (swin_transformer.py), as written there."""
    attn_mask = torch.zeros((pad_h, pad_w))
    h_slices = ((0, -window[0]), (-window[0], -shift[0]), (-shift[0], None))
    w_slices = ((0, -window[1]), (-window[1], -shift[1]), (-shift[1], None))
    count = 0
    for h in h_slices:
        for w in w_slices:
            attn_mask[h[0]:h[1], w[0]:w[1]] = count
            count += 1
    attn_mask = attn_mask.view(pad_h // window[0], window[0], pad_w // window[1], window[1])
    num_windows = (pad_h // window[0]) * (pad_w // window[1])
    attn_mask = attn_mask.permute(0, 2, 1, 3).reshape(num_windows, window[0] * window[1])
    attn_mask = attn_mask.unsqueeze(1) - attn_mask.unsqueeze(2)
    return attn_mask.masked_fill(attn_mask != 0, float(-100.0)).masked_fill(attn_mask == 0, float(0.0))


def reference(model, x, rows, picks):
    index = ShiftedWindowAttention(8, [4, 3], [0, 0], 2).relative_position_index
    return (model.table[index], torch.index_select(x, -1, rows), torch.gather(x, 3, picks),
            torchvision_mask(8, 9, [4, 3], [2, 1]))


def test_index_ops_and_the_window_mask_equal_torch_and_every_export(tmp_path):
    graph = specgraph.check(SPEC)
    assert [str(graph.node(n).out) for n in ("bias", "chosen", "taken", "mask")] == [
        "[144, 2]", "[N, 8, 9, 5]", "[N, 8, 9, 2]", "[6, 12, 12]"]
    model = specgraph.build(graph).eval()
    assert torch.equal(model.index, ShiftedWindowAttention(8, [4, 3], [0, 0], 2).relative_position_index)
    x, rows, picks = torch.randn(3, 8, 9, 6), torch.tensor([5, 0, 2, 2, 1]), torch.randint(0, 6, (3, 8, 9, 2))
    with torch.no_grad():
        want = reference(model, x, rows, picks)
        for got, expected in zip(model(x, rows, picks), want):
            torch.testing.assert_close(got, expected, atol=0, rtol=0)
    written = specgraph.export(graph, model=model, onnx=tmp_path / "m.onnx", exported=tmp_path / "m.pt2",
                               python=tmp_path / "m.py")
    session = ort.InferenceSession(str(written["onnx"]))
    got = session.run(None, {"x": x.numpy(), "rows": rows.numpy(), "picks": picks.numpy()})
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w.numpy(), atol=1e-6, rtol=1e-6)
    program = torch.export.load(str(written["exported"])).module()
    for g, w in zip(program(x, rows, picks), want):
        torch.testing.assert_close(g, w, atol=0, rtol=0)
    namespace: dict = {}
    exec(compile(python_source(model), "m.py", "exec"), namespace)
    generated = namespace[type(model).__name__]()  # the file's class is named as the built module's
    generated.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        for g, w in zip(generated.eval()(x, rows, picks), want):
            torch.testing.assert_close(g, w, atol=0, rtol=0)


def test_the_mask_is_torchvisions_for_every_small_window_shift_and_map():
    checked = 0
    for wh, ww in itertools.product(range(1, 5), repeat=2):
        for sh, sw in itertools.product(range(wh), range(ww)):
            for gh, gw in itertools.product(range(1, 4), repeat=2):
                x = torch.empty(1, gh * wh, gw * ww, 2, dtype=torch.float64)
                got = shifted_window_mask(x, (wh, ww), (sh, sw), -100.0)
                # torchvision does not shift along a dim one window covers (shifted_window_attention)
                shift = [sh if gh > 1 else 0, sw if gw > 1 else 0]
                want = torchvision_mask(gh * wh, gw * ww, [wh, ww], shift).double()
                assert got.dtype == torch.float64 and torch.equal(got, want), (wh, ww, sh, sw, gh, gw)
                checked += 1
    assert checked == 900


@pytest.mark.parametrize("window", [[7, 7], [4, 3], [1, 5], [2, 2], [8, 8], [12, 1]])
def test_relative_position_index_is_torchvisions(window):
    want = ShiftedWindowAttention(4, window, [0, 0], 1).relative_position_index
    got = relative_position_index(window)
    assert got.dtype == want.dtype and torch.equal(got, want)
    # through the op, in another layout: the same values, row-major
    held = specgraph.build(f"""
specgraph: 1
graph:
  index: {{op: buffer, shape: [{window[0] * window[1]}, {window[0] * window[1]}], dtype: int32,
           initializer: relative_position_index, window: {window}}}
""").index
    assert held.dtype == torch.int32 and torch.equal(held.flatten().long(), want)


# ---- errors --------------------------------------------------------------------------------

BAD = """
specgraph: 1
inputs:
  x: [N, 8, 9, 6]
  flat: [N, 6]
  ids: {shape: [4], dtype: int64}
  grid: {shape: [2, 2], dtype: int64}
  wide: {shape: [N, 8, 9, 7], dtype: int64}
  low: {shape: [N, 8, 9], dtype: int64}
  seq: [N, 8, 6]
  free: [N, H, W, 6]
graph:
  float_index:   {op: index_select, from: [x, flat], dim: 0}
  matrix_index:  {op: index_select, from: [x, grid], dim: 1}
  float_gather:  {op: gather, from: [x, x], dim: 3}
  rank_gather:   {op: gather, from: [x, low], dim: 3}
  large_gather:  {op: gather, from: [x, wide], dim: 1}
  uneven_mask:   {op: shifted_window_mask, from: x, window: [4, 4], shift: [2, 2]}
  rank_mask:     {op: shifted_window_mask, from: seq, window: 4, shift: 2}
  symbolic_mask: {op: shifted_window_mask, from: free, window: 4, shift: 2}
  wide_shift:    {op: shifted_window_mask, from: x, window: [4, 3], shift: [2, 3]}
  # `from: []`: without it, a node after a failing one stays silent (its implicit input failed)
  short_index:   {op: buffer, from: [], shape: [49], dtype: int64, initializer: relative_position_index, window: [7, 7]}
  float_index_buffer: {op: buffer, from: [], shape: [16], initializer: relative_position_index, window: [2, 2]}
  ok:            {op: index_select, from: [x, ids], dim: -1}
outputs: [ok]
"""

EXPECTED = {  # node -> (code, words of the message)
    "float_index": ("E409", "integer index"),
    "matrix_index": ("E410", "index vector"),
    "float_gather": ("E409", "integer index"),
    "rank_gather": ("E410", "of x's rank"),
    "large_gather": ("E402", "dim 3 of the index (7) is larger than x's (6)"),
    "uneven_mask": ("E407", "not a multiple of the window"),
    "rank_mask": ("E410", "channels-last map"),
    "symbolic_mask": ("E406", "is not known to be a multiple of the window (4)"),
    "wide_shift": ("E204", "smaller than the window"),
    "short_index": ("E204", "7×7 window has 49² = 2401 entries"),
    "float_index_buffer": ("E204", "dtype: int64"),
}


def test_each_wrong_index_or_map_is_one_located_error():
    with pytest.raises(SpecError) as info:
        specgraph.check(BAD)
    found = {d.path: d for d in info.value.diagnostics}
    assert set(found) == set(EXPECTED)  # every independent error in one run, the good node silent
    lines = BAD.splitlines()
    for node, (code, words) in EXPECTED.items():
        d = found[node]
        assert d.code == code and words in d.message, (node, d.format())
        assert lines[d.location.line - 1].lstrip().startswith(node), (node, d.location)
