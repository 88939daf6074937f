"""Each kernel's scratch model against the CPU allocator's measured peak, one node (or two: a
permute before it) at a time, so that nothing blurs a wrong model: within 5%.

The inputs, allocated before the call, are added to the measured peak (tests/peak_measure.py);
one intra-op thread, so that the kernel choice and the per-thread buffers are fixed.  The same
tests hold on AVX-512 and AVX2 (ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 runs the AVX2
kernels on an AVX-512 machine): the models read the ISA.
"""

from __future__ import annotations

import json

import pytest
import torch

import specgraph
from specgraph.analysis.memory.walk import memory_report

from peak_measure import measured_peak, random_inputs

TOLERANCE = 0.05  # max_pool3d without its indices would be 18% under


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def check(text: str, batch: int | None, tolerance: float = TOLERANCE):
    graph = specgraph.check("specgraph: 1\n" + text)
    report = memory_report(graph, batch, {}, threads=torch.get_num_threads())
    assert not report.unmodelled
    measured = measured_peak(specgraph.build(graph).eval(), random_inputs(graph, report.sizes))
    assert abs(report.inference_peak - measured) <= tolerance * measured, (
        f"predicted {report.inference_peak}, measured {measured}, ratio {report.inference_peak / measured:.3f}")


def one_node(op: str, params: dict, shape: list[int]) -> str:
    fields = "".join(f", {k}: {json.dumps(v)}" for k, v in params.items())
    return f"inputs: {{x: {shape}}}\ngraph:\n  a: {{op: {op}{fields}}}\n"


# The 1-D and 3-D convolutions and pools, one node each: both convolution kernels (ATen's im2col at
# batch 1 on a small input, oneDNN at batch > 1 or with groups), indices or none; a padding mode
# that pads a copy; oneDNN's im2col where its direct kernels refuse a padding wider than the
# output row (fc6 of FCN on a small image; a 5-wide kernel over a 1-wide map); local response
# norm's chain of temporaries.
RANK_OPS = [
    ("conv1d", {"out": 16, "kernel": 3, "padding": 1}, [1, 16, 64]),
    ("conv1d", {"out": 16, "kernel": 3, "padding": 1}, [8, 16, 64]),
    ("conv1d", {"out": 32, "kernel": 3, "groups": 4}, [2, 32, 100]),
    ("conv3d", {"out": 8, "kernel": 3, "padding": 1}, [1, 16, 16, 40, 40]),
    ("conv3d", {"out": 16, "kernel": 3, "padding": 1}, [4, 16, 8, 16, 16]),
    ("conv3d", {"out": 16, "kernel": [3, 1, 1]}, [1, 16, 8, 16, 16]),
    ("maxpool1d", {"kernel": 3, "stride": 2, "padding": 1}, [4, 16, 1000]),
    ("maxpool3d", {"kernel": 2}, [4, 16, 8, 16, 16]),
    ("adaptive_maxpool1d", {"size": 7}, [4, 16, 1000]),
    ("adaptive_maxpool3d", {"size": 3}, [4, 16, 8, 16, 16]),
    ("avgpool3d", {"kernel": 2}, [4, 16, 8, 16, 16]),
    ("batchnorm3d", {}, [4, 16, 8, 16, 16]),
    ("rmsnorm", {}, [1, 64, 256]),
    ("rmsnorm", {"dims": 2}, [8, 64, 256]),
    ("conv2d", {"out": 32, "kernel": 3, "padding": 1, "padding_mode": "reflect"}, [4, 16, 32, 32]),
    ("conv2d", {"out": 32, "kernel": 3, "padding": 1, "padding_mode": "circular"}, [1, 16, 16, 16]),
    ("conv2d", {"out": 1024, "kernel": 7, "padding": 3}, [1, 512, 2, 2]),
    ("conv1d", {"out": 64, "kernel": 5, "padding": 2}, [2, 64, 1]),
    ("local_response_norm", {"size": 5}, [4, 64, 28, 28]),
    ("local_response_norm", {"size": 5}, [4, 64, 100]),
    ("local_response_norm", {"size": 9}, [2, 3, 32, 32]),
]

