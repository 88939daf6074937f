"""Stage "load": spec text -> plain Python data, remembering where every key and value came from.

Why not ``yaml.safe_load``: its composer recurses (a 100k-deep ``[[[[`` raises RecursionError),
it expands aliases without bound (billion laughs), silently keeps the last of duplicate keys,
builds timestamps/sets/binary, and forgets positions.  So we drive only PyYAML's *parser* (an
iterative state machine; libyaml's when available) and build the data ourselves on an explicit
stack, checking depth, alias count, expanded size, tags and keys as the events arrive.  Aliases
share the anchored object (as PyYAML does) and its expanded size is memoised with the anchor,
so a bomb is refused after a few hundred events without ever being materialised.
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
from yaml.events import (AliasEvent, DocumentStartEvent, MappingEndEvent, MappingStartEvent, ScalarEvent,
                         SequenceEndEvent, SequenceStartEvent, StreamEndEvent)

from ..diagnostics import Diagnostic, Location, SpecError
from .limits import DEFAULT_LIMITS, Limits
from .yaml_scalars import core_number, is_core_number, yaml11_ambiguity

__all__ = ["Source", "load_yaml_text", "load_yaml_file"]

_LOADER = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader  # tests swap in the pure one
_T = "tag:yaml.org,2002:"
_STR, _SEQ, _MAP, _MERGE_TAG, _VALUE_TAG = (_T + n for n in ("str", "seq", "map", "merge", "value"))
_SCALARS = {_T + "null": SafeConstructor.construct_yaml_null, _T + "bool": SafeConstructor.construct_yaml_bool,
            _T + "int": SafeConstructor.construct_yaml_int, _T + "float": SafeConstructor.construct_yaml_float}
_NON_PRINTABLE = re.compile("[^\x09\x0A\x0D\x20-\x7E\x85\xA0-\uD7FF\uE000-\uFFFD\U00010000-\U0010FFFF]")  # YAML's printable set
_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")  # YAML's line breaks, so our lines match its marks
_MERGE, _BAD_KEY = object(), object()  # keys that are no data key: '<<', and one already reported
_OPEN, _MISS = object(), object()  # an anchor whose node is still being built; a cache miss
_INDENT = "check this line's indentation against the lines above it"
_SYNTAX_HINTS = {"mapping values are not allowed": "a value containing ': ' must be quoted, or the indentation is off",
                 "cannot start any token": "YAML forbids tabs in indentation; a value starting with @ or ` must be quoted",
                 "expected <block end>": _INDENT, "did not find expected key": _INDENT}
_KINDS = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
          float: "a float", type(None): "null"}


def _kind(value: object) -> str:
    return _KINDS.get(type(value), type(value).__name__)


def _split_lines(text: str) -> list[str]:
    lines = _BREAK.split(text)
    return lines[:-1] if len(lines) > 1 and lines[-1] == "" else lines


def _mark(ev) -> tuple[int, int]:
    return ev.start_mark.line + 1, ev.start_mark.column + 1


def _limit_hint(name: str) -> str:
    return f"if this spec is genuine, raise the limit: --limit {name}=N (Limits.{name})"


@dataclass
class Source:
    """One loaded text and the 1-based (line, col) of every value and key, keyed by YAML path:
    a tuple of str mapping keys and int list indices, ``()`` being the whole document."""

    name: str  # display name for diagnostics: the path as the user gave it, or "<string>"
    path: pathlib.Path | None  # resolved file path; None for text
    text: str
    value_marks: dict[tuple, tuple[int, int]] = field(default_factory=dict)  # start of the value node
    key_marks: dict[tuple, tuple[int, int]] = field(default_factory=dict)  # the key of a mapping entry

    @cached_property
    def lines(self) -> list[str]:
        return _split_lines(self.text)

    def location(self, path: tuple = (), *, key: bool = False) -> Location:
        """Where ``path`` is; an unmarked path (e.g. a pydantic loc deeper than the data) falls
        back to its longest marked prefix.  ``key=True`` prefers the mapping key's position."""
        path = tuple(path)
        cache = self.__dict__.setdefault("_locations", {})  # a block's nodes are located once per instance
        found = cache.get((path, key))
        if found is None:
            found = cache[(path, key)] = self._locate(path, key)
        return found

    def _locate(self, path: tuple, key: bool) -> Location:
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
        text = lines[max(1, line) - 1]
        return Location(self.name, max(1, line), min(max(1, col), len(text) + 1), text)


