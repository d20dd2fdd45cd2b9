"""Time-series data: reading (wide and long form), the checks on bad input, the time grid, gaps, calendar
features, scaling fitted on training rows only, the split, rolling origins, and windows without look-ahead.
Every series here is made in the test."""

import json
import math

import numpy as np
import pytest

from rnnkit.data.timeseries import (
    TrainingStats,
    WindowSpec,
    backtest_sets,
    gather,
    prepare,
    read_series,
    rolling_origins,
    time_split,
    window_origins,
    windows,
)
from rnnkit.errors import DataError


def write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def monthly_csv(tmp_path, n=40, *, gap_at=(), start_year=2000):
    rows = ["month,sales,price"]
    for t in range(n):
        y, m = divmod(t, 12)
        sales = "" if t in gap_at else f"{100 + t + 10 * math.sin(2 * math.pi * t / 12):.3f}"
        rows.append(f"{start_year + y}-{m + 1:02d},{sales},{5 + 0.1 * t:.2f}")
    return write(tmp_path, "\n".join(rows) + "\n")


def one_line_error(excinfo):
    message = str(excinfo.value)
    assert "\n" not in message
    return message


# -- reading ----------------------------------------------------------------------------------------


def test_wide_form_reads_one_monthly_series(tmp_path):
    data = read_series(monthly_csv(tmp_path), "sales", date="month", features="price")
    assert len(data) == 1 and data.numeric == ("price",) and data.notes == ()
    s = data.series[0]
    assert len(s) == 40 and s.target[0] == pytest.approx(100.0) and s.features["price"][3] == pytest.approx(5.3)
    assert (data.frequency.name, data.frequency.months, data.frequency.season) == ("monthly", 1, 12)
    assert str(s.dates[13])[:10] == "2001-02-01"


def test_long_form_sorts_each_series_and_says_so(tmp_path):
    rows = ["store,day,units"]
    for day in (3, 1, 2, 4, 5, 6):  # store b's rows are out of order
        rows.append(f"b,2024-01-0{day},{day * 10}")
    rows += [f"a,2024-01-0{d},{d}" for d in range(1, 8)]
    data = read_series(write(tmp_path, "\n".join(rows)), "units", date="day", id="store")
    assert [s.id for s in data.series] == ["b", "a"]  # the order in which the ids first appear
    assert data.series[0].target.tolist() == [10, 20, 30, 40, 50, 60]
    assert data.frequency.name == "daily" and data.frequency.season == 7
    assert any("not in date order in 1 series" in note for note in data.notes)


def test_date_spelled_by_several_columns(tmp_path):
    rows = ["No,year,month,day,hour,pm"] + [f"{i},2010,1,{1 + i // 24},{i % 24},{i}" for i in range(60)]
    data = read_series(write(tmp_path, "\n".join(rows)), "pm", date="year,month,day,hour")
    assert data.frequency.name == "hourly" and data.frequency.season == 24
    assert str(data.series[0].dates[25])[:16] == "2010-01-02T01:00"


@pytest.mark.parametrize(
    "text, kwargs, message",
    [
        ("a,b\n1,2\n", {"target": "y"}, "no target column 'y'; the columns are: a, b"),
        ("d,y\n2020-01-01,1\n2020-01-02,abc\n", {"target": "y"}, "data.csv:3: target column 'y' is not numeric: 'abc'"),
        ("d,y\n2020-01-01,1\n2020-01-02,2,9\n", {"target": "y"}, "data.csv:3: 3 fields where the header has 2"),
        ("d,y\n2020-01-01,\n2020-01-02,NA\n", {"target": "y"}, "has no value in the series (all 2 missing)"),
        ("d,y\n2020-01-01,1\nsoon,2\n", {"target": "y", "date": "d"}, "data.csv:3: cannot read 'soon' in column 'd'"),
        ("d,y\n2020-01-01,1\n2020-01-02,2\n2020-01-02,3\n", {"target": "y", "date": "d"},
         "duplicate timestamp 2020-01-02 in the series (lines 3 and 4)"),
        ("d,y\n2020-01-01 00:00,1\n2020-01-01 01:00,2\n2020-01-01 02:00,3\n2020-01-01 03:30,4\n2020-01-01 04:00,5\n",
         {"target": "y", "date": "d"}, "irregular timestamps in the series: 2020-01-01 03:30:00 is not a whole number"),
        ("y,f\n1,2\n2,x\n", {"target": "y", "features": "f"}, "data.csv:3: feature 'f' mixes numbers ('2') and text"),
        ("k,y\na,1\na,2\nb,,\n", {"target": "y", "id": "k"}, "data.csv:4: 3 fields"),
        ("k,y\na,1\na,2\nb,\nb,NA\n", {"target": "y", "id": "k"}, "has no value in series 'b'"),
        ("y\n", {"target": "y"}, "has a header but no rows"),
    ],
)  # fmt: skip
def test_bad_input_is_one_clear_line(tmp_path, text, kwargs, message):
    with pytest.raises(DataError) as excinfo:
        read_series(write(tmp_path, text), **kwargs)
    assert message in one_line_error(excinfo)


