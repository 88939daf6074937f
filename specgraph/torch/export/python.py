"""Export to Python: a standalone, readable ``nn.Module`` source file that needs only torch.

The file holds one class named after the spec.  Its ``__init__`` creates the submodules at
the spec's node paths (plain ``nn.Module`` containers for the middle levels, as the builder
makes them), so the state_dict keys are the built module's, in the same order, and weights
saved from one load into the other with ``strict=True``.  Its ``forward`` is the straight-line
code torch.fx generated for the built module (``model.code``), with fx's early ``x = None``
releases left out for readability.

What the code calls is made available in the file:

* torch's modules are constructed from their attributes (``nn.Conv2d(3, 64, kernel_size=7,
  ...)``), arguments equal to the defaults left out; each constructor call is checked by
  building it (on the meta device) and comparing it with the original;
* modules of other classes (specgraph's ``SpecLSTM``, ``VariationalDropout``, ``Zoneout``, or a
  user op's) are copied as class definitions, method by method, when their methods need only
  torch; ``Scan`` (a ``scan:`` node) becomes a small loop class plus one class per cell holding
  the cell's modules and its hoisted (``pre``) and per-step (``step``) code;
* plain functions the code calls (``center_crop``) are copied in as helper functions.

A spec with training-only outputs gets ``forward_train`` and ``forward_eval`` and a ``forward``
choosing by ``self.training``, as the built module does.  Anything that cannot be reproduced
this way raises :class:`PythonExportError` naming the module or function.
"""

from __future__ import annotations

import builtins
import inspect
import keyword
import re
import textwrap
from typing import Any, Callable

import torch
from torch import fx, nn

from .formats import ExportError

_RNN_ARGS = ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional")
_RNN_EXTRA = {nn.LSTM: ("proj_size",), nn.RNN: ("nonlinearity",)}
_CONTAINER_HELPER = '''
def _container(parent: nn.Module, name: str) -> nn.Module:
    """An empty module registered as ``parent.<name>``: a middle level of the node paths."""
    child = nn.Module()
    parent.add_module(name, child)
    return child
'''
_SCAN_CLASS = '''
class Scan(nn.Module):
    """out[:, t], states = cell(x[:, t], states) for t in 0..T-1 (T-1..0 when reversed).

    The cell's ``pre`` computes what depends on x alone for all steps at once (when its
    ``hoisted`` is True); ``step`` computes the rest, one step at a time.
    """

    def __init__(self, cell: nn.Module, sizes: list[int], state_index: list[int], emit_index: int,
                 reverse: bool):
        super().__init__()
        self.cell = cell
        self.sizes = sizes
        self.state_index = state_index
        self.emit_index = emit_index
        self.reverse = reverse

    def forward(self, x: torch.Tensor, *init: torch.Tensor):
        n, steps = x.shape[0], x.shape[1]
        states = list(init) if init else [x.new_zeros(n, size) for size in self.sizes]
        if self.cell.hoisted:
            hoisted = self.cell.pre(x.reshape(n * steps, *x.shape[2:]))
            hoisted = hoisted if isinstance(hoisted, tuple) else (hoisted,)
            per_step = [h.reshape(n, steps, *h.shape[1:]) for h in hoisted]
        else:
            per_step = [x]
        outs = []
        for t in (range(steps - 1, -1, -1) if self.reverse else range(steps)):
            result = self.cell.step(*(h[:, t] for h in per_step), *states)
            result = result if isinstance(result, tuple) else (result,)
            states = [result[i] for i in self.state_index]
            outs.append(result[self.emit_index])
        if self.reverse:
            outs.reverse()
        return (torch.stack(outs, 1), *states)
'''
_RESHAPE_CLASS = '''
class Reshape(nn.Module):
    """Reshape whose symbolic entries take their sizes from the input's dims."""

    def __init__(self, sources):
        super().__init__()
        self.sources = sources  # ("dim", i): the input's dim i; ("size", n): n

    def forward(self, x):
        return x.reshape([x.shape[v] if kind == "dim" else v for kind, v in self.sources])
'''
# fx puts these in every generated function's globals; only those the code uses are emitted.
_FX_GLOBALS = {"inf": "from math import inf", "nan": "from math import nan", "NoneType": "NoneType = type(None)",
               "device": "from torch import device", "torch": None}


class PythonExportError(ExportError):
    """A module or function of the model that the source generator cannot reproduce."""


