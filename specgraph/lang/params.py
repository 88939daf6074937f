"""Binding params: top-level params with `--set` overrides, and block params at each instance.

Both follow the declarations parsed by :func:`parse_param_decls`: unknown
names get a "did you mean", missing required params and wrong types are errors, and a
default may be an expression over the params bound before it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable

from ..diagnostics import Diagnostic, Diagnostics, Location, did_you_mean
from ..ir.dims import Sym
from .expr import ExprError, evaluate, expression_text, is_expression
from .limits import Limits
from .marked_yaml import Source
from .validation import coercion_hint

TYPE_NAMES = {"int": int, "float": float, "bool": bool, "str": str, "list": list, "any": object}
_REQUIRED = object()


@dataclass(frozen=True)
class ParamDecl:
    """A declared param: its type name and default (``required`` when it has none)."""

    name: str
    type: str
    default: Any = None
    required: bool = False
    # where the declaration is written: a default's own errors (an expression that fails, a
    # value of the wrong type) point here, not at the spec or the caller
    location: Location | None = field(default=None, compare=False)
    # an expression default without a written type takes its type from its value, once known
    typed_by_default: bool = field(default=False, compare=False)

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
            if typ is not None and (not isinstance(typ, str) or typ not in TYPE_NAMES):  # `type: []` too
                diags.add(Diagnostic("E204", f"param '{name}' has unknown type {typ!r}", where,
                                     hint=f"types are {', '.join(TYPE_NAMES)}"))
                continue
            if "default" in value:
                default = value["default"]
                if is_expression(default):  # its type is checked once it is evaluated (bind_params)
                    _report_malformed(name, default, source.location(base + (name, "default")), diags)
                    decls[name] = ParamDecl(name, typ or "any", default, location=where, typed_by_default=typ is None)
                    continue
                decl = ParamDecl(name, typ or _type_name_of(default), default, location=where)
                if not decl.accepts(default):
                    diags.add(Diagnostic("E203", f"param '{name}': default {default!r} is not {'an' if decl.type == 'int' else 'a'} {decl.type}",
                                         source.location(base + (name, "default"))))
                    continue
                decls[name] = decl
            else:
                decls[name] = ParamDecl(name, typ or "any", required=True)
        elif is_expression(value):
            _report_malformed(name, value, where, diags)
            decls[name] = ParamDecl(name, "any", value, location=where, typed_by_default=True)
        else:
            decls[name] = ParamDecl(name, _type_name_of(value), value, location=where)
    return decls


def _report_malformed(name: str, default: str, where: Location | None, diags: Diagnostics) -> None:
    """A default that is not an expression at all (`${`, `${1 +}`) is an error where it is written,
    whether or not a caller ever uses it: its syntax depends on no value.  Errors that depend
    on values (an unknown name, a limit) are reported when the default is evaluated."""
    try:
        expression_text(default)
    except ExprError as e:
        if e.code == "E501":
            diags.add(Diagnostic(e.code, f"default of param '{name}': {e.message}", where, hint=e.hint))


def _evaluated_default(decl: ParamDecl, values: dict[str, Any], limits: Limits) -> tuple[ParamDecl, Any]:
    """The decl's default, evaluated over the params bound before it, and the decl typed by it."""
    value = evaluate(decl.default, values, limits)
    if decl.typed_by_default and not isinstance(value, Sym):
        decl = replace(decl, type=_type_name_of(value))
    return decl, value


def bind_params(decls: dict[str, ParamDecl], given: dict[str, Any], *, owner: str,
                where: Callable[[str | None], Location | None], limits: Limits,
                report: Callable[[Diagnostic], None], path: str | None = None,
                keys: Iterable[str] = (), given_as: str | None = None,
                symbolic_hint: Callable[[Sym], str] | None = None) -> dict[str, Any] | None:
    """Values for every declared param: given ones checked against their type, then defaults.

    ``where(name)`` locates the given value of ``name`` (or the owner itself for None).
    ``keys``: other keys valid beside the params (a node's `from`, `when`...), for "did you
    mean".  ``given_as`` says where given values come from when not from the spec text.
    ``symbolic_hint(dim)``: the fix when a symbolic dim is given where a number is declared (E406).
    Returns None when any error was reported.
    """
    ok = True
    misspelt: set[str] = set()  # required params whose name was given with a typo
    via = f" ({given_as})" if given_as else ""
    for name in given:
        if name not in decls:
            ok = False
            close = difflib.get_close_matches(str(name), list(decls), n=1, cutoff=0.6)
            misspelt.update(close)
            hint = did_you_mean(name, [*decls, *keys]) or (
                f"{owner} takes: {', '.join(decls)}" if decls else f"{owner} takes no params")
            report(Diagnostic("E308", f"{owner} has no param '{name}'{via}", where(name), path=path, hint=hint))
    values: dict[str, Any] = {}
    for name, decl in decls.items():
        if decl.typed_by_default and name in given:  # the caller's value must have the default's type
            try:
                decl, _ = _evaluated_default(decl, values, limits)
            except ExprError:
                pass  # reported below only when the default is used
        if name in given:
            value = given[name]
        elif decl.required:
            ok = False
            if name not in misspelt:  # "has no param 'otu'; did you mean 'out'" says it already
                report(Diagnostic("E309", f"{owner} needs the param '{name}' ({decl.type})", where(None), path=path,
                                  hint=f"add `{name}: <{decl.type}>`"))
            continue
        else:
            value = decl.default
            if is_expression(value):
                try:
                    decl, value = _evaluated_default(decl, values, limits)
                except ExprError as e:
                    ok = False
                    report(Diagnostic(e.code, f"default of param '{name}': {e.message}", decl.location or where(None),
                                      path=path, hint=e.hint))
                    continue
        if not decl.accepts(value) and isinstance(value, Sym) and decl.type in ("int", "float"):
            ok = False
            report(Diagnostic("E406", f"param '{name}' of {owner} needs a number ({decl.type}), found the symbolic dim "
                              f"{value}", where(name if name in given else None), path=path,
                              hint=symbolic_hint(value) if symbolic_hint else None))
            continue
        if not decl.accepts(value):
            ok = False
            report(Diagnostic("E203", f"param '{name}' of {owner} expects {decl.type}, found {'symbolic dim' if isinstance(value, Sym) else type(value).__name__} "
                              f"{value!r}"[:300] + (via if name in given else ""),
                              where(name) if name in given else decl.location or where(None), path=path,
                              hint=coercion_hint(value, decl.type)))
            continue
        values[name] = value
    return values if ok else None
