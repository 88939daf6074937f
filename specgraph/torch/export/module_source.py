"""Source text for the Python export: constructor calls rebuilding torch modules from their
attributes (checked by rebuilding them on the meta device), and copies of the classes and
functions a model uses, assembled from their own sources when they need only torch."""

from __future__ import annotations

import builtins
import inspect
import re
import textwrap
from typing import Any, Callable

import torch
from torch import nn

from .inputs import ExportError

_RNN_ARGS = ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional")
_RNN_EXTRA = {nn.LSTM: ("proj_size",), nn.RNN: ("nonlinearity",)}


class PythonExportError(ExportError):
    """A module or function of the model that the source generator cannot reproduce."""


def docstring_literal(doc: str) -> str:
    doc = doc.strip().replace('"""', "'''")
    return f'"""{doc}\n"""' if "\n" in doc else f'"""{doc}"""'


# ---- constructors -------------------------------------------------------------------------------

def constructor_args(module: nn.Module, path: str, cls: type | None = None) -> tuple[list, dict]:
    """Positional and keyword arguments rebuilding ``module``, read from its attributes."""
    named, kwargs = constructor_named_args(module, path, cls)
    return [v for _, v in named], kwargs


def constructor_named_args(module: nn.Module, path: str, cls: type | None = None) -> tuple[list[tuple[str, Any]], dict]:
    """Like :func:`constructor_args`, the positional arguments with their parameter names."""
    args, kwargs, _ = constructor_parts(module, path, cls)
    return args, kwargs


def constructor_parts(module: nn.Module, path: str, cls: type | None = None) -> tuple[list, dict, dict]:
    """(positional (name, value) pairs, keyword arguments, the arguments left out because the
    module has them at their defaults)."""
    cls = cls or type(module)
    at_default: dict = {}
    if isinstance(module, nn.RNNBase):
        names = _RNN_ARGS + next((extra for base, extra in _RNN_EXTRA.items() if isinstance(module, base)), ())
        defaults = {"num_layers": 1, "bias": True, "batch_first": False, "dropout": 0.0, "bidirectional": False,
                    "proj_size": 0, "nonlinearity": "tanh"}
        args = [(n, getattr(module, n)) for n in names[:2]]
        kwargs = {n: getattr(module, n) for n in names[2:] if getattr(module, n) != defaults.get(n, object())}
        at_default = {n: getattr(module, n) for n in names[2:] if n not in kwargs}
        return args, kwargs, at_default
    try:
        signature = inspect.signature(cls.__init__)
    except (TypeError, ValueError) as e:
        raise PythonExportError(f"module {path!r} ({cls.__name__}): cannot read its constructor") from e
    args: list[tuple[str, Any]] = []
    kwargs: dict = {}
    conv = isinstance(module, nn.modules.conv._ConvNd)
    for i, (name, param) in enumerate(list(signature.parameters.items())[1:]):
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or name in ("device", "dtype") or name.startswith("_"):
            continue
        if not hasattr(module, name):
            if param.default is not param.empty:
                continue  # not kept by the module; the default is what it was built with, or _verify says
            raise PythonExportError(f"module {path!r} ({cls.__name__}): its constructor argument {name!r} "
                                    f"is not kept as an attribute, so it cannot be rebuilt")
        value = getattr(module, name)
        if name == "bias" and (value is None or isinstance(value, torch.Tensor)):
            value = value is not None
        if conv and isinstance(value, tuple) and value and len(set(value)) == 1 and isinstance(value[0], int):
            value = value[0]  # kernel_size=(3, 3) -> 3
        if param.default is param.empty and i < 2:
            args.append((name, value))
        elif param.default is param.empty or not _same(value, param.default):
            kwargs[name] = value
        else:
            at_default[name] = value
    return args, kwargs, at_default


