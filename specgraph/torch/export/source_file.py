"""The Python file an export writes: its imports, and the helpers its code calls — torch
module classes by their ``nn`` names, specgraph's own module classes and functions copied in
(when they need only torch), a ``scan:`` node's loop and cell classes — shared by the
structured export (python.py) and the flat one (flat.py)."""

from __future__ import annotations

import builtins
import inspect
import keyword
import re
import textwrap
from typing import Any

import torch
from torch import nn

from ...ops.torch_modules import FusedScan, Scan
from torch import fx

from ..build import drop_releases
from ..names import class_name as camel_case
from .fx_code import torch_name
from .module_source import (PythonExportError, class_source, constructor_args, docstring_literal, function_source,
                            literal, qualified, verify_constructor)

_CONTAINER_HELPER = '''
def _container(parent: nn.Module, name: str) -> nn.Module:
    """An empty module registered as ``parent.<name>``: a middle level of the node paths."""
    child = nn.Module()
    parent.add_module(name, child)
    return child
'''
# fx puts these in every generated function's globals; only those the code uses are emitted.
FX_GLOBALS = {"inf": "from math import inf", "nan": "from math import nan", "NoneType": "NoneType = type(None)",
              "device": "from torch import device", "torch": None}


class SourceFile:
    """Collects what the generated classes need: imports, helper functions, extra classes."""

    def __init__(self) -> None:
        self.imports: dict[str, None] = {"import torch": None, "from torch import nn": None}
        self.helpers: dict[str, str] = {}  # name -> source (functions, classes), in first-use order
        self.used_container = False

    def need(self, line: str) -> None:
        self.imports[line] = None

    # ---- modules ------------------------------------------------------------------------------
    def constructor(self, module: nn.Module, path: str, init_children=None) -> str:
        """Python text constructing a module equal to ``module`` (without its weights)."""
        special = self.special_constructor(module, path, init_children)
        if special is not None:
            return special
        cls = type(module)
        args, kwargs = constructor_args(module, path)
        verify_constructor(module, cls, args, kwargs, path)
        parts = [literal(a) for a in args] + [f"{k}={literal(v)}" for k, v in kwargs.items()]
        return f"{self.class_name(cls, path)}({', '.join(parts)})"

    def special_constructor(self, module: nn.Module, path: str, init_children=None) -> str | None:
        """A scan's loop module or a weight-normed layer (not rebuilt from plain arguments); None otherwise."""
        if isinstance(module, Scan):
            return self._scan(module, path, init_children)
        if torch.nn.utils.parametrize.is_parametrized(module):
            return self._parametrized(module, path)
        return None

    def class_name(self, cls: type, path: str) -> str:
        """How the file names module class ``cls``: ``nn.Conv2d``, or a copied class's name."""
        if cls.__module__.startswith("torch.nn"):
            return "nn." + cls.__name__ if getattr(nn, cls.__name__, None) is cls else qualified(cls)
        return self._copy_class(cls, path)

    def _parametrized(self, module: nn.Module, path: str) -> str:
        from torch.nn.utils.parametrizations import _WeightNorm

        plist = module.parametrizations
        if set(plist.keys()) != {"weight"} or len(plist["weight"]) != 1 or not isinstance(plist["weight"][0], _WeightNorm):
            raise PythonExportError(f"module {path!r}: only weight_norm parametrizations can be exported to Python")
        base = type(module).__bases__[0]
        args, kwargs = constructor_args(module, path, cls=base)
        parts = [literal(a) for a in args] + [f"{k}={literal(v)}" for k, v in kwargs.items()]
        dim = plist["weight"][0].dim
        return f"nn.utils.parametrizations.weight_norm(nn.{base.__name__}({', '.join(parts)}), dim={dim})"

    def _scan(self, scan: nn.Module, path: str, init_children) -> str:
        self.helpers.setdefault("Scan", class_source(Scan, path))
        cell_class = unique(python_class_name(path) + "Cell", self.helpers)
        init = ["super().__init__()"] + init_lines(self, scan.cell)
        step = method(self, scan.cell.step, "step")
        pre = method(self, scan.cell.pre, "pre") if scan.cell.hoisted else None
        once = method(self, scan.cell.once, "once") if scan.cell.hoisted_once else None
        doc = f"The cell of scan node {path!r}: its modules, and its code before the loop and per step."
        attrs = [f"hoisted = {pre is not None}", f"hoisted_once = {once is not None}"]
        self.helpers[cell_class] = class_text(cell_class, doc, init, [m for m in (pre, once, step) if m], attrs)
        common = (f"{cell_class}(), sizes={list(scan.sizes)!r}, state_index={list(scan.state_index)!r}, "
                  f"emit_index={scan.emit_index!r}, reverse={scan.reverse!r}, init_index={list(scan.init_index)!r}")
        if isinstance(scan, FusedScan) and scan.fused:  # torch's layer kernel, as the built model runs it
            self.helpers.setdefault("FusedScan", class_source(FusedScan, path, bases=(Scan,)))
            return (f"FusedScan({common}, kernel={scan.kernel!r}, weights={[tuple(w) for w in scan.weights]!r}, "
                    f"torch_states={list(scan.torch_states)!r})")
        return f"Scan({common}, contexts={scan.contexts!r})"

    def _copy_class(self, cls: type, path: str) -> str:
        name = cls.__name__
        existing = self.helpers.get(name)
        text = class_source(cls, path)
        if existing is not None and existing != text:
            raise PythonExportError(f"module {path!r}: two different classes named {name!r}")
        self.helpers[name] = text
        return name

    # ---- functions ---------------------------------------------------------------------------
    def callee(self, fn: Any) -> str:
        """How the file calls function ``fn``: torch's by their names, builtins by theirs, others copied in."""
        fn = getattr(fn, "plain_form", fn)  # a fused kernel's call written as the plain ops it equals
        name = torch_name(fn)
        if name is not None:
            if name.startswith("F."):
                self.need("from torch.nn import functional as F")
            return name
        if getattr(builtins, getattr(fn, "__name__", ""), None) is fn:
            return fn.__name__
        if inspect.isfunction(fn):
            return self.copy_function(fn, fn.__name__)
        raise PythonExportError(f"the generated code calls {fn!r}, which cannot be written into a standalone file")

    def copy_function(self, fn: Any, name: str) -> str:
        text = function_source(fn, name)
        if self.helpers.get(name, text) != text:
            raise PythonExportError(f"two different functions named {name!r}")
        self.helpers[name] = text
        return name

    def provide(self, ident: str, value: Any, src: str) -> str:
        """Make the global ``ident`` of fx's code available; returns ``src`` (maybe renamed)."""
        if ident in FX_GLOBALS:
            if FX_GLOBALS[ident]:
                self.need(FX_GLOBALS[ident])
            return src
        if getattr(builtins, ident, None) is value:
            return src
        if inspect.ismodule(value):
            self.need(f"import {value.__name__}" if value.__name__ == ident else f"import {value.__name__} as {ident}")
            return src
        if inspect.isfunction(value):
            value = getattr(value, "plain_form", value)  # a fused kernel's call as the plain ops it equals
            name = value.__name__
            # Readable: call it by its own name, unless a local variable of the code has it.
            if name != ident and (re.search(rf"\b{re.escape(name)}\b", src) or name in self.helpers):
                name = ident
            self.copy_function(value, name)
            return re.sub(rf"\b{re.escape(ident)}\b", name, src)
        raise PythonExportError(f"the generated code uses {ident!r} ({type(value).__name__}), which cannot be "
                                f"written into a standalone file")

    def file_text(self, body: str, extra: list[str] = ()) -> str:
        parts = ["\n".join(self.imports)]
        helpers = list(self.helpers.values())
        if self.used_container:
            helpers.insert(0, _CONTAINER_HELPER)
        parts += [h.strip("\n") for h in helpers]
        parts += [e.strip("\n") for e in extra]
        parts.append(body)
        return "\n\n\n".join(parts) + "\n"


