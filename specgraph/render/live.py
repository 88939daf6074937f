"""Live preview: ``specgraph serve SPEC`` — the viewer of a spec, redrawn on every save.

A small HTTP server (the standard library's, bound to 127.0.0.1 unless told otherwise) with
three routes and nothing else: ``/`` (the viewer page), ``/model.json`` (the current model),
``/events`` (server-sent events: a message each time the model changes).  No file is ever
served, so no request can reach one; the spec is read with its includes, which the
loader confines to the spec's folder tree (an include outside it is an error shown like any
other).  Loading a spec runs nothing from it: the YAML is read by a safe loader, no plugin
is imported, nothing is trained.

The files are watched by polling their size and modification time every 0.2 s — a handful
of files, so it costs nothing, needs no dependency, and works on every file system
(network drives, containers and WSL mounts, where change notifications often never arrive).
A save is drawn within a second: reload, expansion, model, then the page fetches it and
redraws, keeping its zoom, its open blocks and its selection.  A spec that fails to check is
drawn up to its failure (the failing node in red, every error listed with its source
line); one that does not load at all keeps the last good diagram, marked stale, with the
errors beside it.
"""

from __future__ import annotations

import json
import os
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

from ..diagnostics import SpecError
from ..expand.partial import expand_partial
from ..lang.limits import DEFAULT_LIMITS, Limits
from ..lang.spec import Spec, load_spec
from .html import model_json, page
from .model import viewer_model, with_errors

POLL_SECONDS = 0.2
SETTLE_SECONDS = 0.05
KEEPALIVE_SECONDS = 15.0


class LiveSpec:
    """A spec file's current viewer model, remade whenever one of its files changes."""

    def __init__(self, path: Path, params: dict[str, Any] | None = None, limits: Limits = DEFAULT_LIMITS):
        self.path = Path(path).resolve()
        self.params, self.limits = dict(params or {}), limits
        self.version = 0
        self.model: dict[str, Any] = {}
        self.last_good: dict[str, Any] | None = None
        self.files: set[Path] = {self.path}
        self.changed = threading.Condition()
        self.reload()

    def reload(self) -> None:
        try:
            spec = load_spec(str(self.path), limits=self.limits).with_params(**self.params)
            files = self._files_of(spec)
            model = viewer_model(expand_partial(spec), spec)
        except SpecError as e:  # it does not load: keep the last good diagram, and say why
            files, model = self.files | {self.path}, with_errors(self.last_good, self.path.stem, e.diagnostics,
                                                                   self.path.parent)
        except RecursionError:
            files, model = self.files, with_errors(self.last_good, self.path.stem, [], self.path.parent)
            model["errors"] = [{"code": "E605", "severity": "error", "message": "the spec nests too deeply to process",
                                "path": None, "where": str(self.path), "col": None, "details": [], "hint": None,
                                "src": None}]
        else:
            if model["ok"] or self.last_good is None:  # what a later load failure falls back on
                self.last_good = model
        with self.changed:
            self.files, self.model = files, model
            self.version += 1
            self.changed.notify_all()

    def _files_of(self, spec: Spec) -> set[Path]:
        found = {self.path}
        for _block, source, _path in spec.library.blocks.values():
            if source.path is not None:
                found.add(Path(source.path).resolve())
        return found

    def stamp(self) -> tuple:
        """What changes when a watched file is saved (a rename-into-place included)."""
        marks = []
        for f in sorted(self.files):
            try:
                st = os.stat(f)
                marks.append((str(f), st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                marks.append((str(f), None))
        return tuple(marks)

    def watch(self, stop: threading.Event, interval: float = POLL_SECONDS) -> None:
        seen = self.stamp()
        while not stop.wait(interval):
            now = self.stamp()
            if now == seen:
                continue
            # A save may take more than one write (truncate, then write): wait until the
            # files hold still for a moment, so a half-written file is never drawn.
            while not stop.wait(SETTLE_SECONDS) and self.stamp() != now:
                now = self.stamp()
            # `now` was taken before the reload read the files: a save that lands while it
            # reads differs from it and is drawn at the next poll (stamping after the reload
            # would take that save as seen, and never draw it).
            self.reload()
            seen = now

    def current(self) -> tuple[int, dict[str, Any]]:
        """The version and the model, read together."""
        with self.changed:
            return self.version, self.model

    def wait_for(self, version: int, timeout: float) -> int:
        """The current version once it passes ``version`` (or after ``timeout`` seconds)."""
        with self.changed:
            self.changed.wait_for(lambda: self.version > version, timeout=timeout)
            return self.version


def make_server(live: LiveSpec, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    """The HTTP server of ``live`` (not started: call ``serve_forever``)."""
    stopping = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        server_version = "specgraph-serve"

        def log_message(self, format: str, *args: Any) -> None:  # quiet: the terminal shows the spec's errors
            pass

        def do_GET(self) -> None:
            if not self._host_ok():
                return self._send(HTTPStatus.FORBIDDEN, b"forbidden host\n", "text/plain")
            route = self.path.split("?", 1)[0]
            if route in ("/", "/index.html"):
                version, model = live.current()
                return self._send(HTTPStatus.OK, page(model, live=version).encode("utf-8"), "text/html; charset=utf-8")
            if route == "/model.json":
                # the version travels beside the model, so the page never draws an older model
                # over a newer one (two fetches on two connections may answer in either order)
                version, model = live.current()
                return self._send(HTTPStatus.OK, model_json(model).encode("utf-8"), "application/json",
                                  {"X-Specgraph-Version": str(version)})
            if route == "/events":
                return self._events()
            self._send(HTTPStatus.NOT_FOUND, b"not found: this server serves the viewer, no files\n", "text/plain")

        def _host_ok(self) -> bool:
            """On loopback, only requests naming a loopback host (no DNS-rebinding page may read it)."""
            if host not in ("127.0.0.1", "localhost", "::1"):
                return True
            name = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
            return name in ("127.0.0.1", "localhost", "::1")

        def _send(self, status: HTTPStatus, body: bytes, kind: str, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _events(self) -> None:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            version = live.version
            try:
                self.wfile.write(b"retry: 500\n\n")
                self.wfile.flush()
                while not stopping.is_set():
                    now = live.wait_for(version, KEEPALIVE_SECONDS)
                    if now > version:
                        version = now
                        self.wfile.write(f"event: model\ndata: {json.dumps({'version': now})}\n\n".encode())
                    else:
                        self.wfile.write(b": keep-alive\n\n")
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    real_close = server.server_close

    def close() -> None:
        stopping.set()
        with live.changed:
            live.changed.notify_all()
        real_close()

    server.server_close = close  # type: ignore[method-assign]
    return server


def serve(path: Path, *, host: str = "127.0.0.1", port: int = 8000, params: dict[str, Any] | None = None,
          limits: Limits = DEFAULT_LIMITS, ready: Callable[[str, LiveSpec], None] | None = None) -> None:
    """Serve the live viewer of ``path`` until interrupted; ``ready(url, live)`` once listening."""
    live = LiveSpec(path, params, limits)
    server = make_server(live, host, port)
    stop = threading.Event()
    watcher = threading.Thread(target=live.watch, args=(stop,), name="specgraph-watch", daemon=True)
    watcher.start()
    shown = f"[{host}]" if ":" in host else host
    if ready is not None:
        ready(f"http://{shown}:{server.server_address[1]}/", live)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        stop.set()
        server.server_close()
