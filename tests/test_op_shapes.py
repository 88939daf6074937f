"""Every registered op's declared shape rule, checked against torch through the shared harness
(specgraph/testing.py, shipped so that user-op authors can use it too).  Every registered op
must have at least one case in CASES (see test_every_op_has_a_harness_case).
"""

from __future__ import annotations

import json
import operator
import subprocess
import sys

import pydantic
import pytest
import torch

from specgraph.ir import dims
from specgraph.ir.dims import symbol
from specgraph.ir.tensor_type import TensorType
from specgraph.ops import Op, OpParams, ShapeError, get_op, op_names, register_op, registry
from specgraph.ops.base import Float
from specgraph.ops.conv import window_out
from specgraph.testing import assert_op_matches_torch, dim_value

# ---- the cases -----------------------------------------------------------------------------

def case(op, params, *shapes, **kw):
    shown = ",".join(f"{k}={v}" for k, v in params.items()).replace(" ", "")
    return pytest.param(op, params, list(shapes), kw, id=f"{op}[{shown}]{list(shapes)}")


IMG = (2, 3, 9, 9)
CASES = [
    # conv2d: strides, paddings, dilations, groups, same/valid, padding modes, odd sizes
    case("conv2d", {"out": 4, "kernel": 3, "padding": 1}, (2, 3, 8, 8)),
    case("conv2d", {"out": 4, "kernel": 3, "stride": 2, "padding": 1}, IMG),
    case("conv2d", {"out": 8, "kernel": 7, "stride": 2, "padding": 3, "bias": False},
         (1, 3, 32, 32)),
    case("conv2d", {"out": 8, "kernel": 1}, (2, 16, 5, 7)),
    case("conv2d", {"out": 5, "kernel": [3, 5], "stride": [2, 1], "padding": [1, 2]},
         (2, 4, 10, 11)),
    case("conv2d", {"out": 4, "kernel": 3, "dilation": 2, "padding": 2}, (2, 4, 12, 12)),
    case("conv2d", {"out": 4, "kernel": 3, "dilation": [2, 3]}, (2, 4, 13, 14)),
    case("conv2d", {"out": 6, "kernel": 3, "groups": 2}, (2, 4, 6, 6)),
    case("conv2d", {"out": 8, "kernel": 3, "padding": 1, "groups": 8}, (2, 8, 5, 5)),
    case("conv2d", {"out": 4, "kernel": 3, "padding": "same"}, IMG),
    case("conv2d", {"out": 4, "kernel": 4, "dilation": 2, "padding": "same"}, (2, 3, 10, 9)),
    case("conv2d", {"out": 4, "kernel": [3, 5], "padding": "same", "bias": False}, (2, 3, 6, 8)),
    case("conv2d", {"out": 4, "kernel": 3, "padding": "valid"}, IMG),
    case("conv2d", {"out": 4, "kernel": 3, "padding": 1, "padding_mode": "reflect"}, IMG),
    case("conv2d", {"out": 4, "kernel": 5, "padding": 2, "padding_mode": "replicate"},
         (2, 3, 7, 6)),
    case("conv2d", {"out": 4, "kernel": 3, "padding": 1, "padding_mode": "circular"}, IMG),
    case("conv2d", {"out": 4, "kernel": 3, "padding": 1, "weight_norm": True}, IMG),
    case("conv2d", {"out": 4, "kernel": 5, "stride": 3}, (2, 3, 17, 16)),
    case("conv2d", {"out": 16, "kernel": 4, "stride": 4}, (2, 3, 16, 18)),
    case("conv2d", {"out": 2, "kernel": 2, "stride": 2, "padding": 1}, (1, 1, 1, 1)),
    case("conv2d", {"out": 4, "kernel": 3, "padding": 1}, (2, 3, 8, 8), dtype="float64"),
    # conv1d / conv3d: the same rule per spatial dim (sizes odd and unequal, so a mixed-up dim shows)
    case("conv1d", {"out": 4, "kernel": 3, "padding": 1}, (2, 3, 17)),
    case("conv1d", {"out": 6, "kernel": 5, "stride": 2, "padding": 2, "bias": False}, (2, 4, 31)),
    case("conv1d", {"out": 4, "kernel": [3], "dilation": 3}, (2, 2, 19)),
    case("conv1d", {"out": 8, "kernel": 3, "padding": "same", "groups": 4}, (2, 4, 11)),
    case("conv1d", {"out": 4, "kernel": 4, "dilation": 2, "padding": "same"}, (1, 3, 10)),
    case("conv1d", {"out": 4, "kernel": 3, "padding": "valid"}, (2, 3, 9)),
    case("conv1d", {"out": 4, "kernel": 3, "padding": 2, "padding_mode": "reflect"}, (2, 3, 7)),
    case("conv1d", {"out": 4, "kernel": 3, "padding": 1, "padding_mode": "circular", "weight_norm": True},
         (2, 3, 5)),
    case("conv1d", {"out": 5, "kernel": 7, "stride": 3, "padding": [3]}, ("N", 2, "L"), sizes={"N": 2, "L": 23}),
    case("conv1d", {"out": 2, "kernel": 2, "stride": 2, "padding": 1}, (1, 1, 1)),
    case("conv3d", {"out": 4, "kernel": 3, "padding": 1}, (2, 3, 5, 6, 7)),
    case("conv3d", {"out": 4, "kernel": [3, 1, 5], "stride": [1, 2, 3], "padding": [1, 0, 2]}, (1, 2, 7, 9, 11)),
    case("conv3d", {"out": 6, "kernel": 3, "dilation": [1, 2, 1], "groups": 3, "bias": False}, (1, 3, 7, 9, 5)),
    case("conv3d", {"out": 4, "kernel": 3, "padding": "same"}, (1, 2, 5, 4, 3)),
    case("conv3d", {"out": 2, "kernel": 2, "padding": 1, "padding_mode": "replicate"}, (1, 2, 3, 4, 5)),
    case("conv3d", {"out": 3, "kernel": 3, "stride": 2}, ("N", 2, "D", "H", "W"),
         sizes={"N": 2, "D": 9, "H": 8, "W": 7}),
    case("conv3d", {"out": 4, "kernel": 1, "weight_norm": True}, (2, 4, 3, 3, 3), dtype="float64"),
    # linear
    case("linear", {"out": 8}, (2, 16)),
    case("linear", {"out": 3, "bias": False}, (2, 5, 16)),
    case("linear", {"out": 8, "weight_norm": True}, (4, 6)),
    case("linear", {"out": 1}, (1, 1)),
    case("linear", {"out": 12, "any_rank": True}, (2, 5, 5, 6)),
    case("linear", {"out": 3, "any_rank": True}, (2, 4)),
    # max/avg pooling, incl. ceil_mode and torch's last-window correction
    case("maxpool2d", {"kernel": 3, "stride": 2, "padding": 1}, (2, 3, 9, 9)),
    case("maxpool2d", {"kernel": 3, "stride": 2, "padding": 1}, (2, 3, 112, 112)),
    case("maxpool2d", {"kernel": 2}, (2, 3, 7, 7)),
    case("maxpool2d", {"kernel": 2, "ceil_mode": True}, (2, 3, 7, 7)),
    case("maxpool2d", {"kernel": 3, "stride": 2, "ceil_mode": True}, (2, 3, 8, 8)),
    case("maxpool2d", {"kernel": 1, "stride": 2, "ceil_mode": True}, (1, 2, 4, 5)),
    case("maxpool2d", {"kernel": 3, "stride": 3, "padding": 1, "ceil_mode": True}, (1, 2, 5, 7)),
    case("maxpool2d", {"kernel": 3, "stride": 2, "dilation": 2, "ceil_mode": True}, (2, 3, 10, 11)),
    case("maxpool2d", {"kernel": [2, 3], "stride": [2, 1], "padding": [1, 0]}, (2, 3, 7, 8)),
    case("maxpool2d", {"kernel": 3, "stride": 1, "padding": 1}, (2, 3, 5, 5)),
    case("avgpool2d", {"kernel": 2}, (2, 3, 8, 8)),
    case("avgpool2d", {"kernel": 3, "stride": 2, "padding": 1, "count_include_pad": False}, IMG),
    case("avgpool2d", {"kernel": 3, "stride": 2, "ceil_mode": True}, (2, 3, 10, 10)),
    case("avgpool2d", {"kernel": 2, "stride": 2, "padding": 1, "ceil_mode": True}, (2, 3, 5, 6)),
    case("avgpool2d", {"kernel": [2, 4], "stride": [1, 2]}, (2, 3, 6, 9)),
    case("adaptive_avgpool2d", {"size": 1}, (2, 8, 7, 7)),
    case("adaptive_avgpool2d", {"size": [3, 5]}, (2, 4, 9, 11)),
    case("adaptive_maxpool2d", {"size": 2}, (2, 4, 7, 6)),
    case("adaptive_maxpool2d", {"size": 5}, (2, 2, 3, 3)),
    case("maxpool1d", {"kernel": 3, "stride": 2, "padding": 1}, (2, 3, 17)),
    case("maxpool1d", {"kernel": 2, "ceil_mode": True}, (2, 3, 7)),
    case("maxpool1d", {"kernel": 3, "stride": 2, "dilation": 2, "ceil_mode": True}, ("N", 4, "L"),
         sizes={"N": 2, "L": 12}),
    case("maxpool1d", {"kernel": [3], "stride": [3], "padding": [1], "ceil_mode": True}, (1, 2, 5)),
    case("maxpool3d", {"kernel": 3, "stride": 2, "padding": 1}, (2, 3, 7, 8, 9)),
    case("maxpool3d", {"kernel": [1, 2, 2], "ceil_mode": True}, (1, 2, 3, 7, 5)),
    case("maxpool3d", {"kernel": 2, "stride": [1, 2, 3], "dilation": [2, 1, 1]}, ("N", 2, "D", "H", "W"),
         sizes={"N": 2, "D": 6, "H": 9, "W": 10}),
    case("avgpool1d", {"kernel": 2}, (2, 3, 9)),
    case("avgpool1d", {"kernel": 3, "stride": 2, "padding": 1, "count_include_pad": False}, (2, 3, 10)),
    case("avgpool1d", {"kernel": 2, "stride": 2, "padding": 1, "ceil_mode": True}, ("N", 3, "L"),
         sizes={"N": 2, "L": 7}),
    case("avgpool3d", {"kernel": 2}, (2, 3, 4, 6, 8)),
    case("avgpool3d", {"kernel": [3, 3, 1], "stride": 2, "padding": [1, 1, 0], "count_include_pad": False},
         (1, 2, 7, 9, 5)),
    case("avgpool3d", {"kernel": 3, "stride": 2, "ceil_mode": True}, ("N", 2, "D", "H", "W"),
         sizes={"N": 1, "D": 8, "H": 10, "W": 7}),
    case("adaptive_avgpool1d", {"size": 1}, (2, 8, 7)),
    case("adaptive_avgpool1d", {"size": [4]}, (2, 3, 9)),
    case("adaptive_avgpool3d", {"size": 1}, (2, 4, 3, 5, 7)),
    case("adaptive_avgpool3d", {"size": [2, 3, 4]}, (1, 2, 5, 7, 9)),
    case("adaptive_maxpool1d", {"size": 3}, (2, 4, 10)),
    case("adaptive_maxpool1d", {"size": 6}, (1, 2, 4)),
    case("adaptive_maxpool3d", {"size": 2}, (2, 3, 5, 4, 7)),
    case("adaptive_maxpool3d", {"size": [1, 3, 2]}, (1, 2, 4, 6, 5)),
    # normalization
    case("batchnorm1d", {}, (4, 6)),
    case("batchnorm1d", {"momentum": None}, (4, 6, 10)),
    case("batchnorm1d", {"affine": False, "track_running_stats": False}, (4, 6, 10)),
    case("batchnorm2d", {}, (2, 8, 5, 5)),
    case("batchnorm2d", {"eps": 1e-3, "momentum": 0.01, "affine": False}, (2, 8, 5, 5)),
    case("batchnorm3d", {}, (2, 4, 3, 5, 6)),
    case("batchnorm3d", {"momentum": None, "affine": False, "track_running_stats": False}, (2, 4, 3, 3, 3)),
    case("layernorm", {}, (2, 5, 16)),
    case("layernorm", {"dims": 3}, (2, 4, 6, 6)),
    case("layernorm", {"elementwise_affine": False}, (2, 16)),
    case("layernorm", {"bias": False, "dims": 2}, (2, 5, 16)),
    case("groupnorm", {"groups": 2}, (2, 8, 5, 5)),
    case("groupnorm", {"groups": 8, "affine": False}, (2, 8, 10)),
    case("groupnorm", {"groups": 1}, (2, 6)),
    case("instancenorm2d", {}, (2, 3, 6, 6)),
    case("instancenorm2d", {"affine": True}, (2, 3, 6, 6)),
    case("instancenorm2d", {"track_running_stats": True, "momentum": None}, (2, 3, 6, 6)),
    case("local_response_norm", {"size": 5}, (2, 16, 7, 7)),
    case("local_response_norm", {"size": 2, "alpha": 2e-4, "beta": 0.5, "k": 2}, (2, 8, 10)),
    # activations
    case("relu", {}, IMG),
    case("leaky_relu", {}, IMG),
    case("leaky_relu", {"negative_slope": 0.2}, (2, 10)),
    case("gelu", {}, (2, 5, 16)),
    case("gelu", {"approximate": "tanh"}, IMG),
    case("silu", {}, IMG),
    case("elu", {"alpha": 0.5}, IMG),
    case("selu", {}, (2, 10)),
    case("sigmoid", {}, IMG),
    case("tanh", {}, IMG),
    case("softmax", {}, (2, 10)),
    case("relu6", {}, IMG),
    case("hardtanh", {}, IMG),
    case("hardtanh", {"min_val": 0, "max_val": 6.0}, (2, 7)),
    case("hardswish", {}, IMG),
    case("hardsigmoid", {}, (2, 16, 1, 1)),
    case("softplus", {}, (2, 5)),
    case("softplus", {"beta": 2, "threshold": 10}, IMG),
    case("mish", {}, IMG),
    case("glu", {}, (2, 3, 8)),
    case("glu", {"dim": 1}, (2, 6, 4, 4)),
    case("prelu", {}, IMG),
    case("prelu", {"channelwise": True, "init_slope": 0.1}, (2, 3, 5, 5)),
    case("prelu", {"channelwise": True}, (4, 6)),
    # elementwise math on one tensor
    case("neg", {}, IMG),
    case("neg", {}, (2, 5), dtype="int64"),
    case("abs", {}, IMG),
    case("exp", {}, (2, 5)),
    case("log", {}, (2, 5)),
    case("sqrt", {}, (2, 5)),
    case("rsqrt", {}, IMG),
    case("pow", {"exponent": 2}, IMG),
    case("pow", {"exponent": 0.5}, (2, 5)),
    case("clamp", {"min": 0, "max": 6}, IMG),
    case("clamp", {"min": -1.5}, (2, 5)),
    case("clamp", {"max": 0}, (2, 3, 4)),
    case("drop_path", {"p": 0.2}, IMG),
    case("drop_path", {"p": 0.1, "mode": "batch"}, (2, 5, 8)),
    case("layernorm", {"channels": True, "eps": 1e-6}, (2, 6, 5, 5)),
    case("layernorm", {"channels": True}, (2, 4, 7)),
    # tensors the model holds, and taking tensors apart / stretching them
    case("parameter", {"shape": [1, 1, 8]}),
    case("parameter", {"shape": [1, 5, 8], "initializer": "normal", "std": 0.02}),
    case("parameter", {"shape": [4], "initializer": "trunc_normal"}),
    case("parameter", {"shape": [2, 3], "initializer": "constant", "value": 1e-6}),
    case("buffer", {"shape": [7, 7], "dtype": "int64"}),
    case("buffer", {"shape": [3], "initializer": "ones"}),
    case("select", {"dim": 1, "index": 0}, (2, 5, 8)),
    case("select", {"dim": -1, "index": -1}, (2, 3, 4, 4)),
    case("expand_like", {}, (1, 1, 8), (2, 5, 8)),
    case("expand_like", {"dims": [0, 2]}, (1, 3, 1), (4, 3, 6)),
    case("broadcast_to", {"shape": [-1, 4, -1]}, (2, 1, 5)),
    case("broadcast_to", {"shape": [3, -1, 4, -1]}, (2, 1, 5)),  # a new leading dim
    case("broadcast_to", {"shape": [2, 3, 4]}, (3, 1)),
    case("broadcast_to", {"shape": [2, 3]}, ()),
    case("broadcast_to", {"shape": ["N", "N", -1]}, ("N", 1, 8), sizes={"N": 3}),  # N read from dim 0
    case("broadcast_to", {"shape": [2, "T", 6]}, (1, "T", 1), sizes={"T": 5}),
    case("broadcast_to", {}, (1, 1, 8), (2, 5, 8)),  # to input 1's shape
    case("broadcast_to", {}, (5,), (2, 3, 5), dtype=["int64", "float32"]),
    # picking by an integer index tensor (values drawn below `high`, the size picked from)
    case("index_select", {"dim": 0}, (7, 3), (10,), dtype=["float32", "int64"], high=7),
    case("index_select", {"dim": -1}, (2, 5, 6), (4,), dtype=["float32", "int32"], high=6),
    case("index_select", {"dim": 1}, (2, 5, 3), (), dtype=["float64", "int64"], high=5),
    case("gather", {"dim": 1}, (3, 5), (3, 7), dtype=["float32", "int64"], high=5),
    case("gather", {"dim": 0}, (4, 6, 2), (9, 3, 2), dtype=["float64", "int32"], high=4),
    case("gather", {"dim": -1}, (2, 3, 4, 5), (2, 1, 4, 2), dtype=["float32", "int64"], high=5),
    case("buffer", {"shape": [144], "initializer": "relative_position_index", "window": [4, 3], "dtype": "int64"}),
    case("buffer", {"shape": [49, 49], "initializer": "relative_position_index", "window": [7, 7], "dtype": "int32"}),
    # Swin's shifted-window mask: [N, H, W, C] -> [windows, T, T]
    case("shifted_window_mask", {"window": [4, 3], "shift": [2, 1]}, (2, 8, 9, 5)),
    case("shifted_window_mask", {"window": 7, "shift": [0, 3]}, (1, 7, 14, 4)),
    case("shifted_window_mask", {"window": [2, 2], "shift": 1, "value": -1e4}, (3, 4, 4, 2), dtype="float64"),
    # layout
    case("transpose", {"dim0": 1, "dim1": 2}, (2, 5, 8)),
    case("transpose", {"dim0": -1, "dim1": -2}, IMG),
    case("unflatten", {"dim": 1, "sizes": [4, 4]}, (2, 16, 3)),
    case("unflatten", {"dim": -1, "sizes": [2, -1]}, (2, 3, 12)),
    case("slice", {"dim": 1, "start": 1}, (2, 5, 8)),
    case("slice", {"dim": -1, "start": 1, "stop": -1, "step": 2}, (2, 3, 9)),
    case("slice", {"dim": 2, "start": -3}, (2, 3, 7, 7)),
    case("slice", {"dim": 0, "start": 0}, (4, 3)),
    case("roll", {"shifts": [-3, -3], "dims": [1, 2]}, (2, 7, 7, 4)),
    case("channel_shuffle", {"groups": 2}, (2, 8, 5, 5)),
    case("pixel_shuffle", {"factor": 2}, (2, 12, 4, 5)),
    case("pixel_unshuffle", {"factor": 2}, (2, 3, 8, 6)),
    case("where", {}, (2, 1, 5), (2, 3, 5), (1, 3, 5), dtype=["bool", "float32", "float32"]),
    case("rmsnorm", {}, (2, 5, 8)),
    case("rmsnorm", {"dims": 2, "eps": 1e-6}, (2, 5, 8)),
    case("rmsnorm", {"elementwise_affine": False}, (4, 6)),
    # attention
    case("matmul", {}, (2, 5, 8), (2, 8, 3)),
    case("matmul", {}, (2, 4, 5, 8), (1, 8, 3)),
    case("matmul", {}, (5, 8), (8,)),
    case("matmul", {}, (8,), (2, 8, 3)),
    case("einsum", {"equation": "bij,bjk->bik"}, (2, 5, 8), (2, 8, 3)),  # batched matmul
    case("einsum", {"equation": "bij,bjk->bik"}, ("N", "T", 8), ("N", 8, "S"), sizes={"N": 2, "T": 5, "S": 3}),
    case("einsum", {"equation": "bhqd,bhkd->bhqk"}, (2, 4, 5, 8), (2, 4, 7, 8)),  # attention scores
    case("einsum", {"equation": "bhqk,bhkd->bhqd"}, ("N", 2, "T", "T"), ("N", 2, "T", 4), sizes={"N": 3, "T": 5}),
    case("einsum", {"equation": "i,j->ij"}, (5,), (3,)),  # outer product
    case("einsum", {"equation": "ii->i"}, (4, 4)),  # diagonal
    case("einsum", {"equation": "ii"}, (3, 3)),  # trace (implicit form: a scalar)
    case("einsum", {"equation": "ij->ji"}, (3, 5)),
    case("einsum", {"equation": "ij,jk"}, (2, 3), (3, 4)),  # implicit: ij,jk->ik
    case("einsum", {"equation": "Ba,ab"}, (2, 3), (3, 4)),  # implicit, ASCII order: B before b
    case("einsum", {"equation": "...ij,...jk->...ik"}, (2, 4, 5, 8), (1, 8, 3)),  # ellipsis broadcast
    case("einsum", {"equation": "...ij,...jk"}, (2, 5, 8), (8, 3)),
    case("einsum", {"equation": "b...d->bd"}, (2, 3, 4, 5)),  # dims under '...' summed
    case("einsum", {"equation": "ij,ij->ij"}, (2, 5), (1, 5)),  # a letter of size 1 broadcasts
    case("einsum", {"equation": "ij,jk,kl->il"}, (2, 3), (3, 4), (4, 5)),  # three operands
    case("einsum", {"equation": "bi,oij,bj->bo"}, ("N", 3), (4, 3, 5), ("N", 5), sizes={"N": 2}),  # bilinear
    case("einsum", {"equation": " b t e , b s e -> b t s "}, (2, 5, 8), (2, 7, 8), dtype="float64"),
    case("scaled_dot_product_attention", {}, (2, 4, 5, 8), (2, 4, 7, 8), (2, 4, 7, 6)),
    case("scaled_dot_product_attention", {"causal": True, "scale": 0.5}, (2, 5, 8), (2, 5, 8), (2, 5, 8)),
    # a mask's symbols are named by position, not meaning (its S sits where q's E does): concrete only
    case("scaled_dot_product_attention", {}, (2, 4, 5, 8), (2, 4, 7, 8), (2, 4, 7, 8), (1, 1, 5, 7),
         dtype=["float32", "float32", "float32", "bool"], symbolic=False),
    case("scaled_dot_product_attention", {}, (2, 5, 8), (2, 7, 8), (2, 7, 8), (5, 7), symbolic=False),
    case("multihead_attention", {"heads": 2}, (2, 5, 8)),
    case("multihead_attention", {"heads": 4, "bias": False}, (2, 5, 8), (2, 7, 8), (2, 7, 8)),
    case("multihead_attention", {"heads": 1, "batch_first": False}, (5, 2, 6)),
    case("multihead_attention", {"heads": 2, "causal": True}, (2, 5, 8)),
    case("softmax", {"dim": -1}, (2, 3, 5, 7)),
    case("log_softmax", {}, (2, 10, 4)),
    case("log_softmax", {"dim": 0}, (3, 4)),
    # dropout
    case("dropout", {}, IMG),
    case("dropout", {"p": 0}, (2, 10)),
    case("dropout2d", {"p": 0.2}, (2, 3, 4, 4)),
    case("dropout2d", {}, (3, 4, 4)),
    case("alpha_dropout", {"p": 0.1}, (2, 10)),
    # reshaping
    case("flatten", {}, (2, 3, 4, 5)),
    case("flatten", {"start_dim": 0}, (2, 3, 4, 5)),
    case("flatten", {"start_dim": 2, "end_dim": 3}, (2, 3, 4, 5)),
    case("flatten", {"end_dim": -2}, (2, 3, 4, 5)),
    case("flatten", {}, (2, 3)),
    case("reshape", {"shape": ["N", 3, 4, "T"]}, ("N", 12, "T"), sizes={"N": 2, "T": 5}),
    case("reshape", {"shape": ["N", -1]}, ("N", 3, 4, 5), sizes={"N": 2}),
    case("reshape", {"shape": [-1]}, (2, 3, 4, 5)),
    case("reshape", {"shape": [2, 3, 4, 5]}, (2, 60), symbolic=False),
    case("reshape", {"shape": ["N", 4, 4, 4]}, ("N", 64), sizes={"N": 3}),
    case("reshape", {"shape": [4, -1]}, (6, 4)),
    case("permute", {"dims": [0, 2, 3, 1]}, (2, 3, 4, 5)),
    case("permute", {"dims": [1, 0]}, (3, 4)),
    case("identity", {}, (2, 3)),
    # merging and splitting
    case("add", {}, (2, 4, 5, 5), (2, 4, 5, 5)),
    case("add", {}, (2, 4, 5, 5), (1, 4, 1, 1)),
    case("add", {}, (2, 4, 5, 5), (5,)),
    case("add", {}, (2, 4), (2, 4), (1, 4)),
    case("add", {}, (4, 1), (1, 5)),
    case("mul", {}, (2, 4, 5, 5), (2, 4, 1, 1)),
    case("mul", {}, (2, 3, 4), (2, 3, 4), (2, 3, 4)),
    case("mean", {"dim": 1}, (2, 3, 4)),
    case("mean", {"dim": [2, 3], "keepdim": True}, (2, 3, 4, 5)),
    case("sum", {"dim": -1}, (2, 3, 4)),
    case("sum", {"dim": [0, 2]}, (2, 3, 4)),
    case("unsqueeze", {"dim": 1}, (2, 3)),
    case("unsqueeze", {"dim": -1}, (2, 3, 4)),
    case("sub", {}, (2, 3, 4, 4), (2, 3, 1, 4)),
    case("sub", {}, (2, 8), (2, 8)),
    case("sub", {"by": 1}, (2, 8)),
    case("mul", {"by": 0.5}, IMG),
    case("add", {"by": 3.0}, (2, 4, 5)),
    case("div", {}, (2, 3, 4, 4), (2, 3, 1, 4)),
    case("div", {"by": 8.0}, (2, 4, 10, 10)),
    case("concat", {}, (2, 3, 4, 4), (2, 5, 4, 4)),
    case("concat", {"dim": 2}, (2, 3, 4, 5), (2, 3, 6, 5)),
    case("concat", {"dim": -1}, (2, 3, 4, 5), (2, 3, 4, 2), (2, 3, 4, 1)),
    case("concat", {}, (2, 3, 4, 4)),
    case("chunk", {"chunks": 3}, (2, 6, 4, 4)),
    case("chunk", {"chunks": 2, "dim": 2, "names": ["top", "bottom"]}, (2, 3, 8, 5)),
    case("chunk", {"chunks": 1}, (2, 6)),
    case("chunk", {"chunks": 4, "dim": -1}, (2, 3, 8)),
    case("split", {"sizes": [2, 4]}, (2, 6, 3, 3)),
    case("split", {"size": 2, "names": ["a", "b", "c"]}, (2, 6, 3)),
    case("split", {"sizes": [1, 2, 3], "dim": 2}, (2, 3, 6, 4)),
    case("split", {"sizes": [3, 5], "dim": -1, "names": ["head", "tail"]}, (2, 4, 8)),
    case("split", {"sizes": [4]}, (2, 4)),
    # resampling for dense prediction (segmentation)
    case("conv_transpose2d", {"out": 4, "kernel": 2, "stride": 2}, (2, 6, 5, 7)),
    case("conv_transpose2d", {"out": 3, "kernel": 3, "stride": 2, "padding": 1, "output_padding": 1}, (1, 2, 6, 6)),
    case("conv_transpose2d", {"out": 4, "kernel": 4, "stride": 2, "padding": 1, "groups": 2, "bias": False},
         (1, 2, 5, 5)),
    case("conv_transpose2d", {"out": 2, "kernel": 3, "dilation": 2}, (1, 3, 4, 5)),
    case("conv_transpose2d", {"out": 21, "kernel": 64, "stride": 32, "padding": 16, "bias": False}, (1, 4, 3, 3)),
    case("conv_transpose1d", {"out": 4, "kernel": 2, "stride": 2}, (2, 6, 7)),
    case("conv_transpose1d", {"out": 3, "kernel": 5, "stride": 3, "padding": 2, "output_padding": 2}, (1, 2, 9)),
    case("conv_transpose1d", {"out": 4, "kernel": [3], "dilation": 2, "groups": 2, "bias": False}, ("N", 2, "L"),
         sizes={"N": 2, "L": 11}),
    case("conv_transpose3d", {"out": 4, "kernel": 2, "stride": 2}, (1, 6, 3, 4, 5)),
    case("conv_transpose3d", {"out": 3, "kernel": [3, 1, 3], "stride": [2, 1, 2], "padding": [1, 0, 1],
                              "output_padding": [1, 0, 0]}, (1, 2, 5, 4, 3)),
    case("conv_transpose3d", {"out": 4, "kernel": 3, "groups": 2, "dilation": [1, 2, 1]}, ("N", 2, "D", "H", "W"),
         sizes={"N": 2, "D": 3, "H": 4, "W": 5}),
    case("interpolate", {"scale": 2}, (2, 3, 5, 7)),
    case("interpolate", {"scale": 2, "mode": "bilinear", "align_corners": False}, (2, 3, 5, 7)),
    case("interpolate", {"scale": [2, 3], "mode": "nearest"}, (1, 2, 4, 4)),
    case("interpolate", {"scale": 0.5}, (1, 2, 9, 8), symbolic=False),
    case("interpolate", {"size": [11, 13], "mode": "bicubic", "align_corners": True}, (1, 2, 4, 4)),
    case("interpolate", {"mode": "bilinear", "align_corners": False}, (2, 21, 5, 5), (2, 3, 37, 41)),
    case("upsample", {"scale": 2, "mode": "bilinear", "align_corners": True}, (1, 2, 3, 3)),
    case("center_crop", {}, (2, 4, 64, 64), (2, 8, 56, 56)),
    case("center_crop", {}, (1, 3, 10, 9), (1, 3, 6, 5)),
    case("center_crop", {"allow_uneven": True}, (1, 3, 10, 9), (1, 3, 5, 4)),
    case("pad", {"pads": [1, 2]}, (2, 3, 5)),
    case("pad", {"pads": [1, 2, 3, 0], "mode": "reflect"}, (1, 2, 5, 6)),
    case("pad", {"pads": [2, 2, 2, 2], "mode": "replicate"}, (1, 2, 5, 6)),
    case("pad", {"pads": [0, 1, 0, 1], "value": 1.5}, (1, 2, 5, 6)),
    # sequences: embedding, recurrent layers (symbolic T; initial states), sequence dropout
    case("embedding", {"num": 10, "dim": 4}, (2, 7), dtype="int64", high=10),
    case("embedding", {"num": 10, "dim": 4}, ("N", "T"), dtype="int64", high=10,
         sizes={"N": 2, "T": 5}),
    case("embedding", {"num": 6, "dim": 3, "padding_idx": 0, "max_norm": 1.0}, (2, 3, 4),
         dtype="int32", high=6),
    case("embedding", {"num": 5, "dim": 8, "padding_idx": -1}, (3,), dtype="int64", high=5),
    case("embedding", {"num": 10, "dim": 4, "weight_init": "uniform", "weight_scale": 0.125}, (2, 7),
         dtype="int64", high=10),
    case("embedding", {"num": 6, "dim": 3, "weight_init": "zeros", "padding_idx": 0}, ("N",), dtype="int64",
         high=6, sizes={"N": 4}),
    case("embedding", {"num": 6, "dim": 3, "weight_scale": 0.5, "max_norm": 1.0}, (2, 3), dtype="int32", high=6),
    case("rnn", {"hidden": 16}, (2, 5, 8)),
    case("rnn", {"hidden": 16, "num_layers": 2, "nonlinearity": "relu", "bias": False},
         ("N", "T", 8), sizes={"N": 3, "T": 6}),
    case("rnn", {"hidden": 6, "bidirectional": True, "batch_first": False}, (5, 2, 4), (2, 2, 6)),
    case("gru", {"hidden": 12}, ("N", "T", 8), sizes={"N": 2, "T": 7}),
    case("gru", {"hidden": 12, "num_layers": 3, "bidirectional": True, "dropout": 0.2},
         (2, 5, 8)),
    case("gru", {"hidden": 6, "num_layers": 2}, (3, 4, 5), (2, 3, 6)),
    case("gru", {"hidden": 6, "batch_first": False}, ("T", "N", 5), sizes={"N": 2, "T": 3}),
    case("lstm", {"hidden": 16}, (2, 5, 8)),
    case("lstm", {"hidden": 16, "num_layers": 2}, ("N", "T", 8), sizes={"N": 2, "T": 9}),
    case("lstm", {"hidden": 10, "bidirectional": True, "proj_size": 4, "num_layers": 2},
         (2, 5, 3)),
    case("lstm", {"hidden": 8, "batch_first": False, "bias": False}, ("T", "N", 3),
         sizes={"N": 4, "T": 5}),
    case("lstm", {"hidden": 8, "proj_size": 5, "bidirectional": True}, (3, 4, 6), (2, 3, 5),
         (2, 3, 8)),
    case("lstm", {"hidden": 8}, (2, 5, 6), dtype="float64"),
    case("variational_dropout", {"p": 0.3}, (2, 5, 8)),
    case("variational_dropout", {"batch_first": False}, ("T", "N", 8), sizes={"N": 2, "T": 4}),
    case("zoneout", {"p": 0.1}, (2, 16), (2, 16)),
    case("zoneout", {"p": 0.5}, (2, 3, 4, 4), (2, 3, 4, 4)),
]


