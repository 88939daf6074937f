"""The fused gather-dot (ops/gather_dot_match.py, ops/gather_dot_kernel.py,
ops/gather_dot_function.py): embedding -> unsqueeze, embedding -> mul -> sum as one C kernel,
against the plain PyTorch ops written here, forward and both gradients; the pattern's near
misses; the fallback where no kernel can be built."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

import specgraph
from specgraph.ops import c_build
from specgraph.ops.gather_dot_function import GatherDot, gather_dot
from specgraph.ops.gather_dot_kernel import kernel
from specgraph.ops.gather_dot_match import gather_dots
from specgraph.torch.build import build_module


def reference(a, b, A, B):
    """Plain PyTorch, as a person writes skip-gram's scores."""
    return (F.embedding(a, A)[..., None, :] * F.embedding(b, B)).sum(dim=-1)


def on_kernel(scores: torch.Tensor) -> bool:
    return type(scores.grad_fn).__name__ == "GatherDotBackward"


@pytest.fixture(autouse=True)
def own_kernel_cache(tmp_path_factory, monkeypatch):
    # each test session builds into its own cache folder; the built library is shared by the tests
    monkeypatch.setenv("SPECGRAPH_KERNEL_CACHE", str(tmp_path_factory.getbasetemp() / "kernels"))


@pytest.mark.parametrize("index_shape, k, dim, vocab", [
    ((257,), 6, 100, 7),      # skip-gram's rows, many duplicate indices (7 words)
    ((1,), 6, 100, 1663),     # batch 1
    ((33,), 1, 100, 5),       # K = 1
    ((4, 9), 3, 13, 6),       # leading dims, a dim that is no multiple of the kernel's 8 lanes
])
def test_kernel_equals_plain_ops_forward_and_both_gradients(index_shape, k, dim, vocab):
    g = torch.Generator().manual_seed(0)
    A = (torch.rand(vocab, dim, generator=g) - 0.5).requires_grad_()
    B = torch.randn(vocab + 3, dim, generator=g).requires_grad_()
    a = torch.randint(vocab, index_shape, generator=g)
    b = torch.randint(vocab + 3, (*index_shape, k), generator=g)
    b.view(-1)[:2] = b.view(-1)[2]  # the same word twice in one row too
    got, want = gather_dot(a, b, A, B), reference(a, b, A, B)
    assert on_kernel(got)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    upstream = torch.randn(want.shape, generator=g)
    for x, y in zip(torch.autograd.grad(got, (A, B), upstream), torch.autograd.grad(want, (A, B), upstream)):
        assert x.layout == torch.strided and x.shape == y.shape  # dense, as embedding's backward gives
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5)


def test_kernel_takes_a_frozen_table_and_int32_indices():
    A, B = torch.randn(10, 8), torch.randn(10, 8, requires_grad=True)
    a, b = torch.randint(10, (5,), dtype=torch.int32), torch.randint(10, (5, 2), dtype=torch.int32)
    got = gather_dot(a, b, A, B)
    assert on_kernel(got)
    (grad_b,) = torch.autograd.grad(got.sum(), (B,))
    torch.testing.assert_close(grad_b, torch.autograd.grad(reference(a.long(), b.long(), A, B).sum(), (B,))[0])


def test_an_index_out_of_range_raises_torchs_error():
    A, B = torch.randn(10, 8), torch.randn(10, 8)
    with pytest.raises(IndexError, match="out of range"):
        gather_dot(torch.tensor([3, 10]), torch.zeros(2, 4, dtype=torch.long), A, B)


def test_what_the_kernel_does_not_take_runs_the_plain_ops():
    a, b = torch.randint(10, (5,)), torch.randint(10, (5, 3))
    A64, B64 = torch.randn(10, 8, dtype=torch.float64), torch.randn(10, 8, dtype=torch.float64)
    assert not on_kernel(gather_dot(a, b, A64.requires_grad_(), B64))  # float64
    A, B = torch.randn(10, 8, requires_grad=True), torch.randn(10, 8)
    out = gather_dot(torch.randint(10, (1,)), b, A, B)  # [1] against [5, 3]: broadcasting only
    assert not on_kernel(out) and out.shape == (5, 3)
    traced = torch.jit.trace(lambda a, b, A, B: gather_dot(a, b, A, B), (a, b, A, B), check_trace=False)
    assert "aten::embedding" in str(traced.graph)  # a trace records the spec's ops