def test_bad_horizon_and_too_short_a_series(tmp_path):
    with pytest.raises(DataError, match="horizon must be at least 1, got 0"):
        WindowSpec(horizon=0, lookback=4)
    data = read_series(monthly_csv(tmp_path, n=20), "sales", date="month")
    with pytest.raises(DataError) as excinfo:
        prepare(data, WindowSpec(horizon=6, lookback=12))
    assert "has 20 points; lookback 12 + 2 x horizon 6 needs at least 24" in one_line_error(excinfo)
    prepare(data, WindowSpec(horizon=4, lookback=12))  # 12 + 2 * 4 = 20: enough


def test_missing_timestamps_become_masked_gaps(tmp_path):
    days = [1, 2, 3, 5, 6, 7, 8, 9, 10, 12]  # the 4th and the 11th are absent
    text = "day,temp\n" + "\n".join(f"2021-03-{d:02d},{d}.5" for d in days)
    data = read_series(write(tmp_path, text), "temp", date="day")
    s = data.series[0]
    assert len(s) == 12 and np.isnan(s.target[[3, 10]]).all()
    assert any("2 timestamps missing from the daily grid (first 2021-03-04) inserted as gaps" in n for n in data.notes)
    p = prepare(data, WindowSpec(horizon=2, lookback=3, scaling="none")).series[0]
    assert p.mask.tolist() == [d in days for d in range(1, 13)]
    assert p.target[3] == pytest.approx(3.5) and p.target[10] == pytest.approx(10.5)  # carried forward
    assert p.inputs[3, 1] == 1.0 and p.inputs[2, 1] == 0.0  # the target_missing channel


def test_month_end_dates_are_monthly_and_extend_to_month_ends(tmp_path):
    ends = ["2019-10-31", "2019-11-30", "2019-12-31", "2020-01-31", "2020-02-29", "2020-03-31", "2020-04-30"]
    data = read_series(write(tmp_path, "d,y\n" + "\n".join(f"{d},{i}" for i, d in enumerate(ends))), "y", date="d")
    assert data.frequency.name == "monthly" and data.frequency.anchor == "end"
    p = prepare(data, WindowSpec(horizon=2, lookback=2)).series[0]
    assert [str(d)[:10] for d in p.future_dates] == ["2020-05-31", "2020-06-30"]


# -- missing values, features, calendar, scaling ----------------------------------------------------


