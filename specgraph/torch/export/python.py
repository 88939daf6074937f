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
  the cell's modules and its hoisted (``pre``, ``once``) and per-step (``step``) code;
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
from typing import Any

import torch
from torch import fx, nn

from ...ops.torch_modules import Scan
from ..build import graph_modules
from ..input_check import input_check_off
from ..passes.prepack import PrepackedConv2d
from ..names import class_name as camel_case

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
_FX_GLOBALS = {"inf": "from math import inf", "nan": "from math import nan", "NoneType": "NoneType = type(None)",
               "device": "from torch import device", "torch": None}


def python_source(model: nn.Module, *, class_name: str | None = None, docstring: str = "") -> str:
    """The source text of a standalone module equal to ``model`` (a module specgraph built);
    without the built module's input check, which needs specgraph (torch/input_check.py)."""
    with input_check_off(model):
        return _source(model, class_name, docstring)


def _source(model: nn.Module, class_name: str | None, docstring: str) -> str:
    writer = _Writer()
    eval_gm, train_gm = graph_modules(model)
    if train_gm is not None:  # TrainEvalModule: one forward per mode
        name = class_name or type(eval_gm).__name__
        methods = [_dispatch_forward(eval_gm),
                   writer.method(train_gm, "forward_train"),
                   writer.method(eval_gm, "forward_eval")]
    elif isinstance(model, fx.GraphModule):
        name = class_name or type(model).__name__
        methods = [writer.method(model, "forward")]
    else:
        raise PythonExportError(f"expected a module built by specgraph (a torch.fx.GraphModule), "
                                f"found {type(model).__name__}")
    packed = next((path for path, m in model.named_modules() if isinstance(m, PrepackedConv2d)), None)
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
        if isinstance(module, Scan):  # its cell's graphs become methods of a class of their own
            return self._scan(module, path)
        if torch.nn.utils.parametrize.is_parametrized(module):
            return self._parametrized(module, path)
        args, kwargs = constructor_args(module, path)
        verify_constructor(module, cls, args, kwargs, path)
        if cls.__module__.startswith("torch.nn"):
            callee = "nn." + cls.__name__ if getattr(nn, cls.__name__, None) is cls else qualified(cls)
        else:
            callee = self._copy_class(cls, path)
        parts = [literal(a) for a in args] + [f"{k}={literal(v)}" for k, v in kwargs.items()]
        return f"{callee}({', '.join(parts)})"

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

    def _scan(self, scan: nn.Module, path: str) -> str:
        self.helpers.setdefault("Scan", class_source(Scan, path))
        cell_class = _unique(_class_name(path) + "Cell", self.helpers)
        init = ["super().__init__()"]
        self._children(scan.cell, "self", "", init, set())
        step = self.method(scan.cell.step, "step")
        pre = self.method(scan.cell.pre, "pre") if scan.cell.hoisted else None
        once = self.method(scan.cell.once, "once") if scan.cell.hoisted_once else None
        doc = f"The cell of scan node {path!r}: its modules, and its code before the loop and per step."
        attrs = [f"hoisted = {pre is not None}", f"hoisted_once = {once is not None}"]
        self.helpers[cell_class] = _class_text(cell_class, doc, init, [m for m in (pre, once, step) if m], attrs)
        return (f"Scan({cell_class}(), sizes={list(scan.sizes)!r}, state_index={list(scan.state_index)!r}, "
                f"emit_index={scan.emit_index!r}, reverse={scan.reverse!r}, init_index={list(scan.init_index)!r}, "
                f"contexts={scan.contexts!r})")

    def _copy_class(self, cls: type, path: str) -> str:
        name = cls.__name__
        existing = self.helpers.get(name)
        text = class_source(cls, path)
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
            text = function_source(value, name)
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


def _empty(t: torch.Tensor) -> str:
    return f"torch.empty({list(t.shape)!r}, dtype=torch.{str(t.dtype).removeprefix('torch.')})"


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
        lines.append(textwrap.indent(docstring_literal(doc), "    "))
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


def _drop_releases(src: str) -> str:
    # fx ends lines with `;  a = b = None` to free tensors early; only noise to a reader.
    return re.sub(r";  (?:[A-Za-z_]\w* = )+None$", "", src, flags=re.MULTILINE)


# ---- names ------------------------------------------------------------------------------------

def _local_name(path: str) -> str:
    ident = re.sub(r"\W", "_", path)
    ident = ident if not ident[0].isdigit() else "m_" + ident
    return ident + "_" if keyword.iskeyword(ident) or ident == "self" else ident


def _class_name(path: str) -> str:
    return camel_case(path, default="Module", digit_prefix="M")


def _unique(name: str, taken) -> str:
    candidate, i = name, 2
    while candidate in taken:
        candidate, i = f"{name}{i}", i + 1
    return candidate
