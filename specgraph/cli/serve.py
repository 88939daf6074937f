"""``specgraph serve``: the interactive viewer of a spec, redrawn in the browser on every save."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from .app import LimitOpt, SetOpt, SpecArg, app, err, guarded, limits, out, overrides


@app.command()
def serve(spec: Path = SpecArg,
          port: int = typer.Option(8000, "--port", "-p", min=0, max=65535, help="port to listen on (0: any free one)"),
          host: str = typer.Option("127.0.0.1", "--host",
                                   help="address to listen on; the default answers this machine only"),
          set_: Optional[List[str]] = SetOpt, limit: Optional[List[str]] = LimitOpt):
    """Serve the viewer of SPEC at http://127.0.0.1:8000/ and redraw it within a second of every
    save, keeping the zoom and the open blocks; errors are shown with their source lines.

    Nothing in the spec is run, and no file is served: only the spec and its includes (inside
    its folder tree) are read.  Ctrl-C stops.
    """
    from ..render.live import serve as run

    if not spec.is_file():
        raise typer.BadParameter(f"no spec file at {spec}", param_hint="SPEC")
    params, lim = overrides(set_), limits(limit)
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"warning: listening on {host}: anyone who can reach this machine can read the spec", markup=False)

    def ready(url: str, live) -> None:
        out.print(f"serving {spec} at {url}  (Ctrl-C stops)", markup=False)
        out.file.flush()
        if live.model.get("errors"):
            err.print(f"{sum(1 for e in live.model['errors'] if e['severity'] == 'error')} error(s) in {spec}: "
                      f"shown in the page", markup=False)

    def go() -> None:
        try:
            run(spec, host=host, port=port, params=params, limits=lim, ready=ready)
        except OSError as e:  # the port is taken, or the address is not this machine's
            err.print(f"error: cannot listen on {host}:{port}: {e.strerror or e}", markup=False)
            raise typer.Exit(1)
        except KeyboardInterrupt:
            out.print("stopped", markup=False)

    guarded(go)
