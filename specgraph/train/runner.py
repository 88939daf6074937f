"""``specgraph train`` / ``specgraph.train(...)``: spec + data + settings -> a Lightning run.

The run folder (``--out``, default ``runs/<spec name>``; see rundir.py for how it is chosen)
holds::

    config.yaml              the resolved settings (data_options: every option the loader used), the spec,
                             its params, the data, the thread count used
    checkpoints/last.ckpt    the latest epoch (every epoch); best.ckpt: the best validation check (``monitor``)
    logs/version_N/          Lightning's CSV logs (one version per start or resume)
    metrics.csv              one row per epoch: train_* and val_* metrics
    curves.png               loss and the headline metric per epoch, train and val
    model.pt                 the best weights as a plain state_dict (spec names)

Everything that can be wrong is found before the folder is made: the spec, the settings, the
data (every image decoded), the fit of the two, the folder's writability, the trainer (Lightning
refuses a GPU that is not there) and, for ``--resume``, the checkpoint. Training ends after
``epochs`` or, with ``early_stop: P``, after P validation checks without improvement; either way
the best checkpoint's weights are loaded back before the test split is evaluated and before the
model is returned. A non-finite step ends it with E711 (guards.py), Ctrl-C with
:class:`TrainingInterrupted`; the folder then holds the epochs finished.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .. import api
from ..diagnostics import Diagnostic, SpecError
from .config import TrainConfig, config_yaml, resolve_config
from .datasets import DataBundle, DataError, load_dataset
from .fit import check_fit, data_params
from .guards import NonFiniteStep
from .optim import check_sparse_gradients
from .rundir import RUN_DIR_ENV, RunPlan, TrainingInterrupted, check_resumable, checkpoint_epochs, plan_run
from .runlog import RunLog, interactive, rank
from .tasks import make_task
from .transfer import Frozen, LoadReport, freeze, load_partial


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
    threads: Optional[int] = None  # torch's CPU threads during the run (None: chosen by Lightning, DDP)
    skipped_steps: int = 0  # nan_policy: skip


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
    callbacks. Raises SpecError for any problem with the spec, the settings or the data (before
    anything is written), and :class:`TrainingInterrupted` on Ctrl-C.
    """
    loaded = api.load(spec)
    cfg = resolve_config(loaded.doc.train, loaded.source, config, {**settings, "data": data})
    if not cfg.data:
        raise SpecError(Diagnostic("E202", "no dataset given", hint="pass --data NAME or set `train: {data: NAME}`"))
    log = RunLog(cfg.quiet)
    user_params = dict(params or {})
    graph = api.check(loaded, **user_params)
    run = plan_run(cfg, loaded.name, rank())  # before the data, which may take minutes to check
    predictions = {o.name: o.value.type for o in graph.outputs if not o.train_only} or {
        o.name: o.value.type for o in graph.outputs}
    bundle = load_dataset(cfg.data, graph.inputs, cfg.seed, predictions, cfg.data_options, cfg.option_places,
                          progress=cfg.progress and not cfg.quiet and interactive() and rank() == 0)
    implied = data_params(loaded, graph, bundle, user_params)
    if implied:
        log.say("from the data: " + ", ".join(f"{k} = {v}" for k, v in implied.items()))
        graph = api.check(loaded, **user_params, **implied)
    task = make_task(bundle.task, bundle.num_classes, bundle.vocab, bundle.meta)
    plan = check_fit(graph, bundle, task, user_params)
    for note in bundle.adapted:
        log.say(f"data adapted to the spec: {note}")
    import torch  # only now: everything above runs without it (but reading a checkpoint to resume)

    threads = torch.get_num_threads()
    try:
        return _fit(loaded, graph, bundle, task, plan, cfg, {**user_params, **implied}, callbacks or [], run, log)
    finally:
        torch.set_num_threads(threads)


