"""fx nodes as Python source, for the generated forwards of the Python export.

:func:`call_text` writes one fx node as an expression (``self.conv1(x)``, ``torch.flatten(avgpool, 1)``,
``bn3 + downsample``, ``lstm[0]``) over the names the caller gives its arguments; how a function
is called is decided by a ``callee`` the caller gives (it makes the function available in the
file).  :func:`module_equivalent` finds the parameter-free torch module that computes a function
call (``torch.relu`` -> ``nn.ReLU()``, ``F.max_pool2d(x, kernel_size=3, ...)`` ->
``nn.MaxPool2d(kernel_size=3, ...)``), which an ``nn.Sequential`` needs where the spec has a
function op among its items.
"""

from __future__ import annotations

import inspect
import operator
from typing import Any, Callable, Mapping

import torch
from torch import fx, nn
from torch.nn import functional as F

from .exprs import literal

_INFIX = {operator.add: "+", operator.sub: "-", operator.mul: "*", operator.truediv: "/", operator.floordiv: "//",
          operator.mod: "%", operator.pow: "**", operator.matmul: "@", operator.and_: "&", operator.or_: "|",
          operator.lt: "<", operator.le: "<=", operator.gt: ">", operator.ge: ">=", operator.eq: "==",
          operator.ne: "!="}
_PREFIX = {operator.neg: "-", operator.pos: "+", operator.invert: "~"}


class Code(str):
    """An argument already written as code (``self.rows_shape``): written as is."""


def arg_text(a: Any, name: Callable[[fx.Node], str]) -> str:
    """Python text of one fx argument: a node's name, or a constant (nested lists and tuples)."""
    if isinstance(a, Code):
        return str(a)
    if isinstance(a, fx.Node):
        return name(a)
    if isinstance(a, tuple):
        return "(" + ", ".join(arg_text(x, name) for x in a) + ("," if len(a) == 1 else "") + ")"
    if isinstance(a, list):
        return "[" + ", ".join(arg_text(x, name) for x in a) + "]"
    if isinstance(a, slice):
        return f"slice({arg_text(a.start, name)}, {arg_text(a.stop, name)}, {arg_text(a.step, name)})"
    if a is Ellipsis:
        return "..."
    if isinstance(a, torch.dtype):
        return str(a)  # torch.float32
    if isinstance(a, torch.device):
        return f"torch.device({str(a)!r})"
    if isinstance(a, torch.memory_format):
        return str(a)  # torch.channels_last
    if isinstance(a, (torch.Size,)):
        return literal(tuple(a))
    return literal(a)


def _subscript(a: Any, name: Callable[[fx.Node], str]) -> str:
    """An index as written inside brackets: ``0``, ``:, :2``, ``..., None``."""
    def one(x: Any) -> str:
        if isinstance(x, slice):
            parts = ["" if v is None else arg_text(v, name) for v in (x.start, x.stop, x.step)]
            return ":".join(parts[:2]) + (f":{parts[2]}" if parts[2] else "")
        return arg_text(x, name)

    if isinstance(a, tuple) and a:
        return ", ".join(one(x) for x in a)
    return one(a)


def call_text(node: fx.Node, name: Callable[[fx.Node], str], callee: Callable[[Any], str],
              module: Callable[[fx.Node], str]) -> str:
    """``node`` as an expression: ``module(node)`` says how to reach a submodule or attribute
    (``self.conv1``), ``callee(fn)`` how to call a function."""
    args = [arg_text(a, name) for a in node.args]
    kwargs = [f"{k}={arg_text(v, name)}" for k, v in _plain_kwargs(node).items()]
    if node.op == "call_module":
        return f"{module(node)}({', '.join(args + kwargs)})"
    if node.op == "get_attr":
        return module(node)
    if node.op == "call_method":
        return f"{args[0]}.{node.target}({', '.join(args[1:] + kwargs)})"
    target = node.target
    if target is operator.getitem and not kwargs:
        return f"{args[0]}[{_subscript(node.args[1], name)}]"
    if target in _INFIX and len(args) == 2 and not kwargs:
        return f"{_operand(node.args[0], args[0])} {_INFIX[target]} {_operand(node.args[1], args[1])}"
    if target in _PREFIX and len(args) == 1 and not kwargs:
        return f"{_PREFIX[target]}{_operand(node.args[0], args[0])}"
    return f"{callee(target)}({', '.join(args + kwargs)})"


