r"""Reading a time-series CSV: the columns checked, every series put on a regular time grid, the target's gaps
kept as NaN for :mod:`rnnkit.data.timeseries_prepare` to mask.

**Layout.** Wide form is one series: one row per time step, a ``target`` column, optionally a ``date`` column and
feature columns. Long form stacks many series: an ``id`` column names the series each row belongs to (series keep
the order in which their ids first appear). ``date`` may be one column, or several that spell year, month, day
[, hour [, minute]] in that order (``"year,month,day,hour"``, as the Beijing PM2.5 file has it).

**Time grid.** Rows are sorted by date within each series (a note says so when they were not). The step is the
most common difference between consecutive dates over all series: a fixed step (hourly, daily, 15 minutes ...), or
calendar months when every date sits on the same day of the month (or on month ends) and the step is 28 days or
more (monthly, quarterly, yearly). Then, the documented handling of irregular input:

- two rows with the same timestamp in one series: :class:`DataError` naming it (no silent averaging);
- a timestamp off the grid (not a whole number of steps from the series' first one): :class:`DataError`;
- timestamps absent from the grid: inserted as missing rows (target masked, features imputed), with a note.

Without ``date`` the rows are taken in file order, one step each, and there are no calendar features.

**Missing values** are NaN in the target and in numeric features, None in categorical ones (a column with no
numeric value). A series' leading rows before its first observed target are dropped (a note says how many),
because they could only be filled from the future; a series whose target has no value at all is an error.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rnnkit.data.text import iter_text
from rnnkit.errors import DataError

NA_MARKERS = frozenset({"", "na", "nan", "n/a", "null", "none", "?"})
_DATE_PARTS = ("year", "month", "day", "hour", "minute")
_NS_PER = {"minute": 60 * 10**9, "hour": 3600 * 10**9, "day": 86400 * 10**9}


# -- what reading gives ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Frequency:
    """The time grid's step: ``months`` calendar months, or else ``nanoseconds`` (exactly one is non-zero).

    ``anchor`` places a month-based date within its month: ``"start"`` (day 1), ``"end"`` (the last day) or
    ``"day"`` (the same day number every month). ``season`` is the usual season length for this step
    (hourly 24, daily 7, weekly 52, monthly 12, quarterly 4, yearly 1; 1 when none is usual).
    """

    name: str
    months: int = 0
    nanoseconds: int = 0
    anchor: str = ""
    season: int = 1

    def to_dict(self) -> dict:
        return {"name": self.name, "months": self.months, "nanoseconds": self.nanoseconds, "anchor": self.anchor,
                "season": self.season}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict) -> Frequency:
        return cls(str(d["name"]), int(d["months"]), int(d["nanoseconds"]), str(d["anchor"]), int(d["season"]))


@dataclass(frozen=True, eq=False)
class Series:
    """One series on its time grid (T rows): ``target`` (T,) float64 with NaN for a gap, ``features`` one (T,)
    array per feature column (float64 with NaN, or object with None for a categorical one), ``dates`` (T,)
    datetime64[ns] or None."""

    id: str
    target: np.ndarray
    features: dict[str, np.ndarray]
    dates: np.ndarray | None

    def __len__(self) -> int:
        return len(self.target)


@dataclass(frozen=True, eq=False)
class SeriesSet:
    """What :func:`read_series` returns: the series, the column roles, the inferred frequency, and the notes
    (one line each: what was sorted, inserted or dropped) for the caller to log."""

    series: tuple[Series, ...]
    target: str
    numeric: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    frequency: Frequency | None = None
    notes: tuple[str, ...] = ()
    source: str = ""

    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    def __len__(self) -> int:
        return len(self.series)


# -- reading --------------------------------------------------------------------------------------


def _names(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(value)


def _is_na(text: str) -> bool:
    return text.strip().lower() in NA_MARKERS


def _read_rows(path: str | os.PathLike) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, rows and each row's line number; ragged rows and empty files raise DataError."""
    text = "".join(iter_text(path)).lstrip("\ufeff")  # iter_text refuses binary and non-UTF-8 files
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    rows, lines = [], []
    try:
        for record in reader:
            if not record or (len(record) == 1 and not record[0].strip()):
                continue  # a blank line
            if header is None:
                header = [cell.strip() for cell in record]
                continue
            if len(record) != len(header):
                raise DataError(
                    f"{os.fspath(path)}:{reader.line_num}: {len(record)} fields where the header has {len(header)} "
                    "(ragged rows)"
                )
            rows.append(record)
            lines.append(reader.line_num)
    except csv.Error as error:
        raise DataError(f"{os.fspath(path)}:{reader.line_num}: malformed CSV ({error})") from None
    if header is None:
        raise DataError(f"{os.fspath(path)} is empty")
    if not rows:
        raise DataError(f"{os.fspath(path)} has a header but no rows")
    seen = set()
    for name in header:
        if name in seen:
            raise DataError(f"{os.fspath(path)}: the header names column {name!r} twice")
        seen.add(name)
    return header, rows, lines


