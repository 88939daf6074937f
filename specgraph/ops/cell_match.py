"""Recognising a scanned cell that computes exactly one step of torch's RNN, GRU or LSTM.

Such a scan can run torch's fused layer kernel (oneDNN on CPU, cuDNN on GPU) over the whole
sequence instead of running its cell one step at a time from Python (``FusedScan`` in
ops/torch_modules.py), with the cell's own parameters laid out as torch's flat weights.

Recognition is structural, never by a name: the cell's IR graph is matched, from the outputs
the scan keeps back to the cell's inputs, against a pattern of op classes, their params and
their wiring (``add`` and ``mul`` in either operand order; an ``identity`` passed through).
Every node the outputs need must be matched, so a cell that differs in any way — another gate
order, an extra term, another activation, a bias on one projection only, a dropout — matches
nothing and keeps its loop.  A user's cell written the same way is fused whatever its node,
port and block names.  The forms recognised (docs/language.md, "Fused cells"):

* rnn:  h' = act(W_ih x + b_ih + W_hh h + b_hh), act tanh or relu;
* lstm: i, f, g, o = chunk(W_ih x + b_ih + W_hh h + b_hh, 4);  c' = σ(f) c + σ(i) tanh(g);
  h' = σ(o) tanh(c');
* gru (torch's form, the reset gate applied to W_hn h + b_hn, not to h as in Cho et al.):
  r, z = σ(W_ir x + b_ir + W_hr h + b_hr), σ(...);  n = tanh(W_in x + b_in + r (W_hn h + b_hn));
  h' = n + z (h - n), the way ATen computes (1 - z) n + z h;
* for rnn and lstm also one projection of the concatenation, W [x; h] + b (or [h; x]), whose
  weight is cut into torch's W_ih and W_hh by columns (b is b_ih, and b_hh is zero).

Without biases anywhere the layer is torch's ``bias: false``.  Not fused: a cell reading a
context, a scan emitting another value than h, and dtypes other than float32 and float64
(at half precision torch's kernel rounds the gates differently from the cell's ops).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations
from typing import Any, Callable, Iterator

from ..ir.graph import Graph, Value
from .activation import ReLU, Sigmoid, Tanh
from .linear import Linear
from .merge import Add, Chunk, Concat, Mul, Sub
from .recurrent import GRU, LSTM, RNN
from .rules import normalize_dim
from .shape import Identity

FUSED_DTYPES = ("float32", "float64")


@dataclass(frozen=True)
class Weight:
    """One of torch's flat weights, taken from the cell's parameter ``path`` ("x2h.weight"):
    whole, its ``columns`` [start, stop) only, or (``zero``) zeros shaped like it: a bias the
    layer has and the cell has not."""

    path: str
    columns: tuple[int, int] | None = None
    zero: bool = False


@dataclass(frozen=True)
class TorchCell:
    """What a fused scan runs: torch's layer ``layer`` (an op class of ops/recurrent.py) with
    ``params``, its flat ``weights`` in torch's order (weight_ih, weight_hh[, bias_ih, bias_hh]),
    its states the cell's states ``states`` in torch's order (h[, c])."""

    layer: type
    params: Any
    weights: tuple[Weight, ...]
    states: tuple[str, ...]

    @property
    def has_biases(self) -> bool:
        return len(self.weights) == 4

    def describe(self) -> str:
        layer = self.layer()
        return " ".join(filter(None, (layer.name, layer.describe(self.params))))


# ---- patterns -------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Pat:
    """A pattern node: an op of class ``op`` reading ``args`` (a Pat, or (Pat, port index)),
    in either order when ``any_order``, the node accepted by ``check`` (default: its op's plain
    form, every param at its default); or (``op`` None) the cell input playing ``role``."""

    op: type | None
    args: tuple[Any, ...] = ()
    any_order: bool = False
    role: str = ""
    check: Callable[[Any, "_Matcher"], bool] | None = None


def _defaults(node, m) -> bool:
    return node.params == type(node.params)()  # no `by:`, no option: the op's plain form


def _projection(node, m) -> bool:
    return node.params.out == m.gates * m.hidden and not node.params.weight_norm


def _features(node, m) -> bool:
    """Along the features of an [N, F] input (a chunk or concat param ``dim`` of 1 or -1)."""
    rank = node.inputs[0].type.rank
    return rank == 2 and -rank <= node.params.dim < rank and normalize_dim(node.params.dim, rank) == 1


def _gate_split(node, m) -> bool:
    return node.params.chunks == m.gates and _features(node, m)


def _sum(a, b) -> Pat:
    return Pat(Add, (a, b), any_order=True)


def _prod(a, b) -> Pat:
    return Pat(Mul, (a, b), any_order=True)


def _apply(op: type, a) -> Pat:
    return Pat(op, (a,))


@dataclass(frozen=True)
class _Pattern:
    """A layer's step: its outputs by role, its projections (separate: x2h, h2h; joint: the
    linear of the concatenation) and how torch's weights come from them."""

    layer: type
    params: dict[str, Any]
    outputs: dict[str, Pat]
    projections: tuple[Pat, ...]
    joint_order: tuple[str, ...] = ()  # the concatenation's roles, for a joint projection

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(self.outputs)


