"""Export to Python: the spec as the PyTorch source a person would write and a reviewer accept.

One ``nn.Module`` class per block of the spec, its params the constructor's arguments (after the
sizes of its inputs that its layers need, ``in_channels``), its ``let:`` values locals::

    class Bottleneck(nn.Module):
        def __init__(self, in_channels, width, stride=1, dilation=1, groups=1, base_width=64):
            super().__init__()
            inner = int(width * (base_width / 64.0)) * groups
            self.conv1 = nn.Conv2d(in_channels, inner, kernel_size=1, bias=False)
            ...
            if stride != 1 or in_channels != width * 4:
                self.downsample = nn.Sequential(...)
            else:
                self.downsample = None

A seq is an ``nn.Sequential`` (its repeats a loop over ``index``, its switched items an
``if``), a block that is one inline seq an ``nn.Sequential`` subclass, the graph the last class,
its constructor taking the spec's params (``num_classes=1000``).  Each forward is one statement
per node, named as the spec names it.  Submodules sit where the built module has them, so the
state_dict keys are the same, in the same order, and weights load with ``strict=True``.

How the values are written: units.py.  Instances of a block whose classes come out as the same
text are one class; an instance the text of another cannot express (a structure its params do
not decide, a size the spec wrote nowhere) gets a class of its own (``Bottleneck2``): always
correct, never a guess.  A scan runs its cell in a loop module (flat.py's); a training-only output
is computed under ``if self.training``.  A module the graph passes rewrote (``--optimize``) has
no blocks left to write: :func:`python_source` writes it flat (flat.py).
"""

from __future__ import annotations

from typing import Any

from torch import fx, nn

from ...ir.graph import Graph, Value
from ...ops.gather_dot_function import gather_dot
from ..build import IN_PLACE_KEY, build_module, graph_modules
from ..input_check import input_check_off
from ..names import class_name as camel_case
from .exprs import MAKE_DIVISIBLE, Untranslatable
from .flat import flat_python_source, refuse_prepacked
from .class_writer import write_unit
from .forward import _Written
from .fx_code import Code, call_text
from .module_source import PythonExportError
from .written_check import mismatch
from .source_file import SourceFile, class_text, unique
from .structure import Child, Structure
from .units import UnitText, UnitWriter


def python_source(model: nn.Module, graph: Graph | None = None, *, class_name: str | None = None,
                  docstring: str = "") -> str:
    """The source text of a standalone module file equal to ``model``, a module built from
    ``graph``: one class per block (see the module docstring); without ``graph``, or for a module
    the passes rewrote, one flat class (flat.py).  No input check (torch/input_check.py)."""
    if graph is not None and _built_in_place(model):
        # the classes are written from the plain ops (``out = bn3 + downsample``, a gather-dot's
        # embeddings, mul and sum), as a person writes them and as flat.py's forms expect; the
        # weights are the model's
        plain = build_module(graph, check_inputs=False, in_place=False, fuse=False)
        plain.load_state_dict(model.state_dict(), strict=True)
        model = plain.train(model.training)
    with input_check_off(model):
        return _source(model, graph, class_name, docstring)


def _built_in_place(model: nn.Module) -> bool:
    """Built by build_module with in-place nodes or a fused gather-dot (not rewritten by the passes:
    flat.py writes those)."""
    if "specgraph_passes" in getattr(graph_modules(model)[0], "meta", {}):
        return False
    return any(n.meta.get(IN_PLACE_KEY) or n.target is gather_dot
               for gm in graph_modules(model) if gm is not None for n in gm.graph.nodes)


def _source(model: nn.Module, graph: Graph | None, class_name: str | None, docstring: str) -> str:
    refuse_prepacked(model)
    eval_gm, _ = graph_modules(model)
    if graph is None or graph.frame is None or "specgraph_passes" in getattr(eval_gm, "meta", {}):
        return flat_python_source(model, class_name=class_name, docstring=docstring)
    unregistered: set[str] = set()
    try:
        while True:
            exporter = Exporter(graph, model, class_name or camel_case(graph.name), docstring, unregistered)
            text = exporter.run()
            clash = exporter.ambiguous_blocks()
            if not clash:
                break
            unregistered |= clash  # a block chosen by name that became two classes: name its class instead
        problem = mismatch(text, model)
    except (PythonExportError, Untranslatable) as e:  # the flat form says why (a module it cannot copy)
        problem = str(e)
    if problem is None:
        return text
    note = f"\n\nWritten as one flat class: the classes per block came out wrong ({problem}); please report it."
    return flat_python_source(model, class_name=class_name, docstring=(docstring or graph.name) + note)