class _Frame:
    """An open collection.  A sequence's ``items`` are its values; a mapping's are
    (key, key_mark, value, value_mark), its ``key`` the (key, mark) awaiting a value."""

    __slots__ = ("path", "mark", "anchor", "items", "size", "key", "seen")

    def __init__(self, path, mark, anchor, is_map):
        self.path, self.mark, self.anchor, self.items, self.size, self.key = path, mark, anchor, [], 1, None
        self.seen = {} if is_map else None  # mapping key -> mark of its first occurrence


class _Builder:
    """Turns the parser's events into data.  Errors that leave the rest readable are collected
    in ``diags``, so one run reports them all; the others (syntax, limits) end the load at once."""

    def __init__(self, source: Source, limits: Limits):
        self.source, self.limits, self.loader = source, limits, _LOADER(source.text)
        self.stack: list[_Frame] = []
        self.anchors: dict[str, object] = {}  # name -> (value, expanded size), or _OPEN
        self.origin: dict[int, tuple] = {}  # id(mapping) -> its path, to mark keys merged from it
        self.plain: dict[tuple[str, bool], object] = {}  # (plain scalar text, is a key) -> value: specs repeat a few words
        self.diags: list[Diagnostic] = []
        self.aliases = self.docs = 0
        self.root = self.root_mark = None

    def error(self, code, message, mark, hint=None, fatal=False) -> None:
        self.diags.append(Diagnostic(code, message, self.source.at(*mark), hint=hint))
        if fatal:
            raise SpecError(self.diags)

    def run(self) -> dict:
        handlers = {ScalarEvent: self.scalar, MappingStartEvent: self.start, SequenceStartEvent: self.start,
                    MappingEndEvent: self.end, SequenceEndEvent: self.end, AliasEvent: self.alias,
                    DocumentStartEvent: self.document}
        try:
            while (ev := self.loader.get_event()) is not None and type(ev) is not StreamEndEvent:
                if handler := handlers.get(type(ev)):
                    handler(ev)
        finally:
            self.loader.dispose()
        if self.diags:
            raise SpecError(self.diags)
        if self.root is None:
            self.error("E106", "the spec is empty; a spec is a YAML mapping", self.root_mark or (1, 1),
                       hint="start with e.g. 'specgraph: 1'", fatal=True)
        if not isinstance(self.root, dict):
            self.error("E106", f"a spec is a YAML mapping; found {_kind(self.root)}", self.root_mark, fatal=True)
        return self.root

    def document(self, ev) -> None:
        self.docs += 1
        if self.docs > 1:
            self.error("E106", "more than one YAML document; a spec is a single document", _mark(ev),
                       hint="remove the '---' line, or split the file", fatal=True)

    def begin(self, ev) -> tuple[tuple | None, bool, tuple[int, int]]:
        """(path, is_key, mark) of the node starting now; records its value mark."""
        path, is_key, mark = None, False, _mark(ev)
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

    def plain_value(self, tag: str, raw: str, mark, is_key: bool) -> object:
        """A plain scalar's value, as YAML 1.2 reads it where YAML 1.1 differs (yaml_scalars.py)."""
        if tag == _MERGE_TAG or is_key:  # a key is refused unless a string anyway (E107)
            return _MERGE if tag == _MERGE_TAG else self.convert(tag, raw, False, mark)
        if tag == _STR and is_core_number(raw):  # 1e-3, 08 (None: more digits than Python converts)
            number = core_number(raw)
            return number if number is not None else self.error("E104", f"number '{raw[:20]}...' is too long", mark)
        found = yaml11_ambiguity(tag[len(_T):], raw, lambda: _SCALARS[tag](self.loader, yaml.ScalarNode(tag, raw)))
        return self.error("E103", found[0], mark, hint=found[1]) if found else self.convert(tag, raw, False, mark)

    def bad_tag(self, tag: str, raw: str | None, mark) -> None:
        if tag == _T + "timestamp":
            self.error("E103", f"'{raw}' reads as a YAML timestamp, which a spec cannot hold", mark,
                       hint=f'quote it: "{raw}"')
        else:
            self.error("E103", f"tag '{'!!' + tag[len(_T):] if tag.startswith(_T) else tag}' is not allowed",
                       mark, hint="a spec holds plain YAML only: null, booleans, numbers, strings, lists, mappings")

    def convert(self, tag: str, raw: str, explicit: bool, mark) -> object:
        """A scalar's value; for a refused tag or a value it cannot hold, an error and None.
        Only the four plain constructors ever run: nothing is built from any other tag."""
        if tag in _SCALARS:
            try:
                return _SCALARS[tag](self.loader, yaml.ScalarNode(tag, raw))
            except Exception:  # `!!int abc`, or more digits than Python converts to an int
                return self.error(*(("E103", f"'{raw}' is not a valid {tag[len(_T):]}") if explicit else
                                    ("E104", f"number '{raw[:20]}...' has too many digits")), mark)
        if tag in (_STR, _MERGE_TAG, _VALUE_TAG):  # a stray '<<' or '=' outside a key is a str
            return raw
        return self.bad_tag(tag, raw, mark)

    def scalar(self, ev) -> None:
        _, is_key, mark = self.begin(ev)
        raw, tag = ev.value, ev.tag
        if tag is None and ev.implicit[0]:  # plain: resolved the way PyYAML's composer does
            value = self.plain.get((raw, is_key), _MISS)  # keys and values resolve apart (1e-3, yes)
            if value is _MISS:
                tag, errors = self.loader.resolve(yaml.ScalarNode, raw, (True, False)), len(self.diags)
                value = self.plain_value(tag, raw, mark, is_key)
                if len(self.diags) == errors:
                    self.plain[(raw, is_key)] = value
            if value is _MERGE and not is_key:
                value = raw
        else:  # quoted and '!'-tagged scalars are strings; others carry an explicit tag
            value = raw if tag is None or tag == "!" else self.convert(tag, raw, True, mark)
        if ev.anchor:  # an anchored '<<' key is, as an alias, just the string
            self.anchors[ev.anchor] = (raw if value is _MERGE else value, 1)
        self.add(value, 1, mark, raw)

    def start(self, ev) -> None:
        path, _, mark = self.begin(ev)
        if len(self.stack) >= self.limits.max_yaml_depth:
            self.error("E104", f"YAML nesting deeper than {self.limits.max_yaml_depth} levels", mark,
                       hint=_limit_hint("max_yaml_depth"), fatal=True)
        is_map = type(ev) is MappingStartEvent
        if ev.tag not in (None, "!", _MAP if is_map else _SEQ):
            self.bad_tag(ev.tag, None, mark)
        if ev.anchor:
            self.anchors[ev.anchor] = _OPEN
        self.stack.append(_Frame(path, mark, ev.anchor, is_map))

    def end(self, _ev) -> None:
        f = self.stack.pop()
        value = f.items if f.seen is None else self.mapping(f)
        if f.seen is not None and f.path is not None:
            self.origin[id(value)] = f.path
        if f.anchor:
            self.anchors[f.anchor] = (value, f.size)
        self.add(value, f.size, f.mark)

    def alias(self, ev) -> None:
        _, _, mark = self.begin(ev)
        self.aliases += 1
        if self.aliases > self.limits.max_yaml_aliases:
            self.error("E104", f"more than {self.limits.max_yaml_aliases} YAML aliases", mark,
                       hint=_limit_hint("max_yaml_aliases"), fatal=True)
        target = self.anchors.get(ev.anchor)
        if target is None:
            self.error("E101", f"alias '*{ev.anchor}' refers to no anchor '&{ev.anchor}' defined before it", mark)
        elif target is _OPEN:
            self.error("E101", f"alias '*{ev.anchor}' refers to a node that contains it", mark,
                       hint="recursive structures cannot be a spec")
        self.add(*(target if isinstance(target, tuple) else (None, 1)), mark)

    def add(self, value, size: int, mark, raw: str | None = None) -> None:
        """Attach a finished node, ``size`` values once aliases are expanded, to its parent."""
        f = self.stack[-1] if self.stack else None
        if size + (f.size if f else 0) > self.limits.max_yaml_nodes:
            self.error("E104", f"more than {self.limits.max_yaml_nodes} YAML values once aliases are expanded",
                       mark, hint=_limit_hint("max_yaml_nodes"), fatal=True)
        if f is None:
            self.root, self.root_mark = value, mark
        elif f.seen is None:
            f.items.append(value)
        elif f.key is None:
            self.key(f, value, mark, raw)
        else:
            f.items.append((*f.key, value, mark))
            f.key = None
        if f is not None:
            f.size += size

    def key(self, f: _Frame, key, mark, raw: str | None) -> None:
        name = "<<" if key is _MERGE else key
        if not isinstance(name, str):
            self.error("E107", f"a mapping key must be a string; found {_kind(key)}", mark,
                       hint=f'quote it: "{raw}"' if raw is not None else "use a plain string as the key")
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
        """Merged keys (``<<: *base``; an earlier source wins) come first, then the local keys,
        which override merged ones without being duplicates."""
        out: dict = {}
        marks = self.source
        for key, kmark, value, vmark in f.items:
            for src in (value if isinstance(value, list) else [value]) if key is _MERGE else ():
                if not isinstance(src, dict):
                    self.error("E101", f"'<<' merges mappings; found {_kind(src)}", vmark)
                    continue
                src_path = self.origin.get(id(src))
                for k, v in src.items():
                    if k not in out and k not in f.seen:
                        out[k] = v
                        if f.path is not None:  # point at the merged definition, else at the '<<'
                            there = None if src_path is None else src_path + (k,)
                            marks.key_marks[f.path + (k,)] = marks.key_marks.get(there, kmark)
                            marks.value_marks[f.path + (k,)] = marks.value_marks.get(there, vmark)
        out.update((key, value) for key, _, value, _ in f.items if isinstance(key, str))
        return out


