"""How a diagram looks: category colours, the legend, and the text of labels.

Everything here is pure string formatting over the Graph's own data (op ``describe``,
``num_params``, inferred types): the renderer never recomputes a shape.  Labels are
Graphviz HTML-like labels, so every piece of spec text passes through :func:`esc`.
"""

from __future__ import annotations

import re
from html import escape
from typing import Any, Iterable

from ..ir.tensor_type import TensorType

# Pastel fills, one per op category, chosen to stay apart for the common colour-vision
# deficiencies (blue/orange/yellow carry the most frequent ops: conv, activation, norm).
CATEGORY_COLOURS: dict[str, str] = {
    "conv": "#b9d3ee",
    "linear": "#d5c8ec",
    "pool": "#c6e5c1",
    "norm": "#fbe7a1",
    "activation": "#fdd0a8",
    "dropout": "#e4e4e4",
    "merge": "#f3bfd8",
    "math": "#e9d6f5",
    "split": "#c9d6a3",
    "reshape": "#c4e6e6",
    "resample": "#e8dcc4",
    "recurrent": "#f6b8b0",
    "embedding": "#f2e6d9",
    "other": "#ffffff",
}
FALLBACK_COLOURS = ("#e3d3e8", "#cfe0d8", "#e0d0d0", "#d0d8e8")  # categories of user ops

ERROR_COLOUR = "#c62828"
ERROR_FILL = "#fde0dc"
EDGE_COLOUR = "#5f6b7a"
SKIP_COLOUR = "#2a6fb0"
MUTED = "#6b6b6b"
FONT = "Helvetica"

# Cluster fills darken slightly with nesting so that a block inside a block stays visible.
CLUSTER_FILLS = ("#f6f8fa", "#eef1f5", "#e6eaf0", "#dfe4eb")


def category_colour(category: str) -> str:
    if category in CATEGORY_COLOURS:
        return CATEGORY_COLOURS[category]
    # A stable colour for a category no built-in op uses (independent of hash seeds).
    return FALLBACK_COLOURS[sum(map(ord, category)) % len(FALLBACK_COLOURS)]


def esc(text: Any) -> str:
    """Text made safe inside an HTML-like label."""
    return escape(str(text), quote=True)


def count_text(n: int) -> str:
    """1234 -> '1.2K', 25557032 -> '25.6M': the scale of a parameter count at a glance."""
    if n < 1000:
        return str(n)
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            value = n / size
            return f"{value:.0f}{unit}" if value >= 100 else f"{value:.1f}{unit}".replace(".0" + unit, unit)
    return str(n)  # pragma: no cover


def params_text(n: int) -> str:
    return f"{count_text(n)} params"


_SIMPLE_DIM = re.compile(r"^([0-9]+|[A-Za-z_][A-Za-z0-9_]*|[A-Za-z_][A-Za-z0-9_]*/[0-9]+|[⌈⌊][^⌈⌊]*[⌉⌋])$")


def dim_label(d: Any) -> str:
    text = str(d)
    return text if _SIMPLE_DIM.match(text) else f"({text})"


def shape_text(t: TensorType) -> str:
    """[N, 64, H/2, W/2] -> 'N×64×H/2×W/2' (and the dtype when it is not float32)."""
    text = "×".join(dim_label(d) for d in t.shape) if t.shape else "scalar"
    return text if t.dtype == "float32" else f"{text} {t.dtype}"


def value_text(value: Any) -> str:
    """A param value as a reader writes it: lists in brackets, no quotes around strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(value_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {value_text(v)}" for k, v in value.items()) + "}"
    return str(value)


def short_value_text(value: Any, limit: int = 48) -> str:
    """:func:`value_text`, or for a list too long to read in a label its size: a table given as a
    param (EfficientNet's stage settings) is "[7 rows × 6]", any other long list "[40 items]"."""
    text = value_text(value)
    if len(text) <= limit or not isinstance(value, (list, tuple)):
        return text
    widths = {len(row) if isinstance(row, (list, tuple)) else None for row in value}
    if len(widths) == 1 and None not in widths:
        return f"[{len(value)} rows × {widths.pop()}]"
    return f"[{len(value)} items]"


_LONG_FLOAT = re.compile(r"(?<![\w.])\d+\.\d{7,}(?:e[-+]?\d+)?(?![\w.])")


def round_numbers(text: str) -> str:
    """Floats in an op's own label text as :func:`value_text` writes them: 'p=0.17500000000000002'
    (a rate computed by an expression) -> 'p=0.175'."""
    return _LONG_FLOAT.sub(lambda m: f"{float(m.group()):g}", text)


def wrap(parts: Iterable[str], width: int = 44, sep: str = " · ") -> list[str]:
    """Join ``parts`` with ``sep`` into lines of at most about ``width`` characters."""
    lines: list[str] = []
    current = ""
    for part in parts:
        candidate = f"{current}{sep}{part}" if current else part
        if current and len(candidate) > width:
            lines.append(current)
            current = part
        else:
            current = candidate
    if current:
        lines.append(current)
    return lines


def small(text: str, colour: str = MUTED, size: int = 8) -> str:
    return f'<FONT POINT-SIZE="{size}" COLOR="{colour}">{text}</FONT>'


def html(lines: list[str]) -> str:
    """An HTML-like label of already escaped lines."""
    return "<" + "<BR/>".join(lines) + ">"


def legend_label(categories: list[str], extras: list[tuple[str, str, str]]) -> str:
    """One row of swatches: each used category in its colour, then extra marks (text, style, colour)."""
    cells = [f'<TD BGCOLOR="{category_colour(c)}" BORDER="1" COLOR="#9a9a9a">{esc(c)}</TD>' for c in categories]
    for text, _style, colour in extras:
        cells.append(f'<TD BORDER="0"><FONT COLOR="{colour}">{esc(text)}</FONT></TD>')
    return ('<<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="3" CELLPADDING="3"><TR>'
            f'<TD BORDER="0"><B>legend</B></TD>{"".join(cells)}</TR></TABLE>>')