class Exporter:
    """One file being written: the units' classes, shared layer classes and registries."""

    def __init__(self, graph: Graph, model: nn.Module, name: str, doc: str, unregistered: set[str]):
        self.graph, self.model, self.name = graph, model, name
        self.top_doc = doc or f"{graph.name}, written by specgraph export."
        eval_gm, train_gm = graph_modules(model)
        self.structure = Structure.read(graph, (train_gm or eval_gm).graph)
        self.train_only = (graph.needed_by() - graph.needed_by(graph.eval_outputs)) if train_gm is not None else set()
        self.source = SourceFile()
        self.units: dict[str, UnitText] = {}
        self.writers: dict[str, UnitWriter] = {}
        self.working: set[str] = set()
        self.unregistered = unregistered
        self.blocks_used: dict[str, set[str]] = {}  # block -> keys written as BLOCKS[...]
        self.op_modules: dict[str, str] = {}
        self.layer_classes: dict[str, str] = {}  # text -> key
        self.fx_by_value = {v: n for n, v in self.structure.fx_value.items()}
        self.module_paths = {name for name, _ in model.named_modules()}
        self._templates = self._index_templates()
        self.self_reference: str | None = None  # a block written as making itself (see _unify)

    # ---- the graph and the model --------------------------------------------------------------
    def module(self, path: str) -> nn.Module:
        return self.model.get_submodule(path)

    def has_module(self, path: str) -> bool:
        return path in self.module_paths and path not in self.graph.scopes

    def holds(self, path: str) -> bool:
        parent, _, leaf = path.rpartition(".")
        if parent and parent not in self.module_paths:  # a block holding no weights has no module
            return False
        owner = self.model.get_submodule(parent) if parent else self.model
        return leaf in owner._parameters or leaf in owner._buffers

    def fx_of(self, value: Value) -> fx.Node | None:
        found = self.fx_by_value.get((value.node, value.port))
        if found is None and value.node in self.graph and not self.graph.node(value.node).is_input:
            node = self.graph.node(value.node)
            if not self.structure.fx_nodes.get(node.path) and node.inputs:  # an identity: its input's node
                return self.fx_of(node.inputs[0])
        return found

    # ---- units ---------------------------------------------------------------------------------
    def unit(self, path: str) -> UnitText:
        if path not in self.units:
            if path in self.working:
                raise PythonExportError(f"block instance {path!r} contains itself")
            self.working.add(path)
            writer = UnitWriter(self, path)
            self.writers[path] = writer
            self.units[path] = write_unit(writer)
            self.working.discard(path)
        return self.units[path]

    def _index_templates(self) -> dict[tuple, list[tuple[str, Child]]]:
        index: dict[tuple, list[tuple[str, Child]]] = {}
        for container, children in self.structure.children.items():
            unit = self._unit_of(container)
            for child in children:
                w = child.written
                if child.skipped is None and w is not None and w.frame is not None:
                    index.setdefault((w.frame.block, w.identity), []).append((unit, child))
        return index

    def _unit_of(self, path: str) -> str:
        while path and self.graph.scopes[path].kind != "block":
            path = self.graph.scopes[path].parent or ""
        return path

    def template(self, child: Child, asking: UnitWriter) -> tuple[UnitWriter, Child] | None:
        """Another instance of the block where the switched-off ``child`` is on, written (its
        writer and that child), or None."""
        w = child.skipped
        if w is None or w.frame is None:
            return None
        for unit, present in self._templates.get((w.frame.block, w.identity), []):
            if unit == asking.path or unit in self.working or not unit:
                continue
            self.unit(unit)
            return self.writers[unit], present
        return None

    def longer_run(self, child: Child, asking: UnitWriter) -> tuple[UnitWriter, list[Child]] | None:
        """Another instance of the block where the repeat that made ``child`` (its only copy
        here) made two copies or more: its writer and those copies."""
        w = child.written
        for unit, present in self._templates.get((w.frame.block if w.frame else None, w.identity), []):
            if unit == asking.path or unit in self.working or not unit:
                continue
            run = next(([c for c in kids if c.written is not None and c.written.identity == w.identity
                         and c.written.frame is present.written.frame]
                        for kids in self.structure.children.values() if present in kids), [])
            if len(run) >= 2:
                self.unit(unit)
                return self.writers[unit], run
        return None

    def template_has_module(self, child: Child, asking: UnitWriter) -> bool:
        found = self.template(child, asking)
        if found is None:
            return False
        _, present = found
        return present.scope is not None or self.has_module(present.node.path)

    # ---- registries -----------------------------------------------------------------------------
    def register_block(self, block: str | None, key: str) -> bool:
        """Record that ``block``'s class is reached by name (``BLOCKS[unit]``); False when it may not be."""
        if block is None or block in self.unregistered:
            return False
        self.blocks_used.setdefault(block, set()).add(key)
        return True

    def ambiguous_blocks(self) -> set[str]:
        keys: dict[str, set[str]] = {}
        for unit in self.units.values():
            if unit.block is not None:
                keys.setdefault(unit.block, set()).add(unit.key)
        return {b for b in self.blocks_used if len(keys.get(b, ())) > 1}

    def register_op(self, op: str, module: str) -> None:
        self.op_modules[op] = module

    def layer_class(self, w: UnitWriter, node) -> str:
        """A small module class computing function node ``node`` (a function op inside a seq), and
        its constructor call: ``Permute(dims=[0, 2, 3, 1])``, its constants the op's params."""
        fx_nodes = self.structure.fx_nodes[node.path]
        first = self.fx_of(node.inputs[0]) if node.inputs else None
        names = {first: "x"} if first is not None else {}
        params: dict[str, Any] = {}  # the op's params its code reads, by name
        written = node.written

        def constant(a: Any) -> Any:
            if written is None or isinstance(a, fx.Node) or a is None or isinstance(a, str):
                return a
            key = next((k for k, e in written.params.items() if _plain(e.value) == _plain(a)), None)
            if key is None or not key.isidentifier():
                return a
            params[key] = a
            return Code(f"self.{key}")

        lines = []
        for i, n in enumerate(fx_nodes):
            names[n] = "y" if n is fx_nodes[-1] else f"y{i}"
            call = _Written(n, tuple(constant(a) for a in n.args), {k: constant(v) for k, v in n.kwargs.items()})
            lines.append(f"{names[n]} = {call_text(call, lambda a: names[a], self.source.callee, lambda a: 'self')}")
        lines.append(f"return {names[fx_nodes[-1]]}")
        forward = "def forward(self, x):\n" + "\n".join(f"    {line}" for line in lines)
        init = ["super().__init__()"] + [f"self.{k} = {k}" for k in params]
        text = class_text("\u27e6name\u27e7", f"The spec's op `{node.op.name}`, as a layer.", init, [forward],
                          signature=", ".join(params))
        if text not in self.layer_classes:
            unit = UnitText(node.path, f"op:{node.op.name}", "nn.Module", [], text)
            self.layer_classes[text] = unit.key
            self.units[f"~layer:{unit.key}"] = unit
        from .layers import value_text

        args = ", ".join(f"{k}={value_text(w, node, k, v, None)}" for k, v in params.items())
        return f"{self.layer_classes[text]}({args})"

    # ---- the file -------------------------------------------------------------------------------
    def run(self) -> str:
        self.unit("")
        for path, scope in self.graph.scopes.items():  # every instance written, so classes are complete
            if scope.kind == "block":
                self.unit(path)
        for block in self._recursive_blocks():
            self._unify(block)
        top = self.units[""]
        names = self._class_names(top)
        order = self._order(top)
        classes = []
        for key in order:
            unit = next(u for u in self.units.values() if u.key == key)
            classes.append(self._resolve(unit.text.replace("\u27e6name\u27e7", names[key]), names))
        extra = []
        if self.op_modules:
            extra.append("# The spec's ops chosen by a param, as the torch modules that compute them.\n"
                         "OP_MODULES = {" + ", ".join(f"{k!r}: {v}" for k, v in sorted(self.op_modules.items())) + "}")
        if self.blocks_used:
            blocks = {b: names[next(iter(self._keys_of(b)))] for b in sorted(self.blocks_used)}
            extra.append("# The spec's blocks chosen by a param, by their names.\n"
                         "BLOCKS = {" + ", ".join(f"{k!r}: {v}" for k, v in blocks.items()) + "}")
        body = "\n\n\n".join(classes[:-1] + extra + classes[-1:])
        if "make_divisible(" in body:
            self.source.helpers.setdefault("make_divisible", MAKE_DIVISIBLE)
        if "math." in body:
            self.source.need("import math")
        return self.source.file_text(body)

    def _recursive_blocks(self) -> list[str]:
        """Blocks with an instance inside another instance of themselves (U-Net's levels)."""
        found = []
        for scope in self.graph.scopes.values():
            parent = scope.parent
            while scope.kind == "block" and parent is not None:
                outer = self.graph.scopes[parent]
                if outer.kind == "block" and outer.name == scope.name and scope.name not in found:
                    found.append(scope.name)
                parent = outer.parent
        return found

    def _unify(self, block: str) -> None:
        """Write the instances of a block that contains itself as one class, each making its inner
        instance as that same class (``self.inner = Level(...) if depth > 0 else None``): written
        again now that every instance is (an instance's switched-off parts are written as its
        outer instances have them), kept when every instance comes out as the same text."""
        paths = [p for p, u in self.units.items() if u.block == block and not p.startswith("~")]
        if len({self.units[p].key for p in paths}) <= 1:
            return
        self.self_reference = block
        try:
            made = {}
            for path in paths:
                writer = UnitWriter(self, path)
                made[path] = (writer, write_unit(writer))
        finally:
            self.self_reference = None
        old = {self.units[p].key for p in paths}
        for path, (writer, unit) in made.items():  # a part written from another instance names its class
            text = unit.text
            for key in old:
                text = text.replace(key, f"\u27e6{block}#self\u27e7")
            made[path] = (writer, UnitText(unit.path, unit.block, unit.base, unit.params, text, unit.out_dims))
        if len({unit.text for _, unit in made.values()}) != 1:
            return
        renamed = {self.units[p].key: made[p][1].key for p in paths}
        for path, (writer, unit) in made.items():
            self.units[path], self.writers[path] = unit, writer
        self._rekey(renamed)

    def _rekey(self, renamed: dict[str, str]) -> None:
        """Replace class keys in every text; a text that changes gets a new key, replaced in turn."""
        while renamed:
            changed = {}
            for path, unit in list(self.units.items()):
                text = unit.text
                for old, new in renamed.items():
                    text = text.replace(old, new)
                if text != unit.text:
                    made = UnitText(unit.path, unit.block, unit.base, unit.params, text, unit.out_dims)
                    changed[unit.key] = made.key
                    self.units[path] = made
            renamed = {old: new for old, new in changed.items() if old != new}

    def _keys_of(self, block: str) -> set[str]:
        return {u.key for u in self.units.values() if u.block == block}

    def _class_names(self, top: UnitText) -> dict[str, str]:
        names: dict[str, str] = {}
        taken = set(self.source.helpers) | {"OrderedDict", "BLOCKS", "OP_MODULES", self.name}
        for unit in self.units.values():
            if unit.key in names or unit is top:
                continue
            block = unit.block.removeprefix("op:") if unit.block else "Module"
            base = camel_case(block, default="Block", digit_prefix="Block")
            names[unit.key] = unique(base + "Block" if base == self.name else base, taken)
            taken.add(names[unit.key])
        names[top.key] = self.name
        return names

    def _order(self, top: UnitText) -> list[str]:
        """Keys of the classes in the order they are written: each after the classes it makes."""
        order: list[str] = []
        visiting: set[str] = set()
        by_key = {u.key: u for u in self.units.values()}

        def visit(key: str) -> None:
            if key in order or key in visiting:
                return
            visiting.add(key)
            for other in by_key:
                if other != key and other in by_key[key].text:
                    visit(other)
            visiting.discard(key)
            order.append(key)

        for key in by_key:
            if key != top.key:
                visit(key)
        order = [k for k in order if k != top.key] + [top.key]
        return order

    def _resolve(self, text: str, names: dict[str, str]) -> str:
        for key, name in names.items():
            text = text.replace(key, name)
            block = key[1:].split("#", 1)[0]
            text = text.replace(f"\u27e6{block}#self\u27e7", name)
        return text


def _plain(v: Any) -> Any:
    return [_plain(x) for x in v] if isinstance(v, (list, tuple)) else v


__all__ = ["python_source", "mismatch", "PythonExportError"]