def test_target_gaps_features_imputed_and_flagged(tmp_path):
    rows = ["t,y,f,wind"]
    values = [("", "", "N"), ("", "4", "N"), ("10", "", ""), ("12", "6", "S"), ("", "", "E"), ("14", "8", "S")]
    values += [(str(15 + i), str(9 + i), "N") for i in range(10)]
    rows += [f"{i},{y},{f},{w}" for i, (y, f, w) in enumerate(values)]
    data = read_series(write(tmp_path, "\n".join(rows)), "y", features="f,wind")
    assert data.categorical == ("wind",) and data.frequency is None
    assert any("dropped 2 leading rows before the first observed target" in n for n in data.notes)
    assert any("1 of 14 target values missing" in n for n in data.notes)
    p = prepare(data, WindowSpec(horizon=3, lookback=2, scaling="none"))
    s = p.series[0]
    assert p.channels == ("target", "target_missing", "f", "wind=E", "wind=N", "wind=S", "f_missing", "wind_missing")
    assert np.isfinite(s.inputs).all()
    assert s.target[:4].tolist() == [10, 12, 12, 14] and s.mask[:4].tolist() == [True, True, False, True]
    # f: the first row's gap is before any value -> the training mean; later gaps carry the last value forward
    train_f = [6.0, 8.0] + [9.0 + i for i in range(4)]  # rows 1..6 of f within the 8 training rows
    assert s.inputs[0, 2] == pytest.approx(np.mean(train_f))
    assert s.inputs[1:5, 2].tolist() == [6, 6, 8, 9]
    assert s.inputs[:4, 6].tolist() == [1, 0, 1, 0]  # f_missing
    # wind: one-hot over the training categories; the leading gap is all zeros (nothing to carry forward)
    assert s.inputs[:4, 3:6].tolist() == [[0, 0, 0], [0, 0, 1], [1, 0, 0], [0, 0, 1]]
    assert s.inputs[:4, 7].tolist() == [1, 0, 0, 0]  # wind_missing: the empty cell of row 2 (now row 0)


def test_categories_unseen_in_training_are_all_zero(tmp_path):
    rows = ["y,c"] + [f"{i},{'a' if i % 2 else 'b'}" for i in range(20)] + ["20,z", "21,a", "22,z"]
    p = prepare(read_series(write(tmp_path, "\n".join(rows)), "y", features="c"), WindowSpec(horizon=2, lookback=3))
    assert p.channels[2:4] == ("c=a", "c=b")
    assert p.series[0].inputs[20, 2:4].tolist() == [0, 0] and p.series[0].inputs[21, 2:4].tolist() == [1, 0]
    assert any("not seen in training are all-zero: z" in n for n in p.notes)


def test_calendar_features_follow_the_frequency(tmp_path):
    hourly = "ts,y\n" + "\n".join(f"2024-01-01 {h:02d}:00,{h}" for h in range(24))
    p = prepare(read_series(write(tmp_path, hourly), "y", date="ts"), WindowSpec(horizon=3, lookback=4))
    assert p.known_channels == ("hour_sin", "hour_cos", "dow_sin", "dow_cos")
    hour6 = p.series[0].inputs[6, p.channels.index("hour_sin")]
    assert hour6 == pytest.approx(1.0)  # sin(2 pi 6 / 24)
    # 2024-01-01 is a Monday: day of week 0 -> (sin, cos) = (0, 1)
    assert p.series[0].inputs[0, p.channels.index("dow_cos")] == pytest.approx(1.0)
    assert p.series[0].known.shape == (24 + 3, 4)  # also for the 3 steps past the end
    assert p.series[0].known[24, 0] == pytest.approx(0.0) and p.series[0].known[24, 1] == pytest.approx(1.0)

    daily = "d,y\n" + "\n".join(f"2023-03-{d:02d},{d}" for d in range(1, 29))
    p = prepare(read_series(write(tmp_path, daily), "y", date="d"), WindowSpec(horizon=3, lookback=4))
    assert p.known_channels == ("dow_sin", "dow_cos", "doy_sin", "doy_cos")
    p = prepare(read_series(monthly_csv(tmp_path), "sales", date="month"), WindowSpec(horizon=3, lookback=4))
    assert p.known_channels == ("month_sin", "month_cos")
    march = p.series[0].inputs[2]
    assert (march[2], march[3]) == pytest.approx((math.sin(math.pi / 3), math.cos(math.pi / 3)))
    p = prepare(read_series(monthly_csv(tmp_path), "sales", date="month"), WindowSpec(3, 4, calendar=False))
    assert p.known_channels == () and p.channels == ("target", "target_missing")