def _numbers(cells: list[str]) -> tuple[np.ndarray, int | None]:
    """Cells as float64 (NaN for NA markers) and the index of the first cell that is not a number, if any."""
    values = np.full(len(cells), np.nan)
    bad = None
    for i, cell in enumerate(cells):
        if _is_na(cell):
            continue
        try:
            number = float(cell)
        except ValueError:
            number = math.nan
        if math.isfinite(number):
            values[i] = number
        elif bad is None:
            bad = i  # text, or inf: neither is a usable number
    return values, bad


def _parse_dates(path: str, columns: dict[str, list[str]], names: tuple[str, ...], lines: list[int]) -> np.ndarray:
    import pandas as pd  # pandas parses the many spellings of a date; imported here so rnnkit loads without it

    if len(names) == 1:
        raw = columns[names[0]]
        parsed = pd.to_datetime(pd.Series(raw, dtype=object), errors="coerce")
        if parsed.isna().any():  # the format pandas inferred from the first dates; ISO 8601 reads "1949-01" and
            parsed = pd.to_datetime(pd.Series(raw, dtype=object), errors="coerce", format="ISO8601")  # "1953-03-15"
        if getattr(parsed.dt, "tz", None) is not None:
            parsed = parsed.dt.tz_convert(None)  # zone-aware stamps compare in UTC
        values = parsed.to_numpy("datetime64[ns]")
        shown = raw
    else:
        if len(names) > len(_DATE_PARTS):
            raise DataError(f"{path}: a date can be spelled by at most {len(_DATE_PARTS)} columns "
                            f"({', '.join(_DATE_PARTS)}), got {len(names)}")  # fmt: skip
        parts = {}
        for part, name in zip(_DATE_PARTS, names):
            numbers, bad = _numbers(columns[name])
            if bad is not None:
                raise DataError(f"{path}:{lines[bad]}: date column {name!r} ({part}) is not a number: "
                                f"{columns[name][bad]!r}")  # fmt: skip
            parts[part] = numbers
        if len(names) < 3:
            parts.setdefault("day", np.ones(len(lines)))
        frame = pd.DataFrame(parts)
        values = pd.to_datetime(frame, errors="coerce").to_numpy("datetime64[ns]")
        shown = [" ".join(columns[name][i] for name in names) for i in range(len(lines))]
    bad_rows = np.flatnonzero(np.isnat(values))
    if bad_rows.size:
        i = int(bad_rows[0])
        raise DataError(f"{path}:{lines[i]}: cannot read {shown[i]!r} in column {','.join(names)!r} as a date")
    return values