SKIPGRAM = """
specgraph: 1
inputs: {{center: {{shape: [N], dtype: int64}}, words: {{shape: [N, 4], dtype: int64}}}}
graph:
  embed:   {{op: embedding, num: 12, dim: 16{embed}, from: center}}
  query:   {{op: unsqueeze, dim: {unsqueeze}}}
  outputs: {{op: embedding, num: 12, dim: 16, from: words}}
  product: {{op: mul, from: [{operands}]}}
  scores:  {{op: sum, dim: {sum}}}
{extra}"""


def skipgram(embed="", unsqueeze=1, operands="query, outputs", sum="-1", extra=""):
    return specgraph.check(SKIPGRAM.format(embed=embed, unsqueeze=unsqueeze, operands=operands, sum=sum,
                                           extra=extra))


def random_weights(model):
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-0.5, 0.5)
    return model


@pytest.mark.parametrize("variant", [{}, {"operands": "outputs, query"}, {"unsqueeze": -2}, {"sum": 2}])
def test_the_spec_is_fused_and_equals_its_unfused_build(variant):
    graph = skipgram(**variant)
    (fusion,), missed = gather_dots(graph)
    assert fusion.paths == ("embed", "query", "outputs", "product", "scores") and not missed
    fused = random_weights(build_module(graph))
    plain = build_module(graph, fuse=False)
    plain.load_state_dict(fused.state_dict(), strict=True)  # the spec's keys, both
    assert list(fused.state_dict()) == ["embed.weight", "outputs.weight"]
    assert "gather_dot(" in fused.code and "gather_dot" not in plain.code
    center, words = torch.tensor([3, 3, 0, 11, 3]), torch.tensor([[3, 3, 1, 2]] * 4 + [[11, 0, 0, 0]])
    got, want = fused(center, words), plain(center, words)
    assert on_kernel(got) and not on_kernel(want)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    got.square().sum().backward()
    want.square().sum().backward()
    for p, q in zip(fused.parameters(), plain.parameters()):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-5, rtol=1e-5)


def test_training_steps_give_the_weights_of_the_unfused_build():
    graph = specgraph.check("specs/skipgram_ns.yaml", vocab=50, dim=24)
    models = [random_weights(build_module(graph, fuse=fuse)) for fuse in (True, False)]
    g = torch.Generator().manual_seed(2)
    batches = [(torch.randint(50, (64,), generator=g), torch.randint(50, (64, 6), generator=g)) for _ in range(8)]
    signs = torch.tensor([1.0] + [-1.0] * 5)
    for model in models:
        opt = torch.optim.SGD(model.parameters(), lr=2.0)
        for center, words in batches:
            opt.zero_grad()
            loss = -F.logsigmoid(model(center, words) * signs).sum(-1).mean()
            loss.backward()
            opt.step()
    assert on_kernel(models[0](*batches[0]))
    for p, q in zip(*(m.parameters() for m in models)):
        torch.testing.assert_close(p, q, atol=1e-5, rtol=1e-5)


SQUARE = SKIPGRAM.replace("[N]", "[4]").replace("[N, 4]", "[4, 4]")  # sizes that broadcast either way


@pytest.mark.parametrize("spec, reason", [
    (dict(sum=1), "scores sums over dim 1"),
    (dict(sum="-1, keepdim: true"), "keeping it"),
    (dict(embed=", sparse: true"), "embed has sparse: true"),
    (dict(embed=", padding_idx: 0"), "embed has padding_idx"),
    (dict(embed=", max_norm: 1.0"), "embed has max_norm"),
    (dict(extra="outputs: {scores: scores, query: query}"), "query's value is also read elsewhere"),
    (dict(template=SQUARE, unsqueeze=0), "query unsqueezes dim 0"),
    (dict(template=SQUARE, operands="query, query"), "one operand must be an embedding's vectors unsqueezed"),
])
def test_near_misses_are_not_fused_and_say_why(spec, reason):
    fields = dict(embed="", unsqueeze=1, operands="query, outputs", sum="-1", extra="") | spec
    graph = specgraph.check(fields.pop("template", SKIPGRAM).format(**fields))
    fused, (missed,) = gather_dots(graph)
    assert not fused and reason in missed.reason
    assert "gather_dot" not in build_module(graph).code
    assert specgraph.summary(graph).runs_as[missed.node.path].startswith("not fused as a gather-dot: ")