def _loaders(bundle: DataBundle, cfg: TrainConfig, train_set):
    from torch.utils.data import DataLoader

    from .module import EpochBatches, EpochSampler

    import torch

    # Each loader draws its workers' base seed from its own generator, not the global one, so
    # the global stream that module.py reseeds each epoch (dropout, augmentation with
    # workers: 0) is consumed the same way in a resumed run and an uninterrupted one.
    common = dict(batch_size=cfg.batch_size, num_workers=cfg.workers, collate_fn=bundle.collate,
                  persistent_workers=cfg.workers > 0, generator=torch.Generator().manual_seed(cfg.seed))
    shuffle = EpochSampler(len(train_set), cfg.seed)
    # a dataset that gathers a batch whole gets its indices as a tensor (in this process: a worker's would
    # come through shared memory, dearer than a list)
    if callable(getattr(train_set, "__getitems__", None)) and cfg.workers == 0:
        batches = EpochBatches(shuffle, cfg.batch_size, drop_last=False)
        train_dl = DataLoader(train_set, batch_sampler=batches, **{k: v for k, v in common.items() if k != "batch_size"})
    else:
        train_dl = DataLoader(train_set, sampler=shuffle, drop_last=False, **common)
    val_dl = DataLoader(bundle.val, shuffle=False, **common) if bundle.val is not None and len(bundle.val) else None
    test_dl = DataLoader(bundle.test, shuffle=False, **common) if bundle.test is not None and len(bundle.test) else None
    return train_dl, val_dl, test_dl


def _trainer(cfg: TrainConfig, run: RunPlan, monitor: str, metrics: tuple, extra: list, n_batches: int,
             unread_outputs: bool):
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping
    from lightning.pytorch.loggers import CSVLogger

    from .checkpoints import AtomicCheckpointIO, run_checkpoints
    from .lean import NoProfiler, StateKeyOnce, skip_idle_step_hooks
    from .guards import InterruptWatch, NonFiniteGuard
    from .runlog import EpochLines, progress_bar

    best, last = run_checkpoints(run.path / "checkpoints", monitor, cfg.monitor_mode)
    guard = NonFiniteGuard(cfg.nan_policy, check_gradients=cfg.precision != "16-mixed") \
        if cfg.nan_policy != "ignore" else None
    watch = InterruptWatch()
    lines = EpochLines(RunLog(cfg.quiet), metrics, monitor, cfg.monitor_mode, best, guard)
    callbacks = list(extra) + [c for c in (guard, watch, lines) if c is not None] + [best, last]
    stopper = None
    if cfg.early_stop:
        class Stopper(StateKeyOnce, EarlyStopping):
            key_class = "EarlyStopping"

        stopper = Stopper(monitor=monitor, mode=cfg.monitor_mode, patience=cfg.early_stop)
        callbacks.append(stopper)
    for ours in (guard, watch, lines, stopper):  # the checkpoints skip theirs themselves (checkpoints.py)
        if ours is not None:
            skip_idle_step_hooks(ours, L.Callback)
    bar = progress_bar(cfg.progress and not cfg.quiet)
    if bar is not None:
        callbacks.append(bar)
    limits = {k: v for k, v in (("limit_train_batches", cfg.limit_train_batches),
                                ("limit_val_batches", cfg.limit_val_batches)) if v is not None}
    # DDP must be told when some parameters get no gradient: those of outputs the loss never reads
    strategy = "ddp_find_unused_parameters_true" if cfg.strategy == "ddp" and unread_outputs else cfg.strategy
    try:
        trainer = L.Trainer(max_epochs=cfg.epochs, accelerator=cfg.accelerator, devices=cfg.devices,
                            num_nodes=cfg.num_nodes, strategy=strategy, precision=cfg.precision,
                            callbacks=callbacks, default_root_dir=run.path,  # grad_clip: the module clips
                            logger=CSVLogger(run.path, name="logs"), enable_progress_bar=bar is not None,
                            enable_model_summary=False, num_sanity_val_steps=0, plugins=[AtomicCheckpointIO()],
                            profiler=NoProfiler(),
                            log_every_n_steps=max(1, min(50, n_batches)), **limits)
    except Exception as e:  # Lightning refuses a combination (16-mixed on CPU, no GPU, too many devices)
        raise SpecError(Diagnostic("E705", f"training settings refused: {e}".splitlines()[0],
                                   hint="check --accelerator, --devices, --strategy and --precision")) from None
    return trainer, best, stopper, guard, watch, lines