@pytest.mark.filterwarnings("ignore:dropout2d. Received a 3D input")
@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")
@pytest.mark.parametrize("op_name,params,shapes,kw", CASES)
def test_op_matches_torch(op_name, params, shapes, kw):
    assert_op_matches_torch(op_name, params, shapes, **kw)


def test_every_op_has_a_harness_case():
    covered = {c.values[0] for c in CASES}
    # `scan` is made by the compiler around a cell graph; tests/test_scan.py checks it against torch.
    # Ops other tests register (tests/test_user_ops.py) stay in the registry: only ours count.
    builtin = {n for n in op_names() if type(get_op(n)).__module__.startswith("specgraph.")}
    missing = sorted(builtin - covered - {"scan"})
    assert not missing, f"ops without a case in tests/test_op_shapes.py CASES: {missing}"


def test_shape_checking_does_not_import_torch():
    """Checking a spec (params, infer, num_params, macs, describe) must not import torch."""
    cases = [[c.values[0], c.values[1], c.values[2], c.values[3].get("sizes", {}),
              c.values[3].get("dtype", "float32")] for c in CASES if c.values[0] in op_names()]
    script = """
import json, sys
from specgraph.ir import dims
from specgraph.ir.dims import symbol
from specgraph.ir.tensor_type import TensorType
from specgraph.ops import get_op
for name, params, shapes, sizes, dtype in json.load(sys.stdin):
    op = get_op(name)
    p = op.Params.model_validate(params)
    dtypes = dtype if isinstance(dtype, list) else [dtype] * len(shapes)
    types = [TensorType(tuple(symbol(d) if isinstance(d, str) else d for d in s), dt)
             for s, dt in zip(shapes, dtypes)]
    outs = op.infer(p, types)
    op.num_params(p, types), op.macs(p, types, outs), op.describe(p), op.output_ports(p)
assert "torch" not in sys.modules, "torch was imported"
"""
    done = subprocess.run([sys.executable, "-c", script], input=json.dumps(cases),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# ---- the window arithmetic, exhaustively against torch ---------------------------------------

def test_window_out_matches_torch_exhaustively():
    """Every small (kernel, stride, padding, dilation, ceil_mode, H): the concrete and the
    symbolic formula both give torch's size (ceil_mode's last-window rule included)."""
    H = symbol("H")
    checked = 0
    for k in range(1, 5):
        for s in range(1, 4):
            for pad in range(0, k // 2 + 1):
                for d in (1, 2):
                    for ceil in (False, True):
                        formula = window_out(H, k, s, pad, d, ceil)
                        for h in range(max(1, d * (k - 1) + 1 - 2 * pad), 13):
                            x = torch.empty(1, 1, h, 1)
                            real = torch.nn.functional.max_pool2d(
                                x, (k, 1), (s, 1), (pad, 0), (d, 1), ceil_mode=ceil).shape[2]
                            args = (k, s, pad, d, ceil)
                            assert window_out(h, *args) == real, (h, args)
                            assert dim_value(formula, {"H": h}) == real, (h, args, str(formula))
                            checked += 1
    assert checked > 900


# ---- errors --------------------------------------------------------------------------------

N, C, H = symbol("N"), symbol("C"), symbol("H")


def infer(op_name, params, *shapes):
    op = get_op(op_name)
    return op.infer(op.Params.model_validate(params), [TensorType(tuple(s)) for s in shapes])


def raises(code, op_name, params, *shapes) -> ShapeError:
    with pytest.raises(ShapeError) as info:
        infer(op_name, params, *shapes)
    assert info.value.code == code, info.value.message
    return info.value


@pytest.mark.parametrize("code,op_name,params,shapes", [
    ("E406", "conv2d", {"out": 8, "kernel": 3}, [(N, C, 8, 8)]),
    ("E407", "conv2d", {"out": 8, "kernel": 3, "groups": 4}, [(N, 6, 8, 8)]),
    ("E407", "conv2d", {"out": 6, "kernel": 3, "groups": 4}, [(N, 8, 8, 8)]),
    ("E404", "conv2d", {"out": 8, "kernel": 5}, [(N, 3, 3, 3)]),
    ("E404", "conv2d", {"out": 8, "kernel": 3, "stride": 2, "padding": "same"}, [(N, 3, 8, 8)]),
    ("E404", "conv2d", {"out": 8, "kernel": 7, "padding": 3, "padding_mode": "reflect"},
     [(N, 3, 3, 3)]),
    ("E410", "conv2d", {"out": 8, "kernel": 3}, [(N, 3, 8)]),
    ("E406", "linear", {"out": 8}, [(N, C)]),
    ("E410", "linear", {"out": 8}, [(N,)]),
    ("E404", "maxpool2d", {"kernel": 3, "padding": 2}, [(N, 3, 8, 8)]),
    ("E404", "avgpool2d", {"kernel": 1, "padding": 1}, [(N, 3, 8, 8)]),
    ("E404", "maxpool2d", {"kernel": 5}, [(N, 3, 3, 3)]),
    ("E410", "adaptive_avgpool2d", {"size": 1}, [(N, 3, 8)]),
    ("E406", "batchnorm2d", {}, [(N, C, 8, 8)]),
    ("E410", "batchnorm1d", {}, [(N, 3, 8, 8)]),
    # the 1-D and 3-D forms answer as their 2-D siblings do
    ("E410", "conv1d", {"out": 8, "kernel": 3}, [(N, 3, 8, 8)]),
    ("E410", "conv3d", {"out": 8, "kernel": 3}, [(N, 3, 8, 8)]),
    ("E406", "conv3d", {"out": 8, "kernel": 3}, [(N, C, 8, 8, 8)]),
    ("E407", "conv1d", {"out": 8, "kernel": 3, "groups": 4}, [(N, 6, 8)]),
    ("E407", "conv3d", {"out": 6, "kernel": 3, "groups": 4}, [(N, 8, 8, 8, 8)]),
    ("E404", "conv1d", {"out": 8, "kernel": 5}, [(N, 3, 4)]),
    ("E404", "conv3d", {"out": 8, "kernel": 3}, [(N, 3, 8, 2, 8)]),
    ("E404", "conv3d", {"out": 8, "kernel": 3, "stride": [1, 1, 2], "padding": "same"}, [(N, 3, 8, 8, 8)]),
    ("E404", "conv1d", {"out": 8, "kernel": 7, "padding": 3, "padding_mode": "reflect"}, [(N, 3, 3)]),
    ("E404", "conv3d", {"out": 8, "kernel": 5, "padding": 4, "padding_mode": "circular"}, [(N, 3, 8, 3, 8)]),
    ("E407", "conv_transpose3d", {"out": 8, "kernel": 2, "groups": 3}, [(N, 6, 4, 4, 4)]),
    ("E404", "conv_transpose1d", {"out": 8, "kernel": 2, "stride": 2, "output_padding": 2}, [(N, 6, 4)]),
    ("E404", "conv_transpose3d", {"out": 8, "kernel": 1, "padding": [0, 1, 0]}, [(N, 6, 4, 1, 4)]),
    ("E410", "conv_transpose1d", {"out": 8, "kernel": 2}, [(N, 6, 4, 4)]),
    ("E404", "maxpool1d", {"kernel": 3, "padding": 2}, [(N, 3, 8)]),
    ("E404", "avgpool3d", {"kernel": [2, 2, 1], "padding": [1, 1, 1]}, [(N, 3, 8, 8, 8)]),
    ("E404", "maxpool3d", {"kernel": 5}, [(N, 3, 8, 3, 8)]),
    ("E410", "avgpool1d", {"kernel": 2}, [(N, 3, 8, 8)]),
    ("E410", "adaptive_maxpool3d", {"size": 1}, [(N, 3, 8, 8)]),
    ("E410", "adaptive_avgpool1d", {"size": 1}, [(N, 3)]),
    ("E406", "batchnorm3d", {}, [(N, C, 4, 4, 4)]),
    ("E410", "batchnorm3d", {}, [(N, 3, 8, 8)]),
    ("E406", "layernorm", {}, [(N, H)]),
    ("E410", "layernorm", {"dims": 3}, [(N, 8)]),
    ("E407", "groupnorm", {"groups": 3}, [(N, 8, 4, 4)]),
    ("E406", "instancenorm2d", {}, [(N, C, 8, 8)]),
    ("E410", "local_response_norm", {"size": 3}, [(N, 8)]),
    ("E410", "dropout2d", {}, [(N, 8)]),
    ("E405", "softmax", {"dim": 2}, [(N, 10)]),
    ("E405", "flatten", {"start_dim": 3, "end_dim": 1}, [(N, 3, 4, 5)]),
    ("E405", "flatten", {"start_dim": 4}, [(N, 3, 4, 5)]),
    ("E403", "reshape", {"shape": ["N", 7, -1]}, [(N, 3, 4, 5)]),
    ("E403", "reshape", {"shape": [2, 30]}, [(N, 60)]),
    ("E403", "reshape", {"shape": ["M", -1]}, [(N, 60)]),
    ("E405", "permute", {"dims": [0, 1, 1]}, [(N, 3, 4)]),
    ("E405", "permute", {"dims": [1, 0]}, [(N, 3, 4)]),
    ("E402", "add", {}, [(N, 8), (8, 8)]),
    ("E402", "mul", {}, [(N, 8, 4), (N, 8, 5)]),
    ("E402", "concat", {}, [(N, 8, 4, 4), (N, 8, 4)]),
    ("E405", "concat", {"dim": 4}, [(N, 8, 4, 4), (N, 8, 4, 4)]),
    ("E407", "chunk", {"chunks": 3}, [(N, 8)]),
    ("E407", "split", {"sizes": [3, 4]}, [(N, 8)]),
    ("E406", "split", {"sizes": [3, 4], "dim": 0}, [(N, 7)]),
])
def test_shape_errors(code, op_name, params, shapes):
    raises(code, op_name, params, *shapes)


def test_linear_on_rank4_says_insert_flatten():
    e = raises("E410", "linear", {"out": 10}, (N, 64, 7, 7))
    assert "linear" in e.message and "rank-4" in e.message
    assert e.hint == "insert {op: flatten} before this node (linear acts on the last dim only)"


def test_add_channel_mismatch_lists_every_input_shape():
    e = raises("E402", "add", {}, (N, 64, 56, 56), (N, 32, 56, 56))
    assert "dim 1" in e.message
    assert tuple(map(str, e.details)) == ("input 0 -> [N, 64, 56, 56]", "input 1 -> [N, 32, 56, 56]")
    assert e.hint == ("the branches give different channel counts; a 1×1 conv2d (projection) "
                      "on the shorter path fixes it")


def test_concat_mismatch_names_the_dim_and_lists_shapes():
    e = raises("E402", "concat", {}, (N, 64, 28, 28), (N, 32, 27, 28), (N, 16, 28, 28))
    assert "dim 2" in e.message and e.hint is None
    assert str(e.details[1]) == "input 1 -> [N, 32, 27, 28]" and len(e.details) == 3


@pytest.mark.parametrize("op_name,params", [
    ("conv2d", {"out": "64", "kernel": 3}),            # strict: no str -> int coercion
    ("conv2d", {"out": 64, "kernel": 3, "strid": 2}),   # unknown key
    ("conv2d", {"out": 0, "kernel": 3}),
    ("conv2d", {"out": 8, "kernel": [3, 3, 3]}),
    ("conv2d", {"out": 8, "kernel": 3, "padding": "full"}),
    ("linear", {"out": 8, "bias": 1}),
    ("dropout", {"p": 1.5}),
    ("gelu", {"approximate": "fast"}),
    ("reshape", {"shape": [-1, -1]}),
    ("reshape", {"shape": [0, 4]}),
    ("reshape", {"shape": ["2x"]}),
    ("split", {"sizes": [2], "size": 2}),
    ("split", {"size": 2}),
    ("split", {"sizes": [2, 2], "names": ["a"]}),
    ("chunk", {"chunks": 2, "names": ["a", "a"]}),
    ("chunk", {"chunks": 3, "names": ["a", "b"]}),
    ("batchnorm2d", {"momentum": 2.0}),
    ("buffer", {"shape": [49], "initializer": "relative_position_index", "window": [7, 7], "dtype": "int64"}),
    ("buffer", {"shape": [2401], "initializer": "relative_position_index", "dtype": "int64"}),
    ("buffer", {"shape": [2401], "initializer": "relative_position_index", "window": [7, 7]}),
    ("buffer", {"shape": [3], "window": [7, 7]}),
    ("buffer", {"shape": [8], "initializer": "relative_position_index", "window": [2], "dtype": "int64"}),
    ("parameter", {"shape": [2401], "initializer": "relative_position_index", "window": [7, 7]}),
    ("shifted_window_mask", {"window": [7, 7], "shift": [7, 3]}),
    ("shifted_window_mask", {"window": 4, "shift": -1}),
    ("conv1d", {"out": 8, "kernel": [3, 3]}),          # a size per spatial dim: exactly rank of them
    ("conv3d", {"out": 8, "kernel": [3, 3]}),
    ("conv3d", {"out": 8, "kernel": 3, "padding": [1, 1, -1]}),
    ("conv_transpose3d", {"out": 8, "kernel": 2, "output_padding": [1, 1]}),
    ("maxpool3d", {"kernel": [2, 2, 2, 2]}),
    ("avgpool1d", {"kernel": 2, "dilation": 2}),         # torch's average pools have no dilation
    ("adaptive_avgpool3d", {"size": [1, 1]}),
])
def test_bad_params_are_refused(op_name, params):
    with pytest.raises(pydantic.ValidationError):
        get_op(op_name).Params.model_validate(params)


# ---- symbolic shapes, accounting and labels --------------------------------------------------

def test_symbolic_resnet_stem_and_broadcast():
    stem = infer("conv2d", {"out": 64, "kernel": 7, "stride": 2, "padding": 3}, (N, 3, H, H))[0]
    pooled = infer("maxpool2d", {"kernel": 3, "stride": 2, "padding": 1}, stem.shape)[0]
    assert str(pooled) == "[N, 64, ⌈H/4⌉, ⌈H/4⌉]"
    assert infer("add", {}, (N, 64, H, H), (1, 64, 1, 1))[0].shape == (N, 64, H, H)
    assert infer("concat", {"dim": 2}, (N, 3, H, 4), (N, 3, H, 4))[0].shape[2] == dims.mul(2, H)


def test_weight_norm_adds_the_parametrization_and_keeps_the_shape():
    for op_name, params, shape in [("conv2d", {"out": 4, "kernel": 3}, (2, 3, 8, 8)),
                                   ("linear", {"out": 4}, (2, 6))]:
        plain = assert_op_matches_torch(op_name, params, [shape])
        normed = assert_op_matches_torch(op_name, {**params, "weight_norm": True}, [shape])
        parametrize = torch.nn.utils.parametrize
        assert parametrize.is_parametrized(normed, "weight")
        assert not parametrize.is_parametrized(plain, "weight")
        x = torch.randn(shape)
        assert normed(x).shape == plain(x).shape


def test_macs_and_describe():
    conv = get_op("conv2d")
    p = conv.Params.model_validate({"out": 64, "kernel": 7, "stride": 2, "padding": 3})
    t = TensorType((N, 3, 224, 224))
    assert conv.macs(p, [t], conv.infer(p, [t])) == 118_013_952  # ResNet-50 conv1
    ts = TensorType((N, 3, H, H))
    assert conv.macs(p, [ts], conv.infer(p, [ts])) is None
    assert conv.describe(p) == "7×7 /2, 64"
    lin = get_op("linear")
    pl = lin.Params.model_validate({"out": 1000})
    tl = TensorType((N, 2048))
    assert lin.macs(pl, [tl], lin.infer(pl, [tl])) == 2_048_000
    mp = get_op("maxpool2d")
    pool = mp.Params.model_validate({"kernel": 3, "stride": 2, "padding": 1})
    assert mp.describe(pool) == "3×3 /2"
    chunk = get_op("chunk")
    assert chunk.output_ports(chunk.Params.model_validate({"chunks": 2})) == ("0", "1")


# ---- a user-defined op goes through the same registry and harness ------------------------------

class Scale(Op):
    """x * factor. Shape: [*] -> [*]."""

    name = "scale_by"
    category = "activation"

    class Params(OpParams):
        factor: Float = 2.0

    def infer(self, p, inputs):
        return [inputs[0]]

    def emit(self, p, graph, args):
        return graph.call_function(operator.mul, (args[0], p.factor))


def test_user_op_registers_and_passes_the_harness(monkeypatch):
    # a private copy of the registry, so the op does not leak into other tests
    monkeypatch.setattr(registry.REGISTRY, "_ops", dict(registry.REGISTRY._ops))
    register_op(Scale)
    assert isinstance(get_op("scale_by"), Scale)
    assert "scale_by" in op_names()
    assert_op_matches_torch("scale_by", {"factor": 0.5}, [(2, 3, 4, 4)])