def _projections(x: Pat, h: Pat, joint: tuple[str, ...]) -> tuple[Pat, tuple[Pat, ...]]:
    """The pre-activation sum of the gates, W_ih x + b_ih + W_hh h + b_hh, and its linears."""
    if not joint:
        x2h, h2h = Pat(Linear, (x,), check=_projection), Pat(Linear, (h,), check=_projection)
        return _sum(x2h, h2h), (x2h, h2h)
    both = Pat(Linear, (Pat(Concat, tuple({"x": x, "h": h}[r] for r in joint), check=_features),), check=_projection)
    return both, (both,)


def _rnn(act: type, nonlinearity: str, joint: tuple[str, ...] = ()) -> _Pattern:
    x, h = Pat(None, role="x"), Pat(None, role="h")
    gates, projections = _projections(x, h, joint)
    return _Pattern(RNN, {"nonlinearity": nonlinearity}, {"h": _apply(act, gates)}, projections, joint)


def _lstm(joint: tuple[str, ...] = ()) -> _Pattern:
    x, h, c = Pat(None, role="x"), Pat(None, role="h"), Pat(None, role="c")
    gates, projections = _projections(x, h, joint)
    split = Pat(Chunk, (gates,), check=_gate_split)
    i, f, g, o = ((split, k) for k in range(4))  # torch's gate order
    c_new = _sum(_prod(_apply(Sigmoid, f), c), _prod(_apply(Sigmoid, i), _apply(Tanh, g)))
    h_new = _prod(_apply(Sigmoid, o), _apply(Tanh, c_new))
    return _Pattern(LSTM, {}, {"h": h_new, "c": c_new}, projections, joint)


def _gru() -> _Pattern:
    x, h = Pat(None, role="x"), Pat(None, role="h")
    x2h, h2h = Pat(Linear, (x,), check=_projection), Pat(Linear, (h,), check=_projection)
    xs, hs = Pat(Chunk, (x2h,), check=_gate_split), Pat(Chunk, (h2h,), check=_gate_split)
    reset = _apply(Sigmoid, _sum((xs, 0), (hs, 0)))
    update = _apply(Sigmoid, _sum((xs, 1), (hs, 1)))
    candidate = _apply(Tanh, _sum((xs, 2), _prod(reset, (hs, 2))))
    h_new = _sum(candidate, _prod(update, Pat(Sub, (h, candidate))))
    return _Pattern(GRU, {}, {"h": h_new}, (x2h, h2h))


_JOINT = ((), ("x", "h"), ("h", "x"))  # separate projections, or one of [x; h] or of [h; x]
PATTERNS: tuple[_Pattern, ...] = (
    *(_lstm(j) for j in _JOINT), _gru(), *(_rnn(act, name, j) for act, name in ((Tanh, "tanh"), (ReLU, "relu"))
                                         for j in _JOINT))


# ---- matching -------------------------------------------------------------------------------------

