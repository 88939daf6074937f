"""``specgraph export``: the model (eval mode) as ONNX, TorchScript, a .pt2 program or Python source."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .app import (LimitOpt, Optimize, SetOpt, SpecArg, TextOpt, app, check_spec, dims, err, known_dims, guarded, one_of,
                  out, print_warnings)
from .paths import writable_file, write_failed


@app.command()
def export(spec: str = SpecArg,
           onnx: Optional[Path] = typer.Option(None, "--onnx", help="write ONNX here (run in onnxruntime & co.)"),
           torchscript: Optional[Path] = typer.Option(None, "--torchscript", help="write TorchScript here (torch.jit.load)"),
           exported: Optional[Path] = typer.Option(None, "--exported", help="write a torch.export program here (.pt2)"),
           python: Optional[Path] = typer.Option(None, "--python", help="write the model as readable PyTorch source "
                                                 "here: one nn.Module class per block (docs/export.md)"),
           optimize: Optional[Optimize] = typer.Option(None, "--optimize", help="inference: run the graph passes first",
                                                       parser=one_of(Optimize, "--optimize",
                                                                     "expected inference, found {found!r}")),
           dim: Optional[List[str]] = typer.Option(None, "--dim", metavar="NAME=INT",
                                                   help="size of a symbolic dim in the example inputs, at least 2 "
                                                   "(torch.export fixes dims traced at 0 or 1) [default: N=2, others 32]"),
           set_: Optional[List[str]] = SetOpt, limit: Optional[List[str]] = LimitOpt, text: bool = TextOpt):
    """Export the spec's model (eval mode) to ONNX, TorchScript, a .pt2 program and/or Python source."""
    targets = {"--onnx": onnx, "--torchscript": torchscript, "--exported": exported, "--python": python}
    if not any(targets.values()):
        raise typer.BadParameter("give at least one of --onnx, --torchscript, --exported, --python")
    sizes = dims(dim, minimum=2)  # torch.export fixes dims traced at 0 or 1
    for option, path in targets.items():
        if path is not None:
            guarded(lambda: writable_file(path, option))
    graph = guarded(lambda: check_spec(spec, set_, limit, text=text))
    print_warnings(graph)
    known_dims(sizes, graph)

    def go():
        from ..torch.export.formats import ExportError, export as run_export

        try:
            return run_export(graph, onnx=onnx, torchscript=torchscript, exported=exported, python=python,
                              optimize=optimize, dims=sizes, source=None if text or spec == "-" else str(spec))
        except ExportError as e:  # a model the format cannot hold: the spec's limit, not a bug
            err.print(f"error: {e}", markup=False)
            raise typer.Exit(1)
        except OSError as e:  # the checks passed, the write failed all the same (a full disk)
            option = next((o for o, p in targets.items() if p is not None and str(p) == e.filename), "export")
            raise write_failed(e, e.filename or "", option) from None

    for fmt, path in guarded(go).items():
        out.print(f"wrote {path} ({fmt})", markup=False)
