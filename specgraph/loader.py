"""Stage "load": spec text -> plain Python data, remembering where every key and value came from.

Why not ``yaml.safe_load``: its composer recurses (a 100k-deep ``[[[[`` raises RecursionError),
it expands aliases without bound (billion laughs), silently keeps the last of duplicate keys,
builds timestamps/sets/binary, and forgets positions.  So we drive only PyYAML's *parser* (an
iterative state machine; libyaml's when available) and build the data ourselves on an explicit
stack, checking depth, alias count, expanded size, tags and keys as the events arrive.  Aliases
share the anchored object (as PyYAML does); its expanded size is memoised with the anchor, so
a bomb is refused after a few hundred events without ever being materialised.
"""

from __future__ import annotations

import codecs
import os
import pathlib
import re
import stat
from dataclasses import dataclass, field
from functools import cached_property

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import (AliasEvent, CollectionEndEvent, CollectionStartEvent, DocumentStartEvent,
                         MappingStartEvent, ScalarEvent)

from .errors import Diagnostic, Location, SpecError
from .limits import DEFAULT_LIMITS, Limits

__all__ = ["Source", "load_yaml_text", "load_yaml_file"]

_LOADER = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader  # tests swap in the pure one
_T = "tag:yaml.org,2002:"
_STR, _SEQ, _MAP, _MERGE_TAG, _VALUE_TAG = (_T + n for n in ("str", "seq", "map", "merge", "value"))
_SCALARS = {_T + "null": SafeConstructor.construct_yaml_null, _T + "bool": SafeConstructor.construct_yaml_bool,
            _T + "int": SafeConstructor.construct_yaml_int, _T + "float": SafeConstructor.construct_yaml_float}
# YAML's printable set (yaml.reader.Reader.NON_PRINTABLE): the reader rejects anything else.
_NON_PRINTABLE = re.compile("[^\x09\x0A\x0D\x20-\x7E\x85\xA0-\uD7FF\uE000-\uFFFD\U00010000-\U0010FFFF]")
_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")  # YAML's line breaks, so our lines match its marks
_MERGE, _BAD_KEY, _OPEN = object(), object(), object()  # key placeholders; an anchor still being built
_SYNTAX_HINTS = (
    ("mapping values are not allowed", "a value containing ': ' must be quoted, or the indentation is off"),
    ("cannot start any token", "YAML forbids tabs in indentation; a value starting with @ or ` must be quoted"),
    ("expected <block end>", "check this line's indentation against the lines above it"),
    ("did not find expected key", "check this line's indentation against the lines above it"),
)


def _kind(value: object) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
             float: "a float", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _split_lines(text: str) -> list[str]:
    lines = _BREAK.split(text)
    return lines[:-1] if len(lines) > 1 and lines[-1] == "" else lines


def _limit_hint(name: str) -> str:
    return f"if this spec is genuine, raise the limit: --limit {name}=N (Limits.{name})"


