"""einsum and broadcast_to: a network using both against the same computation in plain PyTorch
and through every export (ONNX in onnxruntime, torch.export, Python source); the equation rule
fuzzed against torch.einsum itself; MACs against torch's flop counter; the row-wise promise and
the view strides against what torch computes; and every refusal a located error with its code."""

from __future__ import annotations

import random

import numpy as np
import onnxruntime as ort
import pydantic
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import specgraph
from specgraph import SpecError
from specgraph.ir.dims import symbol
from specgraph.ir.strides import contiguous_strides
from specgraph.ir.tensor_type import TensorType
from specgraph.ir.traits import Trait
from specgraph.ops import ShapeError, get_op
from specgraph.torch.export.python import python_source

SPEC = """
specgraph: 1
inputs:
  x: [N, T, 8]
  scale: [N, 1, 1]
graph:
  q:          {op: linear, out: 8, from: x}
  k:          {op: linear, out: 8, from: x}
  scores:     {op: einsum, equation: "bqd,bkd->bqk", from: [q, k]}                  # [N, T, T]
  weights:    {op: softmax, dim: -1}
  mixed:      {op: einsum, equation: "...qk,...kd->...qd", from: [weights, x]}      # [N, T, 8]
  gated:      {op: einsum, equation: "btd,btd->btd", from: [mixed, scale]}          # t and d of size 1 broadcast
  like:       {op: broadcast_to, from: [scale, mixed]}                              # [N, T, 8]
  pooled:     {op: einsum, equation: "btd,btd,bte->bde", from: [gated, like, x]}    # [N, 8, 8]
  transposed: {op: einsum, equation: "bed", from: pooled}                           # implicit: bed->bde
  tiled:      {op: broadcast_to, from: scale, shape: [2, -1, N, 3]}                 # [2, N, N, 3]
  wide:       {op: broadcast_to, from: scale, shape: [-1, "${2 * scale.shape[0]}", -1]}   # [N, 2*N, 1]
outputs: [transposed, tiled, wide]
"""


def reference(model, x, scale):
    """The spec written with matmul, transpose and expand: no einsum, no broadcast_to."""
    q, k = model.q(x), model.k(x)
    weights = torch.softmax(q @ k.transpose(1, 2), dim=-1)
    mixed = weights @ x
    gated = mixed * scale
    like = scale.expand(mixed.shape)
    pooled = (gated * like).transpose(1, 2) @ x
    n = scale.shape[0]
    return pooled.transpose(1, 2), scale.expand(2, n, n, 3), scale.expand(n, 2 * n, 1)


def test_einsum_and_broadcast_to_equal_plain_torch_and_every_export(tmp_path):
    graph = specgraph.check(SPEC)
    shapes = {n: str(graph.node(n).out) for n in ("scores", "mixed", "like", "pooled", "transposed", "tiled", "wide")}
    assert shapes == {"scores": "[N, T, T]", "mixed": "[N, T, 8]", "like": "[N, T, 8]", "pooled": "[N, 8, 8]",
                      "transposed": "[N, 8, 8]", "tiled": "[2, N, N, 3]", "wide": "[N, 2*N, 1]"}
    model = specgraph.build(graph).eval()
    assert "einsum('bed->bde', pooled)" in model.code  # the implicit form emitted explicitly
    x, scale = torch.randn(3, 5, 8), torch.randn(3, 1, 1)
    with torch.no_grad():
        want = reference(model, x, scale)
        for got, w in zip(model(x, scale), want):
            torch.testing.assert_close(got, w, atol=1e-5, rtol=1e-5)
    written = specgraph.export(graph, model=model, onnx=tmp_path / "m.onnx", exported=tmp_path / "m.pt2",
                               python=tmp_path / "m.py")
    session = ort.InferenceSession(str(written["onnx"]), providers=["CPUExecutionProvider"])
    assert [o.shape for o in session.get_outputs()] == [["N", 8, 8], [2, "N", "N", 3], ["N", "2*N", 1]]
    x2, scale2 = torch.randn(2, 7, 8), torch.randn(2, 1, 1)  # other sizes than the trace's: N, T stay dynamic
    with torch.no_grad():
        want2 = reference(model, x2, scale2)
    for got, w in zip(session.run(None, {"x": x2.numpy(), "scale": scale2.numpy()}), want2):
        np.testing.assert_allclose(got, w.numpy(), atol=1e-4, rtol=1e-4)
    program = torch.export.load(str(written["exported"])).module()
    for got, w in zip(program(x, scale), want):
        torch.testing.assert_close(got, w, atol=1e-5, rtol=1e-5)
    namespace: dict = {}
    exec(compile(python_source(model), "m.py", "exec"), namespace)
    generated = namespace[type(model).__name__]()
    generated.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        for got, w in zip(generated.eval()(x, scale), want):
            torch.testing.assert_close(got, w, atol=1e-5, rtol=1e-5)