@pytest.mark.parametrize("scaling", ["standard", "robust"])
def test_scaling_is_fitted_on_the_training_part_only(tmp_path, scaling):
    data = read_series(monthly_csv(tmp_path, n=40), "sales", date="month", features="price")
    spec = WindowSpec(horizon=6, lookback=8, scaling=scaling)
    p = prepare(data, spec)
    train = data.series[0].target[:28]
    center, scale = p.stats.target[""]
    if scaling == "standard":
        assert (center, scale) == pytest.approx((train.mean(), train.std()))
    else:
        q25, q50, q75 = np.percentile(train, [25, 50, 75])
        assert (center, scale) == pytest.approx((q50, (q75 - q25) / 1.349))
    s = p.series[0]
    assert s.target[30] == pytest.approx((data.series[0].target[30] - center) / scale)
    assert p.stats.unscale_target("", s.target) == pytest.approx(data.series[0].target)
    # the statistics travel as JSON and, applied unchanged, give the same arrays
    again = prepare(data, spec, stats=TrainingStats.from_dict(json.loads(json.dumps(p.stats.to_dict()))))
    assert np.array_equal(again.series[0].inputs, s.inputs)
    with pytest.raises(DataError, match="series 'x' was not in the training data"):
        p.stats.scale_target("x", [1.0])


def test_scaling_parameters_are_per_series(tmp_path):
    rows = ["id,y"] + [f"a,{i}" for i in range(20)] + [f"b,{1000 + 10 * i}" for i in range(20)]
    p = prepare(read_series(write(tmp_path, "\n".join(rows)), "y", id="id"), WindowSpec(horizon=2, lookback=3))
    assert p.stats.target["a"][0] == pytest.approx(np.mean(range(16)))
    assert p.stats.target["b"][0] == pytest.approx(1000 + 10 * np.mean(range(16)))
    assert abs(p.series[1].target[:16].mean()) < 1e-6  # each series is centred on its own training mean


# -- split, rolling origins, windows, look-ahead ---------------------------------------------------


def test_time_split_and_rolling_origins():
    split = time_split(100, 10)
    assert (split.train_end, split.val_end, split.end) == (80, 90, 100)
    assert split.bounds("future") == (100, 110)
    folds = rolling_origins(100, 10, folds=3)
    assert [(f.train_end, f.val_end, f.end) for f in folds] == [(60, 70, 80), (70, 80, 90), (80, 90, 100)]
    assert [f.end for f in rolling_origins(100, 10, folds=3, step=1)] == [98, 99, 100]
    with pytest.raises(DataError, match="horizon must be at least 1"):
        time_split(100, 0)


def test_windows_shapes_and_parts(tmp_path):
    data = read_series(monthly_csv(tmp_path, n=40), "sales", date="month", features="price")
    p = prepare(data, WindowSpec(horizon=6, lookback=8))
    train = windows(p, "train")
    C = len(p.channels)
    assert train.inputs.shape == (28 - 6 - 8 + 1, 8, C) and train.targets.shape == (15, 6)
    assert train.known.shape == (15, 6, 2) and train.mask.all()
    assert (train.origin + 6 <= 28).all()  # training targets never reach the validation part
    assert windows(p, "train", stride=4).origin.tolist() == [8, 12, 16, 20]
    which, origins = window_origins(p, "train")  # a batch gathered on demand is the same as the full set's rows
    batch = gather(p, which[[0, 5, 14]], origins[[0, 5, 14]])
    assert np.array_equal(batch.inputs, train.inputs[[0, 5, 14]])
    assert np.array_equal(batch.known, train.known[[0, 5, 14]])
    with pytest.raises(DataError, match="an origin outside 8 .. 40"):
        gather(p, [0], [7])
    s = p.series[0]
    for part, origin in (("val", 28), ("test", 34), ("future", 40)):
        w = windows(p, part)
        assert w.origin.tolist() == [origin] and np.array_equal(w.inputs[0], s.inputs[origin - 8 : origin])
    assert np.array_equal(windows(p, "test").targets[0], s.target[34:40])
    future = windows(p, "future")
    assert not future.mask.any() and np.array_equal(future.known[0], s.known[40:46])
    with pytest.raises(DataError, match="needs lookback 8 \\+ 3 x horizon 6 = 26"):
        windows(prepare(read_series(monthly_csv(tmp_path, n=22), "sales", date="month"), p.spec), "train")