def _threads(cfg: TrainConfig, run: RunPlan, trainer, module, bundle: DataBundle,
             log: RunLog) -> tuple[Optional[int], Optional[str]]:
    """Set torch's thread count for the run: (the count, a line saying why) — see threads.py."""
    import torch
    from lightning.pytorch.accelerators import CPUAccelerator

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
        return cfg.threads, None
    if not isinstance(trainer.accelerator, CPUAccelerator) or trainer.world_size > 1 or rank() != 0:
        return None, None  # a GPU run, or DDP processes, whose threads Lightning sets
    used = run.previous.get("threads_used") if run.mode == "resume" else None
    if isinstance(used, int) and used >= 1:
        torch.set_num_threads(used)
        return used, f"threads: {used}, as the run used (give --threads to change it)"
    from torch.utils.data import DataLoader

    from . import threads as threads_module

    loader = DataLoader(bundle.train, batch_size=cfg.batch_size, collate_fn=bundle.collate,
                        generator=torch.Generator().manual_seed(cfg.seed))
    choice = threads_module.choose_threads(module, next(iter(loader)), torch.get_num_threads())
    torch.set_num_threads(choice.threads)
    if choice.threads > 1 and threads_module.CHOSEN == threads_module.SPIN:  # spinning threads: watch the machine
        trainer.callbacks.append(threads_module.busy_machine_callback(log.say))
    return choice.threads, choice.describe()


def _fit(loaded, graph, bundle, task, plan, cfg: TrainConfig, params: dict, extra_callbacks: list, run: RunPlan,
         log: RunLog) -> TrainResult:
    import lightning as L

    from ..torch.build import build_module
    from .augment import augment_dataset
    from .module import SpecModule

    _quiet_lightning()
    L.seed_everything(cfg.seed, verbose=False)
    model = build_module(graph)
    report = load_partial(model, cfg.init_from) if cfg.init_from else None
    frozen = freeze(model, cfg.freeze)
    check_sparse_gradients(model, cfg)
    train_set = augment_dataset(bundle.train, cfg.augment, bundle.task, bundle.meta)
    train_dl, val_dl, test_dl = _loaders(bundle, cfg, train_set)
    word_vectors = _word_vectors(graph, bundle)
    if word_vectors is not None and val_dl is not None:
        from .wordvecs import AnalogyMetric

        extra_callbacks = [*extra_callbacks, AnalogyMetric(word_vectors)]
    monitor = cfg.monitor if val_dl is not None or not cfg.monitor.startswith("val_") else "train_loss"
    module = SpecModule(model, task, plan, cfg, frozen)
    if run.last is not None:
        check_resumable(run.last, module)
    trainer, best, stopper, guard, watch, lines = _trainer(cfg, run, monitor, tuple(task.metrics), extra_callbacks,
                                                           len(train_dl), bool(plan.unread))
    threads, threads_note = _threads(cfg, run, trainer, module, bundle, log)
    module.epoch_report = lines.report

    # everything is checked: only now is the run folder made (or replaced)
    spec_ref = str(loaded.source.path) if loaded.source.path else loaded.name
    run.create(rank(), config_yaml(cfg, {"data_options": bundle.options, "spec": spec_ref, "params": params,
                                         "task": bundle.task, "monitor": monitor, "threads_used": threads}))
    if rank() == 0:
        os.environ[RUN_DIR_ENV] = str(run.path)  # DDP's other processes write here too
    _banner(log, loaded.name, model, bundle, run, cfg, report, frozen, threads_note)
    result = TrainResult(model=model, run_dir=run.path, config=cfg, load_report=report, frozen=frozen, data=bundle,
                         threads=threads, last_checkpoint=run.path / "checkpoints" / "last.ckpt")
    try:
        trainer.fit(module, train_dataloaders=train_dl, val_dataloaders=val_dl,
                    ckpt_path=str(run.last) if run.last else None)
    except SystemExit:  # how Lightning ends a run on Ctrl-C
        if watch.epoch is None:
            raise
        _restore_sigint()
        raise TrainingInterrupted(run.path, watch.epoch, cfg.epochs, _saved_epochs(run.path)) from None
    except NonFiniteStep as e:
        _finish(result, trainer, module, best, stopper, None, None, task, loaded.name, log, diverged=True)
        raise _diverged(e, cfg, result) from None
    except DataError as e:  # a file changed on disk since it was checked
        raise SpecError(Diagnostic(e.code, f"dataset '{cfg.data}': {e.message}", hint=e.hint)) from None
    finally:
        if rank() == 0:
            os.environ.pop(RUN_DIR_ENV, None)
    result.skipped_steps = guard.skipped_total if guard is not None else 0
    try:
        return _finish(result, trainer, module, best, stopper, test_dl, word_vectors, task, loaded.name, log)
    except SystemExit:
        if watch.epoch is None:
            raise
        _restore_sigint()
        raise TrainingInterrupted(run.path, watch.epoch, cfg.epochs, _saved_epochs(run.path), fitted=True) from None