# ---- the equation rule, fuzzed against torch.einsum ---------------------------------------------

def einsum_type(equation: str, shapes) -> TensorType:
    op = get_op("einsum")
    return op.infer(op.Params.model_validate({"equation": equation}), [TensorType(tuple(s)) for s in shapes])[0]


def _random_case(rng: random.Random) -> tuple[str, list[tuple[int, ...]]]:
    """An equation over few letters (so that they repeat), mostly well formed, with shapes that
    mostly fit it: some sizes 1 (broadcast), some wrong, some ranks off, '...' of 0-2 dims."""
    letters = "abcB"
    size = {c: rng.choice((2, 3)) for c in letters}
    batch = [rng.choice((1, 2, 3)) for _ in range(2)]
    terms, shapes = [], []
    for _ in range(rng.choice((1, 2, 2, 3))):
        term = [rng.choice(letters) for _ in range(rng.randint(0, 3))]
        dims = [rng.choice((1, size[c], size[c], size[c], 4)) for c in term]
        if rng.random() < 0.3:
            at, covered = rng.randint(0, len(term)), rng.randint(0, 2)
            term.insert(at, "...")
            dims[at:at] = [rng.choice((1, b, b)) for b in batch[2 - covered:]]
        if rng.random() < 0.05:
            dims.append(2)  # one dim too many
        terms.append("".join(term))
        shapes.append(tuple(dims))
    equation = ",".join(terms)
    if rng.random() < 0.7:
        used = sorted({c for t in terms for c in t if c.isalpha()})
        out = rng.sample(used, rng.randint(0, len(used)))
        if rng.random() < 0.05:
            out.append(rng.choice(letters))  # perhaps twice, perhaps in no input
        if any("..." in t for t in terms) and rng.random() < 0.7 or rng.random() < 0.05:
            out.insert(rng.randint(0, len(out)), "...")
        equation += "->" + "".join(out)
    if rng.random() < 0.05:
        shapes = shapes[:-1] if len(shapes) > 1 and rng.random() < 0.5 else shapes + [(2,)]
    return equation, shapes


def test_einsum_infers_what_torch_computes_and_refuses_what_torch_refuses():
    rng = random.Random(13)
    accepted = refused = 0
    for _ in range(600):
        equation, shapes = _random_case(rng)
        try:
            real = tuple(torch.einsum(equation, *[torch.randn(s) for s in shapes]).shape)
        except RuntimeError:
            real = None
        try:
            inferred = tuple(einsum_type(equation, shapes).shape)
        except (ShapeError, pydantic.ValidationError):
            inferred = None
        assert inferred == real, (equation, shapes)
        accepted += real is not None
        refused += real is None
    assert accepted > 200 and refused > 100  # both sides of the rule were exercised


@pytest.mark.parametrize("equation", ["i1,jk->ik", "ij,jk->>ik", "ij,jk-ik", "..ij,jk->ik", "i...j...,jk->ik",
                                      "ij->ii", "ij->k", "ij->j->i", "ij,jk->ik,", ". ..i->i"])
