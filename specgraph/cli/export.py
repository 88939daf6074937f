"""``specgraph export``: the model (eval mode) as ONNX, TorchScript, a .pt2 program or Python source."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .app import (LimitOpt, Optimize, SetOpt, SpecArg, app, check_spec, dims, err, known_dims, guarded, one_of, out,
                     print_warnings)


@app.command()
def export(spec: Path = SpecArg,
           onnx: Optional[Path] = typer.Option(None, "--onnx", help="write ONNX here (run in onnxruntime & co.)"),
           torchscript: Optional[Path] = typer.Option(None, "--torchscript", help="write TorchScript here (torch.jit.load)"),
           exported: Optional[Path] = typer.Option(None, "--exported", help="write a torch.export program here (.pt2)"),
           python: Optional[Path] = typer.Option(None, "--python", help="write a standalone nn.Module source file here"),
           optimize: Optional[Optimize] = typer.Option(None, "--optimize", help="inference: run the graph passes first",
                                                       parser=one_of(Optimize, "--optimize",
                                                                     "expected inference, found {found!r}")),
           dim: Optional[List[str]] = typer.Option(None, "--dim", help="size of a symbolic dim in the example inputs: "
                                                   "NAME=INT, at least 2 (torch.export fixes dims traced at 0 or 1)"),
           set_: Optional[List[str]] = SetOpt, limit: Optional[List[str]] = LimitOpt):
    """Export the spec's model (eval mode) to ONNX, TorchScript, a .pt2 program and/or Python source."""
    if not any((onnx, torchscript, exported, python)):
        raise typer.BadParameter("give at least one of --onnx, --torchscript, --exported, --python")
    sizes = dims(dim, minimum=2)  # torch.export fixes dims traced at 0 or 1
    graph = guarded(lambda: check_spec(spec, set_, limit))
    print_warnings(graph)
    known_dims(sizes, graph)

    def go():
        from ..torch.export.formats import ExportError, export as run_export

        try:
            return run_export(graph, onnx=onnx, torchscript=torchscript, exported=exported, python=python,
                              optimize=optimize, dims=sizes, source=str(spec))
        except ExportError as e:  # a model the format cannot hold: the spec's limit, not a bug
            err.print(f"error: {e}", markup=False)
            raise typer.Exit(1)

    for fmt, path in guarded(go).items():
        out.print(f"wrote {path} ({fmt})", markup=False)
