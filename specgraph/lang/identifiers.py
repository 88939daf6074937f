"""Names are ASCII: one text, one name.

Python's parser reads identifiers after NFKC normalisation, so inside ``${...}`` the fullwidth
``ｗidth`` *is* ``width``, while ``$ｗidth``, a ``from:`` or a param key compare the text as
written: one name would give two values.  And confusables (Cyrillic ``о`` for Latin ``o``)
look the same and are not.  Rather than normalise silently, a name that is not ASCII is refused
where it is declared (params, let, inputs, blocks and their params, states, inputs, outputs) and
where it is read (expressions), with a hint naming the character and its ASCII look-alike.
"""

from __future__ import annotations

import unicodedata
from typing import Iterable

from ..diagnostics import Diagnostic
from .marked_yaml import Source

RULE = "names are ASCII letters, digits and _"


def ascii_hint(name: str) -> str:
    """What is wrong with the non-ASCII ``name``: its first odd character, and the ASCII name
    NFKC reads (``ｗidth`` -> ``width``) where there is one."""
    odd = next(c for c in name if not c.isascii())
    what = f"'{odd}' is {unicodedata.name(odd, f'U+{ord(odd):04X}')}"
    folded = unicodedata.normalize("NFKC", name)
    if folded.isascii() and folded.isidentifier():
        return f"did you mean '{folded}'? ({what})"
    return f"{what}, which only looks like an ASCII letter" if odd.isalpha() else what


def declared_names(doc) -> Iterable[tuple[str, tuple]]:
    """(name, path to its key in the document) for every name a spec document declares."""
    for section in ("params", "let", "inputs", "blocks"):
        for name in getattr(doc, section):
            yield name, (section, name)
    for block_name, block in doc.blocks.items():
        base = ("blocks", block_name)
        for section in ("params", "let", "states"):
            for name in getattr(block, section):
                yield name, base + (section, name)
        for section in ("inputs", "context"):
            for i, name in enumerate(getattr(block, section)):
                yield name, base + (section, i)
        outputs = block.outputs
        if isinstance(outputs, dict):
            for name in outputs:
                yield name, base + ("outputs", name)
    if isinstance(doc.outputs, dict):
        for name in doc.outputs:
            yield name, ("outputs", name)


def non_ascii_names(doc, source: Source) -> list[Diagnostic]:
    """E204 for each declared name that is not ASCII."""
    return [Diagnostic("E204", f"name '{name}' is not ASCII: {RULE}", source.location(ypath, key=True),
                       hint=ascii_hint(name))
            for name, ypath in declared_names(doc) if isinstance(name, str) and not name.isascii()]


__all__ = ["RULE", "ascii_hint", "declared_names", "non_ascii_names"]