def test_equations_torch_cannot_read_are_refused_as_params(equation):
    with pytest.raises(pydantic.ValidationError):
        get_op("einsum").Params.model_validate({"equation": equation})
    n = equation.split("->")[0].count(",") + 1
    with pytest.raises(RuntimeError):  # torch refuses it too, whatever the operands
        torch.einsum(equation, *[torch.randn(2, 2)] * n)


def test_symbolic_sizes_are_kept_and_unprovable_ones_refused():
    N, T, S = symbol("N"), symbol("T"), symbol("S")
    assert einsum_type("bhqd,bhkd->bhqk", [(N, 4, T, 8), (N, 4, S, 8)]).shape == (N, 4, T, S)
    assert einsum_type("...ij,...jk", [(N, T, 8), (1, 8, 3)]).shape == (N, T, 3)
    assert einsum_type("ij,ij->ij", [(N, 1), (1, T)]).shape == (N, T)  # 1 broadcasts against a symbol
    for shapes in ([(N, 8), (T, 3)], [(N, 8), (8, 3)], [(N, 8), (T, 3)]):
        with pytest.raises(ShapeError) as info:
            einsum_type("ij,ik->jk", shapes)
        assert info.value.code == "E406" and "subscript 'i'" in info.value.message


# ---- cost and traits --------------------------------------------------------------------------

@pytest.mark.parametrize("equation,shapes", [
    ("bhqd,bhkd->bhqk", [(1, 4, 5, 8), (1, 4, 7, 8)]),
    ("bij,bjk->bik", [(1, 5, 8), (1, 8, 3)]),
    ("...ij,...jk->...ik", [(1, 4, 5, 8), (1, 8, 3)]),
    ("bij,bjk,bkl->bil", [(1, 3, 4), (1, 4, 5), (1, 5, 6)]),
    ("bi,oij,bj->bo", [(1, 3), (4, 3, 5), (1, 5)]),
    ("bijx,bjk->bik", [(1, 5, 8, 2), (1, 8, 3)]),  # x is summed before the product
])
def test_macs_are_torchs_multiply_adds_at_batch_1(equation, shapes):
    op = get_op("einsum")
    p = op.Params.model_validate({"equation": equation})
    types = [TensorType(s) for s in shapes]
    with FlopCounterMode(display=False) as counter:
        torch.einsum(equation, *[torch.randn(s) for s in shapes])
    assert op.macs(p, types, op.infer(p, types)) == counter.get_total_flops() // 2
    terms = equation.split("->")[0].split(",")
    batched = [TensorType((symbol("N"), *s[1:])) if k == 0 or term[0] == terms[0][0] != "." else TensorType(s)
               for k, (term, s) in enumerate(zip(terms, shapes))]
    assert op.macs(p, batched, op.infer(p, batched)) == counter.get_total_flops() // 2  # N counted at 1


def test_macs_unknown_for_other_symbols_and_zero_for_one_input():
    op = get_op("einsum")
    p = op.Params.model_validate({"equation": "bqd,bkd->bqk"})
    types = [TensorType((symbol("N"), symbol("T"), 8))] * 2
    assert op.macs(p, types, op.infer(p, types)) is None
    p1 = op.Params.model_validate({"equation": "bij->bji"})
    assert op.macs(p1, types[:1], op.infer(p1, types[:1])) == 0


@pytest.mark.parametrize("equation,shapes,row_wise", [
    ("bqd,bkd->bqk", [(4, 3, 5), (4, 6, 5)], True),
    ("btd,btd,bte->bde", [(4, 3, 2), (4, 3, 2), (4, 3, 5)], True),
    ("b...->b", [(4, 2, 3)], True),
    ("bij->bji", [(4, 2, 3)], True),
    ("bi,bj->ij", [(4, 2), (4, 3)], False),  # sums over the batch
    ("bi,bj->ibj", [(4, 2), (4, 3)], False),  # the batch is not the output's dim 0
    ("ij->ji", [(4, 3)], False),
    ("bb->b", [(4, 4)], False),  # the diagonal reads column b too
    ("...i->...i", [(4, 3)], False),
    ("bi,ij->bj", [(4, 2), (2, 3)], False),  # input 1 has no batch
])
def test_row_wise_exactly_when_each_output_row_reads_its_own_rows(equation, shapes, row_wise):
    op = get_op("einsum")
    p = op.Params.model_validate({"equation": equation})
    assert (Trait.ROW_WISE in op.node_traits(p, [TensorType(s) for s in shapes])) == row_wise
    if row_wise:  # the promise, checked: rows computed alone are the rows of the whole
        xs = [torch.randn(s) for s in shapes]
        whole = torch.einsum(equation, *xs)
        for i in range(shapes[0][0]):
            torch.testing.assert_close(torch.einsum(equation, *[x[i:i + 1] for x in xs])[0], whole[i])