def test_a_mul_of_other_values_is_no_candidate():
    graph = specgraph.check("""
specgraph: 1
inputs: {center: {shape: [N], dtype: int64}, x: [N, 4, 16]}
graph:
  embed: {op: embedding, num: 12, dim: 16, from: center}
  query: {op: unsqueeze, dim: 1}
  product: {op: mul, from: [query, x]}
  scores: {op: sum, dim: -1}
""")
    assert gather_dots(graph) == ([], [])
    assert "gather_dot" not in build_module(graph).code


def test_summary_and_diagram_say_fused():
    summary = specgraph.summary("specs/skipgram_ns.yaml")
    assert summary.runs_as == {"scores": "fused: embed, query, outputs, product, scores run as one gather-dot "
                                         "kernel (embed · outputs, no [.., K, dim] product)"}
    assert specgraph.render("specs/skipgram_ns.yaml").source.count("fused: gather-dot → scores") == 5


@pytest.fixture
def no_compiler(monkeypatch, tmp_path):
    monkeypatch.setattr(c_build, "_loaded", {})
    monkeypatch.setenv("SPECGRAPH_KERNEL_CACHE", str(tmp_path / "empty"))
    monkeypatch.setattr(c_build, "c_compiler", lambda: None)


def test_without_a_c_compiler_the_plain_ops_run_and_the_summary_says_why(no_compiler):
    assert kernel() == "no C compiler found (cc, gcc or clang on the PATH, or $CC)"
    graph = skipgram()
    model = build_module(graph)
    assert "gather_dot" not in model.code
    assert not on_kernel(model(torch.tensor([1]), torch.tensor([[1, 2, 3, 4]])))
    (note,) = specgraph.summary(graph).runs_as.values()
    assert note == "not fused as a gather-dot: the kernel cannot run here: no C compiler found (cc, gcc or clang " \
                   "on the PATH, or $CC)"
    a, b, A = torch.tensor([0]), torch.tensor([[1]]), torch.randn(2, 3, requires_grad=True)
    assert not on_kernel(gather_dot(a, b, A, A))  # a module built before still runs, on the plain ops


def test_a_failed_build_is_a_reason_not_an_error(monkeypatch, tmp_path):
    monkeypatch.setattr(c_build, "_loaded", {})
    monkeypatch.setenv("SPECGRAPH_KERNEL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", "false")  # a "compiler" that always fails
    reason = kernel()
    assert isinstance(reason, str) and reason.startswith("its C kernel did not compile (false: ")
    assert list((tmp_path / "cache").iterdir()) == []  # no half-written library left behind


def test_the_library_is_built_once_into_the_cache(monkeypatch, tmp_path):
    monkeypatch.setattr(c_build, "_loaded", {})
    monkeypatch.setenv("SPECGRAPH_KERNEL_CACHE", str(tmp_path))
    assert not isinstance(kernel(), str)
    (built,) = tmp_path.iterdir()
    assert built.name.startswith("gather_dot-") and built.suffix == ".so"
    stamp = built.stat().st_mtime_ns
    monkeypatch.setattr(c_build, "_loaded", {})  # another process: loads the cached file
    assert not isinstance(kernel(), str) and built.stat().st_mtime_ns == stamp
    assert GatherDot is not None


