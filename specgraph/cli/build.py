"""``specgraph build``: build the torch module, print its code or save its state_dict."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .app import LimitOpt, Optimize, SetOpt, SpecArg, TextOpt, app, check_spec, guarded, one_of, out
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
                                                                    "expected inference, found {found!r}"))):
    """Build the torch module; print its generated code or save its state_dict."""
    if save is not None:
        guarded(lambda: writable_file(save, "--save"))
    graph = guarded(lambda: check_spec(spec, set_, limit, text=text))

    def make():
        from ..torch.build import build_module

        if optimize:
            from ..torch.passes.optimize import optimize as run_passes

            return run_passes(build_module(graph), optimize, graph=graph)
        return build_module(graph)

    model = guarded(make)
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
        out.print(f"{graph.name}: built {type(model).__name__} with {n:,} parameters", markup=False)
