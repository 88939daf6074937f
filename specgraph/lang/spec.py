"""The Spec: pydantic models of a spec document, and loading a spec with its includes.

A spec document (one YAML file) is validated by :class:`SpecDoc`.  Node bodies are kept as
raw mappings here and validated node by node during expansion (:class:`NodeDef`), because
their extra keys are op or block params whose meaning depends on the op or block named.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError

from ..diagnostics import Diagnostic, Diagnostics, SpecError, did_you_mean, sorted_unique
from .limits import DEFAULT_LIMITS, Limits
from .marked_yaml import Source, load_yaml_file, load_yaml_text

FORMAT_VERSION = 1

# Keys a node may carry besides its op or block params.
NODE_KEYS = ("op", "block", "seq", "scan", "from", "when", "repeat", "inline", "init", "reverse", "doc")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class BlockDef(_Strict):
    """A reusable sub-graph: named params, named inputs, nodes, and the outputs it exposes."""

    doc: Optional[StrictStr] = None
    params: dict[StrictStr, Any] = Field(default_factory=dict)
    let: dict[StrictStr, Any] = Field(default_factory=dict)  # derived values, in order
    states: dict[StrictStr, Any] = Field(default_factory=dict)  # a cell's recurrent states: name -> features
    inputs: list[StrictStr] = Field(default_factory=lambda: ["x"])
    outputs: Union[StrictStr, list[StrictStr], dict[StrictStr, StrictStr], None] = None
    nodes: dict[StrictStr, Any]


class SpecDoc(_Strict):
    """One spec file. A library file (only `blocks`) is a spec without `graph`."""

    specgraph: StrictInt
    name: Optional[StrictStr] = None
    doc: Optional[StrictStr] = None
    include: list[StrictStr] = Field(default_factory=list)
    params: dict[StrictStr, Any] = Field(default_factory=dict)
    let: dict[StrictStr, Any] = Field(default_factory=dict)  # derived values, in order
    inputs: dict[StrictStr, Any] = Field(default_factory=dict)
    blocks: dict[StrictStr, BlockDef] = Field(default_factory=dict)
    graph: dict[StrictStr, Any] = Field(default_factory=dict)
    outputs: Union[StrictStr, list[StrictStr], dict[StrictStr, Any], None] = None
    train: Optional[dict[StrictStr, Any]] = None  # training settings (specgraph train)


class NodeDef(BaseModel):
    """The structural keys of one node; everything else is an op or block param."""

    model_config = ConfigDict(extra="allow", strict=True, populate_by_name=True)

    op: Optional[StrictStr] = None
    block: Optional[StrictStr] = None
    seq: Optional[list[Any]] = None
    scan: Optional[StrictStr] = None  # a cell block run over the time dim (see scan.py)
    from_: Union[StrictStr, list[StrictStr], dict[StrictStr, StrictStr], None] = Field(None, alias="from")
    when: Any = None
    repeat: Any = None
    inline: StrictBool = False
    init: Optional[dict[StrictStr, StrictStr]] = None  # scan: initial states by name (default zeros)
    reverse: StrictBool = False  # scan: run from the last time step to the first
    doc: Optional[StrictStr] = None

    @property
    def extras(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class OutputDef(_Strict):
    from_: StrictStr = Field(alias="from")
    train_only: StrictBool = False
    when: Any = None


# ---- param declarations -------------------------------------------------------------------

TYPE_NAMES = {"int": int, "float": float, "bool": bool, "str": str, "list": list, "any": object}
_REQUIRED = object()


@dataclass(frozen=True)
class ParamDecl:
    """A declared param: its type name and default (``required`` when it has none)."""

    name: str
    type: str
    default: Any = None
    required: bool = False

    def accepts(self, value: Any) -> bool:
        if self.type == "any" or value is None and not self.required:
            return True
        if self.type == "float":
            return isinstance(value, (int, float)) and not isinstance(value, bool)
        if self.type == "int":
            return isinstance(value, int) and not isinstance(value, bool)
        return isinstance(value, TYPE_NAMES[self.type])


def _type_name_of(value: Any) -> str:
    for name, typ in TYPE_NAMES.items():
        if name != "any" and type(value) is typ:
            return name
    return "any"


def parse_param_decls(raw: dict[str, Any], source: Source, base: tuple, diags: Diagnostics) -> dict[str, ParamDecl]:
    """`{width: int, stride: 1, act: {type: str, default: relu}}` -> ParamDecls.

    A bare type name declares a required param; any other value is a default whose type it
    gives; a mapping with `type` and/or `default` says both explicitly.
    """
    decls: dict[str, ParamDecl] = {}
    for name, value in raw.items():
        where = source.location(base + (name,))
        if isinstance(value, str) and value in TYPE_NAMES:
            decls[name] = ParamDecl(name, value, required=True)
        elif isinstance(value, dict) and value and set(value) <= {"type", "default", "doc"}:
            typ = value.get("type")
            if typ is not None and typ not in TYPE_NAMES:
                diags.add(Diagnostic("E204", f"param '{name}' has unknown type {typ!r}", where,
                                     hint=f"types are {', '.join(TYPE_NAMES)}"))
                continue
            if "default" in value:
                default = value["default"]
                decl = ParamDecl(name, typ or _type_name_of(default), default)
                if not decl.accepts(default):
                    diags.add(Diagnostic("E203", f"param '{name}': default {default!r} is not {'an' if decl.type == 'int' else 'a'} {decl.type}",
                                         source.location(base + (name, "default"))))
                    continue
                decls[name] = decl
            else:
                decls[name] = ParamDecl(name, typ or "any", required=True)
        else:
            decls[name] = ParamDecl(name, _type_name_of(value), value)
    return decls


# ---- the loaded spec ----------------------------------------------------------------------


@dataclass
class Library:
    """The blocks visible to a spec: its own and those of its includes, with their sources."""

    blocks: dict[str, tuple[BlockDef, Source, tuple]] = field(default_factory=dict)


@dataclass
class Spec:
    """A loaded, schema-validated spec: the document, its source and the blocks it can use."""

    doc: SpecDoc
    source: Source
    library: Library
    overrides: dict[str, Any] = field(default_factory=dict)
    limits: Limits = DEFAULT_LIMITS

    @property
    def name(self) -> str:
        if self.doc.name:
            return self.doc.name
        return Path(self.source.name).stem if self.source.path else "spec"

    def with_params(self, **overrides: Any) -> "Spec":
        return Spec(self.doc, self.source, self.library, {**self.overrides, **overrides}, self.limits)


_LOOKS_LIKE = {"int": re.compile(r"[-+]?[0-9]+"), "float": re.compile(r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?"),
               "bool": re.compile(r"true|false|True|False")}


def coercion_hint(value: Any, expected: str) -> str | None:
    """For a quoted number or boolean where one is expected: no value is ever converted."""
    pattern = _LOOKS_LIKE.get(expected)
    if isinstance(value, str) and pattern is not None and pattern.fullmatch(value.strip()):
        return f"values are never converted: write {value.strip()} without quotes"
    return None


def pydantic_diagnostics(err: ValidationError, data: Any, source: Source, base: tuple,
                         what: str, allowed: tuple[str, ...] | list[str] = ()) -> list[Diagnostic]:
    """Turn pydantic's errors into located diagnostics (E201 unknown key, E202 missing, E203 type,
    E204 a number out of its range)."""
    out = []
    errors = _narrow_unions(err.errors(), data)
    unknown = [str(e["loc"][-1]) for e in errors if e["type"] == "extra_forbidden" and e["loc"]]
    for e in errors:
        loc = _data_path(data, e["loc"])
        full = base + loc
        kind = e["type"]
        field_name = str(e["loc"][-1]) if e["loc"] else ""
        if kind == "extra_forbidden":
            candidates = list(allowed) or _allowed_keys(loc)
            hint = did_you_mean(field_name, candidates) or (
                f"allowed keys: {', '.join(sorted(set(candidates)))}" if candidates else None)
            out.append(Diagnostic("E201", f"unknown key '{field_name}' in {_owner(loc, what)}", source.location(full, key=True),
                                  hint=hint))
        elif kind == "missing":
            if difflib.get_close_matches(field_name, unknown, n=1, cutoff=0.6):
                continue  # `kernal: 3` is reported as an unknown key with "did you mean 'kernel'?"
            out.append(Diagnostic("E202", f"{what} needs the key '{field_name}'", source.location(full[:-1] if loc == tuple(e['loc']) else full, key=True)))
        else:
            found = _lookup(data, loc)
            msg = e["msg"].replace("Input should be", "expected").replace(" after validation", "")
            expected = {"int_type": "int", "int_parsing": "int", "float_type": "float", "bool_type": "bool"}.get(kind, "")
            # Right type, out of range (dropout's p: 1.5): an invalid value, not a wrong type.
            code = "E204" if kind in _RANGE_ERRORS else "E203"
            out.append(Diagnostic(code, f"{what}: '{'.'.join(map(str, loc)) or field_name}' {msg}; found {found!r}"[:400],
                                  source.location(full), hint=coercion_hint(found, expected)))
    return out


_RANGE_ERRORS = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal", "multiple_of"})


def _owner(loc: tuple, what: str) -> str:
    """Who holds a key: "the spec" is the whole document, but a key under `blocks: {unit: ...}`
    belongs to block 'unit', and saying so is what lets the user find it."""
    labels = {"blocks": "block", "inputs": "input", "params": "param", "outputs": "output"}
    if what != "the spec" or len(loc) < 3 or loc[0] not in labels:
        return what
    return f"{labels[loc[0]]} '{loc[1]}'"


def _narrow_unions(errors: list, data: Any) -> list:
    """One error per value refused by a union (`kernel: 3` or `kernel: [3, 3]`) rather than one per member.

    A member that accepted the value's type and refused only its content (`[3, 3, 3]` is too
    long, `-1` is not > 0) says what is wrong; when no member did, their expectations merge:
    "expected a valid integer or a valid list".
    """
    groups: dict[tuple, list] = {}
    for e in errors:
        groups.setdefault(_union_site(data, e["loc"]), []).append(e)
    out = []
    for site, group in groups.items():
        if len(group) == 1 or not site[1]:
            out += group
            continue
        deeper = [e for e in group if not e["type"].endswith("_type") or len(e["loc"]) > len(site[0]) + 1]
        if deeper:
            out += deeper
            continue
        wanted = []
        for e in group:
            text = e["msg"].removeprefix("Input should be ").strip()
            if text not in wanted:
                wanted.append(text)
        out.append({**group[0], "msg": "Input should be " + " or ".join(wanted)})
    return out


def _union_site(data: Any, loc: tuple) -> tuple[tuple, bool]:
    """(pydantic loc up to a union member's tag, whether there is such a tag)."""
    cur = data
    for i, part in enumerate(loc):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            cur = cur[part]
        elif isinstance(part, str) and i < len(loc) - 1 or isinstance(part, str) and not isinstance(cur, dict):
            return tuple(loc[:i]), True
        else:
            break
    return tuple(loc), False


def _allowed_keys(loc: tuple) -> list[str]:
    """The keys allowed where a document-level model refused one (pydantic does not say)."""
    if len(loc) == 1:
        return list(SpecDoc.model_fields)
    if len(loc) == 3 and loc[0] == "blocks":
        return list(BlockDef.model_fields)
    if len(loc) == 3 and loc[0] == "outputs":
        return ["from", "train_only", "when"]
    return []


def _data_path(data: Any, loc: tuple) -> tuple:
    """Keep only the components of a pydantic loc that index into the data (drops union tags)."""
    path: list = []
    cur = data
    for part in loc:
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
            path.append(part)
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            cur = cur[part]
            path.append(part)
        elif isinstance(cur, dict) and isinstance(part, str) and part not in cur and not part.startswith(("function", "list[", "dict[", "union")) and "[" not in part:
            path.append(part)  # a missing or extra key: keep it as the last component
            break
    return tuple(path)


def _lookup(data: Any, path: tuple) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def load_document(data: Any, source: Source, diags: Diagnostics) -> SpecDoc | None:
    """Validate one file's data as a SpecDoc, collecting diagnostics."""
    if not isinstance(data, dict):
        diags.add(Diagnostic("E106", f"a spec is a YAML mapping; found {type(data).__name__}", source.location(())))
        return None
    if "specgraph" in data and data["specgraph"] != FORMAT_VERSION:
        diags.add(Diagnostic("E205", f"unsupported format version {data['specgraph']!r}",
                             source.location(("specgraph",)), hint=f"this specgraph reads `specgraph: {FORMAT_VERSION}`"))
        return None
    try:
        return SpecDoc.model_validate(data)
    except ValidationError as e:
        extra = pydantic_diagnostics(e, data, source, (), "the spec")
        if "specgraph" not in data:
            extra = [d for d in extra if not (d.code == "E202" and "specgraph" in d.message)]
            extra.append(Diagnostic("E202", "not a specgraph spec: the key `specgraph: 1` is missing",
                                    source.location(()), hint="start the file with `specgraph: 1`"))
        diags.extend(extra)
        return None


def load_spec(target: Union[str, os.PathLike], *, limits: Limits = DEFAULT_LIMITS,
              include_root: Union[str, os.PathLike, None] = None) -> Spec:
    """Load a spec from a path or from YAML text, with its includes. Raises SpecError."""
    diags = Diagnostics()
    if isinstance(target, os.PathLike) or (isinstance(target, str) and "\n" not in target
                                           and target.strip().endswith((".yaml", ".yml"))):
        data, source = load_yaml_file(target, limits)
    else:
        data, source = load_yaml_text(target, limits=limits)
    doc = load_document(data, source, diags)
    diags.raise_if_errors()
    assert doc is not None
    root = Path(include_root) if include_root else (source.path.parent if source.path else Path.cwd())
    library = Library()
    stack = [source.path.resolve()] if source.path else []
    _collect_blocks(doc, source, library, stack, root.resolve(), limits, diags, {})
    diags.raise_if_errors()
    return Spec(doc, source, library, {}, limits)


def _collect_blocks(doc: SpecDoc, source: Source, library: Library, stack: list[Path], root: Path,
                    limits: Limits, diags: Diagnostics, loaded: dict[Path, tuple[SpecDoc, Source]]) -> None:
    """Add the blocks of `doc`'s includes (depth first), then its own (which shadow them)."""
    base_dir = source.path.parent if source.path else Path.cwd()
    for i, rel in enumerate(doc.include):
        where = source.location(("include", i))
        path = (base_dir / rel).resolve()
        if path in stack:
            cycle = " -> ".join(p.name for p in stack[stack.index(path):] + [path])
            diags.add(Diagnostic("E307", f"include cycle: {cycle}", where, hint="remove one of these includes"))
            continue
        if not path.is_relative_to(root):
            diags.add(Diagnostic("E306", f"include '{rel}' lies outside the spec's folder tree ({root})", where,
                                 hint="move the library under the spec's folder, or pass --include-root"))
            continue
        if len(stack) >= limits.max_include_depth:
            diags.add(Diagnostic("E104", f"includes nested deeper than {limits.max_include_depth}", where,
                                 hint="raise it with --limit max_include_depth=N"))
            continue
        if path not in loaded:
            try:
                data, inc_source = load_yaml_file(path, limits, display_name=_display(path))
            except SpecError as e:
                diags.add(Diagnostic("E306", f"cannot include '{rel}'", where,
                                     details=tuple(d.format().splitlines()[0] for d in e.diagnostics)))
                continue
            inc_diags = Diagnostics()
            inc_doc = load_document(data, inc_source, inc_diags)
            if inc_doc is None:
                diags.add(Diagnostic("E306", f"'{rel}' is not a valid spec file", where,
                                     details=tuple(d.format().splitlines()[0] for d in sorted_unique(inc_diags.items))))
                continue
            loaded[path] = (inc_doc, inc_source)
        inc_doc, inc_source = loaded[path]
        _collect_blocks(inc_doc, inc_source, library, stack + [path], root, limits, diags, loaded)
    for name, block in doc.blocks.items():
        library.blocks[name] = (block, source, ("blocks", name))


def _display(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)
