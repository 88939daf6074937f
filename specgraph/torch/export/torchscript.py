"""TorchScript of the eval-mode model: scripted where it can be, traced where it cannot."""

from __future__ import annotations

import os
import warnings
from typing import Union

import torch
from torch import nn

from ...ir.graph import Graph
from ..input_check import input_check_off
from .inputs import eval_module, example_inputs

PathLike = Union[str, "os.PathLike[str]"]


def to_torchscript(model: nn.Module, graph: Graph, path: PathLike, inputs: tuple[torch.Tensor, ...] | None = None,
                   *, method: str = "auto") -> str:
    """Write the eval-mode model as TorchScript (``torch.jit.load`` reads it); returns "script" or "trace".

    ``method``: "script", "trace", or "auto" (script, else trace).
    """
    if method not in ("auto", "script", "trace"):
        raise ValueError(f"method must be auto, script or trace, found {method!r}")
    module = eval_module(model)
    with warnings.catch_warnings(), input_check_off(module):  # TorchScript cannot hold the Python check
        warnings.simplefilter("ignore")  # TorchScript's own deprecation and tracer notices
        scripted = None
        if method in ("auto", "script"):
            try:
                scripted, used = torch.jit.script(module), "script"
            except Exception:  # noqa: BLE001 - scripting refuses some Python; tracing records what runs
                if method == "script":
                    raise
        if scripted is None:
            inputs = inputs if inputs is not None else example_inputs(graph, model)
            scripted, used = torch.jit.trace(module, inputs, check_trace=False), "trace"
        torch.jit.save(scripted, str(path))
    return used


__all__ = ["to_torchscript"]
