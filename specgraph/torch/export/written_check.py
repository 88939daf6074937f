"""The check of a file the Python export wrote, before it is handed out: its last class, built
on the meta device, must have the model's state_dict (keys, order, shapes, dtypes); where it has
not, python.py writes the flat class instead, saying why."""

from __future__ import annotations

from torch import nn


def mismatch(text: str, model: nn.Module) -> str | None:
    """What is wrong with a file's last class, built on the meta device (no memory), compared with
    ``model``: its state_dict's keys, order, shapes and dtypes; None when nothing is."""
    import torch

    namespace: dict = {"__name__": "specgraph_export_check"}
    try:
        exec(compile(text, "<specgraph export --python>", "exec"), namespace)  # noqa: S102 - the code just written
        classes = [v for v in namespace.values() if isinstance(v, type) and issubclass(v, nn.Module)
                   and v.__module__ == "specgraph_export_check"]
        with torch.device("meta"):
            made = classes[-1]()
    except Exception as e:  # noqa: BLE001 - any failure is a wrong file
        return f"{type(e).__name__}: {e}"
    want = [(k, tuple(v.shape), v.dtype) for k, v in model.state_dict().items()]
    have = [(k, tuple(v.shape), v.dtype) for k, v in made.state_dict().items()]
    if want != have:
        first = next((f"{a} != {b}" for a, b in zip(have, want) if a != b), f"{len(have)} != {len(want)} entries")
        return f"the state_dict differs: {first}"
    return None


__all__ = ["mismatch"]