# matmul, two inputs: contiguous and transposed operands, a batch broadcast against a real one
# (copied), a broadcast over a batch of 1 (a view), and a permuted input before a matrix (no copy: bmm).
MATMULS = [([2, 4, 64, 32], [2, 4, 32, 64], None), ([8, 4, 64, 32], [4, 32, 64], None),
           ([1, 4, 64, 32], [4, 32, 64], None), ([8, 1, 64, 32], [8, 4, 32, 64], None),
           ([4, 64, 32], [32, 48], None), ([4, 32, 64], [32, 48], [0, 2, 1]), ([4, 4, 64, 32], [4, 4, 64, 32], "t"),
           ([64, 32], [8, 32, 64], None), ([32], [8, 32, 64], None)]



@pytest.mark.parametrize("op,params,shape", RANK_OPS, ids=[f"{op}{shape}" for op, _, shape in RANK_OPS])
def test_rank_ops_peak_within_tolerance_of_measured(op, params, shape):
    check(one_node(op, params, shape), shape[0])


@pytest.mark.parametrize("a,b,change", MATMULS, ids=[f"{a}@{b}{c or ''}" for a, b, c in MATMULS])
def test_matmul_peak_within_tolerance_of_measured(a, b, change):
    if change == "t":  # b transposed: bmm reads it as is
        node = "bt: {op: transpose, dim0: -1, dim1: -2, from: b}\n  m: {op: matmul, from: [a, bt]}"
    elif change:  # a permuted: torch runs bmm rather than copy it into one mm
        node = f"ap: {{op: permute, dims: {change}, from: a}}\n  m: {{op: matmul, from: [ap, b]}}"
    else:
        node = "m: {op: matmul, from: [a, b]}"
    check(f"inputs: {{a: {a}, b: {b}}}\ngraph:\n  {node}\n", a[0])


# Transposed convolutions, on each kernel: ATen's col2im (batch 1, small), oneDNN's blocked
# backward-data kernel (stride 1, with and without bias), brgemm on channels-last (a stride;
# C_out rounded up to its block; groups), and through a convolution (an output no multiple of
# the stride, the bias then added from a buffer); a 3-D output smaller than its input (made
# like the input, then shrunk).  fcn_vgg16's 64x64 up-convolution is in test_memory.py.
TRANSPOSED = [
    (1, [1, 32, 16], {"out": 16, "kernel": 2, "stride": 2}),
    (1, [8, 40, 64], {"out": 24, "kernel": 2, "stride": 2}),
    (1, [8, 32, 16], {"out": 16, "kernel": 3, "padding": 1, "bias": False}),
    (1, [8, 32, 256], {"out": 16, "kernel": 3, "stride": 2, "padding": 1}),
    (2, [1, 32, 16, 16], {"out": 16, "kernel": 2, "stride": 2}),
    (2, [1, 32, 16, 16], {"out": 16, "kernel": 3, "stride": 2, "bias": False}),
    (2, [8, 32, 16, 16], {"out": 16, "kernel": 2, "stride": 2}),
    (2, [8, 40, 16, 16], {"out": 24, "kernel": 2, "stride": 2}),
    (2, [8, 32, 16, 16], {"out": 16, "kernel": 3, "padding": 1}),
    (2, [8, 16, 16, 16], {"out": 3, "kernel": 3, "padding": 1, "bias": False}),
    (2, [8, 32, 16, 16], {"out": 16, "kernel": 3, "stride": 2, "padding": 1}),
    (2, [4, 64, 16, 16], {"out": 32, "kernel": 3, "stride": 2, "padding": 1, "output_padding": 1}),
    (2, [4, 512, 4, 4], {"out": 256, "kernel": 2, "stride": 2}),
    (2, [2, 64, 16, 16], {"out": 3, "kernel": 4, "stride": 2, "padding": 1}),
    (2, [8, 32, 16, 16], {"out": 16, "kernel": 2, "stride": 2, "bias": False, "groups": 2}),
    (3, [1, 16, 8, 8, 8], {"out": 8, "kernel": 2, "stride": 2}),
    (3, [1, 16, 8, 8, 8], {"out": 8, "kernel": 3, "padding": 1}),
    (3, [8, 32, 8, 8, 8], {"out": 16, "kernel": 2, "stride": 2}),
    (3, [8, 32, 8, 8, 8], {"out": 16, "kernel": 3, "padding": 1}),
    (3, [8, 32, 8, 8, 8], {"out": 16, "kernel": 3, "stride": 2, "padding": 1}),
    (3, [2, 64, 8, 8, 8], {"out": 3, "kernel": 4, "stride": 2, "padding": 1}),
]


