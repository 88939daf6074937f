"""The built module checks its inputs against the spec before any op runs.

A call whose inputs the spec does not take should fail with the spec's words, not deep inside
torch (``RuntimeError: shape '[-1, 12, 128]' is invalid``).  :class:`InputCheck`, a submodule
the built forward calls first (``self.input_check(x)`` in ``model.code``), checks every call's
inputs:

* that each is a tensor, its rank, its dtype — a floating input the declared dtype, or the
  model's own once it is cast (``model.double()`` takes float64 where float32 is declared: a
  buffer of no elements follows the casts), integer ids any integer dtype — each concrete dim;
* each symbolic dim: the first input showing a symbol gives its size, every other dim named so
  must agree (``N`` of ``src`` and of ``tgt``), and every size is at least 1;
* the requirements the shape rules state on those sizes (``Graph.requirements``: a reflect
  padding below H, a center crop's even border, a reshape's exact division), those of the mode
  the module runs in.

A failure raises :class:`~specgraph.diagnostics.InputError` (a SpecError and a ValueError): an
input that does not fit its declaration is E411 at that declaration; a size a rule refuses has
the rule's own code, at the node that states it, naming the inputs and sizes of this call.

The check costs a few microseconds a call (measured in README: a fraction of a percent of
resnet18's batch-1 forward).  ``build(..., check_inputs=False)`` leaves it out; exports (ONNX,
TorchScript, torch.export, Python source) carry none: :func:`input_check_off` lifts it while
they trace.  (So ``torch.jit.script`` of a built model wants it off too: TorchScript cannot
compile the check.)
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch
from torch import fx, nn

from ..diagnostics import Diagnostic, InputError, Location
from ..ir.dims import Dim, Sym, evaluate
from ..ir.graph import Graph
from ..ir.requirements import Requirement
from .names import identifier

_KINDS = {"float32": "floating", "float64": "floating", "float16": "floating", "bfloat16": "floating",
          "int64": "integer", "int32": "integer", "bool": "bool"}


def _kind(dtype: torch.dtype) -> str:
    if dtype == torch.bool:
        return "bool"
    return "floating" if dtype.is_floating_point else "complex" if dtype.is_complex else "integer"


def _symbol_name(d: Dim) -> str | None:
    """The name of a dim that is one symbol (``H``), else None."""
    if isinstance(d, Sym) and d.opaque is None and d.const == 0 and d.div == 1 and len(d.terms) == 1 \
            and d.terms[0][1] == 1 and isinstance(d.terms[0][0], str):
        return d.terms[0][0]
    return None


class _Declared:
    """One declared input: its name, keyword, shape, dtype and where it is declared."""

    def __init__(self, name: str, shape: tuple[Dim, ...], dtype: str, location: Location | None):
        self.name, self.keyword, self.shape, self.dtype, self.location = name, identifier(name), shape, dtype, location
        self.kind = _KINDS.get(dtype, "floating")
        self.shown = "[" + ", ".join(map(str, shape)) + "]"

    @property
    def where(self) -> str:
        return f" ({self.location})" if self.location else ""


class _Stated:
    """A requirement, with the node that states it: its path, op and location."""

    def __init__(self, node, req: Requirement):
        self.req, self.path, self.op, self.location = req, node.path, node.op.name, node.location


CHECK_NAME = "input_check"  # the submodule's name, which no spec node may take (lang/names.py)


class InputCheck(nn.Module):
    """The check of ``graph``'s inputs (see the module's docstring): a submodule the built
    forward calls first, ``self.input_check(x, ...)``, so that it travels with the model (copy,
    pickle, ``torch.compile``).  It holds no weights and only plain data; in training mode it
    also checks what the training-only outputs and ops need."""

    _is_impure = True  # fx's dead-code elimination must keep a call whose result nobody reads

    def __init__(self, graph: Graph):
        super().__init__()
        self.declared = [_Declared(name, t.shape, t.dtype, graph.node(name).location)
                         for name, t in graph.inputs.items()]
        # symbol -> (input index, axis) of its first appearance: where its size is read
        self.binding: dict[str, tuple[int, int]] = {}
        for i, inp in enumerate(self.declared):
            for axis, d in enumerate(inp.shape):
                sym = _symbol_name(d)
                if sym is not None:
                    self.binding.setdefault(sym, (i, axis))
        # follows model.double() / .half() / .to(dtype): the dtype the model computes in once cast
        self.register_buffer("compute_dtype", torch.zeros(0), persistent=False)
        self.stated = {training: [_Stated(node, req) for node, req in
                                  graph.requirements(graph.outputs if training else graph.eval_outputs)]
                       for training in (True, False)}
        derived = [d for inp in self.declared for d in inp.shape if isinstance(d, Sym) and _symbol_name(d) is None]
        unbound = {s for d in derived for s in d.symbols} | {s for r in self.stated[True] for s in
                                                             getattr(r.req.size, "symbols", ())}
        unbound -= set(self.binding)
        if unbound:  # a spec declares its inputs by symbol names; only a hand-made Graph can get here
            raise ValueError(f"cannot check the inputs of {graph.name}: no input dim is the symbol(s) "
                             f"{', '.join(sorted(unbound))}")

    def extra_repr(self) -> str:
        return ", ".join(f"{inp.name}: {inp.shown} {inp.dtype}" for inp in self.declared) + \
            (f"; {len(self.stated[True])} size condition(s)" if self.stated[True] else "")

    # ---- the check -------------------------------------------------------------------------
    def forward(self, *values: Any) -> None:
        training = self.training
        sizes: dict[str, int] = {}
        for inp, value in zip(self.declared, values):
            self._check_one(inp, value, sizes)
        for inp, value in zip(self.declared, values):  # dims written from symbols (2*H): all bound now
            for axis, d in enumerate(inp.shape):
                if isinstance(d, Sym) and _symbol_name(d) is None and value.shape[axis] != evaluate(d, sizes):
                    self._refuse(inp, f"dim {axis} is {d} = {evaluate(d, sizes)} here, but this call gives "
                                      f"{value.shape[axis]}", values, sizes)
        for stated in self.stated[training]:
            req = stated.req
            if req.training_only and not training:
                continue
            value = req.value(sizes)
            if not req.holds(value):
                self._refuse_rule(stated, value, values, sizes)

    def _check_one(self, inp: _Declared, value: Any, sizes: dict[str, int]) -> None:
        if not isinstance(value, torch.Tensor):
            self._refuse(inp, f"expected a tensor, found {type(value).__name__}")
        if value.dim() != len(inp.shape):
            self._refuse(inp, f"expected a rank-{len(inp.shape)} tensor {inp.shown}, found rank {value.dim()} "
                              f"{list(value.shape)}", hint="a single sample needs its batch dim too: x.unsqueeze(0)"
                         if value.dim() + 1 == len(inp.shape) else None)
        kind = _kind(value.dtype)
        if kind != inp.kind:
            self._refuse(inp, f"expected {inp.kind} values ({inp.dtype}), found {str(value.dtype).removeprefix('torch.')}",
                         hint="token ids are integers (torch.long); images and features are floating point")
        if kind == "floating":
            cast = self.compute_dtype.dtype
            want = getattr(torch, inp.dtype) if cast == torch.float32 else cast  # not cast: as declared
            if value.dtype != want:
                shown = str(want).removeprefix("torch.")
                self._refuse(inp, f"expected {shown}, found {str(value.dtype).removeprefix('torch.')}",
                             hint=f"the model computes in {shown}: cast the input (x.to(torch.{shown})), or the "
                                  f"model (model.to(dtype)) to compute in another")
        for axis, (want, have) in enumerate(zip(inp.shape, value.shape)):
            if isinstance(want, int):
                if have != want:
                    self._refuse(inp, f"dim {axis} is {want} in the spec, this call gives {have} "
                                      f"({list(value.shape)})")
                continue
            sym = _symbol_name(want)
            if sym is None:
                continue
            if have < 1:
                self._refuse(inp, f"dim {axis} ({sym}) is {have}; the spec's sizes are positive")
            bound = sizes.setdefault(sym, have)
            if bound != have:
                first, at = self.binding[sym]
                self._refuse(inp, f"dim {axis} is {sym} = {have}, but input '{self.declared[first].name}' gives "
                                  f"{sym} = {bound} (its dim {at})",
                             hint=f"every dim the spec calls {sym} must have the same size")

    # ---- the messages ----------------------------------------------------------------------
    def _refuse(self, inp: _Declared, what: str, values=None, sizes=None, hint: str | None = None):
        raise InputError(Diagnostic("E411", f"input '{inp.name}' {inp.shown}: {what}", inp.location, hint=hint))

    def _refuse_rule(self, stated: _Stated, value: int, values: list, sizes: dict[str, int]):
        req = stated.req
        involved = getattr(req.size, "symbols", frozenset())
        details = [f"needs {req.condition}; this call gives {req.size} = {value}"]
        for i, (inp, tensor) in enumerate(zip(self.declared, values)):
            shown = sorted(s for s in involved if self.binding[s][0] == i)
            if shown:
                details.append(f"input '{inp.name}' {inp.shown}{inp.where} is {list(tensor.shape)}: "
                               + ", ".join(f"{s} = {sizes[s]}" for s in shown))
        mode = " (in training mode)" if req.training_only else ""
        raise InputError(Diagnostic(req.code, f"{req.message}{mode}", stated.location, path=stated.path,
                                    hint=req.hint, details=tuple(details)))

    def conditions(self) -> list[str]:
        """The conditions checked on each call beyond the declarations, as text (for ``check``)."""
        return [f"{s.req.condition} ({s.path})" for s in self.stated[True]]


# ---- on a module --------------------------------------------------------------------------------

def input_check(model: nn.Module) -> InputCheck | None:
    """The input check of a built ``model``, or None (built with ``check_inputs=False``)."""
    found = getattr(model, CHECK_NAME, None)
    return found if isinstance(found, InputCheck) else None


@contextmanager
def input_check_off(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` without its input check inside the block, restored after: an exporter cannot
    express a Python check (TorchScript cannot script it, ONNX has no raise), so exports carry
    none.  The call is taken out of each of the model's graphs, and the submodule with it."""
    check = input_check(model)
    if check is None:
        yield model
        return
    # the model itself, or a TrainEvalModule's two graphs (build.py), held outside its module tree
    graphs = [gm for gm in (model, *(model.__dict__.get(k) for k in ("train_graph_module", "eval_graph_module")))
              if isinstance(gm, fx.GraphModule)]
    held = [(owner, getattr(owner, CHECK_NAME)) for owner in {id(m): m for m in (model, *graphs)}.values()
            if isinstance(getattr(owner, CHECK_NAME, None), InputCheck)]
    lifted = []
    for gm in graphs:
        for node in list(gm.graph.nodes):
            if node.op == "call_module" and node.target == CHECK_NAME:
                lifted.append((gm, node.args, node.name))
                gm.graph.erase_node(node)
        gm.recompile()
    for owner, _ in held:
        delattr(owner, CHECK_NAME)
    try:
        yield model
    finally:
        for owner, module in held:
            owner.add_module(CHECK_NAME, module)
        for gm, args, name in lifted:
            first = next(n for n in gm.graph.nodes if n.op != "placeholder")
            with gm.graph.inserting_before(first):
                gm.graph.create_node("call_module", CHECK_NAME, args, name=name)
            gm.recompile()


__all__ = ["CHECK_NAME", "InputCheck", "input_check", "input_check_off"]
