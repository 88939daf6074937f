"""What a spec is read from, and the options sizing it, never block and never mean nothing: a FIFO,
a device or a socket is refused before it is opened (a FIFO without a writer would block
forever), a NUL in an include path is a located error, a negative --limit is refused, and a
--dim for a symbol the spec does not have is an error listing the ones it has."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import fields

import pytest
from typer.testing import CliRunner

import specgraph
from conftest import SPECS
from specgraph.cli.app import app
from specgraph.lang.limits import DEFAULT_LIMITS

SPEC = "specgraph: 1\ninputs: {x: [N, 4]}\ngraph:\n  a: {op: linear, out: 2}\n"


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def not_regular_files(tmp_path):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    sock_path = tmp_path / "sock.yaml"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    return {"fifo": fifo, "socket": sock_path, "device": "/dev/zero", "null device": "/dev/null"}, sock


@pytest.mark.parametrize("kind", ["fifo", "socket", "device", "null device"])
@pytest.mark.parametrize("how", ["spec", "include"])
def test_files_that_are_not_regular_are_refused_without_opening(kind, how, tmp_path):
    paths, sock = not_regular_files(tmp_path)
    target = paths[kind]
    if kind in ("device", "null device"):  # a spec is read from a path ending in .yaml: link the device
        os.symlink(target, tmp_path / "dev.yaml")
        target = tmp_path / "dev.yaml"
    if how == "include":
        spec = tmp_path / "top.yaml"
        spec.write_text(f"specgraph: 1\ninclude: [{os.path.basename(target)}]\n" + SPEC.split("\n", 1)[1])
        target = spec
    # in a child with a timeout: a read of the FIFO would block the test run itself
    code = f"import specgraph\ntry:\n    specgraph.check({str(target)!r})\nexcept specgraph.SpecError as e:\n    print(e.format())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    sock.close()
    assert ("error[E306]" in done.stdout) == (how == "include") and "Traceback" not in done.stderr
    if how == "include" and kind in ("device", "null device"):  # the link resolves outside the folder tree
        assert "lies outside the spec's folder tree" in done.stdout
    else:
        assert "is not a regular file (a FIFO, device or socket), so it is not read" in done.stdout, done.stdout


def test_a_nul_in_an_include_path_is_a_located_error():
    with pytest.raises(specgraph.SpecError) as e:
        specgraph.check('specgraph: 1\ninclude: ["lib\\u0000.yaml"]\n' + SPEC.split("\n", 1)[1])
    (d,) = e.value.diagnostics
    assert d.code == "E306" and "holds a NUL character" in d.message and (d.location.line, d.location.col) == (2, 11)


@pytest.mark.parametrize("name", [f.name for f in fields(DEFAULT_LIMITS)])
def test_a_negative_limit_is_refused(name):
    r = invoke("check", str(SPECS / "lenet5.yaml"), "--limit", f"{name}=-1")
    assert r.exit_code == 2 and f"{name}=-1: a limit is a non-negative integer" in r.output
    with pytest.raises(ValueError, match="a limit is a non-negative integer"):
        DEFAULT_LIMITS.with_overrides(**{name: -1})


@pytest.mark.parametrize("command", ["summary", "export"])
def test_a_dim_the_spec_does_not_have_is_an_error(command, tmp_path):
    extra = ["--onnx", str(tmp_path / "m.onnx")] if command == "export" else []
    r = invoke(command, str(SPECS / "char_lstm.yaml"), "--dim", "T=4", "--dim", "Q=3", *extra)
    assert r.exit_code == 2 and "the spec has no symbolic dim Q; its inputs' dims are N, T" in " ".join(r.output.split())
