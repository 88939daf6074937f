"""The dataset registry: ``--data NAME`` or ``--data NAME:ARG`` -> a :class:`DataBundle`.

Adding a dataset (this is how every built-in one is written; nothing downloads at run time)::

    from specgraph.train.datasets import DataBundle, DataError, DataRequest, register_dataset

    @register_dataset("sunspots", help="yearly sunspot numbers, windowed for forecasting")
    def load_sunspots(req: DataRequest) -> DataBundle:
        ...                                   # req.arg: the text after "sunspots:" (or None)
        return DataBundle(train=..., val=..., test=..., task="regression")

A loader receives a :class:`DataRequest` — ``arg`` (the part after the colon, e.g. a path),
``inputs`` (the spec's inputs, name -> TensorType, so images can be resized to the spec's
H×W), ``outputs`` (the spec's outputs that are not training-only, the prediction first, so a
text loader can tell a language model [N, T, vocab] from word2vec), ``seed`` — and returns a
:class:`DataBundle`:

* ``train``, ``val``, ``test``: ``torch.utils.data.Dataset``s (``test`` may be None) whose
  items are ``(inputs, target)``: ``inputs`` one tensor for a one-input spec, else a tuple in
  the spec's input order; ``target`` a tensor (any placeholder where the task needs none);
* ``task``: one of :data:`specgraph.train.tasks.TASKS` — "classification" (target: class id),
  "segmentation" (target: [H, W] class ids), "regression" (target: the output's per-sample
  shape), "language_model" (target: [T] next-token ids), "word2vec" (negative sampling:
  target unused, column 0 of the scores is the true word; full softmax: target a word id);
* ``num_classes`` (classification, segmentation) and ``vocab`` (language models, word2vec);
* ``spec_params``: params the data implies (``{"num_classes": 10}``, ``{"vocab": 812}``):
  applied to the spec when it declares them and the user did not set them;
* ``meta``: anything else worth keeping (class names, the vocabulary's words, ...);
* ``collate``: a DataLoader collate_fn when the default stacking does not fit.

A loader reports a problem with its data (a missing file, a malformed one) by raising
:class:`DataError`; it becomes a located, compiler-style error (E702) and exit code 1.
Splits are the loader's to document and must be fixed by ``req.seed`` (default 0).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ..dims import TensorType
from ..errors import Diagnostic, SpecError, did_you_mean

Loader = Callable[["DataRequest"], "DataBundle"]


@dataclass(frozen=True)
class DataRequest:
    """What a loader is asked for: ``name[:arg]``, the spec's inputs, and the split seed."""

    name: str
    arg: Optional[str] = None
    inputs: dict[str, TensorType] = field(default_factory=dict)
    seed: int = 0
    outputs: dict[str, TensorType] = field(default_factory=dict)

    def image_size(self, default: tuple[int, int]) -> tuple[int, int]:
        """(H, W) of the spec's first input when it is [N, C, H, W] with integer H and W."""
        first = next(iter(self.inputs.values()), None)
        if first is not None and first.rank == 4 and all(isinstance(d, int) for d in first.shape[2:]):
            return int(first.shape[2]), int(first.shape[3])
        return default

    def channels(self, default: int) -> int:
        first = next(iter(self.inputs.values()), None)
        if first is not None and first.rank == 4 and isinstance(first.shape[1], int):
            return int(first.shape[1])
        return default


@dataclass
class DataBundle:
    """A dataset made ready for one task (see the module docstring)."""

    train: Any
    val: Any
    test: Any
    task: str
    num_classes: Optional[int] = None
    vocab: Optional[int] = None
    spec_params: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    collate: Optional[Callable] = None
    name: str = ""


class DataError(Exception):
    """A dataset cannot be read or does not make sense; becomes error E702 (or ``code``)."""

    def __init__(self, message: str, hint: Optional[str] = None, code: str = "E702"):
        super().__init__(message)
        self.message, self.hint, self.code = message, hint, code


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    loader: Loader
    help: str = ""


_REGISTRY: dict[str, DatasetEntry] = {}

# Modules whose import registers datasets; a module that is absent (not written yet, or an
# optional dependency missing) is skipped, and its names are simply unknown.
BUILTIN_MODULES = ("specgraph.train.images", "specgraph.train.forecasting", "specgraph.train.corpora",
                   "specgraph.train.crops")
_BROKEN: dict[str, str] = {}  # module -> why its import failed (shown with an unknown name)


def register_dataset(name: str, *, help: str = "") -> Callable[[Loader], Loader]:
    """Decorator: make ``loader`` answer ``--data name`` (and ``--data name:ARG``)."""

    def deco(loader: Loader) -> Loader:
        _REGISTRY[name] = DatasetEntry(name, loader, help or (loader.__doc__ or "").strip().split("\n")[0])
        return loader

    return deco


def _load_builtins() -> None:
    for module in BUILTIN_MODULES:
        try:
            importlib.import_module(module)
        except ImportError as e:
            if e.name != module:  # the module exists, but something it imports does not
                _BROKEN[module] = f"{type(e).__name__}: {e}"
    try:
        from importlib.metadata import entry_points

        for ep in entry_points(group="specgraph.datasets"):
            try:
                ep.load()
            except Exception:  # a broken plug-in must not break the built-in datasets
                continue
    except Exception:
        pass


def datasets() -> dict[str, DatasetEntry]:
    """Every registered dataset, by name."""
    _load_builtins()
    return dict(_REGISTRY)


def split_name(text: str) -> tuple[str, Optional[str]]:
    """``imagefolder:/data/pets`` -> ("imagefolder", "/data/pets"); ``digits`` -> ("digits", None)."""
    name, sep, arg = text.partition(":")
    return name.strip(), (arg if sep else None)


def load_dataset(text: str, inputs: dict[str, TensorType] | None = None, seed: int = 0,
                 outputs: dict[str, TensorType] | None = None) -> DataBundle:
    """Resolve ``--data`` text to a bundle; raises SpecError (E701 unknown name, E702 bad data,
    or the code the loader's DataError carries)."""
    name, arg = split_name(text)
    known = datasets()
    entry = known.get(name)
    if entry is None:
        listed = ", ".join(sorted(known)) or "none"
        details = (f"datasets: {listed}",) + tuple(f"not loaded: {m} ({why})" for m, why in _BROKEN.items())
        raise SpecError(Diagnostic("E701", f"unknown dataset '{name}'", details=details,
                                   hint=did_you_mean(name, known)
                                   or "a folder with one subfolder of images per class is `imagefolder:PATH`"))
    try:
        bundle = entry.loader(DataRequest(name, arg, dict(inputs or {}), seed, dict(outputs or {})))
    except DataError as e:
        raise SpecError(Diagnostic(e.code, f"dataset '{text}': {e.message}", hint=e.hint)) from None
    except (OSError, ValueError) as e:  # a loader that did not wrap its own file errors
        raise SpecError(Diagnostic("E702", f"dataset '{text}': {e}")) from None
    bundle.name = bundle.name or text
    return bundle