def read_series(
    path: str | os.PathLike,
    target: str,
    *,
    date: str | Sequence[str] | None = None,
    features: str | Sequence[str] | None = None,
    id: str | None = None,
) -> SeriesSet:
    """Read a CSV into series on a regular time grid (see the module docstring for every rule).

    ``features`` (names, or one comma-separated string) are taken as known only in the past; a feature column
    with no numeric value is categorical. Raises :class:`DataError` with one line for: a missing column (naming
    the columns there are), a non-numeric target, ragged rows, an unreadable date, a duplicate or off-grid
    timestamp, and a series whose target has no value at all.
    """
    where = os.fspath(path)
    header, rows, lines = _read_rows(path)
    date_names, feature_names = _names(date), _names(features)
    wanted = [("target", target)] + [("date", d) for d in date_names] + [("feature", f) for f in feature_names]
    if id is not None:
        wanted.append(("id", id))
    for role, name in wanted:
        if name not in header:
            raise DataError(f"{where}: no {role} column {name!r}; the columns are: {', '.join(header)}")
    roles: dict[str, str] = {}
    for role, name in wanted:
        if name in roles:
            raise DataError(f"{where}: column {name!r} is given both as {roles[name]} and as {role}")
        roles[name] = role
    index = {name: header.index(name) for _, name in wanted}
    columns = {name: [row[i] for row in rows] for name, i in index.items()}

    y, bad = _numbers(columns[target])
    if bad is not None:
        raise DataError(f"{where}:{lines[bad]}: target column {target!r} is not numeric: {columns[target][bad]!r}")
    numeric, categorical, feature_values = [], [], {}
    for name in feature_names:
        values, bad = _numbers(columns[name])
        if bad is None:
            numeric.append(name)
            feature_values[name] = values
        elif np.isfinite(values).any():
            i = int(np.flatnonzero(np.isfinite(values))[0])
            raise DataError(f"{where}:{lines[bad]}: feature {name!r} mixes numbers ({columns[name][i]!r}) and text "
                            f"({columns[name][bad]!r})")  # fmt: skip
        else:
            categorical.append(name)
            feature_values[name] = np.array([None if _is_na(c) else c.strip() for c in columns[name]], dtype=object)
    dates = _parse_dates(where, columns, date_names, lines) if date_names else None

    if id is None:
        groups = {"": np.arange(len(rows))}
    else:
        keys = [c.strip() for c in columns[id]]
        for i, key in enumerate(keys):
            if not key:
                raise DataError(f"{where}:{lines[i]}: the id column {id!r} is empty")
        groups = {}
        for i, key in enumerate(keys):
            groups.setdefault(key, []).append(i)
        groups = {key: np.asarray(ix) for key, ix in groups.items()}

    notes: list[str] = []
    if categorical:
        notes.append(f"categorical features (one-hot over the training categories): {', '.join(categorical)}")

    def label(key: str) -> str:
        return f"series {key!r}" if id is not None else "the series"

    unsorted = 0
    if dates is not None:
        for key, ix in groups.items():
            order = np.argsort(dates[ix], kind="stable")
            if (order != np.arange(len(ix))).any():
                unsorted += 1
                groups[key] = ix[order]
            d = dates[groups[key]]
            same = np.flatnonzero(d[1:] == d[:-1])
            if same.size:
                a, b = groups[key][same[0]], groups[key][same[0] + 1]
                raise DataError(f"{where}: duplicate timestamp {_show(d[same[0]])} in {label(key)} "
                                f"(lines {min(lines[a], lines[b])} and {max(lines[a], lines[b])})")  # fmt: skip
        if unsorted:
            notes.append(f"rows were not in date order in {unsorted} series: sorted by date")
    frequency = _infer_frequency(where, [dates[ix] for ix in groups.values()]) if dates is not None else None

    series = []
    for key, ix in groups.items():
        t, f = y[ix], {name: feature_values[name][ix] for name in feature_names}
        d = dates[ix] if dates is not None else None
        if not np.isfinite(t).any():
            raise DataError(f"{where}: the target {target!r} has no value in {label(key)} (all {len(ix)} missing)")
        if d is not None:
            t, f, d, inserted = _regrid(where, label(key), t, f, d, frequency)
            if inserted.any():
                first = _show(d[np.flatnonzero(inserted)[0]])
                notes.append(f"{label(key)}: {int(inserted.sum())} timestamps missing from the {frequency.name} grid "
                             f"(first {first}) inserted as gaps")  # fmt: skip
        lead = int(np.argmax(np.isfinite(t)))
        if lead:
            notes.append(f"{label(key)}: dropped {lead} leading rows before the first observed target")
            t, f = t[lead:], {name: v[lead:] for name, v in f.items()}
            d = d[lead:] if d is not None else None
        gaps = int(np.isnan(t).sum())
        if gaps:
            notes.append(f"{label(key)}: {gaps} of {len(t)} target values missing: masked, and carried forward "
                         "in the inputs")  # fmt: skip
        series.append(Series(key, t, f, d))
    return SeriesSet(tuple(series), target, tuple(numeric), tuple(categorical), frequency, tuple(notes), where)


def _show(stamp: np.datetime64) -> str:
    text = str(np.datetime_as_string(stamp, unit="s"))
    return text.replace("T00:00:00", "").replace("T", " ")


def _month_index(dates: np.ndarray) -> np.ndarray:
    return dates.astype("datetime64[M]").astype(np.int64)


