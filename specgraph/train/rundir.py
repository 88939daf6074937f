"""Where a run is written, decided before anything is written, so no setting can cost a run.

A run folder holds what :data:`OWNED` names. The folder is chosen by :func:`plan_run` (no file
is touched; errors are E708 for ``resume``, E710 for a folder that cannot be written) and made
by :meth:`RunPlan.create` only after the spec, the settings, the data and the trainer have all
been checked:

* ``resume``: the folder's ``checkpoints/last.ckpt`` is continued; without ``out``, the latest
  run of the spec (``runs/<spec>``, ``runs/<spec>-2``, ...) on the same data;
* ``overwrite``: the folder's run is replaced (only the names in :data:`OWNED` are removed);
* otherwise a folder that holds anything is left alone and the run goes to the next free name,
  ``runs/lenet5-2``, ``-3``, ... (as Ultralytics' ``exp2`` and Lightning's ``version_N``).

Under DDP, Lightning starts the other processes by running the command again; they must not
choose a name of their own (rank 0 has made the folder they would skip), so rank 0 hands its
choice down in :data:`RUN_DIR_ENV`.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import yaml

from ..diagnostics import Diagnostic, SpecError
from .config import TrainConfig

OWNED = ("checkpoints", "logs", "metrics.csv", "curves.png", "model.pt", "config.yaml")
RUN_DIR_ENV = "SPECGRAPH_RUN_DIR"
LAST = Path("checkpoints") / "last.ckpt"


@dataclass
class RunPlan:
    """The run folder chosen for a run, and how it is used: "new", "resume" or "overwrite"."""

    path: Path
    mode: str
    note: Optional[str] = None  # why the folder is not the one asked for (shown in the banner)
    epochs_done: int = 0  # resume: epochs the checkpoint holds
    previous: dict = field(default_factory=dict)  # resume: the run's config.yaml (threads_used, data, ...)

    @property
    def last(self) -> Optional[Path]:
        return self.path / LAST if self.mode == "resume" else None

    def create(self, rank: int, config_text: str) -> None:
        """Make the folder and write its config.yaml (rank 0); with "overwrite", remove the previous
        run's files first; on "resume", the partial files of a killed save."""
        if rank != 0:
            return
        from .checkpoints import remove_partial

        try:
            if self.mode == "overwrite":
                for name in OWNED:
                    target = self.path / name
                    if target.is_dir() and not target.is_symlink():
                        shutil.rmtree(target)
                    elif target.exists() or target.is_symlink():
                        target.unlink()
            self.path.mkdir(parents=True, exist_ok=True)
            remove_partial(self.path / "checkpoints")
            (self.path / "config.yaml").write_text(config_text, encoding="utf-8")
        except OSError as e:
            raise _unwritable(self.path, e.strerror or str(e)) from None


def _unwritable(path: Path, why: str) -> SpecError:
    return SpecError(Diagnostic("E710", f"cannot write the run folder {path}: {why}",
                                hint="choose another folder with --out"))


def check_writable(path: Path) -> None:
    """E710 unless ``path`` is (or can be made) a folder this process can write in.

    Probes the deepest existing folder on the way with a real file (made and removed at once):
    permissions alone do not tell a read-only mount or a full disk."""
    probe = path
    while not probe.exists() and not probe.is_symlink():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        what = "it is a file" if probe == path else f"{probe} is a file, not a folder"
        raise _unwritable(path, what)
    try:
        fd, name = tempfile.mkstemp(prefix=".specgraph-probe-", dir=probe)
        os.close(fd)
        os.unlink(name)
    except OSError as e:
        raise _unwritable(path, e.strerror or str(e)) from None


def _is_free(path: Path) -> bool:
    """Nothing there, or an empty folder: a new run loses nothing by writing it."""
    if not path.exists() and not path.is_symlink():
        return True
    return path.is_dir() and not any(path.iterdir())


def _numbered(base: Path) -> list[tuple[int, Path]]:
    """``base`` (1) and its siblings ``base-2``, ``base-3``, ... (N) that exist, by N."""
    found = [(1, base)] if base.exists() else []
    if base.parent.is_dir():
        pattern = re.compile(re.escape(base.name) + r"-(\d+)")
        for sibling in base.parent.iterdir():
            m = pattern.fullmatch(sibling.name)
            if m and int(m[1]) >= 2:
                found.append((int(m[1]), sibling))
    return sorted(found)


def next_free(base: Path) -> Path:
    """``base`` if free, else the first free ``base-N`` (N >= 2) after every numbered one that exists."""
    if _is_free(base):
        return base
    taken = _numbered(base)
    n = max(taken)[0] + 1 if taken else 2
    return base.parent / f"{base.name}-{max(n, 2)}"


def read_previous(folder: Path) -> dict:
    """The settings a run folder recorded (config.yaml), {} when there are none to read."""
    try:
        data = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def checkpoint_epochs(last: Path) -> int:
    """Epochs a checkpoint of a run holds (E708 when it cannot be read)."""
    import torch

    try:
        state = torch.load(last, map_location="cpu", weights_only=True, mmap=True)
        return int(state["epoch"]) + 1  # saved at the end of epoch index `epoch`
    except Exception as e:
        raise SpecError(Diagnostic("E708", f"--resume: cannot read {last} ({type(e).__name__})",
                                   hint="the checkpoint is damaged: start again without --resume")) from None


def _base(cfg: TrainConfig, spec_name: str) -> Path:
    base = Path(os.path.normpath(os.path.expanduser(cfg.out))) if cfg.out else Path("runs") / spec_name
    return base.resolve() if base.name in ("", ".", "..") else base