def python_source(model: nn.Module, *, class_name: str | None = None, docstring: str = "") -> str:
    """The source text of a standalone module equal to ``model`` (a module specgraph built)."""
    writer = _Writer()
    eval_gm = model.__dict__.get("eval_graph_module")
    if isinstance(eval_gm, fx.GraphModule):  # TrainEvalModule: one forward per mode
        name = class_name or type(eval_gm).__name__
        methods = [_dispatch_forward(eval_gm),
                   writer.method(model.__dict__["train_graph_module"], "forward_train"),
                   writer.method(eval_gm, "forward_eval")]
    elif isinstance(model, fx.GraphModule):
        name = class_name or type(model).__name__
        methods = [writer.method(model, "forward")]
    else:
        raise PythonExportError(f"expected a module built by specgraph (a torch.fx.GraphModule), "
                                f"found {type(model).__name__}")
    packed = next((path for path, m in model.named_modules() if type(m).__name__ == "PrepackedConv2d"), None)
    if packed is not None:  # oneDNN's packed weights live in this process only
        raise PythonExportError(f"module {packed!r} is a prepacked oneDNN convolution, which only this process can "
                                f"run: optimise with prepack=False for export (specgraph.export does)")
    init = writer.init_body(model)
    body = _class_text(name, docstring, init, methods)
    return writer.file_text(body)


