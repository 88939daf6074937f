"""``optimize(model, "inference", compile=True)``: the passes' GraphModule (batch norm folded,
dropout dropped, in place, channels_last; convolutions and linears left as plain modules)
compiled by ``torch.compile`` with inductor's *freezing*: the weights become constants of the
compiled code, so inductor folds what depends on them alone, packs every convolution and linear
for oneDNN once, fuses the activations and adds after them into the kernel, and generates one
C++ loop nest for each run of element-wise ops, pools and reductions between them; with its
C++ wrapper the whole forward is one native call instead of a Python call per op (on this
2-core CPU it ran 10-25 % faster than the uncompiled passes: BENCHMARKS.md, bench_passes).

The cost is the compile: on the first call with each input shape (shapes are static, so a new
batch size compiles again), tens of seconds for an ImageNet model on 2 cores; the C++ code is
cached by torch on disk (``TORCHINDUCTOR_CACHE_DIR``), so a later process compiles faster.

Freezing assumes the weights do not change.  :class:`CompiledInference` keeps the rule checked,
not assumed: a call after any of its parameters or buffers was written (``load_state_dict``,
an in-place edit, a replaced tensor) is refused (E802) instead of silently computing with the
old weights; so is a call in training mode or one that asks for gradients (the compiled graph
is the no-grad inference graph).  Inputs are checked against the spec, eagerly, before the
compiled code runs (E411, as for the built module).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import fx, nn

from ...diagnostics import BackendError, Diagnostic
from ..input_check import InputCheck

# inductor's settings for the compile: weights frozen into the code; the C++ wrapper
INDUCTOR_OPTIONS = {"freezing": True, "cpp_wrapper": True}


class CompiledInference(nn.Module):
    """``gm`` (an optimised, eval-mode GraphModule) run by ``torch.compile``; called like it.

    The module's parameters, buffers and submodules are ``gm``'s own (the same tensors, under
    the same state_dict keys); the compiled code is made lazily, per input shape."""

    def __init__(self, gm: fx.GraphModule):
        super().__init__()
        checks = [n for n in gm.graph.nodes if n.op == "call_module" and isinstance(gm.get_submodule(n.target), InputCheck)]
        for node in checks:  # checked eagerly in forward(): a spec's E411, not an error from inside a trace
            gm.graph.erase_node(node)
        gm.graph.lint()
        gm.recompile()
        for name, child in gm.named_children():
            self.add_module(name, child)
        for name, p in gm.named_parameters(recurse=False):
            self.register_parameter(name, p)
        for name, b in gm.named_buffers(recurse=False):
            self.register_buffer(name, b)
        self._checks = [gm.get_submodule(n.target) for n in checks]
        object.__setattr__(self, "_graph_module", gm)  # not a submodule: its children are this module's
        self._frozen: tuple | None = None  # _weights() when the code froze them
        self._compile()
        self.eval()

    def _compile(self) -> None:
        compiled = torch.compile(self._graph_module, dynamic=False)
        object.__setattr__(self, "_compiled", compiled)  # an OptimizedModule: not a submodule either
        self._seen: set = set()  # the inputs' (shape, stride, dtype, device) already compiled for
        self._tree = list(self.modules())  # walked by _weights() on every call, listed once

    @property
    def code(self) -> str:
        """The forward code that is compiled (the optimised GraphModule's, without the input check)."""
        return self._graph_module.code

    def extra_repr(self) -> str:
        return f"torch.compile(inductor, {', '.join(f'{k}={v}' for k, v in INDUCTOR_OPTIONS.items())})"

    def _weights(self) -> tuple:
        """Each module's tensors as (version, storage), and its children by identity, so that a
        replaced submodule is a change too.  (``self.parameters()`` walks the module tree anew:
        0.3 ms a call on mobilenet_v3_large, against 0.08 ms over the list made once.)"""
        tree = self._tree
        return (tuple((t._version, t.data_ptr()) for m in tree for d in (m._parameters, m._buffers)
                      for t in d.values() if t is not None),
                tuple(id(child) for m in tree for child in m._modules.values()))

    def forward(self, *inputs: Any) -> Any:
        if self.training:
            raise BackendError(Diagnostic(
                "E802", "the compiled inference module runs inference only; the module is in training mode",
                hint="call .eval() on it, or train the model built without compile"))
        if torch.is_grad_enabled() and any(isinstance(x, torch.Tensor) and x.requires_grad for x in inputs):
            raise BackendError(Diagnostic(
                "E802", "an input requires grad; the compiled inference module computes no gradients",
                hint="call it under torch.no_grad() or torch.inference_mode(), or pass x.detach()"))
        weights = self._weights()
        if self._frozen is None:
            self._frozen = weights
        elif weights != self._frozen:
            raise BackendError(Diagnostic(
                "E802", "the compiled module's weights changed after its first call; inductor froze the old ones "
                        "into the compiled code",
                hint="load the weights into the model first, then call specgraph.optimize(model, compile=True)"))
        for check in self._checks:
            check(*inputs)
        key = tuple((x.shape, x.stride(), x.dtype, x.device) if isinstance(x, torch.Tensor) else x for x in inputs)
        with torch.no_grad():
            if key in self._seen:
                return self._compiled(*inputs)
            # A call that compiles: inductor's settings as its process-wide config while it does
            # (torch.compile's `options=` did not turn freezing on in torch 2.14: the code ran
            # 1.5x slower, unfrozen); ~20 us a call, so only when the inputs are new.
            from torch._inductor import config

            with config.patch(INDUCTOR_OPTIONS):
                result = self._compiled(*inputs)
            self._seen.add(key)
            return result

    # copies and pickles compile again (lazily): the compiled code is not copied
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_compiled", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._frozen = None
        self._compile()

    def __deepcopy__(self, memo: dict) -> "CompiledInference":
        clone = self.__class__.__new__(self.__class__)
        memo[id(self)] = clone
        state = copy.deepcopy(self.__getstate__(), memo)
        clone.__setstate__(state)
        return clone


def check_compiler(model: nn.Module) -> None:
    """Refuse (E801) a CPU model where inductor finds no C++ compiler for its code."""
    devices = {t.device.type for t in (*model.parameters(), *model.buffers())} or {"cpu"}
    if "cpu" not in devices:
        return
    from torch._inductor import cpp_builder

    try:
        cpp_builder.get_cpp_compiler()
    except Exception as e:  # noqa: BLE001 - inductor's own exception types move between releases
        raise BackendError(Diagnostic(
            "E801", f"compile=True needs a C++ compiler for inductor's CPU code, and none was found ({e})",
            hint="install one (g++ or clang++; $CXX names another), or optimize without compile")) from None


__all__ = ["CompiledInference", "check_compiler", "INDUCTOR_OPTIONS"]
