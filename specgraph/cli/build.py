"""``specgraph build``: build the torch module, print its code or save its state_dict."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .app import Backend, LimitOpt, Optimize, SetOpt, SpecArg, TextOpt, app, check_spec, guarded, one_of, out
from .paths import writable_file, write_failed


@app.command()
def build(spec: str = SpecArg,
          set_: Optional[List[str]] = SetOpt, limit: Optional[List[str]] = LimitOpt, text: bool = TextOpt,
          code: bool = typer.Option(False, "--code", help="print the generated forward() (the fx code, without "
                                                          "fx's `x = None` releases)"),
          save: Optional[Path] = typer.Option(None, "--save", help="save the initialised state_dict to this file "
                                                                   "(checked before building)"),
          optimize: Optional[Optimize] = typer.Option(None, "--optimize", help="inference: fold batch norm, drop dropout, "
                                                      "channels_last (eval only; see specgraph/torch/passes/)",
                                                      parser=one_of(Optimize, "--optimize",
                                                                    "expected inference, found {found!r}")),
          backend: Backend = typer.Option("torch", "--backend", help="with --optimize: torch (the graph passes) or "
                                          "onnxruntime (the model's ONNX export in an onnxruntime session; implies "
                                          "--optimize inference)",
                                          parser=one_of(Backend, "--backend",
                                                        "expected torch or onnxruntime, found {found!r}")),
          compile_: bool = typer.Option(False, "--compile", help="with --optimize inference: compile the optimised "
                                        "graph with torch.compile (inductor, weights frozen); the first call with "
                                        "each input shape compiles (tens of seconds)")):
    """Build the torch module; print its generated code or save its state_dict."""
    if compile_ and (optimize is None or backend != "torch"):
        raise typer.BadParameter("--compile compiles the torch passes' graph: it needs --optimize inference and the "
                                 "torch backend", param_hint="--compile")
    if backend == "onnxruntime" and (code or save):
        raise typer.BadParameter("--code and --save need the torch backend: the onnxruntime module runs an ONNX "
                                 "session (no fx code; its weights are inside it); write the ONNX file with "
                                 "`specgraph export --onnx`", param_hint="--backend")
    if save is not None:
        guarded(lambda: writable_file(save, "--save"))
    graph = guarded(lambda: check_spec(spec, set_, limit, text=text))

    def make():
        from ..torch.build import build_module

        if optimize or backend != "torch":
            from ..torch.passes.optimize import optimize as run_passes

            if backend != "torch":
                return run_passes(graph, optimize or "inference", backend=backend)
            return run_passes(build_module(graph), optimize, graph=graph, compile=compile_)
        return build_module(graph)

    model = guarded(make)
    if backend != "torch":
        out.print(f"{graph.name}: built {type(model).__name__} over an onnxruntime session "
                  f"({model.session.get_providers()[0]}, graph optimisations on)", markup=False)
        return
    if code:
        from ..torch.build import readable_code

        out.print(readable_code(model), markup=False, end="")
    if save:
        def write():
            import torch

            try:
                torch.save(model.state_dict(), save)
            except OSError as e:
                raise write_failed(e, save, "--save") from None

        guarded(write)
        out.print(f"saved state_dict to {save}", markup=False)
    if not code and not save:
        n = sum(p.numel() for p in model.parameters())
        compiled = " (torch.compile: the first call with each input shape compiles)" if compile_ else ""
        out.print(f"{graph.name}: built {type(model).__name__} with {n:,} parameters{compiled}", markup=False)
