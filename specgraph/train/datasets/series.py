"""Time series for sequence regression: ``sunspots``, ``co2`` and ``csv:PATH[:COLUMN]``.

The series (``load_series(name)`` gives a :class:`Series`, float64 values, oldest first):

- ``sunspots`` -- yearly sunspot numbers 1700-2008 (``SUNACTIVITY``, 309 values), from
  ``statsmodels.datasets.sunspots``;
- ``co2`` -- weekly atmospheric CO2 at Mauna Loa, 1958-03-29 to 2001-12-29 (2284 weeks, ppm),
  from ``statsmodels.datasets.co2``.  59 weeks have no measurement; they are filled by linear
  interpolation between the neighbouring measured weeks (the weeks are equally spaced, so this
  is linear in time); a gap at either end would take the nearest measured value;
- ``csv:PATH:COLUMN`` -- the column named COLUMN (or the 0-based column number) of a CSV file
  with a header row, in file order; empty cells and NA/NaN are interpolated the same way.
  ``csv:PATH`` alone works when the file has exactly one numeric column.

``windowed`` cuts a series into forecasting examples: the ``window`` values before time t are
the input ``[window, 1]``, the ``horizon`` values from t on are the target ``[horizon]``.

* ``window`` is the spec's input length when it is a fixed number (``series: [N, 24, 1]``),
  else the dataset's default: 20 years for ``sunspots`` (about two solar cycles), 52 weeks
  for ``co2`` (one seasonal cycle), 20 for ``csv``;
* ``horizon`` is the prediction's last dimension when it is fixed (``[N, horizon]``), else 1.

Options (``data_options`` / ``--data-option``): ``window`` and ``horizon`` set them when the
spec leaves them symbolic (a value that differs from a fixed one is error E709); ``split`` the
three fractions (default 0.7, 0.15, 0.15).

Splits are chronological: train the oldest 70% of the values, validation the next 15%, test
the newest 15%; an example belongs to the split that holds its targets. Values are
standardised with the train part's mean and standard deviation alone. The task is
"regression" (MSE); the spec gets ``features = 1``.

``meta`` keeps, per split, the MSE of the naive forecast "every future value equals the last
one seen" (in the same standardised units as the metrics): a forecaster worth having beats it.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from torch.utils.data import TensorDataset

from . import DataBundle, DataError, DataOption, DataRequest, option_conflict, register_dataset
from .sources import Splits, check_split, existing_file, import_package

SERIES_NAMES = ("sunspots", "co2")


@dataclass
class Series:
    """A univariate series, oldest value first."""

    name: str
    values: np.ndarray  # float64 [N]
    time: np.ndarray | None = None  # the time stamps (years, dates) where known, [N]
    filled: int = 0  # how many missing values were interpolated
    description: str = ""

    def __len__(self) -> int:
        return len(self.values)


def load_series(name: str) -> Series:
    """``sunspots``, ``co2`` or ``csv:PATH:COLUMN`` as a :class:`Series` (see the module doc)."""
    if name == "sunspots":
        return _sunspots()
    if name == "co2":
        return _co2()
    if name.startswith("csv:"):
        return load_csv_column(name[len("csv:"):])
    raise DataError(f"unknown series '{name}': use one of {', '.join(SERIES_NAMES)} or csv:PATH:COLUMN")


def _sunspots() -> Series:
    module = import_package("statsmodels.datasets.sunspots", "sunspots", "statsmodels")
    frame = module.load_pandas().data
    values = frame["SUNACTIVITY"].to_numpy(dtype=np.float64)
    return Series("sunspots", values, frame["YEAR"].to_numpy(dtype=np.float64),
                  description="yearly sunspot numbers (SUNACTIVITY), statsmodels.datasets.sunspots")


def _co2() -> Series:
    module = import_package("statsmodels.datasets.co2", "co2", "statsmodels")
    frame = module.load_pandas().data
    values, filled = interpolate_missing(frame["co2"].to_numpy(dtype=np.float64), "co2")
    return Series("co2", values, frame.index.to_numpy(), filled,
                  description="weekly CO2 at Mauna Loa (ppm), statsmodels.datasets.co2; "
                              f"{filled} missing weeks linearly interpolated")


def interpolate_missing(values: np.ndarray, name: str = "series") -> tuple[np.ndarray, int]:
    """NaNs replaced by linear interpolation over the position (ends: the nearest value); (values, count)."""
    values = np.asarray(values, dtype=np.float64).copy()
    missing = np.isnan(values)
    if missing.all():
        raise DataError(f"{name}: every value is missing")
    if missing.any():
        positions = np.arange(len(values))
        values[missing] = np.interp(positions[missing], positions[~missing], values[~missing])
    return values, int(missing.sum())


_MISSING = {"", "na", "nan", "null", "none", "n/a", "-"}


def load_csv_column(spec: str) -> Series:
    """``PATH:COLUMN`` (or ``PATH`` with one numeric column) of a CSV file with a header row."""
    path, column = spec, None
    if not Path(spec).expanduser().is_file() and ":" in spec:
        path, column = spec.rsplit(":", 1)
    file = existing_file(path, "CSV file")
    with open(file, newline="", encoding="utf-8-sig") as handle:
        sample = handle.read(4096)
        handle.seek(0)
        try:
            dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
        except csv.Error:
            dialect = csv.excel
        rows = list(csv.reader(handle, dialect))
    rows = [r for r in rows if any(c.strip() for c in r)]
    if len(rows) < 2:
        raise DataError(f"{file}: a CSV file with a header row and at least one data row is needed")
    header = [h.strip() for h in rows[0]]
    index = _column_index(header, rows[1:], column, file)
    values = []
    for line, row in enumerate(rows[1:], start=2):
        cell = row[index].strip() if index < len(row) else ""
        if cell.lower() in _MISSING:
            values.append(math.nan)
            continue
        try:
            value = float(cell)
        except ValueError:
            raise DataError(f"{file}: row {line}, column '{header[index]}': '{cell}' is not a number") from None
        if not math.isfinite(value):  # inf, -inf, 1e999 ("nan" is a missing value, interpolated like "")
            raise DataError(f"{file}: row {line}, column '{header[index]}': '{cell}' is not a finite number",
                            hint="leave the cell empty (or write NA) for a missing value: it is interpolated")
        values.append(value)
    filled_values, filled = interpolate_missing(np.array(values), f"{file} column '{header[index]}'")
    return Series(f"csv:{file}:{header[index]}", filled_values, None, filled,
                  description=f"column '{header[index]}' of {file}"
                              + (f"; {filled} missing values linearly interpolated" if filled else ""))


def _column_index(header: list[str], rows: list[list[str]], column: str | None, file: Path) -> int:
    if column is None:
        numeric = [i for i in range(len(header)) if _is_numeric_column(rows, i)]
        if len(numeric) != 1:
            raise DataError(f"{file}: name the column to use, as csv:{file}:COLUMN "
                            f"(columns: {', '.join(header)})")
        return numeric[0]
    if column in header:
        return header.index(column)
    if column.isdigit() and int(column) < len(header):
        return int(column)
    raise DataError(f"{file}: no column '{column}' (columns: {', '.join(header)})")


def _is_numeric_column(rows: list[list[str]], i: int) -> bool:
    seen = False
    for row in rows:
        cell = row[i].strip() if i < len(row) else ""
        if cell.lower() in _MISSING:
            continue
        try:
            float(cell)
        except ValueError:
            return False
        seen = True
    return seen


@dataclass
class WindowSplits(Splits):
    """Windowed train/val/test TensorDatasets of normalised (x [window, 1], y [horizon]) float32.

    ``mean`` and ``std`` were fitted on the train part of the series only; ``denormalise`` maps
    model outputs (or targets) back to the units of the series.  ``starts[split]`` is, for each
    example, the index in the series of its first target value; ``bounds`` are the series
    indices where val and test begin.
    """

    mean: float = 0.0
    std: float = 1.0
    window: int = 0
    horizon: int = 0
    bounds: tuple[int, int] = (0, 0)
    starts: dict[str, np.ndarray] = field(default_factory=dict)

    def normalise(self, values):
        return (values - self.mean) / self.std

    def denormalise(self, values):
        """Model outputs (tensor or array) back in the units of the series."""
        return values * self.std + self.mean


def windowed(series: Series | Sequence[float] | np.ndarray | torch.Tensor, window: int, horizon: int = 1,
             split: Sequence[float] = (0.7, 0.15, 0.15)) -> WindowSplits:
    """Forecasting examples with chronological splits and train-only normalisation.

    The series is cut in time at ``split`` (train = the oldest ``split[0]`` of the values, then
    val, then test).  An example belongs to the split holding all of its target time steps
    ``[t, t + horizon)``; its inputs ``[t - window, t)`` may reach back into the earlier split,
    which is only the past, already observed.  So targets never repeat across splits and every
    val target comes after every train target.  Values are normalised with the mean and
    standard deviation of the train part alone.
    """
    name = series.name if isinstance(series, Series) else "series"
    values = series.values if isinstance(series, Series) else np.asarray(series, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise DataError(f"window must be a positive integer, got {window!r}")
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise DataError(f"horizon must be a positive integer, got {horizon!r}")
    if np.isnan(values).any():
        raise DataError(f"{name}: the series has missing values; interpolate them first (interpolate_missing)")
    if not np.isfinite(values).all():
        first = int(np.argwhere(~np.isfinite(values))[0, 0])
        raise DataError(f"{name}: value {first} (0-based) of the series is {values[first]}, not a finite number")
    fractions = check_split(split)
    n = len(values)
    val_start = int(round(n * fractions[0]))
    test_start = int(round(n * (fractions[0] + fractions[1])))
    train_part = values[:val_start]
    if len(train_part) < 2:
        raise DataError(f"{name}: the train split has {len(train_part)} values; the series is too short")
    mean = float(train_part.mean())
    std = float(train_part.std())
    if not std > 0:
        std = 1.0  # a constant train part: only centre it
    normed = ((values - mean) / std).astype(np.float32)

    datasets, starts = {}, {}
    regions = {"train": (0, val_start), "val": (val_start, test_start), "test": (test_start, n)}
    for split_name, (lo, hi) in regions.items():
        t = np.arange(max(lo, window), hi - horizon + 1)
        if len(t) == 0:
            raise DataError(f"{name}: the {split_name} split (values {lo}..{hi - 1} of {n}) is too short for "
                            f"window={window} and horizon={horizon}; use a shorter window or a larger split")
        x = np.stack([normed[s - window:s] for s in t])[:, :, None]
        y = np.stack([normed[s:s + horizon] for s in t])
        datasets[split_name] = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
        starts[split_name] = t
    info = {"series": name, "length": n, "window": window, "horizon": horizon, "split": list(fractions),
            "val_start": val_start, "test_start": test_start, "mean": mean, "std": std,
            "normalisation": "mean/std of the train part only",
            "sizes": {k: len(v) for k, v in datasets.items()}}
    return WindowSplits(datasets["train"], datasets["val"], datasets["test"], info, mean, std, window, horizon,
                        (val_start, test_start), starts)


# ---------------------------------------------------------------- the datasets

DEFAULT_WINDOW = {"sunspots": 20, "co2": 52, "csv": 20}
SPLIT = (0.7, 0.15, 0.15)


def series_options(kind: str) -> dict[str, DataOption]:
    return {"window": DataOption("int", None, f"past values per example (default: the spec's input length when "
                                              f"fixed, else {DEFAULT_WINDOW[kind]})", min=1),
            "horizon": DataOption("int", None, "values to forecast (default: the prediction's last dimension "
                                               "when fixed, else 1)", min=1),
            "split": DataOption("split", SPLIT, "train, val, test fractions of the series, in time order")}


def _fixed(dim) -> Optional[int]:
    return int(dim) if isinstance(dim, int) else None


def window_and_horizon(req: DataRequest, default_window: int) -> tuple[int, int]:
    """The input length and forecast horizon: the spec's when fixed, else the options', else the
    defaults (see the module doc); an option that differs from a fixed dimension is E709."""
    first = next(iter(req.inputs.values()), None)
    window = _fixed(first.shape[1]) if first is not None and first.rank >= 2 else None
    prediction = next(iter(req.outputs.values()), None)
    horizon = _fixed(prediction.shape[-1]) if prediction is not None and prediction.rank == 2 else None
    wanted_window, wanted_horizon = req.options.get("window"), req.options.get("horizon")
    if wanted_window is not None and window is not None and wanted_window != window:
        raise option_conflict("window", wanted_window, window, "input length")
    if wanted_horizon is not None and horizon is not None and wanted_horizon != horizon:
        raise option_conflict("horizon", wanted_horizon, horizon, "prediction length")
    return window or wanted_window or default_window, horizon or wanted_horizon or 1


def naive_mse(dataset) -> float:
    """MSE of repeating the last input value over the horizon (the persistence forecast)."""
    x, y = dataset.tensors
    return float(((x[:, -1, :1] - y) ** 2).mean())


def _series_bundle(req: DataRequest, name: str, kind: str) -> DataBundle:
    first = next(iter(req.inputs.items()), None)
    if first is not None and (len(req.inputs) != 1 or first[1].rank != 3):
        shown = ", ".join(f"{k} {v}" for k, v in req.inputs.items())
        raise DataError(f"a forecaster takes one input of past values [N, T, 1]; the spec's inputs are {shown}",
                        code="E704", hint="see specs/lstm_forecaster.yaml: `series: [N, T, $features]`")
    window, horizon = window_and_horizon(req, DEFAULT_WINDOW[kind])
    split = req.options.get("split") or list(SPLIT)
    try:
        series = load_series(name)
        splits = windowed(series, window, horizon, split)
    except DataError as e:
        raise DataError(e.message, hint="a shorter window: --data-option window=12, or a fixed input length, e.g. "
                        "`series: [N, 12, 1]`" if "too short" in e.message else None) from None
    meta = {**splits.info, "description": series.description,
            **{f"naive_{s}_mse": naive_mse(ds) for s, ds in zip(("train", "val", "test"), splits)}}
    return DataBundle(train=splits.train, val=splits.val, test=splits.test, task="regression",
                      spec_params={"features": 1}, meta=meta, name=name,
                      options={"window": window, "horizon": horizon, "split": list(split)})


@register_dataset("sunspots", help="yearly sunspot numbers 1700-2008 (statsmodels), windowed for forecasting",
                  options=series_options("sunspots"))
def load_sunspots(req: DataRequest) -> DataBundle:
    return _series_bundle(req, "sunspots", "sunspots")


@register_dataset("co2", help="weekly CO2 at Mauna Loa 1958-2001 (statsmodels), windowed for forecasting",
                  options=series_options("co2"))
def load_co2(req: DataRequest) -> DataBundle:
    return _series_bundle(req, "co2", "co2")


@register_dataset("csv", help="csv:PATH[:COLUMN] — a numeric column of a CSV file with a header row, windowed",
                  options=series_options("csv"))
def load_csv(req: DataRequest) -> DataBundle:
    if not req.arg:
        raise DataError("needs a file: --data csv:PATH or csv:PATH:COLUMN")
    return _series_bundle(req, f"csv:{req.arg}", "csv")


__all__ = ["Series", "WindowSplits", "load_series", "load_csv_column", "interpolate_missing", "windowed",
           "SERIES_NAMES", "window_and_horizon", "naive_mse", "series_options", "DEFAULT_WINDOW"]