def _at_index(source: Source, index: int) -> Location:
    lines = _split_lines(source.text[:index] + "x")  # "x" keeps a trailing break's empty line
    return source.at(len(lines), len(lines[-1]))


def _yaml_error(e: Exception, source: Source) -> Diagnostic:
    """The diagnostic for whatever PyYAML raised."""
    if isinstance(e, yaml.reader.ReaderError):  # normally pre-empted by the _NON_PRINTABLE check
        return Diagnostic("E105", f"unreadable YAML: {e.reason}", _at_index(source, max(0, e.position)))
    if not isinstance(e, yaml.MarkedYAMLError):
        return Diagnostic("E101", f"could not read the YAML ({type(e).__name__}: {e})", source.at(1, 1))
    mark, cm = e.problem_mark or e.context_mark, e.context_mark
    problem = (e.problem or "invalid YAML").strip()
    details = (f"{e.context} at line {cm.line + 1}, column {cm.column + 1}" if cm else e.context,) if e.context else ()
    hint = next((h for frag, h in _SYNTAX_HINTS.items() if frag in problem), None)
    line_text = source.lines[mark.line] if mark and mark.line < len(source.lines) else ""
    if "${" in line_text and ("flow" in problem or "expected ','" in problem or "flow" in str(e.context or "")):
        # `{a: ${x * 2}}`: in a flow mapping the braces of an expression end the mapping
        hint = 'quote expressions inside {...} or [...]: out: "${width * 4}"'
    code, message = "E101", f"invalid YAML: {problem}"
    if "nesting depth" in problem:  # libyaml's own cap, met while it scans ahead of our depth check
        code, message, hint = "E104", f"YAML nesting too deep: {problem}", _limit_hint("max_yaml_depth")
    where = source.at(mark.line + 1, mark.column + 1) if mark else source.at(1, 1)
    return Diagnostic(code, message, where, hint=hint, details=details)


