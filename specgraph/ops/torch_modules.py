"""The torch modules the built-in ops build where torch has none that fits.

Imported by the ops' ``build`` only, so that checking a spec never imports torch.  Each is a
plain module-level class, so pickle (``torch.save`` of a whole model) and the Python export
find it by its name.
"""

from __future__ import annotations

import torch
from torch import nn

from . import lstm_kernel_op  # noqa: F401  registers torch.ops.specgraph.mkldnn_lstm_layer


class SpecLSTM(nn.LSTM):
    """torch.nn.LSTM with a flat signature: (x, h0=None, c0=None) -> (out, h, c)."""

    def forward(self, x, h0=None, c0=None):  # noqa: D102
        out, (h, c) = super().forward(x, None if h0 is None else (h0, c0))
        return out, h, c


class SpecEmbedding(nn.Embedding):
    """torch.nn.Embedding whose starting vectors are normal(0, weight_scale), uniform in
    ±weight_scale or zeros (weight_init); the padding vector, if any, starts at zero."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None, weight_init="normal",
                 weight_scale=1.0, sparse=False):
        self.weight_init, self.weight_scale = weight_init, weight_scale  # read by reset_parameters
        super().__init__(num_embeddings, embedding_dim, padding_idx=padding_idx, max_norm=max_norm, sparse=sparse)

    def reset_parameters(self):  # noqa: D102
        with torch.no_grad():
            if self.weight_init == "zeros":
                self.weight.zero_()
            elif self.weight_init == "uniform":
                self.weight.uniform_(-self.weight_scale, self.weight_scale)
            else:
                self.weight.normal_(0.0, self.weight_scale)
            if self.padding_idx is not None:
                self.weight[self.padding_idx].fill_(0)

    def extra_repr(self):  # noqa: D102
        return super().extra_repr() + f", weight_init={self.weight_init!r}, weight_scale={self.weight_scale!r}"


class VariationalDropout(nn.Module):
    """Dropout with one mask per sequence and feature, shared over the time dim."""

    def __init__(self, p: float = 0.5, batch_first: bool = True):
        super().__init__()
        self.p = p
        self.batch_first = batch_first

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        n, t, f = (0, 1, 2) if self.batch_first else (1, 0, 2)
        shape = [x.shape[0], x.shape[1], x.shape[2]]
        shape[t] = 1
        keep = 1.0 - self.p
        mask = x.new_empty(shape).bernoulli_(keep)
        return x * (mask / keep if keep > 0 else mask)

    def extra_repr(self):
        return f"p={self.p}, batch_first={self.batch_first}"


class Zoneout(nn.Module):
    """forward(h_new, h_prev): keep each unit's previous value with probability p."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, new, prev):
        if self.training:
            keep_prev = torch.empty_like(new).bernoulli_(self.p).bool()
            return torch.where(keep_prev, prev, new)
        return self.p * prev + (1.0 - self.p) * new

    def extra_repr(self):
        return f"p={self.p}"


class SpecMultiheadAttention(nn.MultiheadAttention):
    """torch.nn.MultiheadAttention as self-attention (one input) or over (query, key, value),
    returning the attention output only: need_weights off, so torch may run its fused kernel.
    Same parameters and state_dict keys (in_proj_weight, in_proj_bias, out_proj.*)."""

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, batch_first=False, causal=False):
        super().__init__(embed_dim, num_heads, dropout=dropout, bias=bias, batch_first=batch_first)
        self.bias = bias  # kept, so that the module can be rebuilt from its attributes (Python export)
        self.causal = causal  # position t attends to positions <= t only (a language model)

    def forward(self, query, key=None, value=None):  # noqa: D102
        key = query if key is None else key
        value = key if value is None else value
        if not self.causal:
            return super().forward(query, key, value, need_weights=False)[0]
        t, s = query.shape[1 if self.batch_first else 0], key.shape[1 if self.batch_first else 0]
        mask = torch.ones(t, s, dtype=torch.bool, device=query.device).triu(1)  # True: not attended
        return super().forward(query, key, value, need_weights=False, attn_mask=mask)[0]