class _Writer:
    """Collects what the generated classes need: imports, helper functions, extra classes."""

    def __init__(self) -> None:
        self.imports: dict[str, None] = {"import torch": None, "from torch import nn": None}
        self.helpers: dict[str, str] = {}  # name -> source (functions, classes), in first-use order
        self.used_container = False

    # ---- __init__: the module tree ----------------------------------------------------------
    def init_body(self, root: nn.Module) -> list[str]:
        lines = ["super().__init__()"]
        self._children(root, "self", "", lines, set())
        return lines

    def _children(self, module: nn.Module, parent: str, prefix: str, lines: list[str], names: set[str]) -> None:
        for name, child in module._modules.items():
            if child is None:
                continue
            path = prefix + name
            if type(child) is nn.Module:
                var = _unique(_local_name(path), names)
                names.add(var)
                self.used_container = True
                lines.append(f"{var} = _container({parent}, {name!r})")
                self._children(child, var, path + ".", lines, names)
                continue
            call = self.constructor(child, path)
            if name.isidentifier() and not keyword.iskeyword(name):
                lines.append(f"{parent}.{name} = {call}")
            else:
                lines.append(f"{parent}.add_module({name!r}, {call})")

    def constructor(self, module: nn.Module, path: str) -> str:
        """Python text constructing a module equal to ``module`` (without its weights)."""
        cls = type(module)
        if cls.__name__ == "Scan" and cls.__module__ == "specgraph.torch.scan":
            return self._scan(module, path)
        if cls.__name__ == "Reshape" and cls.__module__ == "specgraph.ops.shape":
            self.helpers.setdefault("Reshape", _RESHAPE_CLASS)
            return f"Reshape({tuple(module.sources)!r})"
        if torch.nn.utils.parametrize.is_parametrized(module):
            return self._parametrized(module, path)
        args, kwargs = _constructor_args(module, path)
        _verify_constructor(module, cls, args, kwargs, path)
        if cls.__module__.startswith("torch.nn"):
            callee = "nn." + cls.__name__ if getattr(nn, cls.__name__, None) is cls else _qualified(cls)
        else:
            callee = self._copy_class(cls, path)
        parts = [_literal(a) for a in args] + [f"{k}={_literal(v)}" for k, v in kwargs.items()]
        return f"{callee}({', '.join(parts)})"

    def _parametrized(self, module: nn.Module, path: str) -> str:
        from torch.nn.utils.parametrizations import _WeightNorm

        plist = module.parametrizations
        if set(plist.keys()) != {"weight"} or len(plist["weight"]) != 1 or not isinstance(plist["weight"][0], _WeightNorm):
            raise PythonExportError(f"module {path!r}: only weight_norm parametrizations can be exported to Python")
        base = type(module).__bases__[0]
        args, kwargs = _constructor_args(module, path, cls=base)
        parts = [_literal(a) for a in args] + [f"{k}={_literal(v)}" for k, v in kwargs.items()]
        dim = plist["weight"][0].dim
        return f"nn.utils.parametrizations.weight_norm(nn.{base.__name__}({', '.join(parts)}), dim={dim})"

    def _scan(self, scan: nn.Module, path: str) -> str:
        self.helpers.setdefault("Scan", _SCAN_CLASS)
        cell_class = _unique(_class_name(path) + "Cell", self.helpers)
        init = ["super().__init__()"]
        self._children(scan.cell, "self", "", init, set())
        step = self.method(scan.step, "step")
        pre = self.method(scan.pre, "pre") if scan.pre is not None else None
        doc = f"The cell of scan node {path!r}: its modules, and its code before the loop and per step."
        attrs = [f"hoisted = {pre is not None}"]
        self.helpers[cell_class] = _class_text(cell_class, doc, init, [m for m in (pre, step) if m], attrs)
        return (f"Scan({cell_class}(), sizes={list(scan.sizes)!r}, state_index={list(scan.state_index)!r}, "
                f"emit_index={scan.emit_index!r}, reverse={scan.reverse!r})")

    def _copy_class(self, cls: type, path: str) -> str:
        name = cls.__name__
        existing = self.helpers.get(name)
        text = _class_source(cls, path)
        if existing is not None and existing != text:
            raise PythonExportError(f"module {path!r}: two different classes named {name!r}")
        self.helpers[name] = text
        return name

    # ---- forward code ---------------------------------------------------------------------
    def method(self, gm: fx.GraphModule, name: str) -> str:
        """``gm``'s generated forward as a method called ``name``, its globals made available."""
        code = gm.graph.python_code(root_module="self")
        src = textwrap.dedent(code.src).strip("\n")
        src = re.sub(r"^def forward\(", f"def {name}(", src, count=1)
        src = _drop_releases(src)
        for ident, value in code.globals.items():
            if not re.search(rf"\b{re.escape(ident)}\b", src):
                continue
            src = self._provide(ident, value, src)
        return src

    def _provide(self, ident: str, value: Any, src: str) -> str:
        """Make the global ``ident`` of fx's code available; returns ``src`` (maybe renamed)."""
        if ident in _FX_GLOBALS:
            if _FX_GLOBALS[ident]:
                self.imports[_FX_GLOBALS[ident]] = None
            return src
        if getattr(builtins, ident, None) is value:
            return src
        if inspect.ismodule(value):
            self.imports[f"import {value.__name__}" if value.__name__ == ident
                         else f"import {value.__name__} as {ident}"] = None
            return src
        if inspect.isfunction(value):
            name = value.__name__
            # Readable: call it by its own name, unless a local variable of the code has it.
            if name != ident and (re.search(rf"\b{re.escape(name)}\b", src) or name in self.helpers):
                name = ident
            text = _function_source(value, name)
            if self.helpers.get(name, text) != text:
                raise PythonExportError(f"two different functions named {name!r}")
            self.helpers[name] = text
            return re.sub(rf"\b{re.escape(ident)}\b", name, src)
        raise PythonExportError(f"the generated code uses {ident!r} ({type(value).__name__}), which cannot be "
                                f"written into a standalone file")

    def file_text(self, body: str) -> str:
        parts = ["\n".join(self.imports)]
        helpers = list(self.helpers.values())
        if self.used_container:
            helpers.insert(0, _CONTAINER_HELPER)
        parts += [h.strip("\n") for h in helpers]
        parts.append(body)
        return "\n\n\n".join(parts) + "\n"


def _dispatch_forward(eval_gm: fx.GraphModule) -> str:
    params = [n.target for n in eval_gm.graph.nodes if n.op == "placeholder"]
    args = ", ".join(params)
    return (f"def forward(self, {args}):\n"
            f"    # training-only outputs are computed in train mode only\n"
            f"    if self.training:\n"
            f"        return self.forward_train({args})\n"
            f"    return self.forward_eval({args})")


def _class_text(name: str, doc: str, init: list[str], methods: list[str], attrs: list[str] = ()) -> str:
    lines = [f"class {name}(nn.Module):"]
    if doc:
        lines.append(textwrap.indent(_docstring(doc), "    "))
        lines.append("")
    for attr in attrs:
        lines.append(f"    {attr}")
    if attrs:
        lines.append("")
    lines.append("    def __init__(self):")
    lines += [f"        {line}" for line in init]
    for m in methods:
        lines.append("")
        lines.append(textwrap.indent(m, "    "))
    return "\n".join(lines)


