"""Sequence ops: token embedding and the library recurrent layers (rnn, lstm, gru).

specgraph's sequence convention is batch first, ``[N, T, F]``, as in Keras; the recurrent
layers take ``batch_first: false`` for torch's default ``[T, N, F]``. The time dim T may
stay symbolic: no weight depends on it. The gate-level cells run by ``scan`` live in
specs/cells/; these ops wrap torch's fused layers, and their state_dict keys are torch's own
(``weight_ih_l0``, ``bias_hh_l1_reverse``, ...) so that the weights of a ``torch.nn.LSTM``
load with ``strict=True`` at the node's path.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Optional

from pydantic import Field, ValidationInfo, field_validator

from ..ir.dims import Dim, is_concrete, mul
from ..ir.tensor_type import TensorType
from ..ir.traits import Trait
from .base import (FLOAT_DTYPES, Bool, Float, InputDetail, Int, NonNegativeInt, Op, OpParams, PositiveInt, Probability,
                   ShapeError)
from .registry import register_op
from .rules import expect_rank, known_dim

INDEX_DTYPES = ("int64", "int32")
EMBED_HINT = "token ids need an embedding first, e.g. {op: embedding, num: <vocabulary size>, dim: 64}"
DROPOUT_ONE_LAYER = ("dropout acts between stacked layers, so with num_layers 1 it would do "
                     "nothing; drop it, or use a dropout / variational_dropout node on the "
                     "input or output sequence")


@register_op
class Embedding(Op):
    """A lookup table of ``num`` vectors of size ``dim``. Shape: [*] int -> [*, dim] float32.

    The input holds token ids (int64 or int32) in 0..num-1. ``padding_idx`` names an id whose
    vector starts at zero and gets no gradient; ``max_norm`` renormalizes looked-up vectors
    whose norm exceeds it (in place, as torch does).

    ``weight_init`` sets the starting vectors: ``normal`` (torch's default, N(0, 1)),
    ``uniform`` or ``zeros``; ``weight_scale`` is the normal's std or the uniform's bound
    (default 1). word2vec starts its input vectors uniform in ±0.5/dim and its output vectors
    at zero: ``{weight_init: uniform, weight_scale: "${0.5 / dim}"}``, ``{weight_init: zeros}``.
    """

    name = "embedding"
    category = "embedding"
    traits = frozenset({Trait.ROW_WISE, Trait.EMBEDDING})

    class Params(OpParams):
        num: PositiveInt  # vocabulary size
        dim: PositiveInt
        padding_idx: Optional[Int] = None
        max_norm: Optional[Annotated[Float, Field(gt=0)]] = None
        weight_init: Literal["normal", "uniform", "zeros"] = "normal"  # the starting vectors
        weight_scale: Optional[Annotated[Float, Field(gt=0)]] = None  # normal: std; uniform: bound (default 1)

        @field_validator("weight_scale")
        @classmethod
        def _scale_needs_a_distribution(cls, v, info: ValidationInfo):
            if v is not None and info.data.get("weight_init") == "zeros":
                raise ValueError("weight_scale sets the spread of weight_init normal or uniform; "
                                 "weight_init zeros has none: drop weight_scale")
            return v

        @field_validator("padding_idx")
        @classmethod
        def _padding_in_range(cls, v, info: ValidationInfo):
            num = info.data.get("num")
            if v is not None and num is not None and not -num <= v < num:
                raise ValueError(f"padding_idx {v} is not an id of a vocabulary of {num} "
                                 f"(valid: {-num}..{num - 1})")
            return v

    def infer(self, p, inputs):
        t = inputs[0]
        if t.dtype not in INDEX_DTYPES:
            raise ShapeError(f"embedding expects integer token ids (int64 or int32), found "
                             f"{t.dtype} {t}", code="E409",
                             hint="declare the input as {shape: [N, T], dtype: int64}")
        return [TensorType((*t.shape, p.dim), "float32")]

    def build(self, p, inputs):
        import torch
        if p.weight_init == "normal" and p.weight_scale in (None, 1):  # torch's own init: a plain nn.Embedding
            return torch.nn.Embedding(p.num, p.dim, padding_idx=p.padding_idx, max_norm=p.max_norm)
        from .torch_modules import SpecEmbedding

        scale = 1.0 if p.weight_scale is None else float(p.weight_scale)
        return SpecEmbedding(p.num, p.dim, padding_idx=p.padding_idx,
                                                      max_norm=p.max_norm, weight_init=p.weight_init,
                                                      weight_scale=scale)

    def num_params(self, p, inputs):
        return p.num * p.dim

    def macs(self, p, inputs, outputs):
        return 0  # a lookup: no multiply-accumulates

    def describe(self, p):
        text = f"{p.num}×{p.dim}"
        if p.padding_idx is not None:
            text += f" pad {p.padding_idx}"
        if p.weight_init == "zeros":
            text += " init 0"
        elif p.weight_init == "uniform" or p.weight_scale not in (None, 1):
            scale = 1 if p.weight_scale is None else p.weight_scale
            text += f" init ±{scale:.3g}" if p.weight_init == "uniform" else f" init N(0, {scale:.3g})"
        return text


class _RecurrentParams(OpParams):
    hidden: PositiveInt
    num_layers: PositiveInt = 1
    bidirectional: Bool = False
    batch_first: Bool = True  # [N, T, F]; false: [T, N, F]
    dropout: Probability = 0.0  # between stacked layers, in training only
    bias: Bool = True

    @field_validator("dropout")
    @classmethod
    def _dropout_needs_layers(cls, v, info: ValidationInfo):
        if v and info.data.get("num_layers") == 1:
            raise ValueError(DROPOUT_ONE_LAYER)
        return v


class _Recurrent(Op):
    """Shared by rnn, gru and lstm: shape rule, state checks, parameter and MAC counts."""

    category = "recurrent"
    min_inputs = 1
    traits = frozenset({Trait.LOOPS_OVER_TIME})
    gates: ClassVar[int] = 1
    states: ClassVar[tuple[str, ...]] = ("h",)
    # torch's function running the whole layer from flat weights (what nn.LSTM calls): a scan
    # whose cell computes exactly this layer's step runs it (ops/cell_match.py, FusedScan).
    kernel: ClassVar[str] = ""

    def output_ports(self, p):
        return ("out", *self.states)

    def kernel_function(self, p) -> str:
        """The "module.attr" path of :attr:`kernel` for these params (rnn: by its nonlinearity)."""
        return self.kernel

    # ---- sizes ----------------------------------------------------------------------------
    @staticmethod
    def directions(p) -> int:
        return 2 if p.bidirectional else 1

    def time_axis(self, p) -> int:
        return 1 if p.batch_first else 0

    def out_size(self, p) -> int:
        """The hidden state's size (the projection's, for an lstm with proj_size)."""
        return p.hidden

    def state_sizes(self, p) -> tuple[int, ...]:
        return (self.out_size(p),)

    # ---- shape rule -------------------------------------------------------------------------
    def infer(self, p, inputs):
        x = inputs[0]
        layout = "[N, T, F]" if p.batch_first else "[T, N, F]"
        if x.dtype not in FLOAT_DTYPES:
            raise ShapeError(f"{self.name} expects a floating-point sequence {layout}, found "
                             f"{x.dtype} {x}", code="E409", hint=EMBED_HINT)
        expect_rank(self.name, x, (3,), f"a sequence {layout} (batch_first: {str(p.batch_first).lower()})")
        known_dim(self.name, x, 2, "feature count")
        batch, time = (x.shape[0], x.shape[1]) if p.batch_first else (x.shape[1], x.shape[0])
        stack = p.num_layers * self.directions(p)
        expected = [TensorType((stack, batch, size), x.dtype) for size in self.state_sizes(p)]
        self._check_states(p, inputs, expected)
        seq = (batch, time) if p.batch_first else (time, batch)
        out = x.with_shape((*seq, mul(self.directions(p), self.out_size(p))))
        return [out, *expected]

    def _check_states(self, p, inputs, expected: list[TensorType]) -> None:
        given = inputs[1:]
        if not given:
            return  # zeros, as torch does
        if len(given) != len(expected):
            raise ShapeError(f"{self.name} takes its initial state as "
                             + " and ".join(f"{s}0" for s in self.states)
                             + f", or none of them; found {len(given)} state input(s)",
                             code="E408", hint="give both h0 and c0, or leave both out for zeros")
        x = inputs[0]
        for name, want, have in zip(self.states, expected, given):
            if have.dtype != x.dtype:
                raise ShapeError(f"{self.name} initial state {name}0 is {have.dtype}, but the "
                                 f"sequence is {x.dtype}", code="E409")
            if have.shape != want.shape:
                size = "proj_size" if want.shape[2] != p.hidden else "hidden"
                raise ShapeError(
                    f"{self.name} initial state {name}0 is {have}, expected {want}", code="E402",
                    details=tuple(InputDetail(i, str(t)) for i, t in enumerate(inputs)),
                    hint=f"{name}0 is [num_layers × directions, batch, {size}] = "
                         f"[{p.num_layers} × {self.directions(p)}, {want.shape[1]}, "
                         f"{want.shape[2]}], its batch that of the sequence")

    # ---- torch --------------------------------------------------------------------------------
    def torch_kwargs(self, p, inputs) -> dict:
        return dict(input_size=inputs[0].shape[2], hidden_size=p.hidden, num_layers=p.num_layers,
                    bias=p.bias, batch_first=p.batch_first, dropout=float(p.dropout),
                    bidirectional=p.bidirectional)

    # ---- accounting ---------------------------------------------------------------------------
    def _layer_inputs(self, p, inputs) -> list[tuple[int, int]]:
        """(input features, number of layers with that input): the first layer reads the
        input, the others the previous layer's output.  Counted, not listed, so that a huge
        `num_layers` costs nothing until the weight limit refuses it."""
        features = inputs[0].shape[2]
        return [(features, 1), (self.directions(p) * self.out_size(p), p.num_layers - 1)]

    def _extra_per_direction(self, p) -> int:
        return 0

    def num_params(self, p, inputs):
        g, h, h_out = self.gates, p.hidden, self.out_size(p)
        total = 0
        for size, layers in self._layer_inputs(p, inputs):
            per_direction = g * h * (size + h_out) + self._extra_per_direction(p)
            if p.bias:
                per_direction += 2 * g * h
            total += layers * self.directions(p) * per_direction
        return total

    def macs(self, p, inputs, outputs):
        x = inputs[0]
        time: Dim = x.shape[1] if p.batch_first else x.shape[0]
        if not is_concrete(time):
            return None
        g, h, h_out = self.gates, p.hidden, self.out_size(p)
        step = sum(layers * self.directions(p) * (g * h * (size + h_out) + self._extra_per_direction(p))
                   for size, layers in self._layer_inputs(p, inputs))
        return time * step

    def describe(self, p):
        text = str(p.hidden)
        if p.num_layers > 1:
            text += f" ×{p.num_layers}"
        if p.bidirectional:
            text += " bi"
        return text


@register_op
class RNN(_Recurrent):
    """Elman RNN, h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), act tanh or relu.

    Inputs: x [N, T, F] ([T, N, F] with batch_first: false), optional h0 [L*D, N, hidden].
    Ports: out [N, T, D*hidden] (every step's top-layer state), h [L*D, N, hidden] (the
    last step's state of each layer and direction). L = num_layers, D = 2 if bidirectional.
    """

    name = "rnn"
    max_inputs = 2
    gates = 1

    class Params(_RecurrentParams):
        nonlinearity: Literal["tanh", "relu"] = "tanh"

    def kernel_function(self, p):
        return f"torch.rnn_{p.nonlinearity}"

    def build(self, p, inputs):
        import torch
        return torch.nn.RNN(**self.torch_kwargs(p, inputs), nonlinearity=p.nonlinearity)

    def describe(self, p):
        text = super().describe(p)
        return text if p.nonlinearity == "tanh" else f"{text} relu"


@register_op
class GRU(_Recurrent):
    """Gated recurrent unit (Cho et al., in torch's form: reset gate applied after W_hn h).

    Inputs: x [N, T, F] ([T, N, F] with batch_first: false), optional h0 [L*D, N, hidden].
    Ports: out [N, T, D*hidden], h [L*D, N, hidden].
    """

    name = "gru"
    max_inputs = 2
    gates = 3
    kernel = "torch.gru"
    Params = _RecurrentParams

    def build(self, p, inputs):
        import torch
        return torch.nn.GRU(**self.torch_kwargs(p, inputs))


@register_op
class LSTM(_Recurrent):
    """Long short-term memory, optionally with a projection of h (proj_size, Sak et al.).

    Inputs: x [N, T, F] ([T, N, F] with batch_first: false), and optionally both h0
    [L*D, N, H_out] and c0 [L*D, N, hidden], where H_out = proj_size or hidden.
    Ports: out [N, T, D*H_out], h [L*D, N, H_out], c [L*D, N, hidden].

    The module is a ``torch.nn.LSTM`` whose forward returns the flat tuple (out, h, c)
    instead of (out, (h, c)); its parameters and state_dict keys are nn.LSTM's.
    """

    name = "lstm"
    max_inputs = 3
    gates = 4
    states = ("h", "c")
    kernel = "torch.lstm"

    class Params(_RecurrentParams):
        proj_size: NonNegativeInt = 0

        @field_validator("proj_size")
        @classmethod
        def _projection_smaller(cls, v, info: ValidationInfo):
            hidden = info.data.get("hidden")
            if v and hidden is not None and v >= hidden:
                raise ValueError(f"proj_size ({v}) must be smaller than hidden ({hidden})")
            return v

    def out_size(self, p):
        return p.proj_size or p.hidden

    def state_sizes(self, p):
        return (self.out_size(p), p.hidden)

    def _extra_per_direction(self, p):
        return p.proj_size * p.hidden  # weight_hr: h_t = W_hr (o_t * tanh(c_t))

    def build(self, p, inputs):
        from .torch_modules import SpecLSTM

        return SpecLSTM(**self.torch_kwargs(p, inputs), proj_size=p.proj_size)

    def describe(self, p):
        text = super().describe(p)
        return f"{text} proj {p.proj_size}" if p.proj_size else text


__all__ = ["Embedding", "RNN", "GRU", "LSTM"]