def plan_run(cfg: TrainConfig, spec_name: str, rank: int = 0) -> RunPlan:
    """Choose the run folder (see the module docstring); nothing is written but a probe file."""
    if cfg.resume and cfg.overwrite:
        raise SpecError(Diagnostic("E705", "training settings refused: --resume continues a run and --overwrite "
                                           "replaces it; give one of them"))
    base = _base(cfg, spec_name)
    if base.exists() and not base.is_dir():
        raise _unwritable(base, "it is a file")
    handed = os.environ.get(RUN_DIR_ENV)
    if rank != 0:  # another DDP process: rank 0 chose (and may already have made) the folder
        plan = RunPlan(Path(handed) if handed else base, "resume" if cfg.resume else "child")
        if cfg.resume:
            plan.epochs_done = checkpoint_epochs(plan.path / LAST)
        return plan
    if cfg.resume:
        plan = _resume_plan(cfg, spec_name, base)
    elif cfg.overwrite or _is_free(base):
        plan = RunPlan(base, "overwrite" if cfg.overwrite and base.exists() else "new")
    else:
        chosen = next_free(base)
        plan = RunPlan(chosen, "new", note=f"{base} holds a run: this one goes to {chosen} "
                                           f"(--resume continues that run, --overwrite replaces it)")
    check_writable(plan.path / "checkpoints" if (plan.path / "checkpoints").is_dir() else plan.path)
    return plan


def _resume_plan(cfg: TrainConfig, spec_name: str, base: Path) -> RunPlan:
    if cfg.out:
        folder = base
        if not (folder / LAST).is_file():
            raise SpecError(Diagnostic("E708", f"--resume: no checkpoint to continue from ({folder / LAST} not found)",
                                       hint="start without --resume, or give the run's folder with --out"))
    else:  # the latest run of this spec on this data
        runs = [p for _, p in _numbered(base) if (p / LAST).is_file()
                and read_previous(p).get("data", cfg.data) == cfg.data]
        if not runs:
            raise SpecError(Diagnostic("E708", f"--resume: no run of {spec_name} on '{cfg.data}' to continue "
                                               f"(looked for {base / LAST} and {base}-N/{LAST})",
                                       hint="start without --resume, or give the run's folder with --out"))
        folder = max(runs, key=lambda p: (p / LAST).stat().st_mtime)
    previous = read_previous(folder)
    if previous.get("data") not in (None, cfg.data):
        raise SpecError(Diagnostic("E708", f"--resume: {folder} was trained on '{previous['data']}', not on "
                                           f"'{cfg.data}'", hint=f"resume with --data {previous['data']}, or start "
                                                                 "a new run without --resume"))
    schedule = previous.get("lr_schedule", "constant") if previous else cfg.lr_schedule
    if schedule != cfg.lr_schedule:  # the checkpoint's lr and schedule state belong to the run's own schedule
        place, said = cfg.setting_place("lr_schedule")
        raise SpecError(Diagnostic("E708", f"--resume: {folder} was trained with lr_schedule {schedule}, not "
                                           f"{cfg.lr_schedule}", place, details=said,
                                   hint=f"resume with --lr-schedule {schedule}, or start a new run without --resume"))
    done = checkpoint_epochs(folder / LAST)
    if cfg.epochs < done:
        place, said = cfg.setting_place("epochs")
        raise SpecError(Diagnostic("E708", f"--resume: {folder / LAST} holds {done} epochs; epochs is {cfg.epochs}",
                                   place, details=said,
                                   hint=f"give --epochs {done} or more to continue it (epochs counts from the "
                                        "run's start, not from the resume)"))
    return RunPlan(folder, "resume", epochs_done=done, previous=previous)


def check_resumable(last: Path, module) -> None:
    """A checkpoint of another model (other spec or params) is an error, not a traceback."""
    import torch

    try:
        saved = torch.load(last, map_location="cpu", weights_only=True, mmap=True).get("state_dict", {})
    except Exception as e:
        raise SpecError(Diagnostic("E708", f"--resume: cannot read {last} ({type(e).__name__})")) from None
    own = module.state_dict()
    name = lambda k: k.removeprefix("model.")  # noqa: E731  (the LightningModule's prefix)
    wrong = [f"{name(k)}: {list(v.shape)} here, {list(saved[k].shape)} in the checkpoint" for k, v in own.items()
             if k in saved and saved[k].shape != v.shape]
    missing, extra = [k for k in own if k not in saved], [k for k in saved if k not in own]
    if wrong or missing or extra:
        details = wrong[:3] + ([f"not in the checkpoint: {', '.join(map(name, missing[:5]))}"] if missing else []) + (
            [f"not in this model: {', '.join(map(name, extra[:5]))}"] if extra else [])
        raise SpecError(Diagnostic("E708", f"--resume: {last} is not a checkpoint of this model", details=tuple(details),
                                   hint="resume with the spec and params it was trained with, or drop --resume"))


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run: where it stopped, and what the run folder holds."""

    def __init__(self, run_dir, epoch: int, epochs: int, saved: int, fitted: bool = False):
        self.run_dir, self.epoch, self.epochs, self.saved, self.fitted = run_dir, epoch, epochs, saved, fitted
        super().__init__(self.describe())

    def describe(self) -> str:
        if self.fitted:
            return f"interrupted after training, during the test evaluation; the checkpoints in {self.run_dir} are complete"
        kept = (f"epochs 1-{self.saved} are saved in {self.run_dir}" if self.saved > 1 else
                f"epoch 1 is saved in {self.run_dir}" if self.saved == 1 else "no epoch was saved")
        return f"interrupted at epoch {self.epoch} of {self.epochs}; {kept}"


__all__ = ["RunPlan", "plan_run", "check_writable", "next_free", "OWNED", "RUN_DIR_ENV", "checkpoint_epochs", "check_resumable",
           "TrainingInterrupted"]
