"""Training: ``specgraph train SPEC --data NAME`` and ``specgraph.train(spec, data, ...)``.

One module per concern: ``config`` (the settings and their precedence), ``datasets/`` (the
registry, ``register_dataset``, and one module per source, reading its raw data and making its
bundle: ``images`` (fashion-mnist, digits, imagefolder), ``series`` (sunspots, co2, csv),
``corpus`` (lee, text: word2vec or a char LM), ``nuclei`` (nuclei, segfolder)), ``wordvecs``
(neighbours and analogies of word2vec runs), ``tasks`` (losses, and the epoch metrics as
torchmetrics collections; ``metrics``: the two torchmetrics has not), ``fit`` (does the spec
fit the data), ``augment`` (transforms.v2), ``transfer`` (``--init-from``, ``--freeze``),
``module`` (the LightningModule), ``curves`` (metrics.csv and curves.png), ``rundir`` (which
folder a run writes, chosen and checked before anything is written), ``checkpoints`` (atomic,
last every epoch, best on improvement), ``guards`` (non-finite steps, Ctrl-C), ``threads`` (how
many CPU threads, and why torch's default was slow), ``runlog`` (what a run prints) and
``runner`` (the Trainer and the order of it all).

Importing this package imports neither torch nor Lightning; a run imports them when it starts.
"""

from .config import TrainConfig, resolve_config
from .datasets import DataBundle, DataError, DataRequest, datasets, load_dataset, register_dataset

_LAZY = {"TASKS": "tasks", "Task": "tasks", "make_task": "tasks", "negative_sampling_loss": "tasks",
         "TrainResult": "runner"}


def train(spec, data=None, **kwargs):
    """Train a spec on a dataset; see :func:`specgraph.train.runner.train`."""
    from .threads import choose_wait_policy

    # before the runner imports torch: OpenMP reads it once (threads.py). Workers that only a
    # spec's `train:` section asks for are not known yet; the thread measurement and the busy
    # machine watch still see what they cost.
    choose_wait_policy(workers=kwargs.get("workers") or 0)
    from .runner import train as run

    return run(spec, data, **kwargs)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["train", "TrainConfig", "resolve_config", "DataBundle", "DataError", "DataRequest", "datasets",
           "load_dataset", "register_dataset", "TASKS", "Task", "make_task", "negative_sampling_loss", "TrainResult"]
