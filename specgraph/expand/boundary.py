"""The spec's boundary: its declared inputs (shape, dtype, limits) and its outputs.

A collaborator of the :class:`~specgraph.expand.expander.Expander`: it uses its ``error``,
``evaluate`` and ``resolve``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from ..diagnostics import did_you_mean
from ..ir import dims
from ..ir.graph import OutputInfo
from ..ir.tensor_type import TensorType
from ..lang.document import DTYPES, OutputDef
from ..lang.validation import pydantic_diagnostics
from .reporting import Poisoned
from .scope import Ctx

if TYPE_CHECKING:  # pragma: no cover
    from .expander import Expander


class Boundary:
    def __init__(self, ex: "Expander"):
        self.ex = ex

    def input_type(self, name: str, raw: Any, params: dict[str, Any]) -> TensorType | None:
        src, ypath = self.ex.spec.source, ("inputs", name)
        dtype = "float32"
        shape = raw
        if isinstance(raw, dict):
            unknown = set(raw) - {"shape", "dtype"}
            if unknown or "shape" not in raw:
                key = sorted(unknown)[0] if unknown else None
                self.ex.error("E201" if unknown else "E202",
                           f"input '{name}': " + (f"unknown key '{key}'" if key else "needs `shape`"),
                           src, ypath + ((key,) if key else ()), key=True, hint="an input is [dims...] or {shape: [...], dtype: ...}")
                return None
            shape, dtype = raw["shape"], raw.get("dtype", "float32")
            ypath = ypath + ("shape",)
            if dtype not in DTYPES:
                self.ex.error("E204", f"input '{name}': unknown dtype {dtype!r}", src, ("inputs", name, "dtype"),
                           hint=did_you_mean(str(dtype), DTYPES) or f"dtypes: {', '.join(DTYPES)}")
                return None
        if not isinstance(shape, list) or not shape:
            self.ex.error("E203", f"input '{name}': a shape is a list of dims like [N, 3, 224, 224]", src, ypath)
            return None
        out = []
        for i, d in enumerate(shape):
            try:
                d = self.ex.evaluate(d, params, src, ypath + (i,), None)
                out.append(dims.parse_dim(d))
            except Poisoned:
                return None
            except ValueError as e:
                self.ex.error("E204", f"input '{name}': {e}", src, ypath + (i,))
                return None
            if isinstance(out[-1], int) and out[-1] > self.ex.limits.max_dim:  # ops check outputs, not inputs
                self.ex.error("E602", f"input '{name}': dim {out[-1]} exceeds the limit {self.ex.limits.max_dim}", src,
                           ypath + (i,), hint="raise it with --limit max_dim=N")
                return None
        numel = math.prod(d for d in out if isinstance(d, int))
        if numel > self.ex.limits.max_numel:
            self.ex.error("E602", f"input '{name}' has {numel} elements, over the limit {self.ex.limits.max_numel}", src,
                       ypath, hint="raise it with --limit max_numel=N")
            return None
        return TensorType(tuple(out), dtype)

    def outputs(self, ctx: Ctx) -> list[OutputInfo]:
        doc, src = self.ex.spec.doc, self.ex.spec.source
        raw = doc.outputs
        entries: list[tuple[str, Any, tuple]] = []
        if raw is None:
            if doc.graph:
                last = list(doc.graph)[-1]
                entries.append((last, last, ("graph", last)))
        elif isinstance(raw, str):
            entries.append((raw.replace(".", "_"), raw, ("outputs",)))
        elif isinstance(raw, list):
            entries += [(r.replace(".", "_"), r, ("outputs", i)) for i, r in enumerate(raw)]
        else:
            entries += [(k, v, ("outputs", k)) for k, v in raw.items()]
        result = []
        for name, entry, ypath in entries:
            try:
                train_only = False
                if isinstance(entry, dict):
                    try:
                        od = OutputDef.model_validate(entry)
                    except ValidationError as e:
                        self.ex.diags.extend(pydantic_diagnostics(e, entry, src, ypath, f"output '{name}'",
                                                               allowed=["from", "train_only", "when"]))
                        continue
                    if od.when is not None:
                        keep = self.ex.evaluate(od.when, ctx.env(), src, ypath + ("when",), None)
                        if not isinstance(keep, bool):
                            raise self.ex.error("E204", f"`when` must be true or false, found {keep!r}", src, ypath + ("when",))
                        if not keep:
                            continue
                    entry, train_only, ypath = od.from_, od.train_only, ypath + ("from",)
                if not isinstance(entry, str):
                    raise self.ex.error("E203", f"output '{name}' names a node, found {entry!r}", src, ypath)
                value = self.ex.refs.resolve(entry, ctx, ypath, None)
                result.append(OutputInfo(name, value, train_only))
            except Poisoned:
                continue
        if result and all(o.train_only for o in result):
            self.ex.error("E204", "every output is train_only: the model would return nothing in eval mode", src, ("outputs",))
        return result