def _restore_sigint() -> None:
    import signal

    signal.signal(signal.SIGINT, signal.default_int_handler)  # Lightning left Ctrl-C ignored


def _saved_epochs(run_dir: Path) -> int:
    last = run_dir / "checkpoints" / "last.ckpt"
    try:
        return checkpoint_epochs(last) if last.is_file() else 0
    except SpecError:
        return 0


def _banner(log: RunLog, name: str, model, bundle: DataBundle, run: RunPlan, cfg: TrainConfig, report, frozen,
            threads_note: Optional[str]) -> None:
    if report:
        log.say(report.format())
    if frozen.params:
        log.say(f"frozen: {len(frozen.params)} parameter tensors, {len(frozen.eval_modules)} batch-norm modules in "
                "eval mode")
    if threads_note:
        log.say(threads_note)
    if run.note:
        log.say(run.note)
    n_params = sum(p.numel() for p in model.parameters())
    val = len(bundle.val) if bundle.val is not None else 0
    log.say(f"training {name} ({n_params:,} parameters) on {bundle.name}: {bundle.task}, {len(bundle.train):,} train / "
            f"{val:,} val examples -> {run.path}")
    if run.mode == "resume":
        done = run.epochs_done
        log.say(f"resuming run {run.path} at epoch {done + 1} of {cfg.epochs}" if done < cfg.epochs else
                f"run {run.path} has all its {cfg.epochs} epochs already: nothing to train (--epochs sets more)")


def _diverged(e: NonFiniteStep, cfg: TrainConfig, r: TrainResult) -> SpecError:
    kept = (f"best.ckpt holds epoch {r.best_epoch}, the best finite one; model.pt has its weights"
            if r.best_epoch else "no epoch had finished: nothing was saved")
    return SpecError(Diagnostic(
        "E711", f"training stopped: {e}", details=(kept, f"run folder: {r.run_dir}"),
        hint=f"lower the learning rate (--lr {cfg.lr:g} now), clip the gradients (--grad-clip 1.0), or drop such "
             "steps and train on (--nan-policy skip)"))


def _finish(result: TrainResult, trainer, module, best, stopper, test_dl, word_vectors, task, name: str,
            log: RunLog, diverged: bool = False) -> TrainResult:
    """The best weights back in the model, the test split, metrics.csv, curves.png, model.pt (after a
    diverged step only from a best checkpoint: never the weights the bad step was about to move)."""
    import torch

    from .curves import epoch_metrics, plot_curves, write_metrics

    model, run_dir = module.model, result.run_dir
    result.epochs, result.stopped_early = trainer.current_epoch, bool(stopper and stopper.stopped_epoch > 0)
    best_path = best.best_model_path
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
        log.say(format_evaluation(result.evaluation))
    if trainer.is_global_zero:
        rows = epoch_metrics(run_dir / "logs")
        result.history = rows
        result.best = next((r for r in rows if r["epoch"] == result.best_epoch), {})
        write_metrics(rows, run_dir / "metrics.csv")
        plot_curves(rows, run_dir / "curves.png", task.metrics[0] if task.metrics else None, name)
        if not diverged or result.best_checkpoint is not None:
            torch.save(model.state_dict(), run_dir / "model.pt")
        if not diverged:
            log.say(_report_line(result, task))
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
