"""Python names for spec names: the generated forward's values and the generated classes.

Shared by the builder (fx value names, the GraphModule's class) and the Python export (the
classes it writes), so that both spell a spec name the same way.
"""

from __future__ import annotations

import keyword
import re


# Names the generated code itself uses, which a value of the same name would shadow: the
# module (``self``), the globals torch.fx's code reads, and those of the Python export's file.
GENERATED_CODE_NAMES = frozenset({"self", "torch", "operator", "math", "builtins", "inf", "nan", "device",
                                  "NoneType", "fx_pytree", "pytree", "nn", "F", "_container"})


def identifier(name: str) -> str:
    """A Python name for a spec name (``layer1.0`` -> ``layer1_0``; an input called ``from`` is
    ``from_``, one called ``self`` or ``torch`` is ``self_`` / ``torch_``)."""
    ident = re.sub(r"\W", "_", name)
    ident = ident if ident and not ident[0].isdigit() else "_" + ident
    return ident + "_" if keyword.iskeyword(ident) or ident in GENERATED_CODE_NAMES else ident


def value_name(path: str, port: str | None = None) -> str:
    """The fx value name of a node's output: ``layer1_0_relu``, ``lstm_h`` for port ``h``."""
    return identifier((path if port is None else f"{path}_{port}").replace(".", "_"))


def class_name(name: str, *, default: str = "Spec", digit_prefix: str = "Spec") -> str:
    """CamelCase of ``name`` (``resnet18`` -> ``Resnet18``), ``default`` when nothing is left."""
    parts = re.split(r"[^A-Za-z0-9]+", name)
    ident = "".join(p[:1].upper() + p[1:] for p in parts if p) or default
    return ident if not ident[0].isdigit() else digit_prefix + ident


__all__ = ["GENERATED_CODE_NAMES", "identifier", "value_name", "class_name"]