def test_exports_of_the_fused_spec_record_the_plain_ops_and_equal_it(tmp_path):
    # random weights in both tables: the spec's own init (outputs at zero) would make every score 0
    import importlib.util

    import onnxruntime as ort

    from specgraph.torch.export.formats import to_onnx, to_torchscript
    from specgraph.torch.export.python import python_source

    graph = specgraph.check("specs/skipgram_ns.yaml", vocab=40, dim=24)
    model = random_weights(specgraph.build(graph)).eval()
    center, words = torch.randint(40, (7,)), torch.randint(40, (7, 6))
    want = model(center, words)
    assert on_kernel(want) and "gather_dot(" in model.code
    got = {"torch.export": torch.export.export(model, (center, words)).module()(center, words)}
    assert to_torchscript(model, graph, tmp_path / "m.pt") == "script"
    got["torchscript"] = torch.jit.load(str(tmp_path / "m.pt"))(center, words)
    for form in (graph, None):  # one class per block; flat
        source = python_source(model, form)
        assert "specgraph" not in source.replace("specgraph export", "") and "ctypes" not in source
        file = tmp_path / f"m{form is None}.py"
        file.write_text(source)
        module = importlib.util.module_from_spec(importlib.util.spec_from_file_location(file.stem, file))
        module.__spec__.loader.exec_module(module)
        cls = [v for v in vars(module).values() if isinstance(v, type) and issubclass(v, torch.nn.Module)
               and v.__module__ == module.__name__][-1]
        generated = cls()
        generated.load_state_dict(model.state_dict(), strict=True)
        got[f"python {'flat' if form is None else 'classes'}"] = generated(center, words)
    onnx_file = to_onnx(model, graph, tmp_path / "m.onnx")
    session = ort.InferenceSession(str(onnx_file))
    got["onnx"] = torch.from_numpy(session.run(None, {"center": center.numpy(), "words": words.numpy()})[0])
    for form, scores in got.items():
        assert not on_kernel(scores), form
        torch.testing.assert_close(scores, want, atol=1e-5, rtol=1e-5, msg=form)


def test_the_avx2_copy_gives_the_bits_of_the_portable_one():
    # the kernel's results must not depend on the machine: lane by lane, one order of summing
    import ctypes

    from specgraph.ops.gather_dot_kernel import SOURCE

    portable = SOURCE.replace('__attribute__((target_clones("avx2", "default")))', "")
    assert portable != SOURCE
    libs = [kernel(), c_build.compiled_library("gather_dot_portable", portable)]
    P, I = ctypes.c_void_p, ctypes.c_int64
    libs[1].gather_dot_forward.restype = I
    libs[1].gather_dot_forward.argtypes = [P, P, P, P, I, I, I, I, I, P]
    libs[1].gather_dot_backward.argtypes = [P, P, P, P, P, I, I, I, P, P]
    g = torch.Generator().manual_seed(3)
    A, B = torch.randn(300, 100, generator=g), torch.randn(300, 100, generator=g)
    a, b, up = torch.randint(300, (999,), generator=g), torch.randint(300, (999, 6), generator=g), torch.randn(999, 6)
    results = []
    for lib in libs:
        scores, dA, dB = torch.empty(999, 6), torch.zeros_like(A), torch.zeros_like(B)
        assert lib.gather_dot_forward(A.data_ptr(), B.data_ptr(), a.data_ptr(), b.data_ptr(), 999, 6, 100, 300, 300,
                                      scores.data_ptr()) == -1
        lib.gather_dot_backward(A.data_ptr(), B.data_ptr(), a.data_ptr(), b.data_ptr(), up.data_ptr(), 999, 6, 100,
                                dA.data_ptr(), dB.data_ptr())
        results.append((scores, dA, dB))
    for x, y in zip(*results):
        assert torch.equal(x, y)


def test_the_tables_stay_embedding_modules_in_train_and_eval_graphs():
    graph = specgraph.check(
        SKIPGRAM.format(embed="", unsqueeze=1, operands="query, outputs", sum="-1", extra="")
        .replace("  scores:  {op: sum, dim: -1}", "  scores:  {op: sum, dim: -1}\n  noisy: {op: dropout, p: 0.5}")
        + "outputs: {scores: scores, noisy: {from: noisy, train_only: true}}\n")
    model = random_weights(build_module(graph))
    assert model.code.count("gather_dot(") == 2  # the train-mode graph and the eval-mode one
    for gm in (model, model.train_graph_module, model.eval_graph_module):
        assert isinstance(gm.embed, torch.nn.Embedding) and isinstance(gm.outputs, torch.nn.Embedding)
    ids = torch.tensor([1, 2, 2])
    torch.testing.assert_close(model.embed(ids), model.embed.weight[ids])  # still callable, as built
    assert list(model.state_dict()) == ["embed.weight", "outputs.weight"]
    center, words = torch.tensor([0, 5]), torch.tensor([[1, 2, 3, 4], [5, 5, 0, 1]])
    scores, noisy = model.train()(center, words)
    assert on_kernel(scores)
    torch.testing.assert_close(scores, reference(center, words, model.embed.weight, model.outputs.weight))
