"""The dataset registry: ``--data NAME`` or ``--data NAME:ARG`` -> a :class:`DataBundle`.

The built-in datasets live in this package, one module per source, each holding both the
reading of its raw data and the bundle it becomes: ``images`` (fashion-mnist, digits,
imagefolder), ``series`` (sunspots, co2, csv), ``corpus`` (lee, text: a character language
model, ``corpus_lm``, or word2vec, ``corpus_word2vec``; ``text``: tokens and vocabulary;
``corpus_analogies``: the evaluation of word vectors) and ``nuclei`` (nuclei, segfolder; the
tiling in ``crops``). ``sources`` finds the files that ship inside installed packages. This
module imports no torch; a source module is imported when a dataset is first looked up.

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
* ``collate``: a DataLoader collate_fn when the default stacking does not fit;
* ``adapted``: one line per change made to fit the spec (images resized, grey made RGB), which
  the run prints: an adaptation is never silent.

A loader reports a problem with its data (a missing file, a malformed one, a value that is not
finite, an image that does not decode) by raising :class:`DataError`, before training starts; it becomes a located, compiler-style error (E702) and exit code 1.
Splits are the loader's to document and must be fixed by ``req.seed`` (default 0).

**Options.** A loader declares the options it accepts (``data_options:`` in the settings,
``--data-option KEY=VALUE`` on the command line) with their types and defaults::

    @register_dataset("my-series", options={
        "window": DataOption("int", None, "input length (default: the spec's, else 20)", min=1),
        "split": DataOption("split", (0.7, 0.15, 0.15), "train, val, test fractions")})
    def load(req):
        window = req.options["window"] or 20      # every declared option is there, defaults filled in
        ...                                       # req.given: the names the user set

An option the loader does not declare, or a value of the wrong type, is error E709 before the
loader runs. A loader that takes an option but cannot honour it here (``window`` against a
spec whose input length is fixed) raises ``DataError(..., code="E709")``. The values a loader
actually used go in ``DataBundle.options`` (saved in the run folder's config.yaml).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

from ...diagnostics import Diagnostic, Location, SpecError, did_you_mean
from ...ir.tensor_type import TensorType

Loader = Callable[["DataRequest"], "DataBundle"]


@dataclass(frozen=True)
class DataRequest:
    """What a loader is asked for: ``name[:arg]``, the spec's inputs, and the split seed."""

    name: str
    arg: Optional[str] = None
    inputs: dict[str, TensorType] = field(default_factory=dict)
    seed: int = 0
    outputs: dict[str, TensorType] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)  # every declared option: the user's value or the default
    given: frozenset = frozenset()  # the options the user set
    progress: bool = False  # a loader that takes a while (decoding every image) may show a progress bar

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
    options: dict[str, Any] = field(default_factory=dict)  # the option values used (default: the request's)
    adapted: list[str] = field(default_factory=list)  # what was changed to fit the spec ("resized 28×28 -> 32×32")


class DataError(ValueError):
    """A dataset cannot be read or does not make sense (a missing file or package, a malformed
    one, a bad argument); becomes error E702 (or ``code``) when a loader raises it."""

    def __init__(self, message: str, hint: Optional[str] = None, code: str = "E702", option: Optional[str] = None):
        super().__init__(message)
        self.message, self.hint, self.code, self.option = message, hint, code, option


def option_conflict(name: str, value: Any, fixed: Any, what: str) -> DataError:
    """E709: the user's option ``name`` disagrees with what the spec fixes (``what``)."""
    return DataError(f"option {name}={value} conflicts with the spec's {what} {fixed}", code="E709", option=name,
                     hint=f"drop the option, or change the spec's {what} (--set {name}={value} where a param "
                          f"of that name sets it; or make it symbolic)")


def option_unused(req: "DataRequest", names: tuple[str, ...], task: str) -> None:
    """E709 when the user set options in ``names`` that the chosen task does not read."""
    unused = [n for n in names if n in req.given]
    if unused:
        raise DataError(f"option {unused[0]!r} does not apply to {task}", code="E709", option=unused[0],
                        hint="drop it; see the dataset's options in docs/training.md")