@pytest.mark.parametrize("rank,shape,params", TRANSPOSED, ids=[f"{r}d{s}{sorted(p.items())}" for r, s, p in TRANSPOSED])
def test_transposed_convolution_peak_within_tolerance_of_measured(rank, shape, params):
    check(one_node(f"conv_transpose{rank}d", params, shape), shape[0])


# Attention: SDPA's flash kernel (4-D, 3-D, causal, a bool mask made float) and its math path
# (v's width other than q's, 5-D; causal, a mask); nn.MultiheadAttention's fused fast path
# (self-attention, batch first; causal) and the functional one (sequence first; cross-attention,
# k and v apart or one tensor), ViT-B/16's width.
ATTENTION = {
    "sdpa_flash": "inputs: {q: [N, 4, 256, 64], k: [N, 4, 256, 64], v: [N, 4, 256, 64]}\n"
                  "graph:\n  a: {op: scaled_dot_product_attention, from: [q, k, v]}",
    "sdpa_flash_causal_long": "inputs: {q: [N, 4, 1000, 16], k: [N, 4, 1000, 16], v: [N, 4, 1000, 16]}\n"
                              "graph:\n  a: {op: scaled_dot_product_attention, causal: true, from: [q, k, v]}",
    "sdpa_flash_bool_mask": "inputs: {q: [N, 4, 100, 32], k: [N, 4, 300, 32], v: [N, 4, 300, 32], "
                            "m: {shape: [100, 300], dtype: bool}}\n"
                            "graph:\n  a: {op: scaled_dot_product_attention, from: [q, k, v, m]}",
    "sdpa_flash_3d": "inputs: {q: [N, 300, 64], k: [N, 300, 64], v: [N, 300, 64]}\n"
                     "graph:\n  a: {op: scaled_dot_product_attention, from: [q, k, v]}",
    "sdpa_math": "inputs: {q: [N, 4, 64, 32], k: [N, 4, 80, 32], v: [N, 4, 80, 48]}\n"
                 "graph:\n  a: {op: scaled_dot_product_attention, from: [q, k, v]}",
    "sdpa_math_causal": "inputs: {q: [N, 4, 64, 32], k: [N, 4, 64, 32], v: [N, 4, 64, 48]}\n"
                        "graph:\n  a: {op: scaled_dot_product_attention, causal: true, from: [q, k, v]}",
    "sdpa_math_bool_mask": "inputs: {q: [N, 4, 64, 32], k: [N, 4, 80, 32], v: [N, 4, 80, 48], "
                           "m: {shape: [N, 1, 64, 80], dtype: bool}}\n"
                           "graph:\n  a: {op: scaled_dot_product_attention, from: [q, k, v, m]}",
    "sdpa_math_5d": "inputs: {q: [N, 2, 4, 64, 32], k: [N, 2, 4, 64, 32], v: [N, 2, 4, 64, 32]}\n"
                    "graph:\n  a: {op: scaled_dot_product_attention, from: [q, k, v]}",
    "mha_self": "inputs: {x: [N, 50, 64]}\ngraph:\n  a: {op: multihead_attention, heads: 4}",
    "mha_self_causal": "inputs: {x: [N, 50, 64]}\ngraph:\n  a: {op: multihead_attention, heads: 4, causal: true}",
    "mha_self_long_causal": "inputs: {x: [N, 800, 64]}\ngraph:\n  a: {op: multihead_attention, heads: 2, causal: true}",
    "mha_sequence_first": "inputs: {x: [50, N, 64]}\ngraph:\n  a: {op: multihead_attention, heads: 4, batch_first: false}",
    "mha_sequence_first_causal": "inputs: {x: [50, N, 64]}\n"
                                 "graph:\n  a: {op: multihead_attention, heads: 4, batch_first: false, causal: true}",
    "mha_cross": "inputs: {x: [N, 50, 64], m: [N, 30, 64], v: [N, 30, 64]}\n"
                 "graph:\n  a: {op: multihead_attention, heads: 4, from: [x, m, v]}",
    "mha_cross_one_memory": "inputs: {x: [N, 50, 64], m: [N, 30, 64]}\n"
                            "graph:\n  a: {op: multihead_attention, heads: 4, from: [x, m, m]}",
    "mha_cross_sequence_first": "inputs: {x: [50, N, 64], m: [30, N, 64], v: [30, N, 64]}\n"
                                "graph:\n  a: {op: multihead_attention, heads: 4, batch_first: false, from: [x, m, v]}",
    "mha_vit_width": "inputs: {x: [N, 197, 768]}\ngraph:\n  a: {op: multihead_attention, heads: 12}",
}


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("name", sorted(ATTENTION))
def test_attention_peak_within_tolerance_of_measured(name, batch):
    check(ATTENTION[name], batch)