@dataclass
class Source:
    """One loaded text and the 1-based (line, col) of every value and key, keyed by YAML path.

    A path is a tuple of str mapping keys and int list indices; ``()`` is the whole document.
    """

    name: str  # display name for diagnostics: the path as the user gave it, or "<string>"
    path: pathlib.Path | None  # resolved file path; None for text
    text: str
    value_marks: dict[tuple, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[tuple, tuple[int, int]] = field(default_factory=dict)

    @cached_property
    def lines(self) -> list[str]:
        return _split_lines(self.text)

    def location(self, path: tuple = (), *, key: bool = False) -> Location:
        """Where ``path`` is; an unmarked path (e.g. a pydantic loc deeper than the data) falls
        back to its longest marked prefix.  ``key=True`` prefers the mapping key's position."""
        path = tuple(path)
        for n in range(len(path), -1, -1):
            mark = (key and self.key_marks.get(path[:n])) or self.value_marks.get(path[:n])
            if mark:
                return self.at(*mark)
        return self.at(1, 1)

    def at(self, line: int, col: int) -> Location:
        """A Location clamped into the text, so that a caret never points past the file's end."""
        lines = self.lines
        if line > len(lines):
            line, col = len(lines), len(lines[-1]) + 1
        line = max(1, line)
        text = lines[line - 1]
        return Location(self.name, line, min(max(1, col), len(text) + 1), text)


def _mark(m) -> tuple[int, int]:
    return (m.line + 1, m.column + 1)


class _Frame:
    """An open collection.  Sequences collect values in ``items``; mappings collect
    (key, key_mark, value, value_mark) entries there, with the pending key in ``key``."""

    __slots__ = ("path", "mark", "anchor", "items", "size", "key", "seen")

    def __init__(self, path, mark, anchor, is_map):
        self.path, self.mark, self.anchor, self.items, self.size = path, mark, anchor, [], 1
        self.key = None
        self.seen = {} if is_map else None  # key -> mark of its first occurrence (mappings only)


class _Builder:
    """Turns the parser's event stream into data; errors that leave the rest readable are
    collected in ``diags``, the others (syntax, limits) end the load at once."""

    def __init__(self, source: Source, limits: Limits):
        self.source, self.limits = source, limits
        self.loader = _LOADER(source.text)
        self.stack: list[_Frame] = []
        self.anchors: dict[str, object] = {}
        self.origin: dict[int, tuple] = {}  # id(mapping) -> path it was written at, for merged marks
        self.diags: list[Diagnostic] = []
        self.aliases = self.docs = 0
        self.root = self.root_mark = None

    def diag(self, code, message, mark, hint=None, details=()) -> Diagnostic:
        return Diagnostic(code, message, self.source.at(*mark), hint=hint, details=tuple(details))

    def error(self, *args, **kw) -> None:
        self.diags.append(self.diag(*args, **kw))

    def fatal(self, *args, **kw):
        raise SpecError(self.diags + [self.diag(*args, **kw)])

    def run(self) -> object:
        try:
            while self.loader.check_event():
                ev = self.loader.get_event()
                if isinstance(ev, ScalarEvent):
                    self.scalar(ev)
                elif isinstance(ev, CollectionStartEvent):
                    self.start(ev)
                elif isinstance(ev, CollectionEndEvent):
                    self.end()
                elif isinstance(ev, AliasEvent):
                    self.alias(ev)
                elif isinstance(ev, DocumentStartEvent):
                    self.docs += 1
                    if self.docs > 1:
                        self.fatal("E106", "more than one YAML document; a spec is a single document",
                                   _mark(ev.start_mark), hint="remove the '---' line, or split the file")
        finally:
            self.loader.dispose()
        if self.diags:
            raise SpecError(self.diags)
        if self.root is None:
            self.fatal("E106", "the spec is empty; a spec is a YAML mapping", self.root_mark or (1, 1),
                       hint="start with e.g. 'specgraph: 1'")
        if not isinstance(self.root, dict):
            self.fatal("E106", f"a spec is a YAML mapping; found {_kind(self.root)}", self.root_mark)
        return self.root

    def begin(self, ev) -> tuple[tuple | None, bool, tuple[int, int]]:
        """(path, is_key, mark) of the node starting now; records its value mark."""
        path, is_key, mark = None, False, _mark(ev.start_mark)
        if not self.stack:
            path = ()
        else:
            f = self.stack[-1]
            if f.seen is None:
                path = None if f.path is None else f.path + (len(f.items),)
            elif f.key is None:
                is_key = True
            elif f.path is not None and isinstance(f.key[0], str):
                path = f.path + (f.key[0],)
        if path is not None:
            self.source.value_marks[path] = mark
        return path, is_key, mark

    def resolve(self, ev, node_type, value) -> tuple[str, bool]:
        """(tag, explicit): the node's tag, resolved the way PyYAML's composer does."""
        if ev.tag is None or ev.tag == "!":
            return self.loader.resolve(node_type, value, ev.implicit), False
        return ev.tag, True

    def bad_tag(self, tag: str, raw: str | None, mark) -> None:
        if tag == _T + "timestamp":
            self.error("E103", f"'{raw}' reads as a YAML timestamp, which a spec cannot hold", mark,
                       hint=f'quote it: "{raw}"')
        else:
            shown = "!!" + tag[len(_T):] if tag.startswith(_T) else tag
            self.error("E103", f"tag '{shown}' is not allowed", mark,
                       hint="a spec holds plain YAML only: null, booleans, numbers, strings, lists, mappings")

    def scalar(self, ev) -> None:
        _, is_key, mark = self.begin(ev)
        tag, explicit = self.resolve(ev, yaml.ScalarNode, ev.value)
        value = ev.value  # str, and also for a stray '<<' or '=' outside a key
        if tag == _MERGE_TAG and is_key:
            value = _MERGE
        elif tag in _SCALARS:
            try:
                value = _SCALARS[tag](self.loader, yaml.ScalarNode(tag, ev.value))
            except Exception:  # `!!int abc`, or more digits than Python converts to an int
                value = None
                if explicit:
                    self.error("E103", f"'{ev.value}' is not a valid {tag[len(_T):]}", mark)
                else:
                    self.error("E104", f"number '{ev.value[:20]}...' is too long", mark)
        elif tag not in (_STR, _MERGE_TAG, _VALUE_TAG):
            self.bad_tag(tag, ev.value, mark)
            value = None
        if ev.anchor:
            self.anchors[ev.anchor] = (value, 1)
        self.add(value, 1, mark, ev.value)

    def start(self, ev) -> None:
        path, _, mark = self.begin(ev)
        if len(self.stack) >= self.limits.max_yaml_depth:
            self.fatal("E104", f"YAML nesting deeper than {self.limits.max_yaml_depth} levels", mark,
                       hint=_limit_hint("max_yaml_depth"))
        is_map = isinstance(ev, MappingStartEvent)
        tag, _ = self.resolve(ev, yaml.MappingNode if is_map else yaml.SequenceNode, None)
        if tag != (_MAP if is_map else _SEQ):
            self.bad_tag(tag, None, mark)
        if ev.anchor:
            self.anchors[ev.anchor] = _OPEN
        self.stack.append(_Frame(path, mark, ev.anchor, is_map))

    def end(self) -> None:
        f = self.stack.pop()
        value = f.items if f.seen is None else self.mapping(f)
        if isinstance(value, dict) and f.path is not None:
            self.origin[id(value)] = f.path
        if f.anchor:
            self.anchors[f.anchor] = (value, f.size)
        self.add(value, f.size, f.mark)

    def alias(self, ev) -> None:
        _, _, mark = self.begin(ev)
        self.aliases += 1
        if self.aliases > self.limits.max_yaml_aliases:
            self.fatal("E104", f"more than {self.limits.max_yaml_aliases} YAML aliases", mark,
                       hint=_limit_hint("max_yaml_aliases"))
        target = self.anchors.get(ev.anchor)
        value, size = target if isinstance(target, tuple) else (None, 1)
        if target is None:
            self.error("E101", f"alias '*{ev.anchor}' refers to no anchor '&{ev.anchor}' defined before it", mark)
        elif target is _OPEN:
            self.error("E101", f"alias '*{ev.anchor}' refers to a node that contains it", mark,
                       hint="recursive structures cannot be a spec")
        self.add(value, size, mark)

    def add(self, value, size: int, mark, raw: str | None = None) -> None:
        """Attach a finished node (``size`` values once aliases are expanded) to its parent."""
        f = self.stack[-1] if self.stack else None
        if size + (f.size if f else 0) > self.limits.max_yaml_nodes:
            self.fatal("E104", f"more than {self.limits.max_yaml_nodes} YAML values once aliases are expanded",
                       mark, hint=_limit_hint("max_yaml_nodes"))
        if f is None:
            self.root, self.root_mark = value, mark
            return
        f.size += size
        if f.seen is None:
            f.items.append(value)
        elif f.key is None:
            self.key(f, value, mark, raw)
        else:
            f.items.append((*f.key, value, mark))
            f.key = None

    def key(self, f: _Frame, key, mark, raw: str | None) -> None:
        name = "<<" if key is _MERGE else key
        if not isinstance(name, str):
            hint = f'quote it: "{raw}"' if raw is not None else "use a plain string as the key"
            self.error("E107", f"a mapping key must be a string; found {_kind(key)}", mark, hint=hint)
            key = _BAD_KEY
        elif name in f.seen:
            self.error("E102", f"duplicate key '{name}' (first defined on line {f.seen[name][0]})", mark,
                       hint="YAML would silently keep only the last one; remove or rename one")
            key = _BAD_KEY
        else:
            f.seen[name] = mark
            if f.path is not None and key is not _MERGE:
                self.source.key_marks[f.path + (key,)] = mark
        f.key = (key, mark)

    def mapping(self, f: _Frame) -> dict:
        """Build a mapping: merged keys (``<<: *base``; an earlier source wins) come first,
        then the local keys, which override merged ones without counting as duplicates."""
        out: dict = {}
        for key, kmark, value, vmark in f.items:
            if key is not _MERGE:
                continue
            for src in value if isinstance(value, list) else [value]:
                if not isinstance(src, dict):
                    self.error("E101", f"'<<' merges mappings; found {_kind(src)}", vmark)
                    continue
                src_path = self.origin.get(id(src))
                for k, v in src.items():
                    if k in out or k in f.seen:
                        continue
                    out[k] = v
                    if f.path is not None:  # point at the merged definition, else at the '<<'
                        here, there = f.path + (k,), (src_path + (k,) if src_path is not None else None)
                        self.source.key_marks[here] = self.source.key_marks.get(there, kmark)
                        self.source.value_marks[here] = self.source.value_marks.get(there, vmark)
        for key, _, value, _ in f.items:
            if isinstance(key, str):
                out[key] = value
        return out


def _text_error(code, message, source: Source, index: int, hint=None) -> SpecError:
    line_parts = _split_lines(source.text[:index] + "x")  # "x" keeps a trailing break's empty line
    return SpecError(Diagnostic(code, message, source.at(len(line_parts), len(line_parts[-1])), hint=hint))


def load_yaml_text(text: str | bytes, name: str = "<string>", path=None,
                   limits: Limits = DEFAULT_LIMITS) -> tuple[object, Source]:
    """Parse one YAML spec safely: (data, Source).  Data holds only dict (str keys), list, str,
    int, float, bool and None.  Raises SpecError (E101-E107) for anything wrong, never another error."""
    file_path = pathlib.Path(path) if path is not None else None
    if len(text) > limits.max_file_bytes:  # a str's length in characters: a lower bound on its bytes
        raise SpecError(Diagnostic("E104", f"larger than {limits.max_file_bytes} bytes", Location(name, 1, 1),
                                   hint=_limit_hint("max_file_bytes")))
    if isinstance(text, (bytes, bytearray, memoryview)):
        data = bytes(text).removeprefix(codecs.BOM_UTF8)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            source = Source(name, file_path, data.decode("utf-8", "replace"))  # same as strict up to e.start
            raise _text_error("E105", f"not valid UTF-8 (byte 0x{data[e.start]:02X})", source,
                              len(data[:e.start].decode("utf-8")), hint="save the file as UTF-8") from None
    text = text.removeprefix("\ufeff")  # a BOM would shift the first line's columns
    source = Source(name, file_path, text)
    bad = _NON_PRINTABLE.search(text)
    if bad:  # the shown line gets U+FFFD for such characters: a raw NUL or ESC would garble a terminal
        shown = Source(name, file_path, _NON_PRINTABLE.sub("\ufffd", text))
        raise _text_error("E105", f"character U+{ord(bad.group()):04X} is not allowed in YAML", shown,
                          bad.start(), hint="remove it; inside a double-quoted string write it as an escape")
    builder = None
    try:
        builder = _Builder(source, limits)
        return builder.run(), source
    except SpecError:
        raise
    except yaml.MarkedYAMLError as e:
        collected = builder.diags if builder else []
        m = e.problem_mark or e.context_mark
        problem = (e.problem or "invalid YAML").strip()
        details = [f"{e.context} at line {e.context_mark.line + 1}, column {e.context_mark.column + 1}"
                   if e.context_mark else e.context] if e.context else []
        hint = next((h for frag, h in _SYNTAX_HINTS if frag in problem), None)
        code, message = "E101", f"invalid YAML: {problem}"
        if "nesting depth" in problem:  # libyaml's own cap, met while it scans ahead of our depth check
            code, message, hint = "E104", f"YAML nesting too deep: {problem}", _limit_hint("max_yaml_depth")
        diag = Diagnostic(code, message, source.at(*_mark(m)) if m else source.at(1, 1),
                          hint=hint, details=tuple(details))
        raise SpecError(collected + [diag]) from e
    except yaml.reader.ReaderError as e:  # normally pre-empted by the _NON_PRINTABLE check
        raise _text_error("E105", f"unreadable YAML: {e.reason}", source, max(0, e.position)) from e
    except Exception as e:  # a traceback reaching the user is a bug: report whatever PyYAML raised
        diags = builder.diags if builder else []
        raise SpecError(diags + [Diagnostic("E101", f"could not read the YAML ({type(e).__name__}: {e})",
                                            source.at(1, 1))]) from e


def load_yaml_file(path: str | os.PathLike, limits: Limits = DEFAULT_LIMITS,
                   display_name: str | None = None) -> tuple[object, Source]:
    """Read and parse one spec file; the size is checked before a byte is read."""
    name = display_name or os.fspath(path)
    where = Location(name, 1, 1)

    def fail(code, message, hint=None):
        return SpecError(Diagnostic(code, message, where, hint=hint))

    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise fail("E108", "is a directory, not a spec file")
        if st.st_size > limits.max_file_bytes:
            raise fail("E104", f"file is {st.st_size} bytes, larger than {limits.max_file_bytes}",
                       hint=_limit_hint("max_file_bytes"))
        with open(path, "rb") as fh:  # read at most one byte past the limit: the file may be a pipe
            data = fh.read(limits.max_file_bytes + 1)
        resolved = pathlib.Path(path).resolve()
    except FileNotFoundError:
        raise fail("E108", "file not found") from None
    except PermissionError:
        raise fail("E108", "permission denied: cannot read the file") from None
    except (OSError, ValueError, RuntimeError) as e:
        raise fail("E108", f"cannot read the file: {getattr(e, 'strerror', None) or e}") from None
    return load_yaml_text(data, name, resolved, limits)