OPTION_TYPES = ("int", "float", "bool", "str", "split")


@dataclass(frozen=True)
class DataOption:
    """One option a loader accepts: its type (int, float, bool, str, or split: three fractions
    train, val, test summing to 1, written ``[0.8, 0.1, 0.1]`` or ``0.8,0.1,0.1``), its default
    (None: decided by the loader, e.g. from the spec's shapes), a line of help and, for numbers,
    an inclusive lower bound."""

    type: str
    default: Any
    help: str = ""
    min: Optional[float] = None

    def __post_init__(self):
        if self.type not in OPTION_TYPES:
            raise ValueError(f"option type must be one of {', '.join(OPTION_TYPES)}, not {self.type!r}")

    def describe(self) -> str:
        if self.default is None:  # decided by the loader: the help says how
            return self.type
        default = "/".join(f"{f:g}" for f in self.default) if self.type == "split" else f"{self.default!r}".strip("'")
        return f"{self.type}, default {default}"

    def coerce(self, value: Any) -> Any:
        """The value as this option's type; ValueError (the expected form) when it is not one."""
        kind = self.type
        if kind == "bool":
            if isinstance(value, bool):
                return value
            raise ValueError("true or false")
        if kind == "int":
            if isinstance(value, int) and not isinstance(value, bool):
                out: Any = value
            elif isinstance(value, float) and value.is_integer():
                out = int(value)
            else:
                raise ValueError("an integer")
        elif kind == "float":
            if isinstance(value, bool):
                raise ValueError("a number")
            try:  # YAML reads 1e-3 as text
                out = float(value) if isinstance(value, (int, float, str)) else None
            except ValueError:
                out = None
            if out is None or out != out:
                raise ValueError("a number")
        elif kind == "str":
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise ValueError("a text")
            return str(value)
        else:  # split
            parts = value.replace("/", ",").split(",") if isinstance(value, str) else value
            try:
                if isinstance(parts, bool) or not isinstance(parts, (list, tuple)):
                    raise TypeError
                fractions = tuple(float(f) for f in parts)
            except (TypeError, ValueError):
                raise ValueError("three fractions train, val, test, e.g. 0.8,0.1,0.1") from None
            if len(fractions) != 3 or any(f < 0 for f in fractions) or fractions[0] <= 0 \
                    or abs(sum(fractions) - 1) > 1e-6:
                raise ValueError("three fractions train, val, test >= 0 (train > 0) that sum to 1, e.g. 0.8,0.1,0.1")
            return list(fractions)
        if self.min is not None and out < self.min:
            raise ValueError(f"{'an integer' if kind == 'int' else 'a number'} >= {self.min:g}")
        return out


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    loader: Loader
    help: str = ""
    options: Mapping[str, DataOption] = field(default_factory=dict)

    def describe_options(self) -> list[str]:
        """One line per option: ``min_count (int, default 5): ...``."""
        return [f"{k} ({o.describe()}): {o.help}" if o.help else f"{k} ({o.describe()})"
                for k, o in self.options.items()]


_REGISTRY: dict[str, DatasetEntry] = {}

# Modules whose import registers datasets; a module that is absent (not written yet, or an
# optional dependency missing) is skipped, and its names are simply unknown.
BUILTIN_MODULES = tuple(f"{__name__}.{m}" for m in ("images", "series", "corpus", "nuclei"))
_BROKEN: dict[str, str] = {}  # module -> why its import failed (shown with an unknown name)


def register_dataset(name: str, *, help: str = "",
                     options: Optional[Mapping[str, DataOption]] = None) -> Callable[[Loader], Loader]:
    """Decorator: make ``loader`` answer ``--data name`` (and ``--data name:ARG``); ``options``
    declares what ``data_options`` / ``--data-option`` it accepts."""

    def deco(loader: Loader) -> Loader:
        _REGISTRY[name] = DatasetEntry(name, loader, help or (loader.__doc__ or "").strip().split("\n")[0],
                                       dict(options or {}))
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


