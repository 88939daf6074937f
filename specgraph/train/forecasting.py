"""Time series for sequence regression: ``sunspots``, ``co2`` and ``csv:PATH[:COLUMN]``.

The series come from :mod:`specgraph.data.series` (statsmodels' data sets, or a column of the
user's CSV file) and are cut into forecasting examples: the ``window`` values before time t
are the input ``[window, 1]``, the ``horizon`` values from t on are the target ``[horizon]``.

* ``window`` is the spec's input length when it is a fixed number (``series: [N, 24, 1]``),
  else the dataset's default: 20 years for ``sunspots`` (about two solar cycles), 52 weeks
  for ``co2`` (one seasonal cycle), 20 for ``csv``;
* ``horizon`` is the prediction's last dimension when it is fixed (``[N, horizon]``), else 1.

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
from .datasets import DataBundle, DataError, DataRequest, register_dataset

DEFAULT_WINDOW = {"sunspots": 20, "co2": 52, "csv": 20}


def _fixed(dim) -> Optional[int]:
    return int(dim) if isinstance(dim, int) else None


def window_and_horizon(req: DataRequest, default_window: int) -> tuple[int, int]:
    """The input length and forecast horizon the spec fixes (see the module doc)."""
    first = next(iter(req.inputs.values()), None)
    window = _fixed(first.shape[1]) if first is not None and first.rank >= 2 else None
    prediction = next(iter(req.outputs.values()), None)
    horizon = _fixed(prediction.shape[-1]) if prediction is not None and prediction.rank == 2 else None
    return window or default_window, horizon or 1


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
    try:
        series = load_series(name)
        splits = windowed(series, window, horizon)
    except SeriesError as e:
        raise DataError(str(e), hint="set the window with a fixed input length, e.g. `series: [N, 12, 1]`"
                        if "too short" in str(e) else None) from None
    meta = {**splits.info, "description": series.description,
            **{f"naive_{s}_mse": naive_mse(ds) for s, ds in zip(("train", "val", "test"), splits)}}
    return DataBundle(train=splits.train, val=splits.val, test=splits.test, task="regression",
                      spec_params={"features": 1}, meta=meta, name=name)


@register_dataset("sunspots", help="yearly sunspot numbers 1700-2008 (statsmodels), windowed for forecasting")
def load_sunspots(req: DataRequest) -> DataBundle:
    return _series_bundle(req, "sunspots", "sunspots")


@register_dataset("co2", help="weekly CO2 at Mauna Loa 1958-2001 (statsmodels), windowed for forecasting")
def load_co2(req: DataRequest) -> DataBundle:
    return _series_bundle(req, "co2", "co2")


@register_dataset("csv", help="csv:PATH[:COLUMN] — a numeric column of a CSV file with a header row, windowed")
def load_csv(req: DataRequest) -> DataBundle:
    if not req.arg:
        raise DataError("needs a file: --data csv:PATH or csv:PATH:COLUMN")
    return _series_bundle(req, f"csv:{req.arg}", "csv")


__all__ = ["window_and_horizon", "naive_mse", "DEFAULT_WINDOW"]