def _month_offsets(dates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each date's time after the start of its month and before the start of the next (timedelta64[ns])."""
    start = dates.astype("datetime64[M]")
    return dates - start.astype("datetime64[ns]"), (start + 1).astype("datetime64[ns]") - dates


def _mode(values: np.ndarray):
    """The most common value and the fraction of ``values`` that holds it."""
    unique, counts = np.unique(values, return_counts=True)
    return unique[np.argmax(counts)], counts.max() / len(values)


def _month_anchor(dates: np.ndarray, share: float = 1.0) -> str:
    """How the dates sit in their months (``"start"``: day 1, ``"end"``: the last day, ``"day"``: the same day
    number), when at least ``share`` of them agree; ``""`` otherwise."""
    within, before_end = _month_offsets(dates)
    common, fraction = _mode(within)
    if fraction >= share:
        return "start" if common == np.timedelta64(0, "ns") else "day"
    common, fraction = _mode(before_end)
    if fraction >= share and common <= np.timedelta64(1, "D"):
        return "end"
    return ""


def _off_anchor(dates: np.ndarray, anchor: str) -> np.ndarray:
    """Indices of the dates that do not sit in their month as most of them do (by ``anchor``)."""
    within, before_end = _month_offsets(dates)
    offsets = before_end if anchor == "end" else within
    return np.flatnonzero(offsets != _mode(offsets)[0])


def _infer_frequency(where: str, per_series: list[np.ndarray]) -> Frequency:
    diffs = np.concatenate([np.diff(d).astype(np.int64) for d in per_series if len(d) > 1] or [np.zeros(0, np.int64)])
    if diffs.size == 0:
        raise DataError(f"{where}: every series has a single row; a time series needs at least two")
    values, counts = np.unique(diffs, return_counts=True)
    step = int(values[np.argmax(counts)])
    day = _NS_PER["day"]
    anchors = {_month_anchor(d, share=0.9) for d in per_series}  # a stray mid-month date is an error, not a grid
    if step >= 28 * day and len(anchors) == 1 and "" not in anchors:
        month_diffs = np.concatenate([np.diff(_month_index(d)) for d in per_series if len(d) > 1])
        mv, mc = np.unique(month_diffs, return_counts=True)
        months = int(mv[np.argmax(mc)])
        name = {1: "monthly", 3: "quarterly", 12: "yearly"}.get(months, f"every {months} months")
        season = {1: 12, 3: 4, 12: 1}.get(months, 1)
        return Frequency(name, months=months, anchor=anchors.pop(), season=season)
    known = {_NS_PER["hour"]: ("hourly", 24), day: ("daily", 7), 7 * day: ("weekly", 52)}
    name, season = known.get(step, (f"every {_duration(step)}", day // step if step < day and day % step == 0 else 1))
    return Frequency(name, nanoseconds=step, season=int(season))


def _duration(ns: int) -> str:
    for unit, size in (("days", _NS_PER["day"]), ("hours", _NS_PER["hour"]), ("minutes", _NS_PER["minute"])):
        if ns % size == 0:
            return f"{ns // size} {unit}"
    return f"{ns / 1e9:g} seconds"


def _positions(frequency: Frequency, dates: np.ndarray) -> np.ndarray:
    """Grid steps from ``dates[0]`` (floats: a fractional one is off the grid)."""
    if frequency.months:
        return (_month_index(dates) - _month_index(dates[:1])) / frequency.months
    return (dates - dates[0]).astype(np.int64) / frequency.nanoseconds


def grid_dates(frequency: Frequency, start: np.datetime64, steps: np.ndarray) -> np.ndarray:
    """The dates ``steps`` grid steps after ``start`` (which is on the grid), as datetime64[ns]."""
    steps = np.asarray(steps, dtype=np.int64)
    start = np.datetime64(start, "ns")
    if not frequency.months:
        return start + steps * np.timedelta64(frequency.nanoseconds, "ns")
    month = start.astype("datetime64[M]") + steps * frequency.months
    if frequency.anchor == "end":
        before_end = (start.astype("datetime64[M]") + 1).astype("datetime64[ns]") - start
        return (month + 1).astype("datetime64[ns]") - before_end
    return month.astype("datetime64[ns]") + (start - start.astype("datetime64[M]").astype("datetime64[ns]"))


def _regrid(where, label, target, features, dates, frequency):
    """Place the rows on the full grid from the first date to the last, gaps as missing rows."""
    position = _positions(frequency, dates)
    off = np.flatnonzero(position != np.round(position))
    if off.size:
        raise DataError(f"{where}: irregular timestamps in {label}: {_show(dates[off[0]])} is not a whole number of "
                        f"{frequency.name} steps after {_show(dates[0])}")  # fmt: skip
    position = np.round(position).astype(np.int64)
    stray = _off_anchor(dates, frequency.anchor) if frequency.months else np.zeros(0, np.int64)
    if stray.size:
        raise DataError(f"{where}: irregular timestamps in {label}: {_show(dates[stray[0]])} is off the "
                        f"{frequency.name} grid (the other dates sit on the same day of their month)")  # fmt: skip
    size = int(position[-1]) + 1
    inserted = np.ones(size, dtype=bool)
    inserted[position] = False
    if not inserted.any():
        return target, features, dates, inserted
    full_target = np.full(size, np.nan)
    full_target[position] = target
    full = {}
    for name, values in features.items():
        filler = np.full(size, None, dtype=object) if values.dtype == object else np.full(size, np.nan)
        filler[position] = values
        full[name] = filler
    return full_target, full, grid_dates(frequency, dates[0], np.arange(size)), inserted