def _same(a: Any, b: Any) -> bool:
    """Whether an attribute's value equals the parameter's default (then it is left out)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:  # noqa: BLE001 - values that do not compare are not the default
        return False


def verify_constructor(module: nn.Module, cls: type, args: list, kwargs: dict, path: str) -> None:
    """Build the module from the arguments found (no real memory: meta device) and compare."""
    try:
        with torch.device("meta"):
            rebuilt = cls(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - any failure means the arguments are not right
        raise PythonExportError(f"module {path!r} ({cls.__name__}): rebuilding it from its attributes "
                                f"failed: {type(e).__name__}: {e}") from e
    want = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()}
    if want != have or repr(rebuilt) != repr(module):
        raise PythonExportError(f"module {path!r} ({cls.__name__}): rebuilding it from its attributes gives "
                                f"{rebuilt!r}, not {module!r}")


def literal(value: Any) -> str:
    text = repr(value)
    if text in ("inf", "-inf", "nan"):
        return f"float({text!r})"
    return text


def qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}".replace("torch.nn.", "nn.", 1)


# ---- copied classes and functions ---------------------------------------------------------------

# Globals a copied function may read: those the generated file has too.
_FILE_GLOBALS = {"torch", "nn", "F"}


def function_source(fn: Callable, name: str) -> str:
    """The source of a plain function, renamed ``name``; it may use only torch and builtins."""
    _check_globals(fn, f"function {fn.__name__!r}")
    try:
        src = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError) as e:
        raise PythonExportError(f"function {fn.__qualname__!r}: its source is not available") from e
    src = re.sub(r"^(\s*@.*\n)*", "", src)  # decorators belong to the library, not the copy
    return re.sub(rf"^def {re.escape(fn.__name__)}\(", f"def {name}(", src, count=1)


def _check_globals(fn: Callable, what: str) -> None:
    code = fn.__code__
    free = set(code.co_freevars) - {"__class__"} - _FILE_GLOBALS
    if free:
        raise PythonExportError(f"{what} reads the enclosing variables {sorted(free)}; cannot copy it")
    g = getattr(fn, "__globals__", {})
    names = set(_global_loads(code))
    outside = {n for n in names if n in g and n not in _FILE_GLOBALS and getattr(builtins, n, None) is None}
    if outside:
        raise PythonExportError(f"{what} reads the module-level names {sorted(outside)}; cannot copy it")


def _global_loads(code) -> list[str]:
    import dis

    names = [ins.argval for ins in dis.get_instructions(code) if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME")]
    for const in code.co_consts:
        if inspect.iscode(const):
            names += _global_loads(const)
    return names


def class_source(cls: type, path: str, bases: tuple[type, ...] = ()) -> str:
    """A class definition equal to ``cls``, assembled from its methods' sources; ``bases``: classes
    the file copies too, which it may derive from (by name)."""
    base = cls.__bases__[0] if len(cls.__bases__) == 1 else None
    if base is nn.Module:
        base_text = "nn.Module"
    elif base is not None and base.__module__.startswith("torch.nn") and getattr(nn, base.__name__, None) is base:
        base_text = "nn." + base.__name__
    elif base is not None and base in bases:
        base_text = base.__name__
    else:
        raise PythonExportError(f"module {path!r}: its class {cls.__qualname__} does not derive from one "
                                f"torch.nn class; cannot copy it")
    lines = [f"class {cls.__name__}({base_text}):"]
    if cls.__doc__:
        lines.append(textwrap.indent(docstring_literal(inspect.cleandoc(cls.__doc__)), "    "))
    for name, value in cls.__dict__.items():
        if name.startswith("__") and name not in ("__init__",):
            continue
        if isinstance(value, property) and value.fset is None and value.fdel is None:
            value = value.fget  # a read-only property: its getter's source carries the @property
        elif not inspect.isfunction(value):
            if callable(value) or isinstance(value, (property, staticmethod, classmethod)):
                raise PythonExportError(f"module {path!r}: {cls.__name__}.{name} is not a plain method; cannot copy it")
            lines += ["", f"    {name} = {literal(value)}"]
            continue
        _check_globals(value, f"{cls.__name__}.{name} (module {path!r})")
        try:
            src = textwrap.dedent(inspect.getsource(value))
        except (OSError, TypeError) as e:
            raise PythonExportError(f"module {path!r}: the source of {cls.__name__}.{name} is not available") from e
        lines += ["", textwrap.indent(src.rstrip("\n"), "    ")]
    return "\n".join(lines)