@pytest.mark.parametrize("params,shapes", [
    ({"shape": [-1, 4, -1]}, [(2, 1, 5)]),
    ({"shape": [3, -1, 4, -1]}, [(2, 1, 5)]),
    ({"shape": [2, 3, 4]}, [(3, 1)]),
    ({"shape": [2, 3]}, [()]),
    ({}, [(1, 1, 8), (2, 5, 8)]),
])
def test_broadcast_to_views_with_torchs_strides(params, shapes):
    op = get_op("broadcast_to")
    p = op.Params.model_validate(params)
    out = op.infer(p, [TensorType(s) for s in shapes])[0]
    x = torch.randn(shapes[0])
    real = torch.broadcast_to(x, out.shape)
    assert real.data_ptr() == x.data_ptr()  # a view indeed
    assert op.view_strides(p, shapes[0], contiguous_strides(shapes[0]), tuple(out.shape)) == real.stride()
    assert Trait.VIEW in op.node_traits(p, [TensorType(s) for s in shapes])


def test_memory_walk_shares_broadcast_to_storage_and_models_einsum():
    from torch import fx

    from specgraph.analysis.memory.walk import memory_report

    # The walk re-infers every node at concrete sizes, where a symbol entry ("N") has no input
    # dim to name any more: the entries here are numbers and -1 (see the report on reshape's too).
    graph = specgraph.check("""
specgraph: 1
inputs:
  x: [N, T, 8]
  scale: [N, 1, 1]
graph:
  like:   {op: broadcast_to, from: [scale, x]}
  tiled:  {op: broadcast_to, from: scale, shape: [2, -1, 4, 3]}
  scores: {op: einsum, equation: "btd,btd->bt", from: [x, like]}
outputs: [scores, tiled]
""")
    report = memory_report(graph, 3, {"T": 5})
    assert report.unmodelled == []  # einsum's scratch has a model (analysis/memory/kernels/contraction.py)
    seen = {}

    class Keep(fx.Interpreter):
        def run_node(self, n):
            seen[n.name] = result = super().run_node(n)
            return result

    with torch.no_grad():
        Keep(specgraph.build(graph).eval()).run(torch.randn(3, 5, 8), torch.randn(3, 1, 1))
    for name in ("like", "tiled"):
        node = report.nodes[name]
        assert node.new_bytes == 0 and node.activation_bytes == seen[name].numel() * 4
        assert seen[name].untyped_storage().data_ptr() == seen["scale"].untyped_storage().data_ptr()


# ---- refusals: located, with their codes --------------------------------------------------------

def only(spec: str, code: str, line: int, col: int, path: str):
    with pytest.raises(SpecError) as info:
        specgraph.check(spec)
    diags = info.value.diagnostics
    shown = "\n".join(d.format() for d in diags)
    assert [d.code for d in diags] == [code], shown
    d = diags[0]
    assert (d.location.line, d.location.col, d.path) == (line, col, path), shown
    return d


def spec(inputs: str, node: str) -> str:
    return f"specgraph: 1\ninputs:\n{inputs}graph:\n  {node}\n"  # the node is on line {3 + inputs' lines}


AB = "  a: [N, 5, 8]\n  b: [N, 8, 3]\n"