class Attention(nn.Module):
    """torch.nn.functional.scaled_dot_product_attention(q, k, v[, mask]) with dropout in training only."""

    def __init__(self, dropout: float = 0.0, causal: bool = False, scale: float | None = None):
        super().__init__()
        self.dropout, self.causal, self.scale = dropout, causal, scale

    def forward(self, q, k, v, mask=None):  # noqa: D102
        return nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=self.causal,
                                                          dropout_p=self.dropout if self.training else 0.0,
                                                          scale=self.scale)

    def extra_repr(self):
        return f"dropout={self.dropout}, causal={self.causal}, scale={self.scale}"


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels (dim 1) of [N, C, *] (torchvision's LayerNorm2d): the
    channels moved last, normalized, moved back. Keys weight, bias [C] as nn.LayerNorm's."""

    def forward(self, x):  # noqa: D102
        x = x.movedim(1, -1)
        x = nn.functional.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.movedim(-1, 1)


class StochasticDepth(nn.Module):
    """Drops whole residual branches in training (torchvision.ops.StochasticDepth): ``row``
    zeroes each sample's branch with probability p (the kept ones scaled by 1/(1-p)), ``batch``
    the whole batch's; the identity in eval mode."""

    def __init__(self, p: float, mode: str = "row"):
        super().__init__()
        self.p, self.mode = p, mode

    def forward(self, x):  # noqa: D102
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        shape = [x.shape[0]] + [1] * (x.dim() - 1) if self.mode == "row" else [1] * x.dim()
        noise = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * (noise.div_(keep) if keep > 0.0 else noise)

    def extra_repr(self):
        return f"p={self.p}, mode={self.mode}"


class Scan(nn.Module):
    """out[:, t], states = cell(x[:, t], states, *context) for t in 0..T-1 (T-1..0 when reversed).

    ``cell`` holds the cell's modules (state_dict keys ``<scan path>.cell.<cell node>``) and its
    graphs: ``pre`` computes what depends on x alone for all steps at once (when
    ``cell.hoisted``), ``once`` what depends on the context tensors alone, once (when
    ``cell.hoisted_once``), ``step`` the rest, one step at a time.  The inputs after x are the
    initial values of the states ``init_index`` names (the others start at zeros; default: all
    states, or none given), then ``contexts`` context tensors, passed whole to every step.
    """

    def __init__(self, cell: nn.Module, sizes: list[int], state_index: list[int], emit_index: int, reverse: bool,
                 init_index: list[int] | None = None, contexts: int = 0):
        super().__init__()
        self.cell = cell
        self.sizes = sizes
        self.state_index = state_index
        self.emit_index = emit_index
        self.reverse = reverse
        self.init_index = list(range(len(sizes))) if init_index is None else init_index
        self.contexts = contexts

    def forward(self, x: torch.Tensor, *args: torch.Tensor):
        n, steps = x.shape[0], x.shape[1]
        given = len(args) - self.contexts
        init = dict(zip(self.init_index, args[:given]))
        states = [init[i] if i in init else x.new_zeros(n, size) for i, size in enumerate(self.sizes)]
        context = args[given:]
        if self.cell.hoisted_once:  # what reads the context alone, computed once for every step
            fixed = self.cell.once(*context)
            context = fixed if isinstance(fixed, tuple) else (fixed,)
        if self.cell.hoisted:
            hoisted = self.cell.pre(x.reshape(n * steps, *x.shape[2:]))
            hoisted = hoisted if isinstance(hoisted, tuple) else (hoisted,)
            hoisted = [h.reshape(n, steps, *h.shape[1:]) for h in hoisted]
        else:
            hoisted = [x]
        # unbound once: the backward stacks the steps' gradients once, where x[:, t] per step
        # would add a zero-padded [N, T, ...] gradient per step (T^2 work)
        per_step = [h.unbind(1) for h in hoisted]
        outs = []
        for t in (range(steps - 1, -1, -1) if self.reverse else range(steps)):
            result = self.cell.step(*(h[t] for h in per_step), *states, *context)
            result = result if isinstance(result, tuple) else (result,)
            states = [result[i] for i in self.state_index]
            outs.append(result[self.emit_index])
        if self.reverse:
            outs.reverse()
        return (torch.stack(outs, 1), *states)

    @property
    def code(self) -> str:
        """The cell's generated code: before the loop (hoisted), and per step."""
        pre = self.cell.pre.code if self.cell.hoisted else "    # nothing hoisted\n"
        once = ("# before the loop, once: what reads the context alone\n" + self.cell.once.code + "\n"
                if self.cell.hoisted_once else "")
        return "# before the loop, for all steps at once\n" + pre + "\n" + once + "# each step\n" + self.cell.step.code


class FusedScan(Scan):
    """A scan whose cell computes exactly one step of torch's rnn, gru or lstm (found by
    ops/cell_match.py): it runs that layer's kernel over the whole sequence (``kernel``:
    ``torch.lstm``, ``torch.gru``, ``torch.rnn_tanh`` or ``torch.rnn_relu``, what nn.LSTM, nn.GRU
    and nn.RNN call), its flat weights read from the cell's own parameters at every call, so the
    state_dict keeps the spec's keys and gradients reach the spec's parameters.

    ``weights``: per flat weight in torch's order, (the parameter's path in ``cell``, its
    columns [start, stop) or None for all, whether zeros shaped like it stand in); ``torch_states``:
    the index among the scan's states of torch's h (and c).  Same signature and results as
    :class:`Scan` (no context tensors); with ``fused`` set false, or an input of another dtype
    than float32/float64, it runs the cell's loop instead, which computes the same function.
    Under torch.compile while autograd records, an lstm on CPU float32 runs oneDNN's layer as
    one opaque custom op with its own backward (ops/lstm_kernel_op.py: the compiler would
    otherwise unroll torch.lstm into small ops per step); other kernels there run the loop,
    which the compiler captures whole and fuses step by step.
    """

    def __init__(self, cell: nn.Module, sizes: list[int], state_index: list[int], emit_index: int, reverse: bool,
                 init_index: list[int] | None = None, *, kernel: str, weights: list[tuple], torch_states: list[int]):
        super().__init__(cell, sizes, state_index, emit_index, reverse, init_index)
        self.kernel = kernel
        self.weights = [tuple(w) for w in weights]
        self.torch_states = list(torch_states)
        self.fused = True

    def flat_weights(self) -> list[torch.Tensor]:
        """The cell's parameters laid out as torch's flat weights: views, so gradients flow back."""
        flat = []
        for path, columns, zero in self.weights:
            *modules, name = path.split(".")
            owner = self.cell
            for m in modules:  # through _modules: the cell's graphs sit in its __dict__ under names a node may have
                owner = owner._modules[m]
            w = owner._parameters[name]
            flat.append(torch.zeros_like(w) if zero else w if columns is None else w[:, columns[0]:columns[1]])
        return flat

    def forward(self, x: torch.Tensor, *init: torch.Tensor):
        if not self.fused or x.dtype not in (torch.float32, torch.float64):
            return super().forward(x, *init)
        given = dict(zip(self.init_index, init))
        hx = [(given[i] if i in given else x.new_zeros(x.shape[0], self.sizes[i])).unsqueeze(0)
              for i in self.torch_states]
        weights = self.flat_weights()
        if torch.compiler.is_compiling() and torch.is_grad_enabled():
            layer = self._compiled_lstm_layer(x, weights)
            if layer is None:  # torch.gru & co would be unrolled step by step: the loop, fused per step
                return super().forward(x, *init)
            w_ih, w_hh, *biases = weights
            biases = biases or [w_ih.new_zeros(w_ih.shape[0]), w_hh.new_zeros(w_hh.shape[0])]
            out, *final, _ = layer(x.transpose(0, 1), *hx, w_ih, w_hh, *biases, self.reverse)
            return self._results(x, out.transpose(0, 1), final)
        kernel = getattr(torch, self.kernel.rpartition(".")[2])
        out, *final = kernel(x.flip(1) if self.reverse else x, hx if len(hx) > 1 else hx[0], weights,
                             len(self.weights) == 4, 1, 0.0, self.training, False, True)
        return self._results(x, out.flip(1) if self.reverse else out, final)

    def _compiled_lstm_layer(self, x: torch.Tensor, weights: list[torch.Tensor]):
        """oneDNN's lstm layer as an op the compiler keeps whole (ops/lstm_kernel_op.py registers
        it) where it runs: an lstm, CPU float32, not being exported (a program is for other
        runtimes); else None.  Looked up in torch.ops, so that a copy of this class without
        specgraph (the Python export) runs the loop."""
        if not self.kernel.endswith("lstm") or torch.compiler.is_exporting() or not torch._C._has_mkldnn:
            return None
        if any(t.device.type != "cpu" or t.dtype != torch.float32 for t in [x, *weights]):
            return None
        return getattr(torch.ops.specgraph, "mkldnn_lstm_layer", None)

    def _results(self, x: torch.Tensor, out: torch.Tensor, final: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """(out, *states) in the scan's order from torch's final h (and c) [1, N, H]."""
        states: list[torch.Tensor] = [x] * len(self.sizes)
        for i, state in zip(self.torch_states, final):
            states[i] = state[0]
        return (out, *states)

    @property
    def code(self) -> str:
        """What runs: the kernel and the weights it reads, then the cell's loop it equals."""
        weights = ", ".join(("zeros like " if zero else "") + path + (f"[:, {c[0]}:{c[1]}]" if c else "")
                            for path, c, zero in self.weights)
        return (f"# fused: {self.kernel}(x, states, [{weights}]){' over reversed time' if self.reverse else ''}\n"
                f"# which equals the cell's loop:\n" + super().code)


__all__ = ["SpecLSTM", "SpecEmbedding", "SpecMultiheadAttention", "Attention", "ChannelLayerNorm", "StochasticDepth",
           "VariationalDropout", "Zoneout", "Scan", "FusedScan"]
