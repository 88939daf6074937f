"""Kernels that allocate only their outputs (measured: no other allocation event in the
profiler's trace of an eval call).  Batch, layer, group and instance norm keep per-row
statistics of a few bytes a row, left out."""

from __future__ import annotations

from ....ops import (activation, dropout, elementwise, indexing, layout, linear, merge, norm, pool, recurrent, reduce,
                     resample, seqdropout, shape, tensors)
from ..scratch import no_scratch

no_scratch(activation.ReLU, activation.LeakyReLU, activation.GELU, activation.SiLU, activation.ELU, activation.SELU,
           activation.Sigmoid, activation.Tanh, activation.Softmax, activation.LogSoftmax, activation.ReLU6,
           activation.Hardtanh, activation.Hardswish, activation.Hardsigmoid, activation.Softplus, activation.Mish,
           activation.GLU, activation.PReLU, elementwise.Neg, elementwise.Abs, elementwise.Exp, elementwise.Log,
           elementwise.Sqrt, elementwise.Rsqrt, elementwise.Pow, elementwise.Clamp, merge.Div,
           dropout.Dropout, dropout.Dropout2d, dropout.AlphaDropout, dropout.DropPath, seqdropout.VariationalDropoutOp,
           seqdropout.ZoneoutOp, linear.Linear, recurrent.Embedding,
           merge.Add, merge.Mul, merge.Sub, merge.Concat, merge.Chunk, merge.Split,
           norm.BatchNorm1d, norm.BatchNorm2d, norm.LayerNorm, norm.GroupNorm, norm.InstanceNorm2d,
           pool.AvgPool2d, pool.AdaptiveAvgPool2d, reduce.Mean, reduce.Sum, reduce.Unsqueeze,
           elementwise.Where, layout.Transpose, layout.Unflatten, layout.Slice,
           layout.Roll, layout.ChannelShuffle, layout.PixelShuffle, layout.PixelUnshuffle,
           tensors.Parameter, tensors.Buffer, indexing.Select, indexing.ExpandLike, indexing.BroadcastTo, indexing.IndexSelect,
           resample.Interpolate, resample.CenterCrop, resample.Pad,
           shape.Identity, shape.Flatten, shape.Reshape, shape.Permute)
# The 1-D and 3-D forms of these (measured the same way).
no_scratch(norm.BatchNorm3d, pool.AvgPool1d, pool.AvgPool3d, pool.AdaptiveAvgPool1d, pool.AdaptiveAvgPool3d)