def load_yaml_text(text: str | bytes, name: str = "<string>", path=None,
                   limits: Limits = DEFAULT_LIMITS) -> tuple[dict, Source]:
    """Parse one YAML spec safely: (data, Source).  Data holds only dict (str keys), list, str,
    int, float, bool and None.  Raises SpecError (E101-E107) for anything wrong, never another error."""
    file_path = pathlib.Path(path) if path is not None else None
    if len(text) > limits.max_file_bytes:  # a str's length in characters: a lower bound on its bytes
        raise SpecError(Diagnostic("E104", f"larger than {limits.max_file_bytes} bytes", Location(name, 1, 1),
                                   hint=_limit_hint("max_file_bytes")))
    if not isinstance(text, str):
        data = bytes(text).removeprefix(codecs.BOM_UTF8)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            shown = Source(name, file_path, data.decode("utf-8", "replace"))  # equal to strict up to e.start
            raise SpecError(Diagnostic("E105", f"not valid UTF-8 (byte 0x{data[e.start]:02X})",
                                       _at_index(shown, len(data[:e.start].decode("utf-8"))),
                                       hint="save the file as UTF-8")) from None
    source = Source(name, file_path, text.removeprefix("\ufeff"))  # a BOM would shift line 1's columns
    if bad := _NON_PRINTABLE.search(source.text):  # shown as U+FFFD: a raw NUL or ESC garbles terminals
        shown = Source(name, file_path, _NON_PRINTABLE.sub("\ufffd", source.text))
        raise SpecError(Diagnostic("E105", f"character U+{ord(bad.group()):04X} is not allowed in YAML",
                                   _at_index(shown, bad.start()),
                                   hint="remove it; inside a double-quoted string write it as an escape"))
    builder = None
    try:
        builder = _Builder(source, limits)
        return builder.run(), source
    except SpecError:
        raise
    except Exception as e:  # whatever PyYAML raises becomes a diagnostic: a traceback would be a bug
        raise SpecError((builder.diags if builder else []) + [_yaml_error(e, source)]) from e


