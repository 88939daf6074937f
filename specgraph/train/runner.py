"""``specgraph train`` / ``specgraph.train(...)``: spec + data + settings -> a Lightning run.

The run folder (``--out``, default ``runs/<spec name>``) holds::

    config.yaml              the resolved settings (data_options: every option the loader used), the spec,
                             its params, the data
    checkpoints/best.ckpt    the best validation check (``monitor``), and last.ckpt
    logs/version_N/          Lightning's CSV logs (one version per start or resume)
    metrics.csv              one row per epoch: train_* and val_* metrics
    curves.png               loss and the headline metric per epoch, train and val
    model.pt                 the best weights as a plain state_dict (spec names)

Training ends after ``epochs`` or, with ``early_stop: P``, after P validation checks without
improvement; either way the best checkpoint's weights are loaded back before the test split
is evaluated and before the model is returned.
"""

from __future__ import annotations

import logging
import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .. import api
from ..diagnostics import Diagnostic, SpecError
from .config import TrainConfig, config_yaml, resolve_config
from .datasets import DataBundle, load_dataset
from .fit import check_fit, data_params
from .tasks import make_task
from .transfer import Frozen, LoadReport, freeze, load_partial

OWNED = ("checkpoints", "logs", "metrics.csv", "curves.png", "model.pt", "config.yaml")


@dataclass
class TrainResult:
    """What a run gives back; ``model`` holds the best weights, in eval mode."""

    model: Any
    run_dir: Path
    config: TrainConfig
    test: dict[str, float] = field(default_factory=dict)
    best: dict[str, float] = field(default_factory=dict)  # the epoch row of the best checkpoint
    best_epoch: Optional[int] = None  # 1-based
    epochs: int = 0  # epochs completed
    stopped_early: bool = False
    best_checkpoint: Optional[Path] = None
    last_checkpoint: Optional[Path] = None
    history: list[dict[str, float]] = field(default_factory=list)
    load_report: Optional[LoadReport] = None
    frozen: Optional[Frozen] = None
    data: Optional[DataBundle] = None
    evaluation: dict[str, Any] = field(default_factory=dict)  # word2vec: neighbours, analogy accuracy


def _rank() -> int:
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return int(getattr(rank_zero_only, "rank", 0) or 0)


def _say(text: str) -> None:
    if _rank() == 0:
        print(text, flush=True)


