"""The pydantic models of a spec document (one YAML file): the document, a block, a node, an output.

A spec document is validated by :class:`SpecDoc`.  Node bodies are kept as raw mappings here
and validated node by node during expansion (:class:`NodeDef`), because their extra keys are
op or block params whose meaning depends on the op or block named.
"""

from __future__ import annotations

from typing import Any, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError

from ..diagnostics import Diagnostic, Diagnostics
from .identifiers import non_ascii_names
from .marked_yaml import Source
from .validation import pydantic_diagnostics

FORMAT_VERSION = 1

# Keys a node may carry besides its op or block params.
DTYPES = ("float32", "float16", "bfloat16", "float64", "int64", "int32", "bool")  # of an input
NODE_KEYS = ("op", "block", "seq", "scan", "from", "when", "repeat", "name", "inline", "init", "context", "reverse",
             "doc")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class BlockDef(_Strict):
    """A reusable sub-graph: named params, named inputs, nodes, and the outputs it exposes."""

    doc: Optional[StrictStr] = None
    params: dict[StrictStr, Any] = Field(default_factory=dict)
    uses: list[StrictStr] = Field(default_factory=list)  # the caller's values it reads, by name
    let: dict[StrictStr, Any] = Field(default_factory=dict)  # derived values (over params and inputs), in order
    require: dict[StrictStr, Any] = Field(default_factory=dict)  # "${condition}": message
    states: dict[StrictStr, Any] = Field(default_factory=dict)  # a cell's recurrent states: name -> features
    context: list[StrictStr] = Field(default_factory=list)  # a cell's read-only inputs, the same at every step
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
    require: dict[StrictStr, Any] = Field(default_factory=dict)  # "${condition}": message
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
    name: Optional[StrictStr] = None  # repeat: each copy's name, a template ("denselayer{index + 1}")
    inline: StrictBool = False
    # scan: initial states by name (default zeros); 0 starts that one state at zeros
    init: Optional[dict[StrictStr, Union[StrictStr, StrictInt]]] = None
    context: Optional[dict[StrictStr, StrictStr]] = None  # scan: the cell's context tensors by name
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
        doc = SpecDoc.model_validate(data)
    except ValidationError as e:
        extra = pydantic_diagnostics(e, data, source, (), "the spec", keys_at=_allowed_keys)
        if "specgraph" not in data:
            extra = [d for d in extra if not (d.code == "E202" and "specgraph" in d.message)]
            extra.append(Diagnostic("E202", "not a specgraph spec: the key `specgraph: 1` is missing",
                                    source.location(()), hint="start the file with `specgraph: 1`"))
        diags.extend(extra)
        return None
    diags.extend(non_ascii_names(doc, source))  # one text, one name (identifiers.py)
    return doc


def _allowed_keys(loc: tuple) -> list[str]:
    """The keys allowed where a document-level model refused one (pydantic does not say)."""
    if len(loc) == 1:
        return list(SpecDoc.model_fields)
    if len(loc) == 3 and loc[0] == "blocks":
        return list(BlockDef.model_fields)
    if len(loc) == 3 and loc[0] == "outputs":
        return ["from", "train_only", "when"]
    return []


__all__ = ["FORMAT_VERSION", "NODE_KEYS", "DTYPES", "BlockDef", "SpecDoc", "NodeDef", "OutputDef", "load_document"]