def init_lines(file: "SourceFile", root: nn.Module) -> list[str]:
    """``__init__`` lines making ``root``'s module tree under ``self``."""
    lines: list[str] = []
    _children(file, root, "self", "", lines, set())
    return lines


def _children(file: "SourceFile", module: nn.Module, parent: str, prefix: str, lines: list[str], names: set[str]) -> None:
    # tensors held at a node's own path (parameter and buffer nodes): their values come
    # with the state_dict, so an empty tensor of the right shape and dtype is enough
    for name, t in module._parameters.items():
        if t is not None:
            lines.append(f"{parent}.register_parameter({name!r}, nn.Parameter({_empty(t)}))")
    for name, t in module._buffers.items():
        if t is not None:
            lines.append(f"{parent}.register_buffer({name!r}, {_empty(t)})")
    for name, child in module._modules.items():
        if child is None:
            continue
        path = prefix + name
        if type(child) is nn.Module:
            var = unique(_local_name(path), names)
            names.add(var)
            file.used_container = True
            lines.append(f"{var} = _container({parent}, {name!r})")
            _children(file, child, var, path + ".", lines, names)
            continue
        call = file.constructor(child, path)
        if name.isidentifier() and not keyword.iskeyword(name):
            lines.append(f"{parent}.{name} = {call}")
        else:
            lines.append(f"{parent}.add_module({name!r}, {call})")