def _quiet_lightning() -> None:
    """Lightning's tips and environment banners would bury the run's own report."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                 "lightning.pytorch.accelerators.cuda"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for pattern in (".*does not have many workers.*", ".*Checkpoint directory .* exists and is not empty.*",
                    ".*is smaller than the logging interval.*", ".*Experiment logs directory .*",
                    ".*GPU available but not used.*", ".*LightningModule.*hyperparameters.*",
                    ".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*",
                    ".*when logging on epoch level in distributed setting.*",  # torchmetrics has reduced them
                    ".*Using `DistributedSampler` with the dataloaders. During `trainer.test\\(\\)`.*"):
        warnings.filterwarnings("ignore", pattern)


def train(spec, data: Optional[str] = None, *, config: Optional[str | os.PathLike] = None,
          params: Optional[dict[str, Any]] = None, callbacks: Optional[list] = None, **settings: Any) -> TrainResult:
    """Train ``spec`` on ``data``; settings as keywords (``epochs=2, lr=1e-3, freeze=["c1.*"]``).

    Precedence: the spec's ``train:`` section < the ``config`` YAML file < the keywords.
    ``params`` overrides spec params (like ``--set``); ``callbacks`` are extra Lightning
    callbacks. Raises SpecError for any problem with the spec, the settings or the data.
    """
    loaded = api.load(spec)
    cfg = resolve_config(loaded.doc.train, loaded.source, config, {**settings, "data": data})
    if not cfg.data:
        raise SpecError(Diagnostic("E202", "no dataset given", hint="pass --data NAME or set `train: {data: NAME}`"))
    user_params = dict(params or {})
    graph = api.check(loaded, **user_params)
    predictions = {o.name: o.value.type for o in graph.outputs if not o.train_only} or {
        o.name: o.value.type for o in graph.outputs}
    bundle = load_dataset(cfg.data, graph.inputs, cfg.seed, predictions, cfg.data_options, cfg.option_places)
    implied = data_params(loaded, graph, bundle, user_params)
    if implied:
        _say("from the data: " + ", ".join(f"{k} = {v}" for k, v in implied.items()))
        graph = api.check(loaded, **user_params, **implied)
    task = make_task(bundle.task, bundle.num_classes, bundle.vocab, bundle.meta)
    plan = check_fit(graph, bundle, task, user_params)
    import torch  # only now: everything above runs without it

    threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _fit(loaded, graph, bundle, task, plan, cfg, {**user_params, **implied}, callbacks or [])
    finally:
        torch.set_num_threads(threads)


def _prepare_run_dir(run_dir: Path, resume: bool) -> Optional[Path]:
    last = run_dir / "checkpoints" / "last.ckpt"
    if resume:
        if not last.is_file():
            raise SpecError(Diagnostic("E708", f"--resume: no checkpoint to continue from ({last} not found)",
                                       hint="start without --resume, or give the run's folder with --out"))
        return last
    if _rank() == 0:
        for name in OWNED:
            target = run_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    return None


def _check_resumable(last: Path, module) -> None:
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


def _loaders(bundle: DataBundle, cfg: TrainConfig, train_set):
    from torch.utils.data import DataLoader

    from .module import EpochSampler

    import torch

    # Each loader draws its workers' base seed from its own generator, not the global one, so
    # the global stream that module.py reseeds each epoch (dropout, augmentation with
    # workers: 0) is consumed the same way in a resumed run and an uninterrupted one.
    common = dict(batch_size=cfg.batch_size, num_workers=cfg.workers, collate_fn=bundle.collate,
                  persistent_workers=cfg.workers > 0, generator=torch.Generator().manual_seed(cfg.seed))
    train_dl = DataLoader(train_set, sampler=EpochSampler(len(train_set), cfg.seed), drop_last=False, **common)
    val_dl = DataLoader(bundle.val, shuffle=False, **common) if bundle.val is not None and len(bundle.val) else None
    test_dl = DataLoader(bundle.test, shuffle=False, **common) if bundle.test is not None and len(bundle.test) else None
    return train_dl, val_dl, test_dl


def _trainer(cfg: TrainConfig, run_dir: Path, monitor: str, extra: list, n_batches: int, unread_outputs: bool):
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, RichProgressBar
    from lightning.pytorch.loggers import CSVLogger

    checkpoint = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="best", monitor=monitor,
                                 mode=cfg.monitor_mode, save_top_k=1, save_last=True, auto_insert_metric_name=False)
    callbacks = list(extra) + [checkpoint]
    stopper = None
    if cfg.early_stop:
        stopper = EarlyStopping(monitor=monitor, mode=cfg.monitor_mode, patience=cfg.early_stop)
        callbacks.append(stopper)
    if cfg.progress:
        class ProgressBar(RichProgressBar):
            def get_metrics(self, trainer, pl_module):  # no logger version number among the metrics
                metrics = super().get_metrics(trainer, pl_module)
                metrics.pop("v_num", None)
                return metrics

            def _get_train_description(self, current_epoch: int) -> str:  # "Epoch 1/2", not "Epoch 0/1"
                return f"Epoch {current_epoch + 1}/{self.trainer.max_epochs}"

        callbacks.append(ProgressBar())
    limits = {k: v for k, v in (("limit_train_batches", cfg.limit_train_batches),
                                ("limit_val_batches", cfg.limit_val_batches)) if v is not None}
    # DDP must be told when some parameters get no gradient: those of outputs the loss never reads
    strategy = "ddp_find_unused_parameters_true" if cfg.strategy == "ddp" and unread_outputs else cfg.strategy
    try:
        trainer = L.Trainer(max_epochs=cfg.epochs, accelerator=cfg.accelerator, devices=cfg.devices,
                            num_nodes=cfg.num_nodes, strategy=strategy, precision=cfg.precision,
                            gradient_clip_val=cfg.grad_clip, callbacks=callbacks, default_root_dir=run_dir,
                            logger=CSVLogger(run_dir, name="logs"), enable_progress_bar=cfg.progress,
                            enable_model_summary=False, num_sanity_val_steps=0,
                            log_every_n_steps=max(1, min(50, n_batches)), **limits)
    except Exception as e:  # Lightning refuses a combination (16-mixed on CPU, no GPU, too many devices)
        raise SpecError(Diagnostic("E705", f"training settings refused: {e}".splitlines()[0],
                                   hint="check --accelerator, --devices, --strategy and --precision")) from None
    return trainer, checkpoint, stopper


def _fit(loaded, graph, bundle, task, plan, cfg: TrainConfig, params: dict, extra_callbacks: list) -> TrainResult:
    import lightning as L
    import torch

    from ..torch.build import build_module
    from .augment import augment_dataset
    from .curves import epoch_metrics, plot_curves, write_metrics
    from .module import SpecModule

    _quiet_lightning()
    run_dir = cfg.run_dir(loaded.name)
    last = _prepare_run_dir(run_dir, cfg.resume)
    L.seed_everything(cfg.seed, verbose=False)
    model = build_module(graph)
    report = load_partial(model, cfg.init_from) if cfg.init_from else None
    if report:
        _say(report.format())
    frozen = freeze(model, cfg.freeze)
    if frozen.params:
        _say(f"frozen: {len(frozen.params)} parameter tensors, {len(frozen.eval_modules)} batch-norm modules in eval mode")
    train_set = augment_dataset(bundle.train, cfg.augment, bundle.task, bundle.meta)
    train_dl, val_dl, test_dl = _loaders(bundle, cfg, train_set)
    word_vectors = _word_vectors(graph, bundle)
    if word_vectors is not None and val_dl is not None:
        from .wordvecs import AnalogyMetric

        extra_callbacks = [*extra_callbacks, AnalogyMetric(word_vectors)]
    monitor = cfg.monitor if val_dl is not None or not cfg.monitor.startswith("val_") else "train_loss"
    trainer, checkpoint, stopper = _trainer(cfg, run_dir, monitor, extra_callbacks, len(train_dl), bool(plan.unread))
    module = SpecModule(model, task, plan, cfg, frozen)
    if last is not None:
        _check_resumable(last, module)
    if _rank() == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        spec_ref = str(loaded.source.path) if loaded.source.path else loaded.name
        (run_dir / "config.yaml").write_text(config_yaml(cfg, {"data_options": bundle.options, "spec": spec_ref,
                                                               "params": params, "task": bundle.task,
                                                               "monitor": monitor}))
    n_params = sum(p.numel() for p in model.parameters())
    _say(f"training {loaded.name} ({n_params:,} parameters) on {bundle.name}: {bundle.task}, "
         f"{len(bundle.train):,} train / {len(bundle.val) if bundle.val is not None else 0:,} val examples -> {run_dir}")
    trainer.fit(module, train_dataloaders=train_dl, val_dataloaders=val_dl, ckpt_path=str(last) if last else None)

    result = TrainResult(model=model, run_dir=run_dir, config=cfg, load_report=report, frozen=frozen, data=bundle,
                         epochs=trainer.current_epoch, stopped_early=bool(stopper and stopper.stopped_epoch > 0),
                         last_checkpoint=run_dir / "checkpoints" / "last.ckpt")
    best_path = checkpoint.best_model_path
    if best_path and Path(best_path).is_file():  # restore the best weights
        state = torch.load(best_path, map_location="cpu", weights_only=True)
        module.load_state_dict(state["state_dict"])
        result.best_checkpoint, result.best_epoch = Path(best_path), int(state.get("epoch", -1)) + 1
    if test_dl is not None:
        out = trainer.test(module, dataloaders=test_dl, verbose=False)
        result.test = {k.removeprefix("test_"): float(v) for k, v in (out[0] if out else {}).items()}
    model.eval()
    if word_vectors is not None:
        from .wordvecs import format_evaluation

        result.evaluation = word_vectors.evaluate(model)
        _say(format_evaluation(result.evaluation))
    if trainer.is_global_zero:
        rows = epoch_metrics(run_dir / "logs")
        result.history = rows
        result.best = next((r for r in rows if r["epoch"] == result.best_epoch), {})
        write_metrics(rows, run_dir / "metrics.csv")
        plot_curves(rows, run_dir / "curves.png", task.metrics[0] if task.metrics else None, loaded.name)
        torch.save(model.state_dict(), run_dir / "model.pt")
        _say(_report_line(result, task))
    return result


def _word_vectors(graph, bundle: DataBundle):
    """The word-vector evaluation of a word2vec run (None for other tasks, or no input embedding)."""
    if bundle.task != "word2vec" or "words" not in bundle.meta:
        return None
    from .wordvecs import WordVectors, embedding_parameter

    parameter = embedding_parameter(graph)
    return WordVectors(bundle, parameter) if parameter else None


def _report_line(r: TrainResult, task) -> str:
    parts = [f"{r.epochs} epoch{'s' if r.epochs != 1 else ''}" + (" (stopped early)" if r.stopped_early else "")]
    if r.best_epoch:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in r.best.items() if k.startswith("val_"))
        parts.append(f"best epoch {r.best_epoch}" + (f": {shown}" if shown else ""))
    if r.test:
        parts.append("test: " + ", ".join(f"{k} {v:.4f}" for k, v in r.test.items()))
    return "; ".join(parts) + f"\nrun folder: {r.run_dir}"