def test_windows_skip_training_targets_that_are_all_missing(tmp_path):
    path = monthly_csv(tmp_path, n=40, gap_at=range(14, 18))
    w = windows(prepare(read_series(path, "sales", date="month"), WindowSpec(horizon=2, lookback=4)), "train")
    assert 14 not in w.origin.tolist() and 16 not in w.origin.tolist() and 13 in w.origin.tolist()


def all_windows(p):
    return {part: windows(p, part) for part in ("train", "val", "test")}


def check_no_look_ahead(before, after, t):
    """Every window whose inputs end before row t is unchanged; some window that sees row t (as an input or
    a target) did change, so the change is real and the test can fail."""
    changed = False
    for part in before:
        a, b = before[part], after[part]
        assert np.array_equal(a.origin, b.origin)
        for i, origin in enumerate(a.origin):
            if origin <= t:
                assert np.array_equal(a.inputs[i], b.inputs[i]), f"{part} window at {origin} changed by row {t}"
            else:
                changed |= not np.array_equal(a.inputs[i], b.inputs[i])
            changed |= not np.array_equal(a.targets[i], b.targets[i])
    assert changed


def series_with_gaps(tmp_path, change_at=None):
    rng = np.random.default_rng(7)
    n = 80
    y = 50 + np.cumsum(rng.normal(size=n))
    f = rng.normal(size=n)
    rows = ["d,y,f"]
    for t in range(n):
        value_y = "" if t in (5, 30, 31, 66) else f"{y[t] + (25.0 if t == change_at else 0.0):.4f}"
        value_f = "" if t in (0, 12, 13, 70) else f"{f[t] - (3.0 if t == change_at else 0.0):.4f}"
        rows.append(f"2022-01-{1 + t // 24:02d} {t % 24:02d}:00,{value_y},{value_f}")
    return read_series(write(tmp_path, "\n".join(rows), f"s{change_at}.csv"), "y", date="d", features="f")


@pytest.mark.parametrize("t", [56, 62, 67, 68, 71, 79])  # validation rows are 56..67, test rows 68..79
def test_a_future_value_changes_no_earlier_window(tmp_path, t):
    spec = WindowSpec(horizon=12, lookback=10)
    before = all_windows(prepare(series_with_gaps(tmp_path), spec))
    after = all_windows(prepare(series_with_gaps(tmp_path, change_at=t), spec))
    check_no_look_ahead(before, after, t)


@pytest.mark.parametrize("t", [20, 44, 55])  # training origins run 10..44
def test_no_look_ahead_inside_training_with_the_statistics_held(tmp_path, t):
    # a training row moves the fitted statistics (by design); held fixed, the row reaches no earlier input
    spec = WindowSpec(horizon=12, lookback=10)
    reference = prepare(series_with_gaps(tmp_path), spec)
    after = prepare(series_with_gaps(tmp_path, change_at=t), spec, stats=reference.stats)
    check_no_look_ahead(all_windows(reference), all_windows(after), t)


def test_backtest_sets_refit_each_fold(tmp_path):
    data = read_series(monthly_csv(tmp_path, n=60), "sales", date="month")
    spec = WindowSpec(horizon=6, lookback=12)
    folds = [prepare(d, spec) for d in backtest_sets(data, spec, folds=3)]
    assert [f.series[0].split.end for f in folds] == [48, 54, 60]
    assert folds[-1].stats.target == prepare(data, spec).stats.target  # the newest fold is the plain split
    assert folds[0].stats.target[""][0] == pytest.approx(data.series[0].target[:36].mean())
    tests = [windows(f, "test").targets[0] for f in folds]
    assert len({t.tobytes() for t in tests}) == 3
    with pytest.raises(DataError, match="3-fold backtest with step 6 needs series of at least 36"):
        backtest_sets(read_series(monthly_csv(tmp_path, n=35), "sales", date="month"), spec, folds=3)