def method(file: "SourceFile", gm: fx.GraphModule, name: str) -> str:
    """``gm``'s generated forward as a method called ``name``, its globals made available."""
    code = gm.graph.python_code(root_module="self")
    src = textwrap.dedent(code.src).strip("\n")
    src = re.sub(r"^def forward\(", f"def {name}(", src, count=1)
    src = drop_releases(src)
    for ident, value in code.globals.items():
        if re.search(rf"\b{re.escape(ident)}\b", src):
            src = file.provide(ident, value, src)
    return src


def _empty(t: torch.Tensor) -> str:
    return f"torch.empty({list(t.shape)!r}, dtype=torch.{str(t.dtype).removeprefix('torch.')})"


def _local_name(path: str) -> str:
    ident = re.sub(r"\W", "_", path)
    ident = ident if not ident[0].isdigit() else "m_" + ident
    return ident + "_" if keyword.iskeyword(ident) or ident == "self" else ident


def class_text(name: str, doc: str, init: list[str], methods: list[str], attrs: list[str] = (), *,
               base: str = "nn.Module", signature: str = "") -> str:
    lines = [f"class {name}({base}):"]
    if doc:
        lines.append(textwrap.indent(docstring_literal(doc), "    "))
        lines.append("")
    for a in attrs:
        lines.append(f"    {a}")
    if attrs:
        lines.append("")
    lines.append(f"    def __init__(self{', ' + signature if signature else ''}):")
    lines += indent(init, "        ")
    for m in methods:
        lines.append("")
        lines.append(textwrap.indent(m, "    "))
    return "\n".join(lines)


def indent(lines: list[str], prefix: str) -> list[str]:
    """``lines`` (each maybe several, joined by newlines) with ``prefix`` before every line."""
    return [f"{prefix}{part}" if part else "" for line in lines for part in line.split("\n")]


def python_class_name(path: str) -> str:
    return camel_case(path, default="Module", digit_prefix="M")


def unique(name: str, taken) -> str:
    candidate, i = name, 2
    while candidate in taken:
        candidate, i = f"{name}{i}", i + 1
    return candidate


__all__ = ["SourceFile", "init_lines", "method", "class_text", "indent", "python_class_name", "unique", "FX_GLOBALS", "PythonExportError"]