def _docstring(doc: str) -> str:
    doc = doc.strip().replace('"""', "'''")
    return f'"""{doc}\n"""' if "\n" in doc else f'"""{doc}"""'


def _drop_releases(src: str) -> str:
    # fx ends lines with `;  a = b = None` to free tensors early; only noise to a reader.
    return re.sub(r";  (?:[A-Za-z_]\w* = )+None$", "", src, flags=re.MULTILINE)


# ---- constructors -------------------------------------------------------------------------------

def _constructor_args(module: nn.Module, path: str, cls: type | None = None) -> tuple[list, dict]:
    """Positional and keyword arguments rebuilding ``module``, read from its attributes."""
    cls = cls or type(module)
    if isinstance(module, nn.RNNBase):
        names = _RNN_ARGS + next((extra for base, extra in _RNN_EXTRA.items() if isinstance(module, base)), ())
        defaults = {"num_layers": 1, "bias": True, "batch_first": False, "dropout": 0.0, "bidirectional": False,
                    "proj_size": 0, "nonlinearity": "tanh"}
        args = [getattr(module, n) for n in names[:2]]
        kwargs = {n: getattr(module, n) for n in names[2:] if getattr(module, n) != defaults.get(n, object())}
        return args, kwargs
    try:
        signature = inspect.signature(cls.__init__)
    except (TypeError, ValueError) as e:
        raise PythonExportError(f"module {path!r} ({cls.__name__}): cannot read its constructor") from e
    args: list = []
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
            args.append(value)
        elif param.default is param.empty or not _same(value, param.default):
            kwargs[name] = value
    return args, kwargs


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


def _verify_constructor(module: nn.Module, cls: type, args: list, kwargs: dict, path: str) -> None:
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


def _literal(value: Any) -> str:
    text = repr(value)
    if text in ("inf", "-inf", "nan"):
        return f"float({text!r})"
    return text


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}".replace("torch.nn.", "nn.", 1)


# ---- copied classes and functions ---------------------------------------------------------------

# Globals a copied function may read: those the generated file has too.
_FILE_GLOBALS = {"torch", "nn", "F"}


def _function_source(fn: Callable, name: str) -> str:
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


def _class_source(cls: type, path: str) -> str:
    """A class definition equal to ``cls``, assembled from its methods' sources."""
    base = cls.__bases__[0] if len(cls.__bases__) == 1 else None
    if base is nn.Module:
        base_text = "nn.Module"
    elif base is not None and base.__module__.startswith("torch.nn") and getattr(nn, base.__name__, None) is base:
        base_text = "nn." + base.__name__
    else:
        raise PythonExportError(f"module {path!r}: its class {cls.__qualname__} does not derive from one "
                                f"torch.nn class; cannot copy it")
    lines = [f"class {cls.__name__}({base_text}):"]
    if cls.__doc__:
        lines.append(textwrap.indent(_docstring(inspect.cleandoc(cls.__doc__)), "    "))
    for name, value in cls.__dict__.items():
        if name.startswith("__") and name not in ("__init__",):
            continue
        if not inspect.isfunction(value):
            if callable(value) or isinstance(value, (property, staticmethod, classmethod)):
                raise PythonExportError(f"module {path!r}: {cls.__name__}.{name} is not a plain method; cannot copy it")
            lines += ["", f"    {name} = {_literal(value)}"]
            continue
        _check_globals(value, f"{cls.__name__}.{name} (module {path!r})")
        try:
            src = textwrap.dedent(inspect.getsource(value))
        except (OSError, TypeError) as e:
            raise PythonExportError(f"module {path!r}: the source of {cls.__name__}.{name} is not available") from e
        lines += ["", textwrap.indent(src.rstrip("\n"), "    ")]
    return "\n".join(lines)


# ---- names ------------------------------------------------------------------------------------

def _local_name(path: str) -> str:
    ident = re.sub(r"\W", "_", path)
    ident = ident if not ident[0].isdigit() else "m_" + ident
    return ident + "_" if keyword.iskeyword(ident) or ident == "self" else ident


def _class_name(path: str) -> str:
    parts = re.split(r"[^A-Za-z0-9]+", path)
    ident = "".join(p[:1].upper() + p[1:] for p in parts if p) or "Module"
    return ident if not ident[0].isdigit() else "M" + ident


def _unique(name: str, taken) -> str:
    candidate, i = name, 2
    while candidate in taken:
        candidate, i = f"{name}{i}", i + 1
    return candidate