@pytest.mark.parametrize("inputs,node,code,words", [
    (AB, "c: {op: einsum, equation: 'bij,bjk->bik', from: a}", "E408", "2 input term(s), found 1"),
    (AB, "c: {op: einsum, equation: 'bij->bji', from: [a, b]}", "E408", "1 input term(s), found 2"),
    (AB, "c: {op: einsum, equation: 'ij,jk->ik', from: [a, b]}", "E410", "input 0 has 2 subscript(s) ('ij') but rank 3"),
    (AB, "c: {op: einsum, equation: 'b...ijk,bjk->bik', from: [a, b]}", "E410", "besides '...'"),
    (AB, "c: {op: einsum, equation: 'bij,bkj->bik', from: [a, b]}", "E402",
     "subscript 'j' is 8 in input 0 (dim 2) and 3 in input 1 (dim 2)"),
    ("  a: [N, 5, 8]\n  b: [M, 8, 3]\n", "c: {op: einsum, equation: 'bij,bjk->bik', from: [a, b]}", "E406",
     "cannot prove subscript 'b' the same size"),
    ("  a: [3, 4]\n", "c: {op: einsum, equation: 'ii->i', from: a}", "E402", "repeats in input 0 (its diagonal)"),
    ("  a: [2, 3, 4]\n  b: [5, 4]\n", "c: {op: einsum, equation: '...i,...i->...', from: [a, b]}", "E402",
     "a dim under '...' is 3 in input 0 (dim 1) and 5 in input 1 (dim 0)"),
    ("  a: [N, 8]\n  b: {shape: [N, 8], dtype: float64}\n", "c: {op: einsum, equation: 'bi,bi->b', from: [a, b]}",
     "E409", "one dtype"),
    (AB, "c: {op: einsum, equation: 'bij,bjk->bi1', from: [a, b]}", "E204", "'1' at index 11 is not a subscript"),
    (AB, "c: {op: einsum, equation: 'bij,bjk->bii', from: [a, b]}", "E204", "'i' appears more than once"),
    (AB, "c: {op: einsum, equation: 'bij,bjk->bz', from: [a, b]}", "E204", "'z' is in no input term"),
    (AB, "c: {op: einsum, equation: 'b..ij,bjk->bik', from: [a, b]}", "E204", "not part of a '...'"),
    (AB, "c: {op: einsum, equation: 'bij->bj->b', from: a}", "E204", "more than one '->'"),
    ("  a: [N, 2, 3]\n", "c: {op: broadcast_to, shape: [-1, 4, 3], from: a}", "E402",
     "cannot stretch dim 1 of [N, 2, 3] (2) to 4"),
    ("  a: [N, 1, 3]\n", "c: {op: broadcast_to, shape: [4, 5, 3], from: a}", "E406",
     "cannot prove dim 0 of [N, 1, 3] (N) is 4 or 1"),
    ("  a: [1, 3]\n", "c: {op: broadcast_to, shape: [M, 3], from: a}", "E406", "cannot compute M from the input"),
    ("  a: [2, 3]\n", "c: {op: broadcast_to, shape: [3], from: a}", "E410", "never removes one"),
    ("  a: [3]\n", "c: {op: broadcast_to, shape: [-1, 3], from: a}", "E402", "a new leading dim"),
    ("  a: [1, 3]\n", "c: {op: broadcast_to, from: a}", "E408", "needs a target"),
    (AB, "c: {op: broadcast_to, shape: [N, 5, 8], from: [a, b]}", "E408", "not both"),
    ("  a: [2, 3]\n  b: [2, 4]\n", "c: {op: broadcast_to, from: [a, b]}", "E402", "cannot stretch dim 1"),
    ("  a: [1, 3]\n", "c: {op: broadcast_to, shape: [0, 3], from: a}", "E204", "not 0"),
])
def test_refusals_are_located_errors_with_their_code(inputs, node, code, words):
    text = spec(inputs, node)
    line = text.count("\n", 0, text.index("  c:")) + 1
    col = 3 if code != "E204" else 6  # a param error points at the node's mapping, the others at its name
    d = only(text, code, line, col, "c")
    assert words in d.message, d.format()