class _Matcher:
    """Matches one pattern against a cell whose roles are bound to its inputs (``inputs``:
    role -> input name); bindings map pattern nodes to cell node paths, one to one."""

    def __init__(self, cell: Graph, inputs: dict[str, str], hidden: int, gates: int):
        self.cell, self.inputs, self.hidden, self.gates = cell, inputs, hidden, gates

    def match(self, ref, value: Value, bound: dict) -> Iterator[dict]:
        pat, port = ref if isinstance(ref, tuple) else (ref, 0)
        node = self.cell.node(value.node)
        while type(node.op) is Identity:  # emits nothing: look through it
            value = node.inputs[0]
            node = self.cell.node(value.node)
        if pat.op is None:
            if node.is_input and self.inputs[pat.role] == node.path:
                yield bound
            return
        if type(node.op) is not pat.op or list(node.outputs).index(value.port) != port:
            return
        if pat in bound:
            if bound[pat] == node.path:
                yield bound
            return
        if node.path in bound.values() or len(node.inputs) != len(pat.args) \
                or not (pat.check or _defaults)(node, self):
            return
        bound = {**bound, pat: node.path}
        for args in (permutations(pat.args) if pat.any_order else (pat.args,)):
            yield from self.match_all(list(args), list(node.inputs), bound)

    def match_all(self, refs: list, values: list[Value], bound: dict) -> Iterator[dict]:
        if not refs:
            yield bound
            return
        for b in self.match(refs[0], values[0], bound):
            yield from self.match_all(refs[1:], values[1:], b)


def torch_cell(cell: Graph, states: tuple[str, ...], emit: str, context: tuple[str, ...]) -> TorchCell | str:
    """The torch layer whose step ``cell`` computes exactly (its ``states``, scanned emitting
    ``emit``, reading ``context``), or why there is none (a phrase: "its cell reads a context")."""
    if context:
        return "its cell reads a context"
    x = next(iter(cell.inputs))
    if cell.inputs[x].dtype not in FUSED_DTYPES:
        return f"torch's kernel rounds {cell.inputs[x].dtype} differently from the cell's ops"
    outputs = {o.name: o.value for o in cell.outputs}
    sizes = {cell.inputs[s].shape[1] for s in states}
    if len(sizes) != 1 or any(cell.inputs[s].dtype != cell.inputs[x].dtype for s in states):
        return "its states differ in size or dtype"
    hidden = sizes.pop()
    h_elsewhere = None  # the state playing h in a match whose scan emits another value
    for pattern in PATTERNS:
        if len(pattern.roles) != len(states):
            continue
        for order in permutations(states):  # which state plays h, which c
            roles = dict(zip(pattern.roles, order))
            m = _Matcher(cell, {"x": x, **roles}, hidden, pattern.layer.gates)
            pats = [pattern.outputs[r] for r in pattern.roles]
            for bound in m.match_all(pats, [outputs[roles[r]] for r in pattern.roles], {}):
                found = _torch_cell(pattern, cell, bound, hidden, tuple(order))
                if found is not None and outputs[emit] == outputs[roles["h"]]:
                    return found
                h_elsewhere = h_elsewhere or (roles["h"] if found is not None else None)
    if h_elsewhere is not None:
        return f"it emits '{emit}' at each step where torch's layer emits h ('{h_elsewhere}')"
    return "its cell is not exactly torch's rnn, gru or lstm step"


def _torch_cell(pattern: _Pattern, cell: Graph, bound: dict, hidden: int, states: tuple[str, ...]) -> TorchCell | None:
    """The layer, once matched: torch's weights from the projections' parameters (None when
    one projection has a bias and another has not: torch's layer has both or neither)."""
    nodes = [cell.node(bound[p]) for p in pattern.projections]
    biases = {n.params.bias for n in nodes}
    if len(biases) != 1:
        return None
    bias = biases.pop()
    if not pattern.joint_order:
        x2h, h2h = (n.path for n in nodes)
        weights = [Weight(f"{x2h}.weight"), Weight(f"{h2h}.weight")]
        weights += [Weight(f"{x2h}.bias"), Weight(f"{h2h}.bias")] if bias else []
    else:
        path = nodes[0].path
        features = next(iter(cell.inputs.values())).shape[1]
        widths = {"x": features, "h": hidden}
        start = dict(zip(pattern.joint_order, (0, widths[pattern.joint_order[0]])))
        weights = [Weight(f"{path}.weight", (start[r], start[r] + widths[r])) for r in ("x", "h")]
        weights += [Weight(f"{path}.bias"), Weight(f"{path}.bias", zero=True)] if bias else []
    params = pattern.layer.Params(hidden=hidden, bias=bias, **pattern.params)
    return TorchCell(pattern.layer, params, tuple(weights), states)


__all__ = ["TorchCell", "Weight", "torch_cell", "FUSED_DTYPES"]
