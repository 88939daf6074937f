"""pydantic's validation errors as specgraph diagnostics: located in the spec's text, with the
owner of the failing key named, unions narrowed to the alternative the value was meant for, and
a hint where a quoted number or boolean was meant as one."""

from __future__ import annotations

import difflib
import re
from typing import Any, Callable, Collection

from pydantic import ValidationError

from ..diagnostics import Diagnostic, did_you_mean
from ..ir.dims import Sym
from .marked_yaml import Source

_LOOKS_LIKE = {"int": re.compile(r"[-+]?[0-9]+"), "float": re.compile(r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?"),
               "bool": re.compile(r"true|false|True|False")}


def coercion_hint(value: Any, expected: str) -> str | None:
    """For a quoted number or boolean where one is expected: no value is ever converted."""
    pattern = _LOOKS_LIKE.get(expected)
    if isinstance(value, str) and pattern is not None and pattern.fullmatch(value.strip()):
        return f"values are never converted: write {value.strip()} without quotes"
    return None


def pydantic_diagnostics(err: ValidationError, data: Any, source: Source, base: tuple,
                         what: str, allowed: tuple[str, ...] | list[str] = (),
                         keys_at: Callable[[tuple], list[str]] | None = None,
                         meaning: Callable[[str], tuple[str | None, str] | None] | None = None,
                         symbolic: Callable[[tuple, Sym, Any], Diagnostic] | None = None,
                         unknown: Collection[str] = ()) -> list[Diagnostic]:
    """Turn pydantic's errors into located diagnostics (E201 unknown key, E202 missing, E203 type,
    E204 a number out of its range).  ``allowed``: the keys of the model validated, for the
    hint of an unknown key; ``keys_at(loc)``: those of a nested model, where they differ;
    ``meaning(key)``: (the key meant, a hint) by meaning for an unknown key (another library's
    name for a param), preferred to a hint by spelling; ``symbolic(loc, dim, location)``: the
    diagnostic (E406) for a symbolic dim refused where a number is needed; ``unknown``: keys whose
    value could not be known (it reads a tensor that failed): no error is about them, nor about
    the values together."""
    meant = {k: meaning(k) for k in _unknown_keys(err)} if meaning else {}
    out = []
    errors = _narrow_unions(err.errors(), data)
    if unknown:
        errors = [e for e in errors if e["loc"] and str(e["loc"][0]) not in unknown]
    unknown = [str(e["loc"][-1]) for e in errors if e["type"] == "extra_forbidden" and e["loc"]]
    for e in errors:
        loc = _data_path(data, e["loc"])
        full = base + loc
        kind = e["type"]
        field_name = str(e["loc"][-1]) if e["loc"] else ""
        if kind == "extra_forbidden":
            candidates = list(allowed) or (keys_at(loc) if keys_at else [])
            hint = (meant.get(field_name) or (None, None))[1] or did_you_mean(field_name, candidates) or (
                f"allowed keys: {', '.join(sorted(set(candidates)))}" if candidates else None)
            out.append(Diagnostic("E201", f"unknown key '{field_name}' in {_owner(loc, what)}", source.location(full, key=True),
                                  hint=hint))
        elif kind == "missing":
            if difflib.get_close_matches(field_name, unknown, n=1, cutoff=0.6) or any(
                    m and m[0] == field_name for m in meant.values()):
                continue  # `kernal: 3` / `kernel_size: 3` is reported as an unknown key with "did you mean 'kernel'?"
            out.append(Diagnostic("E202", f"{what} needs the key '{field_name}'", source.location(full[:-1] if loc == tuple(e['loc']) else full, key=True)))
        elif kind == "value_error" and not loc:
            # A model's own check of its values together (min below max): say it plainly.
            text = str(e.get("ctx", {}).get("error") or e["msg"].removeprefix("Value error, "))
            out.append(Diagnostic("E204", f"{what}: {text}"[:400], source.location(full)))
        else:
            found = _lookup(data, loc)
            if isinstance(found, Sym) and symbolic is not None:
                out.append(symbolic(loc, found, source.location(full)))
                continue
            msg = e["msg"].replace("Input should be", "expected").replace(" after validation", "")
            expected = {"int_type": "int", "int_parsing": "int", "float_type": "float", "bool_type": "bool"}.get(kind, "")
            # Right type, out of range (dropout's p: 1.5): an invalid value, not a wrong type.
            code = "E204" if kind in _RANGE_ERRORS else "E203"
            out.append(Diagnostic(code, f"{what}: '{'.'.join(map(str, loc)) or field_name}' {msg}; found {found!r}"[:400],
                                  source.location(full), hint=coercion_hint(found, expected)))
    return out


def _unknown_keys(err: ValidationError) -> list[str]:
    return [str(e["loc"][-1]) for e in err.errors() if e["type"] == "extra_forbidden" and e["loc"]]


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


__all__ = ["pydantic_diagnostics", "coercion_hint"]
