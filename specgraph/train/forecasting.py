"""Time series for sequence regression: ``sunspots``, ``co2`` and ``csv:PATH[:COLUMN]``.

The series come from :mod:`specgraph.data.series` (statsmodels' data sets, or a column of the
user's CSV file) and are cut into forecasting examples: the ``window`` values before time t
are the input ``[window, 1]``, the ``horizon`` values from t on are the target ``[horizon]``.

* ``window`` is the spec's input length when it is a fixed number (``series: [N, 24, 1]``),
  else the dataset's default: 20 years for ``sunspots`` (about two solar cycles), 52 weeks
  for ``co2`` (one seasonal cycle), 20 for ``csv``;
* ``horizon`` is the prediction's last dimension when it is fixed (``[N, horizon]``), else 1.

Options (``data_options`` / ``--data-option``): ``window`` and ``horizon`` set them when the
spec leaves them symbolic (a value that differs from a fixed one is error E709); ``split`` the
three fractions (default 0.7, 0.15, 0.15).

Splits are chronological (from ``specgraph.data.series.windowed``): train the oldest 70% of
the values, validation the next 15%, test the newest 15%; an example belongs to the split that
holds its targets. Values are standardised with the train part's mean and standard deviation
alone. The task is "regression" (MSE); the spec gets ``features = 1``.

``meta`` keeps, per split, the MSE of the naive forecast "every future value equals the last
one seen" (in the same standardised units as the metrics): a forecaster worth having beats it.
"""

from __future__ import annotations

from typing import Optional

from ..data import DataError as SeriesError
from .datasets import DataBundle, DataError, DataOption, DataRequest, option_conflict, register_dataset

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
    from ..data.series import load_series, windowed

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
    except SeriesError as e:
        raise DataError(str(e), hint="a shorter window: --data-option window=12, or a fixed input length, e.g. "
                        "`series: [N, 12, 1]`" if "too short" in str(e) else None) from None
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


__all__ = ["window_and_horizon", "naive_mse", "series_options", "DEFAULT_WINDOW"]