# einsum: a bmm per pair with its operands permuted (copied where the reshape is no view, as
# for permuted inputs), an outer product, a broadcast product with nothing summed, a subscript
# summed out of one operand first, '...', three operands left to right, one operand reduced.
EINSUMS = [
    ("bhqd,bhkd->bhqk", [[2, 4, 64, 32], [2, 4, 80, 32]], None),
    ("bhqk,bhkd->bhqd", [[2, 4, 64, 80], [2, 4, 80, 32]], None),
    ("ij,jk->ik", [[64, 32], [32, 48]], None),
    ("bi,bj->bij", [[16, 64], [16, 48]], None),
    ("bij,jk->bik", [[4, 64, 32], [32, 48]], None),
    ("bij,bkj->bki", [[4, 64, 32], [4, 48, 32]], None),
    ("nchw,oc->nohw", [[2, 16, 8, 8], [24, 16]], None),
    ("bhwc,hwc->bc", [[4, 7, 7, 32], [7, 7, 32]], None),
    ("b...d,b...d->b...", [[4, 5, 6, 32], [4, 5, 6, 32]], None),
    ("bij,bij->bij", [[4, 32, 32], [4, 32, 32]], None),
    ("bij,bjk,bkl->bil", [[4, 16, 32], [4, 32, 24], [4, 24, 8]], None),
    ("bij->b", [[4, 32, 32]], None),
    ("bjd,bqd->bqj", [[4, 32, 64], [4, 32, 48]], [0, 2, 1]),
    ("bhqd,bhkd->bhqk", [[2, 64, 4, 32], [2, 80, 4, 32]], [0, 2, 1, 3]),
]


@pytest.mark.parametrize("equation,shapes,permuted", EINSUMS,
                         ids=[f"{e}{'-permuted' if p else ''}" for e, _, p in EINSUMS])
def test_einsum_peak_within_tolerance_of_measured(equation, shapes, permuted):
    inputs = ", ".join(f"x{i}: {s}" for i, s in enumerate(shapes))
    names = [f"x{i}" for i in range(len(shapes))]
    nodes = ""
    if permuted:  # the operands are permuted views, which the pairwise reshape must copy
        nodes = "".join(f"  p{i}: {{op: permute, dims: {permuted}, from: x{i}}}\n" for i in range(len(shapes)))
        names = [f"p{i}" for i in range(len(shapes))]
    check(f"inputs: {{{inputs}}}\ngraph:\n{nodes}  e: {{op: einsum, equation: '{equation}', "
          f"from: [{', '.join(names)}]}}\n", None)