def load_yaml_file(path: str | os.PathLike, limits: Limits = DEFAULT_LIMITS,
                   display_name: str | None = None) -> tuple[dict, Source]:
    """Read and parse one spec file; its size is checked before a byte is read."""
    name = display_name or os.fspath(path)

    def fail(code: str, message: str, hint: str | None = None) -> SpecError:
        return SpecError(Diagnostic(code, message, Location(name, 1, 1), hint=hint))
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):  # reading a FIFO without a writer, or a device, never returns
            raise fail("E108", "is a directory, not a spec file" if stat.S_ISDIR(st.st_mode) else
                       "is not a regular file (a FIFO, device or socket), so it is not read")
        if st.st_size > limits.max_file_bytes:
            raise fail("E104", f"file is {st.st_size} bytes, larger than {limits.max_file_bytes}",
                       hint=_limit_hint("max_file_bytes"))
        with open(path, "rb") as fh:  # at most one byte past the limit: the file may grow meanwhile
            data = fh.read(limits.max_file_bytes + 1)
        resolved = pathlib.Path(path).resolve()
    except (OSError, ValueError, RuntimeError) as e:  # ValueError: a NUL in the path
        why = {FileNotFoundError: "file not found", PermissionError: "permission denied"}.get(type(e))
        raise fail("E108", why or f"cannot read the file: {getattr(e, 'strerror', None) or e}") from None
    return load_yaml_text(data, name, resolved, limits)
