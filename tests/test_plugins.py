"""`specgraph --plugin mypkg.ops` and SPECGRAPH_PLUGINS: the user's op modules are imported for
every command, run here as a user runs them, in a subprocess, with the op module written in
tmp_path (the example of docs/language.md, "Users add ops")."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import pytest
import torch

from conftest import ROOT

OPS = textwrap.dedent(next(b for b in re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "language.md").read_text(),
                                                 flags=re.S) if "class ScaledSwish" in b))
SPEC = """specgraph: 1
inputs: {x: [N, 4, 8, 8]}
graph:
  conv: {op: conv2d, out: 6, kernel: 3, padding: 1}
  act:  {op: scaled_swish, beta: 2.0}
"""


def run(*args: str, cwd, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    env.pop("SPECGRAPH_PLUGINS", None) if not env_extra or "SPECGRAPH_PLUGINS" not in env_extra else None
    return subprocess.run([sys.executable, "-m", "specgraph.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


@pytest.fixture
def project(tmp_path):
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "ops.py").write_text(OPS)
    (tmp_path / "net.yaml").write_text(SPEC)
    return tmp_path


def test_without_the_plugin_the_op_is_unknown(project):
    r = run("check", "net.yaml", cwd=project)
    assert r.returncode == 1 and "unknown op 'scaled_swish'" in r.stderr


def test_the_plugin_serves_every_command(project):
    assert run("--plugin", "mypkg.ops", "check", "net.yaml", cwd=project).returncode == 0
    ops = run("--plugin", "mypkg.ops", "ops", cwd=project)
    assert ops.returncode == 0 and "scaled_swish" in ops.stdout and "x * sigmoid(beta * x)" in ops.stdout
    schema = run("--plugin", "mypkg.ops", "schema", cwd=project)
    assert '"scaled_swish"' in schema.stdout
    assert run("-p", "mypkg.ops", "render", "net.yaml", "-f", "dot", "-o", "net.dot", cwd=project).returncode == 0
    r = run("-p", "mypkg.ops", "build", "net.yaml", "--save", "net.pt", cwd=project)
    assert r.returncode == 0, r.stderr
    r = run("-p", "mypkg.ops", "export", "net.yaml", "--python", "net.py", cwd=project)
    assert r.returncode == 0, r.stderr
    # the exported file carries the op's module and computes what the op does
    namespace: dict = {}
    exec(compile((project / "net.py").read_text(), "net.py", "exec"), namespace)
    model = namespace["Net"]()
    model.load_state_dict(torch.load(project / "net.pt"), strict=True)
    x = torch.randn(2, 4, 8, 8)
    y = model.conv(x)
    torch.testing.assert_close(model(x), y * torch.sigmoid(2.0 * y))


def test_the_environment_variable(project):
    r = run("check", "net.yaml", cwd=project, env_extra={"SPECGRAPH_PLUGINS": "mypkg.ops, json"})
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("plugin, message", [
    ("mypkg.nope", "plugin 'mypkg.nope': no module named 'mypkg.nope'"),
    ("mypkg/ops.py", "is not a module path like mypkg.ops (name the module, not its file)"),
    ("mypkg.broken", "plugin 'mypkg.broken' failed to import: ZeroDivisionError: division by zero (at "),
])
def test_a_plugin_that_cannot_be_imported_is_a_usage_error(project, plugin, message):
    (project / "mypkg" / "broken.py").write_text("x = 1\ny = x / 0\n")
    r = run("--plugin", plugin, "check", "net.yaml", cwd=project)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