def _where(places: Optional[Mapping[str, Optional[Location]]], key: str) -> tuple[Optional[Location], tuple]:
    """Where option ``key`` was written, and a detail line when that was the command line."""
    places = places or {}
    if key in places and places[key] is None:
        return None, (f"given with --data-option {key}=... (or data_options= in Python)",)
    return places.get(key), ()


def resolve_options(entry: DatasetEntry, options: Optional[Mapping[str, Any]],
                    places: Optional[Mapping[str, Optional[Location]]] = None) -> dict[str, Any]:
    """The user's options checked against the dataset's declarations, defaults filled in;
    raises SpecError (E709: an unknown option, a value of the wrong type), located at
    ``places[key]`` (where the option was written) when known."""
    diags = []
    out = {k: (list(o.default) if isinstance(o.default, tuple) else o.default) for k, o in entry.options.items()}
    listed = tuple(entry.describe_options()) or ("it takes no options",)
    for key, value in (options or {}).items():
        place, said = _where(places, key)
        option = entry.options.get(key)
        if option is None:
            hint = did_you_mean(key, list(entry.options)) or (
                f"options of '{entry.name}': {', '.join(entry.options)}" if entry.options
                else f"'{entry.name}' takes no options")
            diags.append(Diagnostic("E709", f"unknown option '{key}' of dataset '{entry.name}'", place,
                                    details=said + tuple(f"option {line}" for line in listed if entry.options),
                                    hint=hint))
            continue
        try:
            out[key] = option.coerce(value)
        except ValueError as e:
            diags.append(Diagnostic("E709", f"option '{key}' of dataset '{entry.name}' must be {e}; found {value!r}",
                                    place, details=said + (f"{key} ({option.describe()}): {option.help}",)))
    if diags:
        raise SpecError(diags)
    return out


def load_dataset(text: str, inputs: dict[str, TensorType] | None = None, seed: int = 0,
                 outputs: dict[str, TensorType] | None = None, options: Optional[Mapping[str, Any]] = None,
                 places: Optional[Mapping[str, Optional[Location]]] = None, progress: bool = False) -> DataBundle:
    """Resolve ``--data`` text to a bundle; raises SpecError (E701 unknown name, E702 bad data,
    E709 a bad option, or the code the loader's DataError carries). ``options``: the user's
    data options; ``places``: where each was written (None: on the command line); ``progress``:
    a slow loader may show a progress bar."""
    name, arg = split_name(text)
    known = datasets()
    entry = known.get(name)
    if entry is None:
        listed = ", ".join(sorted(known)) or "none"
        details = (f"datasets: {listed}",) + tuple(f"not loaded: {m} ({why})" for m, why in _BROKEN.items())
        raise SpecError(Diagnostic("E701", f"unknown dataset '{name}'", details=details,
                                   hint=did_you_mean(name, known)
                                   or "a folder with one subfolder of images per class is `imagefolder:PATH`"))
    resolved = resolve_options(entry, options, places)
    given = frozenset(options or ())
    try:
        bundle = entry.loader(DataRequest(name, arg, dict(inputs or {}), seed, dict(outputs or {}), resolved, given,
                                          progress))
    except DataError as e:
        place, said = (None, ())
        if e.code == "E709" and e.option:
            place, said = _where(places, e.option)
        raise SpecError(Diagnostic(e.code, f"dataset '{text}': {e.message}", place, hint=e.hint,
                                   details=said)) from None
    except (OSError, ValueError) as e:  # a loader that did not wrap its own file errors
        raise SpecError(Diagnostic("E702", f"dataset '{text}': {e}")) from None
    bundle.name = bundle.name or text
    bundle.options = dict(bundle.options) if bundle.options else resolved
    return bundle
