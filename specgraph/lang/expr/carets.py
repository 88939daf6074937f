"""From an offset inside a value's text to the place in the file, for the caret under an error."""

from __future__ import annotations

from typing import Sequence

from ...diagnostics import Location

def value_location(start: Location, lines: Sequence[str], value: object, offset: int | None) -> Location:
    """Where character ``offset`` of the scalar ``value`` is in the spec text, given ``start``, the
    location of the scalar's first character (its quote or block indicator, if any), and the
    text's ``lines``.  ``start`` itself wherever the text does not spell ``value`` literally up
    to that character -- an escape sequence, a value inside a list, a YAML style we do not
    follow -- so that the caret is never misplaced, only less precise."""
    if offset is None or not isinstance(value, str) or not 0 <= offset < len(value):
        return start
    try:
        found = _spell(lines, start.line - 1, start.col - 1, value, offset)
    except IndexError:  # the text ended first
        found = None
    if found is None:
        return start
    line, col = found
    return Location(start.file, line + 1, col + 1, lines[line])


def _spell(lines: Sequence[str], row: int, col: int, value: str, offset: int) -> tuple[int, int] | None:
    """0-based (row, col) of ``value[offset]``, reading the scalar that starts at (row, col)."""
    style = lines[row][col:col + 1]
    if style in ("|", ">"):  # a block scalar: followed only on its first content line
        row += 1
        while not lines[row].strip():
            row += 1
        text = lines[row].lstrip(" ")
        col = len(lines[row]) - len(text)
        return (row, col + offset) if text[:offset + 1] == value[:offset + 1] else None
    quote = style if style in ("'", '"') else ""
    col += len(quote)
    k = 0
    while True:
        line = lines[row]
        if not line[col:].strip(" \t"):  # a line break, folded with the spaces around it
            breaks = 0
            while True:
                row, breaks = row + 1, breaks + 1
                stripped = lines[row].lstrip(" \t")
                if stripped:
                    break
            folded = " " if breaks == 1 else "\n" * (breaks - 1)
            if value[k:k + len(folded)] != folded or k + len(folded) > offset:
                return None
            k, col = k + len(folded), len(lines[row]) - len(stripped)
            continue
        char = line[col]
        if quote == '"' and char == "\\" or quote == "'" and char == "'" and line[col + 1:col + 2] != "'":
            return None  # an escape sequence, or the end of the scalar
        if char != value[k]:
            return None
        if k == offset:
            return row, col
        k, col = k + 1, col + (2 if quote == "'" and char == "'" else 1)
