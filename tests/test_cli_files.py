"""The command line's files: what the SPEC argument names (a file of any suffix, stdin with '-',
text with --text, never a folder or a FIFO), `check` over many files and globs with the worst exit
code, the pre-commit hook, and the paths a command writes, checked before work starts (E109)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from conftest import ROOT, SPECS
from specgraph.cli.app import app

LENET = SPECS / "lenet5.yaml"
TINY = "specgraph: 1\ninputs: {x: [N, 4]}\ngraph:\n  fc: {op: linear, out: 3}\n"
BAD = "specgraph: 1\ninputs: {x: [N, 4]}\ngraph:\n  fc: {op: linear, out: 3, bogus: 1}\n"


def invoke(*args: str, input: str | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], input=input, env={"COLUMNS": "200"})


# ---- the SPEC argument ----------------------------------------------------------------------------

def test_a_file_of_any_suffix_is_a_file(tmp_path):
    spec = tmp_path / "model.spec"
    spec.write_text(TINY)
    r = invoke("check", spec)
    assert r.exit_code == 0 and "fc [N, 3]" in r.output, r.output
    named_like_text = tmp_path / "specgraph: 1"  # a file whose name could be YAML is still a file
    named_like_text.write_text(TINY)
    assert invoke("check", named_like_text).exit_code == 0


def test_text_only_when_asked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = invoke("check", TINY)  # YAML text given as a path: a file that does not exist
    assert r.exit_code == 1 and "error[E108]: file not found" in r.output and "--text" in r.output
    assert invoke("check", "--text", TINY).exit_code == 0
    r = invoke("check", "-", input=TINY)
    assert r.exit_code == 0 and "<stdin>: ok" in r.output, r.output
    r = invoke("check", "-", input=BAD)
    assert r.exit_code == 1 and "<stdin>:4:" in r.output and "E201" in r.output
    r = invoke("summary", "--text", TINY)
    assert r.exit_code == 0 and "fc" in r.output


def test_a_folder_or_a_fifo_is_an_error_and_never_read(tmp_path):
    r = invoke("check", tmp_path)
    assert r.exit_code == 1 and "error[E108]: is a directory, not a spec file" in r.output
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)  # nobody writes to it: reading it would block for ever
    for command in ("check", "build", "summary", "render"):
        r = subprocess.run([sys.executable, "-m", "specgraph.cli", command, str(fifo)], capture_output=True, text=True,
                           timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=tmp_path)
        assert r.returncode == 1 and "E108" in r.stderr and "not a regular file" in r.stderr, (command, r.stderr)


# ---- check: many files and globs ----------------------------------------------------------------

def test_check_takes_many_files_and_globs_and_exits_with_the_worst(tmp_path):
    (tmp_path / "a.yaml").write_text(TINY)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yaml").write_text(TINY)
    (tmp_path / "bad.yaml").write_text(BAD)
    r = invoke("check", f"{tmp_path}/**/*.yaml")
    assert r.exit_code == 1, r.output
    assert "a.yaml: ok" in r.output and "b.yaml: ok" in r.output and "E201" in r.output
    assert "3 specs: 2 ok, 1 with errors" in r.output
    assert invoke("check", tmp_path / "a.yaml", tmp_path / "sub" / "b.yaml").exit_code == 0
    r = invoke("check", tmp_path / "a.yaml", f"{tmp_path}/*.yml")
    assert r.exit_code == 2 and "no file matches" in r.output  # a pattern that matches nothing: a usage error


def test_check_of_many_files_shows_warnings_and_run_time_conditions_of_each(tmp_path):
    """Each file's warnings (silenced by --no-warn) and the conditions its model checks when called."""
    warned = tmp_path / "warned.yaml"
    warned.write_text("specgraph: 1\nparams: {unused: 3}\ninputs: {x: [N, 4]}\ngraph:\n  fc: {op: linear, out: 3}\n")
    conditional = tmp_path / "reflect.yaml"
    conditional.write_text("specgraph: 1\ninputs: {x: [N, 2, S]}\ngraph:\n"
                           "  c: {op: conv1d, out: 2, kernel: 3, padding: 4, padding_mode: reflect}\n")
    shown = invoke("check", warned, conditional)
    assert shown.exit_code == 0, shown.output
    assert "warning[W303]: param 'unused' is never read" in shown.output
    assert "  checked when the model is called: S - 4 >= 1 (c)" in shown.output
    quiet = invoke("check", warned, conditional, "--no-warn")
    assert quiet.exit_code == 0 and "warning[" not in quiet.output and "S - 4 >= 1 (c)" in quiet.output
    report = json.loads(invoke("check", warned, conditional, "--no-warn", "--format", "json").stdout)
    assert [f["diagnostics"] for f in report["files"]] == [[], []]
    assert report["files"][1]["checked_when_called"] == [{"node": "c", "condition": "S - 4 >= 1", "code": "E404"}]
    report = json.loads(invoke("check", warned, conditional, "--format", "json").stdout)
    assert [d["code"] for d in report["files"][0]["diagnostics"]] == ["W303"]


def test_check_json_of_many_files(tmp_path):
    (tmp_path / "a.yaml").write_text(TINY)
    (tmp_path / "bad.yaml").write_text(BAD)
    r = invoke("check", "--format", "json", tmp_path / "a.yaml", tmp_path / "bad.yaml")
    report = json.loads(r.stdout)
    assert r.exit_code == 1 and report["ok"] is False
    assert [(Path(f["file"]).name, f["ok"]) for f in report["files"]] == [("a.yaml", True), ("bad.yaml", False)]
    assert report["files"][1]["diagnostics"][0]["code"] == "E201"
    single = json.loads(invoke("check", "--format", "json", tmp_path / "a.yaml").stdout)
    assert single["ok"] is True and single["outputs"] == {"fc": "[N, 3]"}  # one spec: the report it always was


