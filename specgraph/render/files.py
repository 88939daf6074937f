"""Diagram files: writing SVG/PNG/PDF/DOT, finding Graphviz, and the render/ folder.

Only layout needs Graphviz's ``dot`` program; DOT text is made in Python.  Every SVG in
render/ carries the SHA-256 of the DOT text it was laid out from, so ``render-all --check``
can tell a stale diagram from a fresh one by regenerating DOT alone: no ``dot`` needed,
and no false alarm when another Graphviz version lays the same DOT out differently.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import graphviz

FORMATS = ("svg", "png", "pdf", "dot")

DOT_MISSING = (
    "Graphviz's `dot` program is not installed (or not on PATH); it lays out {fmt} diagrams.\n"
    "  install it:  apt-get install graphviz   (Debian/Ubuntu)\n"
    "               brew install graphviz      (macOS)\n"
    "               conda install graphviz     (conda)\n"
    "  or write DOT text, which needs nothing: --format dot"
)

_STAMP = "<!-- specgraph dot-sha256: {} -->"
_STAMP_RE = re.compile(r"<!-- specgraph dot-sha256: ([0-9a-f]{64}) -->")


class GraphvizMissing(RuntimeError):
    """The `dot` program is needed and absent; the message says how to install it."""

    def __init__(self, fmt: str):
        super().__init__(DOT_MISSING.format(fmt=fmt))


def have_dot() -> bool:
    return shutil.which("dot") is not None


def dot_hash(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def layout(dot: graphviz.Digraph, fmt: str) -> bytes:
    """The diagram in ``fmt``; for svg, stamped with the hash of its DOT text."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, found {fmt!r}")
    source = dot.source
    if fmt == "dot":
        return source.encode("utf-8")
    if not have_dot():
        raise GraphvizMissing(fmt)
    try:
        data = dot.pipe(format=fmt)
    except graphviz.ExecutableNotFound as e:
        raise GraphvizMissing(fmt) from e
    if fmt == "svg":
        data = _stamp(data.decode("utf-8"), dot_hash(source)).encode("utf-8")
    return data


def _stamp(svg: str, digest: str) -> str:
    # After the XML declaration / doctype, before <svg>: where comments are allowed.
    at = svg.find("<svg")
    at = 0 if at < 0 else at
    return svg[:at] + _STAMP.format(digest) + "\n" + svg[at:]


def stamp_of(svg_text: str) -> str | None:
    m = _STAMP_RE.search(svg_text[:4096])
    return m.group(1) if m else None


# ---- the render/ folder ----------------------------------------------------------------------

@dataclass(frozen=True)
class Target:
    spec: Path
    svg: Path

    @property
    def html(self) -> Path:
        """The viewer page beside the diagram (written by `make render`, not versioned)."""
        return self.svg.with_suffix(".html")


def targets(spec_dir: Path, out_dir: Path) -> list[Target]:
    """Every spec under ``spec_dir`` (subfolders too, except lib/) and its SVG under ``out_dir``.

    Subfolders are mirrored, so two specs of the same name in different folders do not clash.
    Library files (no ``graph:``) are left out when they are recognised by their folder only:
    whether a file has a graph is decided when it is loaded (see :func:`is_library`).
    """
    found = []
    for path in sorted(spec_dir.rglob("*.yaml")) + sorted(spec_dir.rglob("*.yml")):
        rel = path.relative_to(spec_dir)
        if "lib" in rel.parts[:-1]:  # block libraries, included by the specs
            continue
        found.append(Target(path, out_dir / rel.with_suffix(".svg")))
    return sorted(found, key=lambda t: str(t.spec))


def is_library(spec) -> bool:
    return not spec.doc.graph


@dataclass
class Outcome:
    target: Target
    status: str  # written | unchanged | removed | stale | missing | skipped | failed
    detail: str = ""
    kind: str = "svg"  # or "html": the viewer page

    @property
    def path(self) -> Path:
        return self.target.html if self.kind == "html" else self.target.svg


def render_all(spec_dir: Path, out_dir: Path, *, check: bool = False, html: bool = True) -> list[Outcome]:
    """Render every spec's SVG into ``out_dir``, or with ``check`` only compare against it;
    with ``html`` (and not ``check``) also its viewer page beside it.

    A spec that fails checking is still drawn (red where it fails), with status detail
    saying so.  With ``check``, SVGs without a spec are reported as stale too.
    """
    from ..diagnostics import SpecError
    from ..lang.spec import load_spec
    from .dot import render_partial
    from .html import viewer_html

    outcomes: list[Outcome] = []
    wanted = set()
    for t in targets(spec_dir, out_dir):
        try:
            spec = load_spec(str(t.spec))
            if is_library(spec):
                outcomes.append(Outcome(t, "skipped", "a block library (no graph)"))
                continue
            dot, partial = render_partial(spec)
        except SpecError as e:
            outcomes.append(Outcome(t, "failed", f"{len(e.errors)} error(s) while loading"))
            continue
        wanted.add(t.svg.resolve())
        note = "" if partial.ok else f"{sum(1 for d in partial.diagnostics if d.severity == 'error')} error(s) drawn in red"
        digest = dot_hash(dot.source)
        current = stamp_of(t.svg.read_text(encoding="utf-8", errors="replace")) if t.svg.exists() else None
        if current == digest:
            outcomes.append(Outcome(t, "unchanged", note))
        elif check:
            outcomes.append(Outcome(t, "missing" if current is None and not t.svg.exists() else "stale", note))
        else:
            t.svg.parent.mkdir(parents=True, exist_ok=True)
            t.svg.write_bytes(layout(dot, "svg"))
            outcomes.append(Outcome(t, "written", note))
        if html and not check:
            page = viewer_html(partial, spec).encode("utf-8")
            same = t.html.exists() and t.html.read_bytes() == page
            if not same:
                t.html.write_bytes(page)
            outcomes.append(Outcome(t, "unchanged" if same else "written", kind="html"))
    if out_dir.exists():  # diagrams of specs that are gone (hand-made SVGs carry no stamp)
        for svg in sorted(out_dir.rglob("*.svg")):
            if svg.resolve() in wanted or not stamp_of(svg.read_text(encoding="utf-8", errors="replace")):
                continue
            if check:
                outcomes.append(Outcome(Target(Path("-"), svg), "stale", "no spec renders to it any more"))
            else:
                svg.unlink()
                outcomes.append(Outcome(Target(Path("-"), svg), "removed", "no spec renders to it any more"))
        for page in sorted(out_dir.rglob("*.html")) if not check else ():
            if page.with_suffix(".svg").resolve() in wanted or _GENERATOR not in page.read_text(errors="replace")[:2048]:
                continue
            page.unlink()
            outcomes.append(Outcome(Target(Path("-"), page.with_suffix(".svg")), "removed",
                                    "no spec renders to it any more", kind="html"))
    return outcomes


_GENERATOR = '<meta name="generator" content="specgraph">'


def stale(outcomes: list[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if o.status in ("stale", "missing")]
