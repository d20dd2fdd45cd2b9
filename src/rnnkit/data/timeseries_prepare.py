r"""Series made ready for a forecaster: split in time, scaled on the training part only, features imputed and
flagged, calendar channels added, and cut into windows with no look-ahead. The series come from
:func:`rnnkit.data.timeseries_read.read_series`.

**Missing values.** A target gap is masked (``mask`` is 0 there) and the target is carried forward from its last
observed value, so no NaN reaches a model. A numeric feature is carried forward, and its leading gap is filled
with its training mean; a categorical feature is one-hot encoded over the categories seen in training (a gap or an
unseen category: all zeros). Every feature column gets a 0/1 ``<name>_missing`` channel, and the target a
``target_missing`` one.

**Calendar features** come from the dates, chosen by the frequency, each as a pair
:math:`(\sin 2\pi x/P, \cos 2\pi x/P)`: under a day (hourly): hour of day (P=24) and day of week (P=7); daily:
day of week and day of year (P=365.25); weekly or longer fixed steps: day of year; monthly and quarterly: month of
year (P=12); yearly: none. Being known in advance they are also given for the H steps being forecast.

**Split and scaling.** With horizon H, each series' last H points are the test, the H before them validation,
optionally K windows of H before those a calibration part (held out of training so that a forecaster's intervals
can be calibrated on points it never fitted), the rest training (:func:`time_split`). Per series, the target and
each numeric feature are scaled as :math:`(x - c) / s` with c, s fitted on the observed training points only:
``"standard"`` (mean, std), ``"robust"`` (median, IQR / 1.349, which equals the std for normal data) or
``"none"``. The fitted values, the
imputation means and the category lists are a :class:`TrainingStats`, which goes to and from JSON.

**Windows.** A window with origin o has inputs = rows o-L .. o-1 (every channel: past target, its flag, features,
their flags, calendar), targets = scaled target at rows o .. o+H-1 with their mask, and ``known`` = the calendar at
those rows. Training windows have o+H <= train_end (targets inside training, never in calibration or validation);
the K calibration windows have o = train_end, train_end + H, ..., the validation window o = val_start, the test
window o = val_end, the ``"future"`` window o = end of the file. An input row
depends on no later row: the scaling statistics come from training rows only, carrying forward looks back only,
and leading gaps are dropped, not back-filled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from rnnkit.data.timeseries_read import _NS_PER, Frequency, Series, SeriesSet, grid_dates
from rnnkit.errors import DataError

SCALINGS = ("standard", "robust", "none")
PARTS = ("train", "calibration", "val", "test", "future")


# -- split ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Split:
    """Rows ``[0, train_end)`` train, ``[train_end, val_start)`` calibrate (empty without a calibration part),
    ``[val_start, val_end)`` validate, ``[val_end, end)`` test."""

    train_end: int
    val_start: int
    val_end: int
    end: int

    def bounds(self, part: str) -> tuple[int, int]:
        """``(first, stop)`` rows of a part; ``"future"`` is the ``H`` steps past the end."""
        return {"train": (0, self.train_end), "calibration": (self.train_end, self.val_start),
                "val": (self.val_start, self.val_end), "test": (self.val_end, self.end),
                "future": (self.end, self.end + self.end - self.val_end)}[part]  # fmt: skip


def time_split(length: int, horizon: int, calibration: int = 0) -> Split:
    """The issue's time-ordered split: the last ``horizon`` points test, the ``horizon`` before validation, the
    ``calibration`` x ``horizon`` before those calibration, the rest training."""
    if horizon < 1:
        raise DataError(f"horizon must be at least 1, got {horizon}")
    if calibration < 0:
        raise DataError(f"the calibration part must be 0 or more windows, got {calibration}")
    held = (2 + calibration) * horizon
    if length < held + 1:
        raise DataError(f"{length} points cannot hold a training part, {calibration * horizon} calibration, "
                        f"{horizon} validation and {horizon} test points")  # fmt: skip
    return Split(length - held, length - 2 * horizon, length - horizon, length)


def rolling_origins(length: int, horizon: int, folds: int, step: int | None = None, calibration: int = 0
                    ) -> list[Split]:  # fmt: skip
    """Splits of a K-fold rolling-origin backtest, oldest first: fold k keeps the first
    ``length - (folds-1-k) * step`` points (``step`` defaults to ``horizon``) and splits them with
    :func:`time_split`, so its test part is H points and the newest fold is the plain split."""
    if folds < 1:
        raise DataError(f"a backtest needs at least 1 fold, got {folds}")
    step = horizon if step is None else step
    if step < 1:
        raise DataError(f"the backtest step must be at least 1, got {step}")
    return [time_split(length - (folds - 1 - k) * step, horizon, calibration) for k in range(folds)]


def truncate(data: SeriesSet, drop: int) -> SeriesSet:
    """The same series without their last ``drop`` points each (a backtest fold's view of the file)."""
    if drop == 0:
        return data
    cut = []
    for s in data.series:
        if len(s) - drop < 2:
            raise DataError(f"series {s.id!r} has {len(s)} points: too few to cut {drop} for a backtest")
        cut.append(Series(s.id, s.target[:-drop], {k: v[:-drop] for k, v in s.features.items()},
                          None if s.dates is None else s.dates[:-drop]))  # fmt: skip
    return replace(data, series=tuple(cut))


# -- preparing: scaling, imputation, calendar ----------------------------------------------------


@dataclass(frozen=True)
class WindowSpec:
    """How a forecaster sees the data: ``horizon`` H steps ahead from ``lookback`` L steps back; ``scaling`` one
    of ``"standard"``, ``"robust"``, ``"none"``; ``calendar``: derive calendar channels from the dates;
    ``calibration``: windows of H points held out of training before the validation part."""

    horizon: int
    lookback: int
    scaling: str = "standard"
    calendar: bool = True
    calibration: int = 0

    def __post_init__(self):
        for name in ("horizon", "lookback"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise DataError(f"{name} must be an integer, got {value!r}")
            if value < 1:
                raise DataError(f"{name} must be at least 1, got {value}")
        if isinstance(self.calibration, bool) or not isinstance(self.calibration, int) or self.calibration < 0:
            raise DataError(f"calibration must be 0 or more windows, got {self.calibration!r}")
        if self.scaling not in SCALINGS:
            raise DataError(f"scaling must be one of {', '.join(SCALINGS)}, got {self.scaling!r}")

    @property
    def min_length(self) -> int:
        """Fewest points a series needs: lookback before the held-out parts, then calibration, validation, test."""
        return self.lookback + (2 + self.calibration) * self.horizon


@dataclass(frozen=True)
class TrainingStats:
    """Everything fitted on the training part, to apply unchanged to later data and to save as JSON:
    per series the target's ``(center, scale)``, per series and numeric feature ``(center, scale, fill)``
    (fill: the training mean for a leading gap), the categories of each categorical feature, and the floor of
    each series whose training target is never negative (0: counts, concentrations, prices), below which its
    forecasts are clipped."""

    scaling: str
    target: dict[str, tuple[float, float]]
    features: dict[str, dict[str, tuple[float, float, float]]] = field(default_factory=dict)
    categories: dict[str, tuple[str, ...]] = field(default_factory=dict)
    floor: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "scaling": self.scaling,
            "target": {k: list(v) for k, v in self.target.items()},
            "features": {k: {f: list(v) for f, v in fs.items()} for k, fs in self.features.items()},
            "categories": {k: list(v) for k, v in self.categories.items()},
            "floor": dict(self.floor),
        }

    @classmethod
    def from_dict(cls, d: dict) -> TrainingStats:
        try:
            return cls(
                str(d["scaling"]),
                {str(k): (float(v[0]), float(v[1])) for k, v in d["target"].items()},
                {str(k): {str(f): (float(v[0]), float(v[1]), float(v[2])) for f, v in fs.items()}
                 for k, fs in d.get("features", {}).items()},
                {str(k): tuple(str(c) for c in v) for k, v in d.get("categories", {}).items()},
                {str(k): float(v) for k, v in d.get("floor", {}).items()},  # none in a run saved before floors
            )  # fmt: skip
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
            raise DataError(f"training statistics are malformed ({type(error).__name__}: {error})") from None

    def scale_target(self, series_id: str, values) -> np.ndarray:
        """:math:`(y - c) / s` in the series' fitted units."""
        center, scale = self._target(series_id)
        return (np.asarray(values, dtype=np.float64) - center) / scale

    def unscale_target(self, series_id: str, values) -> np.ndarray:
        """:math:`c + s z`: a model's output (median or any quantile, since s > 0) back in the data's units."""
        center, scale = self._target(series_id)
        return center + scale * np.asarray(values, dtype=np.float64)

    def _target(self, series_id: str) -> tuple[float, float]:
        if series_id not in self.target:
            raise DataError(f"series {series_id!r} was not in the training data (it had: {', '.join(self.target)})")
        return self.target[series_id]


def _fit_scale(values: np.ndarray, scaling: str) -> tuple[float, float]:
    """``(center, scale)`` of the finite ``values``; a scale of 0 becomes 1 (a constant needs no scaling)."""
    values = values[np.isfinite(values)]
    if scaling == "none" or values.size == 0:
        return 0.0, 1.0
    if scaling == "robust":
        q25, center, q75 = np.percentile(values, [25, 50, 75])
        scale = (q75 - q25) / 1.349 or float(np.std(values))
    else:
        center, scale = float(np.mean(values)), float(np.std(values))
    return float(center), float(scale) if scale > 1e-12 else 1.0


def _carry_forward(values: np.ndarray) -> np.ndarray:
    """Each NaN replaced by the last finite value before it (a leading NaN stays)."""
    finite = np.isfinite(values)
    last = np.where(finite, np.arange(len(values)), -1)
    np.maximum.accumulate(last, out=last)
    out = np.where(last >= 0, values[np.maximum(last, 0)], np.nan)
    return out


def _calendar(frequency: Frequency | None, dates: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Calendar channels (names, (T, K) float64) chosen by the frequency, as sin/cos pairs."""
    if frequency is None:
        return [], np.zeros((len(dates), 0))
    day = _NS_PER["day"]
    days = dates.astype("datetime64[D]")
    cycles = []  # (name, position in the cycle, period)
    if frequency.months:
        if frequency.months < 12:
            cycles.append(("month", (dates.astype("datetime64[M]").astype(np.int64) % 12).astype(np.float64), 12.0))
    else:
        step = frequency.nanoseconds
        day_of_week = ((days.astype(np.int64) + 3) % 7).astype(np.float64)  # 1970-01-01 was a Thursday: Monday = 0
        day_of_year = (days - days.astype("datetime64[Y]").astype("datetime64[D]")).astype(np.float64)
        if step < day:
            hours = (dates - days.astype("datetime64[ns]")).astype(np.int64) / _NS_PER["hour"]
            cycles += [("hour", hours, 24.0), ("dow", day_of_week, 7.0)]
        elif step < 7 * day:
            cycles += [("dow", day_of_week, 7.0), ("doy", day_of_year, 365.25)]
        elif step < 365 * day:
            cycles.append(("doy", day_of_year, 365.25))
    names, columns = [], []
    for name, position, period in cycles:
        angle = 2 * math.pi * position / period
        names += [f"{name}_sin", f"{name}_cos"]
        columns += [np.sin(angle), np.cos(angle)]
    return names, (np.stack(columns, axis=1) if columns else np.zeros((len(dates), 0)))


@dataclass(frozen=True, eq=False)
class PreparedSeries:
    """One series made ready: every array row-aligned with the series (T rows).

    ``inputs`` (T, C) float32: all input channels, scaled, no NaN. ``target`` (T,) float32: the scaled target,
    gaps carried forward; ``mask`` (T,) bool: true where the target was observed. ``known`` (T + H, K) float32:
    the calendar channels, also for the H steps past the end. ``raw`` (T,) float64: the target in the file's
    units with NaN at gaps (for baselines and metrics); ``dates`` (T,) and ``future_dates`` (H,) or None.
    """

    id: str
    inputs: np.ndarray
    target: np.ndarray
    mask: np.ndarray
    known: np.ndarray
    raw: np.ndarray
    split: Split
    dates: np.ndarray | None = None
    future_dates: np.ndarray | None = None

    def history(self, part: str = "test") -> np.ndarray:
        """The raw target before ``part`` with gaps carried forward (what a statistical baseline is fitted on)."""
        first, _ = self.split.bounds(part)
        return _carry_forward(self.raw[:first])

    def actual(self, part: str = "test") -> tuple[np.ndarray, np.ndarray]:
        """``(values, observed)`` of the raw target in ``part``: values has NaN where observed is false."""
        first, stop = self.split.bounds(part)
        return self.raw[first:stop], self.mask[first:stop]

    def actual_from(self, origin: int) -> tuple[np.ndarray, np.ndarray]:
        """``(values, observed)`` as :meth:`actual`, of the H rows of the window with that origin."""
        stop = origin + self.split.end - self.split.val_end
        return self.raw[origin:stop], self.mask[origin:stop]


@dataclass(frozen=True, eq=False)
class Prepared:
    """What :func:`prepare` returns: the series, the names of the input and known channels, the fitted
    :class:`TrainingStats`, the spec, the frequency and notes for the caller to log."""

    series: tuple[PreparedSeries, ...]
    channels: tuple[str, ...]
    known_channels: tuple[str, ...]
    stats: TrainingStats
    spec: WindowSpec
    frequency: Frequency | None
    notes: tuple[str, ...] = ()


def prepare(data: SeriesSet, spec: WindowSpec, *, stats: TrainingStats | None = None) -> Prepared:
    """Split each series, fit the scaling on its training part (or apply ``stats`` fitted before), impute the
    features, add the missing flags and the calendar channels.

    Channels, in order: ``target``, ``target_missing``, each numeric feature, each categorical feature's
    ``<name>=<category>`` one-hots, each feature's ``<name>_missing``, then the calendar channels.
    Raises DataError for a series shorter than lookback + 2 * horizon.
    """
    notes: list[str] = []
    splits = []
    for s in data.series:
        label = f"series {s.id!r}" if s.id else "the series"
        if len(s) < spec.min_length:
            raise DataError(f"{label} has {len(s)} points; lookback {spec.lookback} + {2 + spec.calibration} x "
                            f"horizon {spec.horizon} needs at least {spec.min_length}")  # fmt: skip
        split = time_split(len(s), spec.horizon, spec.calibration)
        if not np.isfinite(s.target[: split.train_end]).any():
            raise DataError(f"{label}: the target has no value in the training part (its first {split.train_end} rows)")
        splits.append(split)

    if stats is None:
        categories = {}
        for name in data.categorical:
            seen = set()
            for s, split in zip(data.series, splits):
                seen.update(v for v in s.features[name][: split.train_end] if v is not None)
            categories[name] = tuple(sorted(seen))
        target_stats, feature_stats, floor = {}, {}, {}
        for s, split in zip(data.series, splits):
            target_stats[s.id] = _fit_scale(s.target[: split.train_end], spec.scaling)
            if np.nanmin(s.target[: split.train_end]) >= 0:
                floor[s.id] = 0.0
            per = {}
            for name in data.numeric:
                train = s.features[name][: split.train_end]
                observed = train[np.isfinite(train)]
                if observed.size == 0:
                    notes.append(f"feature {name!r} has no value in the training part of series {s.id!r}: "
                                 "its gaps are filled with 0")  # fmt: skip
                per[name] = (*_fit_scale(train, spec.scaling), float(observed.mean()) if observed.size else 0.0)
            feature_stats[s.id] = per
        stats = TrainingStats(spec.scaling, target_stats, feature_stats, categories, floor)
    elif stats.scaling != spec.scaling:
        raise DataError(f"the training statistics were fitted with scaling {stats.scaling!r}, not {spec.scaling!r}")

    channels = ["target", "target_missing", *data.numeric]
    for name in data.categorical:
        channels += [f"{name}={c}" for c in stats.categories.get(name, ())]
    channels += [f"{name}_missing" for name in data.features]
    known_channels: list[str] = []
    prepared = []
    for s, split in zip(data.series, splits):
        observed = np.isfinite(s.target)
        target = stats.scale_target(s.id, _carry_forward(s.target))
        columns = [target, (~observed).astype(np.float64)]
        flags = []
        for name in data.numeric:
            if name not in stats.features.get(s.id, {}):
                raise DataError(f"feature {name!r} of series {s.id!r} has no training statistics")
            center, scale, fill = stats.features[s.id][name]
            values = s.features[name]
            filled = _carry_forward(values)
            filled[np.isnan(filled)] = fill
            columns.append((filled - center) / scale)
            flags.append((~np.isfinite(values)).astype(np.float64))
        for name in data.categorical:
            values = s.features[name]
            present = np.array([v is not None for v in values])
            last = np.where(present, np.arange(len(values)), -1)
            np.maximum.accumulate(last, out=last)
            carried = np.where(last >= 0, values[np.maximum(last, 0)], None)
            known = stats.categories.get(name, ())
            unseen = {v for v in carried if v is not None and v not in known}
            if unseen:
                notes.append(f"series {s.id!r}: categories of {name!r} not seen in training are all-zero: "
                             f"{', '.join(sorted(unseen)[:5])}")  # fmt: skip
            columns += [(carried == c).astype(np.float64) for c in known]
            flags.append((~present).astype(np.float64))
        columns += flags
        future_dates = None
        calendar = np.zeros((len(s) + spec.horizon, 0))
        if s.dates is not None and data.frequency is not None:
            future_dates = grid_dates(data.frequency, s.dates[-1], np.arange(1, spec.horizon + 1))
            if spec.calendar:
                known_channels, calendar = _calendar(data.frequency, np.concatenate([s.dates, future_dates]))
        inputs = np.column_stack([*columns, calendar[: len(s)]]) if calendar.shape[1] else np.column_stack(columns)
        prepared.append(PreparedSeries(
            s.id, inputs.astype(np.float32), target.astype(np.float32), observed, calendar.astype(np.float32),
            s.target.astype(np.float64), split, s.dates, future_dates))  # fmt: skip
    channels += known_channels
    return Prepared(tuple(prepared), tuple(channels), tuple(known_channels), stats, spec, data.frequency, tuple(notes))


def backtest_sets(data: SeriesSet, spec: WindowSpec, folds: int, step: int | None = None) -> list[SeriesSet]:
    """The K views of a rolling-origin backtest, oldest first (see :func:`rolling_origins`): fold k is the data
    without its last ``(folds - 1 - k) * step`` points, so that :func:`prepare` refits everything on each."""
    step = spec.horizon if step is None else step
    shortest = min(len(s) for s in data.series)
    rolling_origins(shortest, spec.horizon, folds, step, spec.calibration)  # checks folds and step
    need = spec.min_length + (folds - 1) * step
    if shortest < need:
        raise DataError(f"a {folds}-fold backtest with step {step} needs series of at least {need} points "
                        f"(lookback {spec.lookback} + 2 x horizon {spec.horizon} + {folds - 1} x {step}); "
                        f"the shortest has {shortest}")  # fmt: skip
    return [truncate(data, (folds - 1 - k) * step) for k in range(folds)]


# -- windows --------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Windows:
    """Model-ready windows, N of them: ``inputs`` (N, L, C) float32, ``targets`` (N, H) float32 (scaled),
    ``mask`` (N, H) bool (true: observed, score it), ``known`` (N, H, K) float32 (calendar at the target steps),
    ``series`` (N,) index into ``Prepared.series``, ``origin`` (N,) row of the first target step."""

    inputs: np.ndarray
    targets: np.ndarray
    mask: np.ndarray
    known: np.ndarray
    series: np.ndarray
    origin: np.ndarray

    def __len__(self) -> int:
        return len(self.origin)


def window_origins(prepared: Prepared, part: str = "train", *, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``(series, origin)`` int64 arrays naming the windows of one part, for :func:`gather`.

    ``"train"``: origins o = L, L + stride, ... with o + H <= train_end, leaving out windows whose H targets are
    all missing; ``"calibration"``: its K windows per series, H apart (none without that part); ``"val"``,
    ``"test"``, ``"future"``: one window per series at the part's first row.
    """
    if part not in PARTS:
        raise DataError(f"part must be one of {', '.join(PARTS)}, got {part!r}")
    if stride < 1:
        raise DataError(f"stride must be at least 1, got {stride}")
    L, H = prepared.spec.lookback, prepared.spec.horizon
    which, origins = [], []
    for k, s in enumerate(prepared.series):
        if part == "train":
            starts = np.arange(L, s.split.train_end - H + 1, stride)
            observed = np.concatenate([[0], np.cumsum(s.mask)])
            starts = starts[observed[starts + H] > observed[starts]]  # some target in o .. o+H-1 observed
        elif part == "calibration":
            starts = np.arange(*s.split.bounds(part), H)
        else:
            starts = np.array([s.split.bounds(part)[0]])
        which.append(np.full(len(starts), k))
        origins.append(starts)
    which, origins = np.concatenate(which).astype(np.int64), np.concatenate(origins).astype(np.int64)
    if not origins.size and part != "calibration":
        shortest = min(len(s.target) for s in prepared.series)
        need = L + (3 + prepared.spec.calibration) * H
        raise DataError(f"no {part} window: a training window needs lookback {L} + "
                        f"{3 + prepared.spec.calibration} x horizon {H} = {need} points in a series (the shortest "
                        f"has {shortest})")  # fmt: skip
    return which, origins


def gather(prepared: Prepared, series: np.ndarray, origins: np.ndarray) -> Windows:
    """The windows at ``origins`` of ``series`` (as :func:`window_origins` gives them, or any subset: a batch).
    Inputs are rows origin-L .. origin-1 only; an origin at the end of a series gives targets 0 and mask false."""
    L, H = prepared.spec.lookback, prepared.spec.horizon
    series, origins = np.asarray(series, dtype=np.int64), np.asarray(origins, dtype=np.int64)
    N, C, K = len(origins), len(prepared.channels), len(prepared.known_channels)
    inputs = np.zeros((N, L, C), np.float32)
    targets, mask = np.zeros((N, H), np.float32), np.zeros((N, H), bool)
    known = np.zeros((N, H, K), np.float32)
    for k in np.unique(series):
        s, rows = prepared.series[k], np.flatnonzero(series == k)
        o = origins[rows]
        if (o < L).any() or (o > len(s.target)).any():
            raise DataError(f"series {s.id!r}: an origin outside {L} .. {len(s.target)}")
        inputs[rows] = s.inputs[o[:, None] + np.arange(-L, 0)]  # (n, L, C): rows before the origin only
        known[rows] = s.known[o[:, None] + np.arange(H)]  # (n, H, K)
        ahead = o[:, None] + np.arange(H)  # (n, H) target rows; past the end of the file: none
        inside = ahead < len(s.target)
        targets[rows] = np.where(inside, s.target[np.minimum(ahead, len(s.target) - 1)], 0.0)
        mask[rows] = inside & s.mask[np.minimum(ahead, len(s.target) - 1)]
    return Windows(inputs, targets, mask, known, series, origins)


def windows(prepared: Prepared, part: str = "train", *, stride: int = 1) -> Windows:
    """All the windows of one part (``"train"``, ``"val"``, ``"test"``, ``"future"``) from every series:
    :func:`gather` of :func:`window_origins`. For long series, gather batches of the origins instead
    (hourly data with a week of lookback holds gigabytes of windows)."""
    return gather(prepared, *window_origins(prepared, part, stride=stride))