def test_every_spec_and_library_of_the_folder_checks_as_pre_commit_runs_it():
    files = sorted(str(p) for p in SPECS.rglob("*.yaml"))
    r = invoke("check", *files)
    assert r.exit_code == 0, r.output
    assert "lib/resnet.yaml: ok — a block library of 4 blocks" in r.output
    assert f"{len(files)} specs: {len(files)} ok, 0 with errors" in r.output


def test_the_pre_commit_hook():
    [hook] = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert {"id", "name", "entry", "language"} <= set(hook) and hook["language"] == "python"
    assert hook["entry"] == "specgraph check" and hook["types"] == ["yaml"]
    assert "specs/resnet50.yaml".startswith(hook["files"].lstrip("^"))
    script = shutil.which("specgraph", path=str(Path(sys.executable).parent))
    run = subprocess.run([script, *hook["entry"].split()[1:], str(LENET), str(SPECS / "lib" / "resnet.yaml")],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert run.returncode == 0, run.stderr


# ---- --version, help ------------------------------------------------------------------------------

def test_version():
    import specgraph

    r = invoke("--version")
    assert r.exit_code == 0 and r.output.strip() == f"specgraph {specgraph.__version__}"


def test_every_option_has_help_with_its_default():
    """Every option of every command says what it does; one with a default shows it, either
    as [default: ...] or in its words; choices are shown as choices, not written in the help."""
    import typer.core
    import typer.main

    group = typer.main.get_command(app)
    for name, command in group.commands.items():
        for param in command.params:
            if not isinstance(param, typer.core.TyperOption) or param.name == "help":
                continue
            where = f"{name} {param.opts[0]}"
            assert param.help, f"{where} has no help"
            if param.is_flag or param.default in (None, (), []):
                continue  # a flag is off, an option not given leaves the spec's or the config's value
            assert param.show_default, f"{where}: its default {param.default!r} is not shown"
    helps = {name: " ".join(invoke(name, "--help").output.replace("│", " ").split()) for name in group.commands}
    assert "<text|json> how to print the results [default: text]" in helps["check"]
    assert "<sgd|adam|adamw>" in helps["train"] and "[default: adam]" in helps["train"]
    assert "Epochs at most. [default: 10]" in helps["train"]  # from TrainConfig: written once


# ---- paths a command writes -----------------------------------------------------------------------

WRITERS = {
    "render -o": ["render", LENET, "-f", "dot", "-o"],
    "build --save": ["build", LENET, "--save"],
    "export --python": ["export", LENET, "--python"],
    "export --onnx": ["export", LENET, "--onnx"],
    "schema -o": ["schema", "-o"],
}


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("case, why", [("missing/out.x", "the folder"), ("", "it is a folder"),
                                       ("file.txt/out.x", "is a file, not a folder")])
def test_a_bad_output_path_is_a_located_error_before_work_starts(writer, case, why, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file.txt").write_text("")
    target = tmp_path / case if case else tmp_path
    r = invoke(*WRITERS[writer], target)
    assert r.exit_code == 1, r.output
    option = WRITERS[writer][-1]
    assert f"{target}:1:1: error[E109]: {option}: cannot write here:" in r.output and why in r.output, r.output
    assert "internal error" not in r.output and "Traceback" not in r.output
    assert "built" not in r.output and "wrote" not in r.output  # found before the work


def test_a_read_only_folder_is_a_located_error(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if os.geteuid() == 0:  # root writes anywhere: the folder is read-only as the kernel tells others
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == locked and mode & os.W_OK
                            else real_access(p, mode))
    try:
        r = invoke("build", LENET, "--save", locked / "w.pt")
        assert r.exit_code == 1 and "error[E109]: --save: cannot write here: no permission" in r.output, r.output
        assert not (locked / "w.pt").exists()
    finally:
        locked.chmod(0o700)


def test_the_folder_check_for_run_folders(tmp_path):
    from specgraph import SpecError
    from specgraph.cli.paths import writable_folder

    assert writable_folder(tmp_path / "runs" / "new", "--out") == tmp_path / "runs" / "new"  # made later
    (tmp_path / "f").write_text("")
    for bad, why in ((tmp_path / "f", "it is a file, not a folder"), (tmp_path / "f" / "run", "is a file")):
        with pytest.raises(SpecError, match=why) as e:
            writable_folder(bad, "--out")
        assert e.value.codes == ["E109"]


def test_default_render_target_is_checked_too(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lenet5.dot").mkdir()  # where the default name would go
    r = invoke("render", LENET, "-f", "dot")
    assert r.exit_code == 1 and "lenet5.dot:1:1: error[E109]: -o: cannot write here: it is a folder" in r.output


def test_docs_show_e109_as_it_is(tmp_path, monkeypatch):
    import re

    monkeypatch.chdir(tmp_path)
    shutil.copy(LENET, tmp_path / "net.yaml")
    text = (ROOT / "docs" / "errors.md").read_text()
    [(command, shown)] = re.findall(r"<!-- e109 -->\n```text\n\$ specgraph (.*?)\n(.*?)```", text, flags=re.S)
    r = invoke(*command.split())
    assert r.exit_code == 1 and r.output == shown
