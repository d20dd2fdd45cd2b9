r"""Time series from a CSV file, made ready for a forecaster: checked, on a regular time grid, gaps masked,
scaled on the training part only, split in time, and cut into windows with no look-ahead.

The pipeline, and what each step returns::

    data = read_series("sales.csv", target="units", date="day", features=("price",), id="store")   # SeriesSet
    spec = WindowSpec(horizon=24, lookback=96)
    prepared = prepare(data, spec)                      # Prepared: per-series arrays, the split, TrainingStats
    train = windows(prepared, "train")                  # Windows: inputs (N, L, C), targets (N, H), mask (N, H)
    series, origins = window_origins(prepared, "train") # or name them, and gather(prepared, ...) a batch at a time
    val, test = windows(prepared, "val"), windows(prepared, "test")
    folds = [prepare(d, spec) for d in backtest_sets(data, spec, folds=5)]   # rolling origins
    log(data.notes + prepared.notes)                    # what was sorted, inserted, trimmed (library code never prints)

Two modules hold the two ideas, and this one names what they export:

- :mod:`rnnkit.data.timeseries_read`: reading and checking the CSV (wide or long form, one or several date
  columns), the time grid (frequency inferred, rows sorted, missing timestamps inserted as gaps, duplicates and
  off-grid stamps refused);
- :mod:`rnnkit.data.timeseries_prepare`: the time-ordered split and rolling origins, scaling fitted on training
  rows only, features imputed and flagged, calendar channels, and the windows (built on demand).
"""

from rnnkit.data.timeseries_prepare import (
    PARTS,
    SCALINGS,
    Prepared,
    PreparedSeries,
    Split,
    TrainingStats,
    Windows,
    WindowSpec,
    backtest_sets,
    gather,
    prepare,
    rolling_origins,
    time_split,
    truncate,
    window_origins,
    windows,
)
from rnnkit.data.timeseries_read import NA_MARKERS, Frequency, Series, SeriesSet, grid_dates, read_series

__all__ = [
    "NA_MARKERS",
    "PARTS",
    "SCALINGS",
    "Frequency",
    "Prepared",
    "PreparedSeries",
    "Series",
    "SeriesSet",
    "Split",
    "TrainingStats",
    "WindowSpec",
    "Windows",
    "backtest_sets",
    "gather",
    "grid_dates",
    "prepare",
    "read_series",
    "rolling_origins",
    "time_split",
    "truncate",
    "window_origins",
    "windows",
]