def _parameters(fn: Any) -> Mapping[str, inspect.Parameter]:
    """``fn``'s parameters; those of the function a boolean dispatch (F.max_pool2d) calls by default."""
    try:
        from torch._jit_internal import boolean_dispatched

        fn = boolean_dispatched.get(fn, {}).get("if_false", fn)
    except ImportError:  # torch moved it: the defaults stay written
        pass
    try:
        return inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}


_SIZES = {"kernel_size", "stride", "padding", "dilation", "output_size", "output_padding"}


def _plain_kwargs(node: fx.Node) -> dict[str, Any]:
    """A torch function's keyword arguments as a person writes them: ``kernel_size=3`` for
    ``(3, 3)``, and those at the function's own defaults left out."""
    if node.op != "call_function" or torch_name(node.target) is None:
        return dict(node.kwargs)
    params = _parameters(node.target)
    kept = {}
    for k, v in node.kwargs.items():
        if k in _SIZES and isinstance(v, (tuple, list)) and v and len(set(v)) == 1 and isinstance(v[0], int):
            v = v[0]
        default = params[k].default if k in params else inspect.Parameter.empty
        if default is not inspect.Parameter.empty and type(default) is type(v) and default == v:
            continue
        kept[k] = v
    return kept


def _operand(a: Any, text: str) -> str:
    """An operand of an infix operator: a name or a plain constant as is, anything else in parentheses."""
    return text if isinstance(a, (fx.Node, int, float)) and not text.startswith("-") else f"({text})"


def torch_name(fn: Any) -> str | None:
    """How the file calls a torch function: ``torch.flatten``, ``F.silu`` (torch.nn.functional
    and the C functions it re-exports), or None for a function that is not torch's."""
    name = getattr(fn, "__name__", None)
    if name is None:
        return None
    if getattr(F, name, None) is fn:
        return f"F.{name}"
    if getattr(torch, name, None) is fn:
        return f"torch.{name}"
    module = getattr(fn, "__module__", None) or ""
    if module.startswith("torch") and not module.startswith("torch.fx"):
        return f"{module}.{name}"
    return None


def _module_class(fn: Any) -> type | None:
    """The torch module class named like function ``fn`` (relu -> ReLU, max_pool2d -> MaxPool2d)."""
    key = getattr(fn, "__name__", "").replace("_", "").lower()
    for cls_name in dir(nn):
        cls = getattr(nn, cls_name)
        if isinstance(cls, type) and issubclass(cls, nn.Module) and cls_name.lower() == key:
            return cls
    return None


def module_equivalent(node: fx.Node, first: fx.Node) -> str | None:
    """A parameter-free torch module computing the one-input function call ``node`` on ``first``
    (``nn.ReLU()``, ``nn.MaxPool2d(kernel_size=3, stride=2, padding=1)``), or None.

    Its constructor takes the function's other arguments by their names; torch's modules of the
    function's name call exactly that function with them.  It is checked by building it.
    """
    if node.op != "call_function" or not node.args or node.args[0] is not first or torch_name(node.target) is None:
        return None
    others = list(node.args[1:]) + list(node.kwargs.values())
    if any(isinstance(a, fx.Node) for a in others) or any(isinstance(u, fx.Node) for u in node.kwargs.values()):
        return None
    cls = _module_class(node.target)
    if cls is None:
        return None
    try:
        params = list(inspect.signature(node.target).parameters)[1:]
    except (TypeError, ValueError):  # a builtin: its other arguments must be named
        if len(node.args) > 1:
            return None
        params = []
    kwargs = dict(zip(params, node.args[1:]))
    kwargs.update(node.kwargs)
    try:
        with torch.device("meta"):
            made = cls(**kwargs)
    except Exception:  # noqa: BLE001 - arguments the module does not take: no equivalent
        return None
    if list(made.parameters()) or list(made.buffers()):
        return None
    shown = ", ".join(f"{k}={literal(v)}" for k, v in kwargs.items() if not _is_default(cls, k, v))
    return f"nn.{cls.__name__}({shown})" if getattr(nn, cls.__name__, None) is cls else None


def _is_default(cls: type, key: str, value: Any) -> bool:
    try:
        param = inspect.signature(cls.__init__).parameters.get(key)
    except (TypeError, ValueError):
        return False
    return param is not None and param.default is not inspect.Parameter.empty and type(param.default) is type(value) \
        and param.default == value


__all__ = ["Code", "arg_text", "call_text", "torch_name", "module_equivalent"]
