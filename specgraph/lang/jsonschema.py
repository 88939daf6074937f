"""The JSON Schema of the spec language, for editors (yaml-language-server) and CI.

`specgraph schema` prints it; docs/specgraph.schema.json is its output for the built-in ops
(a test keeps that file current). It is draft-07, the draft yaml-language-server supports
best. It knows the document's shape only -- keys, types, op names and each op's params --
so that an editor completes them and flags typos as you type; everything that needs
evaluation (expressions, references, shapes) stays with `specgraph check`. Wherever the
compiler evaluates a value (op and block params, element by element in lists, `when`,
`repeat`, dims), a string starting with `$` is accepted as well.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from ..ir.dims import SYMBOL_RE
from ..ir.traits import Trait
from .document import DTYPES, FORMAT_VERSION
from .names import NAME_RE
from .params import TYPE_NAMES

Op = Any  # an op instance (specgraph.ops.Op): its name, Params model, docstring and traits

DRAFT = "http://json-schema.org/draft-07/schema#"
EXPR = {"$ref": "#/definitions/expression"}
# pydantic writes a bound on a union (Probability, a Float with gt=0) under these names.
_PYDANTIC_BOUNDS = {"ge": "minimum", "le": "maximum", "gt": "exclusiveMinimum", "lt": "exclusiveMaximum"}
COMMON_NODE_KEYS = ("from", "when", "repeat", "name", "doc")
KIND_KEYS = {"op": (), "block": ("inline",), "seq": ("inline",), "scan": ("init", "context", "reverse")}  # each kind's own keys


def _doc(text: str, **schema: Any) -> dict[str, Any]:
    """`schema` with a description; yaml-language-server shows markdownDescription on hover."""
    return {**schema, "description": text, "markdownDescription": text}


# ---- op params: pydantic's schema, with `$` expressions accepted at every value ----------

def _or_expr(s: Any) -> Any:
    """`s`, or an expression: the schema of one value the compiler evaluates."""
    if not isinstance(s, dict) or not set(s) - {"title", "description", "default"}:
        return _inner(s)  # accepts anything already
    s = dict(s)
    meta = {k: s.pop(k) for k in ("description", "default") if k in s}
    inner = _inner(s)
    return {**meta, "anyOf": [*(inner["anyOf"] if set(inner) == {"anyOf"} else [inner]), EXPR]}


def _inner(s: Any) -> Any:
    """`s` in draft-07 terms, its sub-values (list items, object properties) each `_or_expr`."""
    if not isinstance(s, dict):
        return s
    s = {k: v for k, v in s.items() if k != "title"}
    for ours, standard in _PYDANTIC_BOUNDS.items():
        if isinstance(s.get(ours), (int, float)) and standard not in s:
            s[standard] = s.pop(ours)
    if "prefixItems" in s:  # a tuple: draft-07 writes its items as a list
        rest = s.pop("items", False)
        s["items"], s["additionalItems"] = s.pop("prefixItems"), rest
    if isinstance(s.get("items"), list):
        s["items"] = [_or_expr(i) for i in s["items"]]
    elif "items" in s:
        s["items"] = _or_expr(s["items"])
    for key in ("additionalProperties", "additionalItems"):
        if isinstance(s.get(key), dict):
            s[key] = _or_expr(s[key])
    if "properties" in s:
        s["properties"] = {k: _or_expr(v) for k, v in s["properties"].items()}
    for key in ("anyOf", "oneOf", "allOf"):
        if key in s:
            s[key] = [_inner(b) for b in s[key]]
    return s


def _op_doc(op: Op, params: Mapping[str, Any], required: list[str]) -> str:
    text = op.meaning()
    shown = [f"`{k}`" if k in required else f"`{k}: {json.dumps(v.get('default'))}`" for k, v in params.items()]
    return f"**{op.name}** ({op.category}): {text}" + (f"\n\nparams: {', '.join(shown)}" if shown else "")


def _op_rule(name: str, op: Op, definitions: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """`if op is NAME then the node's keys are NAME's params and the op-node keys`, and its doc."""
    rule: dict[str, Any] = {"if": {"required": ["op"], "properties": {"op": {"const": name}}}, "then": {}}
    try:
        ps = op.Params.model_json_schema(ref_template=f"#/definitions/{name}.{{model}}")
    except Exception:  # noqa: BLE001 - a user op whose params pydantic cannot describe: its name is still completed
        return rule, _op_doc(op, {}, [])
    for model, sub in ps.get("$defs", {}).items():
        definitions[f"{name}.{model}"] = _inner(sub)
    params, required = ps.get("properties", {}), ps.get("required", [])
    rule["then"] = {"title": f"{name} node", "additionalProperties": False,
                    "properties": {**{k: _or_expr(v) for k, v in params.items()}, **_refs(("op", *COMMON_NODE_KEYS))},
                    **({"required": list(required)} if required else {})}
    return rule, _op_doc(op, params, required)


# ---- the document ------------------------------------------------------------------------

def _node_keys(names: list[str], docs: list[str]) -> dict[str, Any]:
    string_map = {"type": "object", "additionalProperties": {"type": "string"}}
    return {
        "op": _doc("The op this node computes (`specgraph ops` lists them), or an expression naming one.",
                   anyOf=[{"type": "string", "enum": names, "markdownEnumDescriptions": docs}, EXPR]),
        "block": _doc("The block this node instantiates (local or included); its other keys are the block's params.",
                      type="string"),
        "seq": _doc("A chain of anonymous nodes, numbered 0, 1, 2 ...", type="array",
                    items={"$ref": "#/definitions/node"}),
        "scan": _doc("A cell block (one with `states:`) run over the time dim of a [N, T, F] sequence; "
                     "its other keys are the block's params.", type="string"),
        "from": _doc("The inputs: a node name, a list of names, or for blocks a mapping by input name. "
                     "`name.port` picks one output. An expression over the params may choose them "
                     "(`\"${'skip' if residual else 'x'}\"`). Default: the previous node.",
                     anyOf=[{"type": "string"}, {"type": "array", "items": {"type": "string"}}, string_map]),
        "when": _doc("When false, the node does not exist and passes its first input through. On a repeated "
                     "node, a `when` that reads `index` decides copy by copy.",
                     anyOf=[{"type": "boolean"}, EXPR]),
        "repeat": _doc("Instantiate the node this many times in a chain (`name.0`, `name.1`, ...); "
                       "`index` is visible to the copies.", anyOf=[{"type": "integer", "minimum": 0}, EXPR]),
        "name": _doc("With `repeat`: each copy's name, a template whose `{expr}` parts are evaluated with "
                     "`index` in sight (`denselayer{index + 1}`: denselayer1, denselayer2, ...). Default "
                     "0, 1, 2 ... With `inline`, the copies are named beside their siblings.", type="string"),
        "inline": _doc("For block and seq nodes: add no level to the node paths.", type="boolean"),
        "init": _doc("scan: the initial state of each of the cell's states, by name (default zeros); "
                     "0 starts that state at zeros.", type="object",
                     additionalProperties={"anyOf": [{"type": "string"}, {"const": 0}]}),
        "context": _doc("scan: the tensors bound to the cell's `context:` names, by name: read at every step, "
                        "whole (not sliced over time), never updated.", **string_map),
        "reverse": _doc("scan: run from the last time step to the first.", type="boolean"),
        "doc": _doc("A comment that survives into diagrams.", type="string"),
    }


def _node(rules: list[dict[str, Any]]) -> dict[str, Any]:
    # Each kind's own keys live in its oneOf branch, so an editor offers `inline` on block and
    # seq nodes, `init`, `context` and `reverse` on scans, and neither on ops.
    kinds = [{"title": f"{k} node", "type": "object", "required": [k], "properties": _refs((k, *extra))}
             for k, extra in KIND_KEYS.items()]
    seq_rule = {"if": {"required": ["seq"]},
                "then": {"properties": _refs(("seq", *KIND_KEYS["seq"], *COMMON_NODE_KEYS)), "additionalProperties": False}}
    return _doc("A node: exactly one of `op`, `block`, `seq`, `scan`, plus `from`, `when`, `repeat`, `doc`; "
                "an op node's other keys are the op's params, a block or scan node's the block's params.",
                type="object", properties=_refs(COMMON_NODE_KEYS), oneOf=kinds, allOf=[*rules, seq_rule])


def _refs(keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: {"$ref": f"#/definitions/node.{k}"} for k in keys}


def _nodes(text: str) -> dict[str, Any]:
    return _doc(text, type="object", propertyNames={"pattern": NAME_RE.pattern},
                additionalProperties={"$ref": "#/definitions/node"})


def _params(text: str) -> dict[str, Any]:
    explicit = {"type": "object", "required": ["type"], "propertyNames": {"enum": ["type", "default", "doc"]}}
    return _doc(text, type="object", additionalProperties={
        "if": explicit, "then": {"properties": {"type": {"enum": list(TYPE_NAMES)}}}})


def _names_out(text: str, mapping_value: Any) -> dict[str, Any]:
    return _doc(text, anyOf=[{"type": "string"}, {"type": "array", "items": {"type": "string"}},
                             {"type": "object", "additionalProperties": mapping_value}, {"type": "null"}])


PARAMS_DOC = ("Params, overridable (`--set`): `name: int` (required; types: int, float, bool, str, list, any), "
              "`name: 1` (default, type from it), or `name: {type: str, default: relu}`.")
LET_DOC = "Derived values, in order, not overridable: `hidden: \"${num_classes * 4}\"`."
REQUIRE_DOC = ("What the params must satisfy: `\"${len(depths) == 4}\": \"four stages\"` (a condition, the "
               "message shown when it is false: error E310).")


def _require(text: str) -> dict[str, Any]:
    return _doc(text, type="object", propertyNames={"pattern": r"^\$"}, additionalProperties={"type": "string"})


def _block() -> dict[str, Any]:
    return _doc("A reusable sub-graph: params, inputs, nodes and the outputs it exposes.", type="object",
                additionalProperties=False, required=["nodes"], properties={
                    "doc": _doc("What the block computes, with shapes.", type=["string", "null"]),
                    "params": _params("The block's params: " + PARAMS_DOC.split(": ", 1)[1]),
                    "uses": _doc("Names whose values come from the caller (its params, `uses` or `let`), unless an "
                                 "instance gives them: `uses: [bn_eps, act]`.", type="array", items={"type": "string"}),
                    "let": _doc(LET_DOC + " A block's `let` also sees its inputs (`${x.channels * 4}`).",
                                type="object"),
                    "require": _require(REQUIRE_DOC + " A block's see its inputs too."),
                    "states": _doc("A cell's recurrent states: name -> feature size (see `scan:`).", type="object",
                                   additionalProperties={"anyOf": [{"type": "integer", "minimum": 1}, EXPR]}),
                    "context": _doc("A cell's read-only inputs (see `scan:`), bound by the scan's `context:`; "
                                    "they follow the states in `inputs:`.", type="array", items={"type": "string"}),
                    "inputs": _doc("The block's input names, bound in order by `from` (default [x]).", type="array",
                                   items={"type": "string"}),
                    "outputs": _names_out("The node(s) the block exposes (default: the last node); several give ports.",
                                          {"type": "string"}),
                    "nodes": _nodes("The block's nodes, in order."),
                })


def _inputs() -> dict[str, Any]:
    dim = {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": SYMBOL_RE.pattern}, EXPR]}
    shape = {"type": "array", "minItems": 1, "items": dim}
    typed = {"type": "object", "required": ["shape"], "additionalProperties": False,
             "properties": {"shape": shape, "dtype": {"enum": list(DTYPES), "default": "float32"}}}
    return _doc("The model's inputs, in argument order: `image: [N, 3, 224, 224]` or "
                "`tokens: {shape: [N, T], dtype: int64}`. A dim is a positive int, a symbol or an expression.",
                type="object", additionalProperties={"anyOf": [shape, typed]})


def language_schema(ops: Mapping[str, Op], train: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON Schema (draft-07) of a spec document, for ``ops`` (name -> op) and the schema of
    the ``train:`` section (specgraph.train.config.train_schema); specgraph.api puts them together.
    Ops the compiler makes (``Trait.COMPILER_MADE``, the scan) cannot be written, so are left out."""
    definitions: dict[str, Any] = {}
    rules, names, docs = [], [], []
    for name in sorted(n for n, op in ops.items() if Trait.COMPILER_MADE not in op.traits):
        rule, doc = _op_rule(name, ops[name], definitions)
        rules.append(rule)
        names.append(name)
        docs.append(doc)
    output = {"type": "object", "required": ["from"], "additionalProperties": False, "properties": {
        "from": {"type": "string"}, "train_only": {"type": "boolean"}, "when": {"anyOf": [{"type": "boolean"}, EXPR]}}}
    definitions.update({
        "expression": _doc("An expression: `$name`, `${...}` (arithmetic, comparisons, `and or not`, "
                           "`a if c else b`, a few functions), or `$$text` for the literal `$text`.",
                           type="string", pattern=r"^\$"),
        "node": _node(rules),
        **{f"node.{k}": v for k, v in _node_keys(names, docs).items()},
    })
    return {
        "$schema": DRAFT,
        "title": "specgraph spec",
        **_doc("A neural network as a YAML graph spec (docs/language.md). Generated by `specgraph schema`."),
        "type": "object",
        "required": ["specgraph"],
        "additionalProperties": False,
        "properties": {
            "specgraph": _doc(f"The format version: `specgraph: {FORMAT_VERSION}`.", type="integer",
                              const=FORMAT_VERSION),
            "name": _doc("The model's name (default: the file name).", type=["string", "null"]),
            "doc": _doc("What the spec describes.", type=["string", "null"]),
            "include": _doc("Block libraries, relative to this file.", type="array", items={"type": "string"}),
            "params": _params(PARAMS_DOC),
            "let": _doc(LET_DOC, type="object"),
            "require": _require(REQUIRE_DOC),
            "inputs": _inputs(),
            "blocks": _doc("Reusable sub-graphs, by name.", type="object",
                           additionalProperties={"$ref": "#/definitions/block"}),
            "graph": _nodes("The network: named nodes, in order. A node without `from` takes the previous one."),
            "outputs": _names_out("What the model returns: a node, a list, or a mapping of names to nodes or "
                                  "`{from, train_only, when}` (default: the last node).",
                                  {"anyOf": [{"type": "string"}, output]}),
            "train": _doc("Training settings (`specgraph train`, docs/training.md); the command line overrides them.",
                          **{k: v for k, v in train.items() if k != "description"}),
        },
        "definitions": {**definitions, "block": _block()},
    }


def schema_text(ops: Mapping[str, Op], train: Mapping[str, Any]) -> str:
    """`language_schema` as the JSON text `specgraph schema` prints (stable: sorted ops, ASCII)."""
    return json.dumps(language_schema(ops, train), indent=2) + "\n"
