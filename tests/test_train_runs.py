"""Training you can trust: a run is never lost, never trained on garbage, and says what it does.

Run folders (a refused setting writes nothing, an existing run is never touched without
--resume or --overwrite, the next free name), checkpoints (last.ckpt every epoch, whole even when
a write is cut, Ctrl-C finishing a write), non-finite steps (stop keeps the best finite
checkpoint, skip makes the step a no-op), Ctrl-C (exit 130 and the command that continues), the
data checked before the first step, the epoch lines, and the thread count. The SIGKILL trials
are in test_train_kill.py. Tiny runs: an MLP on 8x8 digits, a few steps per epoch.
"""

from __future__ import annotations

import csv
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest
import torch

pytest.importorskip("lightning")
pytest.importorskip("sklearn")

import lightning as L  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from conftest import ROOT, TINY  # noqa: E402
from specgraph.cli.app import app  # noqa: E402
from specgraph.diagnostics import SpecError  # noqa: E402
from specgraph.train.runner import train  # noqa: E402

QUICK = dict(batch_size=32, limit_train_batches=3, limit_val_batches=2, threads=1, progress=False)



def files(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def epoch_of(path) -> int:
    return torch.load(path, map_location="cpu", weights_only=True)["epoch"]


# ---------------------------------------------------------------- never lose a run

def test_a_refused_setting_leaves_the_existing_run_untouched(tiny, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("the refusal needs a machine without a GPU")
    train(tiny, "digits", epochs=1, out="run", **QUICK)
    before = files(tmp_path / "run")
    for settings in (dict(out="run"), dict(out="run", overwrite=True), dict()):
        with pytest.raises(SpecError) as e:
            train(tiny, "digits", epochs=1, accelerator="gpu", **QUICK, **settings)
        assert e.value.codes == ["E705"]
    assert files(tmp_path / "run") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run", "tiny.yaml"]  # no runs/, no run-2


def test_a_second_run_goes_to_the_next_free_name_and_resume_finds_the_latest(tiny, tmp_path, capsys):
    first = train(tiny, "digits", epochs=1, **QUICK)
    kept = files(tmp_path / "runs" / "tiny")
    second = train(tiny, "digits", epochs=1, **QUICK)
    assert (str(first.run_dir), str(second.run_dir)) == ("runs/tiny", "runs/tiny-2")
    assert files(tmp_path / "runs" / "tiny") == kept
    assert "runs/tiny holds a run: this one goes to runs/tiny-2" in capsys.readouterr().out
    resumed = train(tiny, "digits", epochs=2, resume=True, **QUICK)  # no --out: the latest run on digits
    assert resumed.run_dir == second.run_dir and resumed.epochs == 2
    assert "resuming run runs/tiny-2 at epoch 2 of 2" in capsys.readouterr().out
    _images(tmp_path / "pets", ["cats", "dogs"], size=(8, 8), mode="L")
    with pytest.raises(SpecError) as e:  # the latest run on other data: none
        train(tiny, "imagefolder:pets", epochs=2, resume=True, **QUICK)
    assert e.value.codes == ["E708"] and "no run of tiny on 'imagefolder:pets' to continue" in str(e.value)
    replaced = train(tiny, "digits", epochs=1, overwrite=True, **QUICK)
    assert replaced.run_dir == first.run_dir
    assert [p.name for p in (tmp_path / "runs" / "tiny" / "logs").iterdir()] == ["version_0"]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["tiny", "tiny-2"]


class Curve(L.Callback):
    """Logs a made-up validation score per epoch."""

    def __init__(self, curve):
        self.curve = curve

    def on_validation_epoch_end(self, trainer, pl_module):
        pl_module.log("val_made_up", self.curve[trainer.current_epoch])


def test_last_checkpoint_is_every_epoch_and_best_only_the_best(tiny, tmp_path):
    r = train(tiny, "digits", epochs=3, monitor="val_made_up", callbacks=[Curve([0.1, 0.5, 0.7])], out="run", **QUICK)
    assert epoch_of(r.last_checkpoint) == 2 and epoch_of(r.best_checkpoint) == 0 and r.best_epoch == 1
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]


def test_resume_with_fewer_epochs_than_the_checkpoint_names_both(tiny, tmp_path):
    train(tiny, "digits", epochs=3, out="run", **QUICK)
    spec = tmp_path / "with_train.yaml"
    spec.write_text(TINY + "train:\n  epochs: 2\n")
    with pytest.raises(SpecError) as e:
        train(spec, "digits", resume=True, out="run", **QUICK)
    [d] = e.value.diagnostics
    assert d.code == "E708" and "holds 3 epochs; epochs is 2" in d.message and "--epochs 3 or more" in d.hint
    assert d.location is not None and d.location.line == TINY.count("\n") + 2  # where `epochs: 2` is written
    r = CliRunner().invoke(app, ["train", str(tiny), "--data", "digits", "--resume", "--out", "run", "--epochs", "1"])
    assert r.exit_code == 1 and "holds 3 epochs; epochs is 1" in r.output and "given with --epochs" in r.output
    assert "internal error" not in r.output


def test_an_unwritable_run_folder_is_E710_before_any_work(tiny, tmp_path):
    (tmp_path / "taken").write_text("a file")
    r = CliRunner().invoke(app, ["train", str(tiny), "--data", "digits", "--out", "taken/run", "--no-progress"])
    assert r.exit_code == 1 and "error[E710]: cannot write the run folder taken/run: taken is a file" in r.output
    r = CliRunner().invoke(app, ["train", str(tiny), "--data", "digits", "--out", "taken", "--overwrite"])
    assert r.exit_code == 1 and "error[E710]" in r.output and "is a file" in r.output
    if os.geteuid() != 0:  # root writes anywhere
        (tmp_path / "locked").mkdir(mode=0o500)
        r = CliRunner().invoke(app, ["train", str(tiny), "--data", "digits", "--out", "locked/run"])
        assert r.exit_code == 1 and "error[E710]" in r.output and "ermission denied" in r.output
    assert "training tiny" not in r.output and not (tmp_path / "runs").exists()


@pytest.mark.serial  # see pyproject.toml
def test_a_checkpoint_write_is_whole_and_ctrl_c_waits_for_it(tmp_path):
    from specgraph.train.checkpoints import atomic_save

    class CtrlC:
        """Presses Ctrl-C while it is being written."""

        def __reduce__(self):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the signal arrives during the write
            return (dict, ())

    target = tmp_path / "last.ckpt"
    atomic_save({"old": torch.zeros(3)}, target)
    # Ctrl-C as from a terminal, even where this process was started with SIGINT ignored
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            atomic_save({"new": torch.ones(1000), "ctrl_c": CtrlC()}, target)
    finally:
        signal.signal(signal.SIGINT, before)
    assert torch.equal(torch.load(target, weights_only=False)["new"], torch.ones(1000))  # finished, then stopped
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


# ---------------------------------------------------------------- never train on garbage

class PoisonGradient(L.Callback):
    """Makes one gradient NaN at the given optimiser steps (1-based), before the guard looks;
    keeps the weights before and after each poisoned step."""

    def __init__(self, steps):
        self.steps, self.before, self.after = set(steps), {}, {}

    def _weights(self, module):
        return {k: v.detach().clone() for k, v in module.model.state_dict().items()}

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.global_step + 1 in self.steps:
            self.before[trainer.global_step + 1] = self._weights(module)

    def on_before_optimizer_step(self, trainer, module, optimizer):
        if trainer.global_step + 1 in self.steps:
            module.model.hidden.weight.grad[0, 0] = float("nan")

    def on_train_batch_end(self, trainer, module, *args):
        if trainer.global_step in self.before and trainer.global_step not in self.after:
            self.after[trainer.global_step] = self._weights(module)


def test_a_non_finite_gradient_stops_the_run_and_keeps_the_best_finite_checkpoint(tiny, tmp_path):
    with pytest.raises(SpecError) as e:
        train(tiny, "digits", epochs=4, out="run", callbacks=[PoisonGradient([8])], **QUICK)
    [d] = e.value.diagnostics
    assert d.code == "E711" and "the gradient of hidden.weight is not finite at epoch 3, step 8 (batch 2 of 3)" \
        in d.message and "--nan-policy skip" in d.hint
    run = tmp_path / "run"
    assert epoch_of(run / "checkpoints" / "last.ckpt") == 1  # epochs 1-2, finite
    best = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)
    saved = torch.load(run / "model.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in saved.values())
    assert all(torch.equal(saved[k], best["state_dict"]["model." + k]) for k in saved)
    with open(run / "metrics.csv", newline="") as fh:
        assert [row["epoch"] for row in csv.DictReader(fh)] == ["1", "2"]


def test_skip_makes_a_non_finite_step_a_no_op(tiny):
    poison = PoisonGradient([2, 5])
    r = train(tiny, "digits", epochs=2, out="run", nan_policy="skip", callbacks=[poison], **QUICK)
    assert r.skipped_steps == 2 and r.epochs == 2
    for step in (2, 5):
        assert all(torch.equal(poison.before[step][k], poison.after[step][k]) for k in poison.before[step])
    assert all(v == v for row in r.history for v in row.values())  # the epochs' metrics are finite


def test_lr_1e30_is_a_clear_error_not_nan_weights(tiny, tmp_path):
    r = CliRunner().invoke(app, ["train", str(tiny), "--data", "digits", "--lr", "1e30", "--out", "run",
                                 "--threads", "1", "--limit-train-batches", "3", "--no-progress"])
    assert r.exit_code == 1 and "error[E711]: training stopped: the loss is " in r.output and "at epoch 1," in r.output
    assert "no epoch had finished: nothing was saved" in r.output and not (tmp_path / "run" / "model.pt").exists()


@pytest.mark.serial  # see pyproject.toml
def test_ctrl_c_finishes_the_epoch_on_disk_exits_130_and_says_how_to_continue(tiny, tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-m", "specgraph.cli", "train", str(tiny), "--data", "digits",
                              "--epochs", "1000", "--batch-size", "8", "--threads", "1", "--out", str(run),
                              "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                             # as from a terminal: a shell's background job (or a test runner's
                             # worker) would hand the child SIGINT ignored
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300
    while not (run / "checkpoints" / "last.ckpt").exists() and child.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=300)
    assert child.returncode == 130, out + err
    assert "Traceback" not in err and "interrupted at epoch" in err, err
    saved = epoch_of(run / "checkpoints" / "last.ckpt") + 1
    command = err.split("continue with: ")[1].strip()
    words = shlex.split(command)
    assert words[:3] == ["specgraph", "train", str(tiny)] and words[-3:] == ["--out", str(run), "--resume"]
    words[words.index("--epochs") + 1] = str(saved + 1)
    r = CliRunner().invoke(app, words[1:])
    assert r.exit_code == 0 and f"resuming run {run} at epoch {saved + 1} of {saved + 1}" in r.output, r.output


# ---------------------------------------------------------------- the data, checked before the first step

def _images(root, classes, n=6, size=(12, 10), mode="RGB"):
    from PIL import Image

    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new(mode, size, color=(i * 20, 50, 90) if mode == "RGB" else i * 20).save(root / c / f"{i}.png")


def test_image_folders_are_decoded_whole_before_training(tiny, tmp_path, capsys):
    lenet = ROOT / "specs" / "lenet5.yaml"
    _images(tmp_path / "pets", ["cats", "dogs"])
    (tmp_path / "pets" / "dogs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"cut" * 10)
    with pytest.raises(SpecError) as e:
        train(lenet, f"imagefolder:{tmp_path / 'pets'}", epochs=1, out="run", **QUICK)
    assert e.value.codes == ["E702"] and "1 of 13 images do not decode: dogs/broken.png" in str(e.value)
    assert not (tmp_path / "run").exists()
    _images(tmp_path / "one", ["cats"])
    with pytest.raises(SpecError) as e:
        train(lenet, f"imagefolder:{tmp_path / 'one'}", epochs=1, out="run", **QUICK)
    assert e.value.codes == ["E702"] and "has 1 class (cats); classification needs two or more" in str(e.value)
    _images(tmp_path / "split" / "train", ["a", "b", "c"])
    _images(tmp_path / "split" / "val", ["a", "c"], n=2)  # no b: c keeps id 2
    r = train(lenet, f"imagefolder:{tmp_path / 'split'}", epochs=1, out="run", **QUICK)
    assert sorted(int(r.data.val[i][1]) for i in range(len(r.data.val))) == [0, 0, 2, 2]
    out = capsys.readouterr().out
    assert "data adapted to the spec: images resized from 10×12 to 28×28 (the spec's input)" in out
    assert "data adapted to the spec: colour images made grey" in out


def test_non_finite_values_in_a_csv_are_refused_with_row_and_column(tmp_path):
    from specgraph.train import load_dataset

    import specgraph

    csv = tmp_path / "load.csv"
    csv.write_text("day,load\n" + "".join(f"{i},{'inf' if i == 7 else i % 5}\n" for i in range(60)))
    spec = specgraph.check(ROOT / "specs" / "lstm_forecaster.yaml", hidden=4)
    with pytest.raises(SpecError) as e:
        load_dataset(f"csv:{csv}:load", spec.inputs, 0, {})
    assert e.value.codes == ["E702"] and "row 9, column 'load': 'inf' is not a finite number" in str(e.value)


# ---------------------------------------------------------------- what a run prints; threads

def test_one_line_per_epoch_without_a_terminal_and_nothing_when_quiet(tiny, capsys):
    train(tiny, "digits", epochs=2, out="run", **QUICK)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert [line.split()[:2] for line in lines] == [["epoch", "1/2"], ["epoch", "2/2"]]
    assert "train loss" in lines[0] and "| val loss" in lines[0] and " s  lr 0.001" in lines[0]
    train(tiny, "digits", epochs=3, out="run", resume=True, quiet=True, **QUICK)
    assert capsys.readouterr().out == ""


def test_thread_choice_measures_and_leaves_the_model_alone(tiny):
    from specgraph.train.module import SpecModule
    from specgraph.train.threads import candidates, choose_threads, fastest

    import specgraph
    from specgraph.train import TrainConfig, load_dataset, make_task
    from specgraph.train.fit import check_fit

    assert candidates(1) == [1] and candidates(2) == [1, 2] and candidates(16) == [1, 8, 16]
    assert fastest({1: 1.0, 2: 0.97, 4: 0.5}) == 4 and fastest({1: 1.0, 2: 0.97}) == 1  # within 5%: fewer
    graph = specgraph.check(TINY.replace("act: {op: relu}", "norm: {op: batchnorm1d}\n  act: {op: relu}"))
    bundle = load_dataset("digits", graph.inputs, 0)
    task = make_task(bundle.task, bundle.num_classes)
    module = SpecModule(specgraph.build(graph), task, check_fit(graph, bundle, task), TrainConfig())
    before = {k: v.clone() for k, v in module.state_dict().items()}
    x = torch.stack([bundle.train[i][0] for i in range(16)])
    y = torch.stack([bundle.train[i][1] for i in range(16)])
    choice = choose_threads(module, (x, y), 2)
    assert choice.threads in (1, 2) and set(choice.seconds) == {1, 2} and "a training step took" in choice.describe()
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())  # BN statistics too
    assert all(p.grad is None for p in module.parameters())


def test_openmp_threads_spin_only_on_an_idle_machine_and_a_users_policy_is_kept():
    from specgraph.train.threads import PASSIVE, SPIN, YOURS, wait_policy

    assert wait_policy({}, 0.05, 0) == SPIN  # idle: libgomp's default, spinning
    assert wait_policy({}, 1.5, 0) == PASSIVE  # another process holds a core
    assert wait_policy({}, 0.05, 2) == PASSIVE  # DataLoader workers would meet spinning threads
    assert wait_policy({}, None, 0) == PASSIVE  # cannot tell (no /proc/stat): the safe one
    assert wait_policy({"OMP_WAIT_POLICY": "ACTIVE"}, 1.5, 0) == YOURS
    assert wait_policy({"GOMP_SPINCOUNT": "1000"}, 0.05, 0) == YOURS


def test_the_wait_policy_is_set_before_torch_loads():
    code = ("import os, sys\n"
            "from specgraph.train.threads import choose_wait_policy\n"
            "busy = float(sys.argv[1])\n"
            "print(choose_wait_policy(busy=lambda: busy), os.environ.get('OMP_WAIT_POLICY', '-'))\n"
            "import torch\n"
            "print(choose_wait_policy(busy=lambda: 1 / 0))")  # torch loaded: what is in force, nothing measured
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    for busy, expected in (("0.0", ["spin", "-", "spin"]), ("1.5", ["passive", "PASSIVE", "passive"])):
        out = subprocess.run([sys.executable, "-c", code, busy], capture_output=True, text=True,
                             env={**env, "PYTHONPATH": str(ROOT)}, timeout=300)
        assert out.stdout.split() == expected, out.stderr


def test_busy_cores_sees_a_process_that_holds_a_core():
    from specgraph.train.threads import busy_cores

    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert busy_cores() >= 0.7  # the hog's core (and whatever else runs)
    finally:
        hog.kill()
        hog.wait()


def test_steps_that_double_drop_a_spinning_run_to_one_thread(monkeypatch):
    from specgraph.train import threads
    from specgraph.train.threads import BusyMachineWatch, busy_machine_callback

    watch = BusyMachineWatch(window=20, skip=5)
    assert not any(watch.step(0.010) for _ in range(25))  # warm-up and baseline
    assert not any(watch.step(1.0 if i == 7 else 0.011) for i in range(40))  # one slow step is no trend
    assert [watch.step(0.025) for _ in range(20)][-1] and watch.fired
    assert not any(watch.step(0.025) for _ in range(40))  # once

    now = [0.0]
    monkeypatch.setattr(threads.time, "perf_counter", lambda: now[0])
    said: list[str] = []
    callback = busy_machine_callback(said.append)
    trainer = type("Trainer", (), {"global_step": 0})()
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for step, seconds in enumerate([0.01] * 25 + [0.03] * 20):
            trainer.global_step = step
            callback.on_train_batch_start(trainer, None, None, step)
            now[0] += seconds
            callback.on_train_batch_end(trainer, None, None, None, step)
        assert torch.get_num_threads() == 1
        assert len(said) == 1 and said[0].startswith("threads: 1 from step 44: ") and "2 spinning threads" in said[0]
    finally:
        torch.set_num_threads(before)
