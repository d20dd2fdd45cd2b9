"""Forecasting: H steps ahead of one series or many, with a median and 80%/95% intervals, scored against the
statistical methods on the same split.

rnnkit train forecast --data FILE.csv --target COL [--date COL] [--features COL,...] [--id COL] --horizon H
                      [--lookback L] [--season M] [--decoder] --time-budget S --out RUN
rnnkit eval RUN [--data FULL.csv] [--backtest K] --json     # the last H rows of the file, model and baselines
rnnkit predict RUN --data FILE.csv [--horizon H] [--csv OUT.csv] [--plot OUT.png]   # past the end of the file

The data are read, checked, split and scaled by :mod:`rnnkit.data.timeseries` (the last H points of each series
are the test, the H before them validation, the rest training; scaling fitted on training rows only; target gaps
masked in the loss). The model is :class:`rnnkit.models.forecast.Forecaster`; the training keeps the weights
with the lowest validation scaled pinball loss (``spl``, :func:`score`), a proper score of the median and both
intervals. The baselines are :mod:`rnnkit.baselines.forecast`'s, fitted on everything before the part scored.

``eval`` and ``predict`` widen (or narrow) the model's intervals by factors calibrated on the held-out parts of
the run's own file (:func:`calibration`): the validation part, which the weights were chosen on but never trained
on, and, for series long enough, a calibration part of K more windows before it (:func:`default_calibration`),
held out of training for this alone. Fitted to the windows it has learned, the likelihood alone gives intervals
too narrow for points it has not seen; one validation window of H points alone gives a noisy factor.
"""

from __future__ import annotations

import argparse
import math
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from rnnkit import checkpoint, distributed
from rnnkit.baselines.forecast import Forecast, seasonal_naive
from rnnkit.baselines.scoring import (
    BASELINES,
    METRICS,
    REPORTED,
    baseline_forecasts,
    forecast_rows,
    interval_scales,
    observed_series,
    reported,
    rows_csv,
    score_baselines,
    score_part,
    widen,
)
from rnnkit.config import config_from_dict
from rnnkit.data.timeseries import (
    Frequency,
    Prepared,
    SeriesSet,
    TrainingStats,
    WindowSpec,
    backtest_sets,
    gather,
    prepare,
    read_series,
    window_origins,
)
from rnnkit.errors import CheckpointError, ConfigError, DataError
from rnnkit.models import load_model
from rnnkit.models.forecast import QUANTILES, Forecaster, ForecasterConfig, decoder_config, forecast_loss, quantiles
from rnnkit.tasks import register_task
from rnnkit.tasks.common import Batches
from rnnkit.tasks.options import DROPOUT, POSITIVE, Number, add_rnn_options, rnn_config_from_args

SMALL_DATA = 1000  # training windows below which the default model is the small one (default_size)
SMALL_DROPOUT = 0.3  # and its head's dropout: airline's best validation spl 0.20-0.22 with it, 0.23-0.24 without
CALIBRATION_SHARE = 0.05  # of the shortest series' training rows the default calibration part may take
MAX_CALIBRATION = 10  # windows of H in it at most (hourly, H = 24: ten days)
SEASON_CALIBRATION_SHARE = 0.15  # of those rows it may take to span one season (default_calibration)
MAX_PLOTTED = 6  # series drawn by `rnnkit predict --plot`; the CSV has them all


@dataclass(frozen=True)
class ForecastDataConfig:
    """Where the series come from and how the model sees them (everything to rebuild the windows)."""

    data: str
    target: str
    horizon: int
    lookback: int
    season: int = 1
    date: str | None = None
    features: str | None = None
    id: str | None = None
    scaling: str = "standard"
    calendar: bool = True
    batch_size: int = 64
    seed: int = 0
    calibration: int = 0
    floor: bool = True  # clip at 0 the forecasts of a series never negative in training (TrainingStats.floor)

    @property
    def spec(self) -> WindowSpec:
        return WindowSpec(self.horizon, self.lookback, self.scaling, self.calendar, self.calibration)

    def read(self, path: str | None = None) -> SeriesSet:
        """The series of ``path`` (default: the training file), read with this run's column roles."""
        return read_series(path or self.data, self.target, date=self.date, features=self.features, id=self.id)


def default_lookback(horizon: int, season: int, shortest: int) -> int:
    """L = max(2H, 2m) with m the frequency's usual season, shortened so that every series keeps at least
    H training windows (a series of n points has n - 2H training rows and n - 3H - L + 1 windows); where even
    that is too much, lookback and windows share what there is (L about (n - 3H + 1) / 2)."""
    wanted = max(2 * horizon, 2 * season)
    room = max(shortest - 4 * horizon + 1, (shortest - 3 * horizon + 1) // 2)
    return max(1, min(wanted, room))


def default_calibration(horizon: int, shortest: int, season: int = 1) -> int:
    """K, the windows of H points held out of training (before the validation part) to calibrate the intervals
    on: as many as fit in :data:`CALIBRATION_SHARE` of the shortest series' training rows, at most
    :data:`MAX_CALIBRATION`; or, where more are needed to span one season of m points and that takes at most
    :data:`SEASON_CALIBRATION_SHARE` of those rows, ceil(m / H). Airline (144 months, H = 24) gets none, monthly
    sunspots 5 (ten years), hourly PM2.5 10, Melbourne's daily minimum (m = 365, H = 30) 13. Why: with the
    validation window alone the factor rests on H points, and where that window was calmer than the test
    (sunspots, PM2.5) the intervals came out too narrow (80% coverage 0.62 and 0.42); where the calibration part
    saw only spring and summer, the autumn and winter after it were covered 0.683 (Melbourne, 10 unseen
    windows; 0.780 with a year of calibration, benchmarks/results/forecast_coverage-melbourne-*)."""
    rows = shortest - 2 * horizon
    share = max(0, min(MAX_CALIBRATION, int(CALIBRATION_SHARE * rows) // horizon))
    one_season = math.ceil(season / horizon) if season > 1 else 0
    return one_season if share < one_season and one_season * horizon <= SEASON_CALIBRATION_SHARE * rows else share


def default_size(windows: int) -> int:
    """The hidden size of the default model (its head's too): 32 for fewer than :data:`SMALL_DATA` training
    windows, 64 from there. A short series (airline: 25 windows of 48 months) overfits a 64-unit LSTM within
    a hundred steps; the smaller one, with dropout :data:`SMALL_DROPOUT` on its head, overfits more slowly, so
    the validation checks find its best weights. (On the longer shipped series that dropout helped none.)"""
    return 32 if windows < SMALL_DATA else 64


def check_season(series: SeriesSet, data: ForecastDataConfig) -> None:
    """MASE and the seasonal naive need, in each series' training part, observed points ``season`` apart that
    differ somewhere (MASE's scale, the in-sample seasonal-naive MAE, must not be 0)."""
    for s in series.series:
        label = f"series {s.id!r}" if s.id else "the series"
        train = s.target[: max(0, len(s) - (2 + data.calibration) * data.horizon)]
        m = data.season
        lagged = np.abs(train[m:] - train[:-m]) if train.size > m else np.zeros(0)
        lagged = lagged[np.isfinite(lagged)]
        if lagged.size == 0:
            raise DataError(f"--season {m}: the training part of {label} ({train.size} points) has no two observed "
                            f"values {m} steps apart, which MASE and the seasonal naive need")  # fmt: skip
        if not lagged.any():
            raise DataError(f"the training part of {label} repeats itself every {m} steps: MASE (scaled by the "
                            "seasonal naive's error) is undefined")  # fmt: skip


# -- forecasting and scoring ------------------------------------------------------------------------


def window_tensors(prepared: Prepared, series: np.ndarray, origins: np.ndarray, device) -> tuple[torch.Tensor, ...]:
    """(inputs (B, L, C), known (B, H, K), series (B,), targets (B, H), mask (B, H)) on ``device``."""
    w = gather(prepared, series, origins)
    arrays = (w.inputs, w.known, w.series, w.targets, w.mask)
    return tuple(torch.from_numpy(np.ascontiguousarray(a)).to(device) for a in arrays)


@torch.no_grad()
def model_forecasts(model: Forecaster, prepared: Prepared, part: str, device, *,
                    series_index: dict[str, int] | None = None) -> tuple[list[Forecast], torch.Tensor]:  # fmt: skip
    """The model's forecast of ``part`` (``"val"``, ``"test"``, ``"future"``) for every series, in the data's
    units, and the loss of its scaled targets (NaN where nothing in the part is observed). ``series_index``
    maps a series id to its row of the model's embedding (default: the order of ``prepared``)."""
    which, origins = window_origins(prepared, part)
    inputs, known, rows, targets, mask = window_tensors(prepared, which, origins, device)
    if series_index is not None:
        rows = torch.tensor([series_index[prepared.series[k].id] for k in which.tolist()], device=device)
    was_training = model.training
    model.eval()
    try:
        params = model(inputs, known, rows)  # (N, H, P)
    finally:
        model.train(was_training)
    likelihood = model.config.likelihood
    loss = forecast_loss(likelihood, params, targets, mask) if mask.any() else torch.tensor(math.nan)
    q = quantiles(likelihood, params, QUANTILES).double().cpu().numpy()  # (N, H, 5): 0.025, 0.1, 0.5, 0.9, 0.975
    out = []
    for n, k in enumerate(which.tolist()):
        values = prepared.stats.unscale_target(prepared.series[k].id, q[n])
        out.append(Forecast("rnnkit", values[:, 2], values[:, 1], values[:, 3], values[:, 0], values[:, 4]))
    return out, loss


@register_task
class ForecastTask:
    """H steps ahead from the L before, for one series or a global model across many (``--id``)."""

    name = "forecast"
    help = "time-series forecasting: a CSV -> the next H values with 80%/95% intervals, against ETS/ARIMA"
    monitor = ("spl", "min")
    has_test_set = True  # `rnnkit eval RUN` without --data scores the run's own file (its last H rows)

    def __init__(self, data: ForecastDataConfig, series: SeriesSet, prepared: Prepared, device,
                 series_index: dict[str, int] | None = None) -> None:  # fmt: skip
        self.data, self.series, self.prepared = data, series, prepared
        self.device = torch.device(device)
        self.series_index = series_index or {s.id: k for k, s in enumerate(prepared.series)}
        self.rows = np.array([self.series_index[s.id] for s in prepared.series], dtype=np.int64)
        self.which, self.origins = window_origins(prepared, "train")
        if not observed_series(prepared, "val"):
            raise DataError("no series has an observed target in its validation part (the H points before the "
                            "last H): nothing to choose the weights by")  # fmt: skip
        self.notes: list[str] = list(series.notes + prepared.notes)

    # -- the trainer's protocol -------------------------------------------------------------------

    def train_batches(self, epoch: int, start: int):
        order = np.random.default_rng([self.data.seed, epoch]).permutation(len(self.origins))
        size = self.data.batch_size
        count = -(-len(order) // size)
        # the global batches; under torchrun each process takes its share of each
        return Batches(range(start, count), lambda k: self.batch(distributed.share(order[k * size : (k + 1) * size])))

    def batch(self, picks: np.ndarray) -> tuple[torch.Tensor, ...]:
        """The training windows ``picks`` (indices into the training origins)."""
        inputs, known, _, targets, mask = window_tensors(self.prepared, self.which[picks], self.origins[picks], "cpu")
        return inputs, known, torch.from_numpy(self.rows[self.which[picks]]), targets, mask

    def loss(self, model: Forecaster, batch) -> tuple[torch.Tensor, int]:
        inputs, known, series, targets, mask = (t.to(self.device) for t in batch)
        params = model(inputs, known, series)  # (B, H, P)
        return forecast_loss(model.config.likelihood, params, targets, mask), int(mask.sum())

    def evaluate(self, model: Forecaster) -> dict:
        """The validation part of every series: ``loss`` (the training loss, in scaled units) and the metrics
        of :func:`score` in the data's units, averaged over the series."""
        forecasts, loss = model_forecasts(model, self.prepared, "val", self.device, series_index=self.series_index)
        return {"loss": float(loss), **score_part(forecasts, self.prepared, "val", self.data.season)}

    def state_dict(self) -> dict:
        return {}  # batches depend on (seed, epoch) only; the trainer keeps the position

    def load_state_dict(self, saved: dict) -> None:
        pass

    # -- building ---------------------------------------------------------------------------------

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("data")
        g.add_argument("--data", metavar="FILE.csv", help="the series: one row per step (wide), or stacked "
                       "series named by --id (long)")  # fmt: skip
        g.add_argument("--target", metavar="COL", help="the column to forecast")
        g.add_argument("--date", metavar="COL", help="the date column, or year,month,day[,hour] columns; gives "
                       "the time grid and calendar features")  # fmt: skip
        g.add_argument("--features", metavar="COL,...", help="exogenous columns known in the past (numeric or "
                       "categorical)")  # fmt: skip
        g.add_argument("--id", metavar="COL", help="long format: the column naming each row's series (one global "
                       "model)")  # fmt: skip
        g.add_argument("--horizon", type=POSITIVE, metavar="H", help="steps to forecast (also the size of the "
                       "validation and test parts)")  # fmt: skip
        g.add_argument("--lookback", type=POSITIVE, metavar="L", help="past steps the model reads (default: "
                       "max(2H, 2 x the frequency's season), shortened for short series)")  # fmt: skip
        g.add_argument("--season", type=POSITIVE, metavar="M", help="season length for MASE and the seasonal "
                       "baselines (default: the frequency's: hourly 24, daily 7, monthly 12; 1 without dates)")
        g.add_argument("--calibration", type=Number(int, 0), metavar="K", help="windows of H held out of "
                       "training before the validation part, to calibrate the intervals on (default: as many as "
                       f"fit in {CALIBRATION_SHARE:.0%} of the shortest series' training rows, at most "
                       f"{MAX_CALIBRATION}; or enough to span one season where that takes at most "
                       f"{SEASON_CALIBRATION_SHARE:.0%})")  # fmt: skip
        g.add_argument("--scaling", choices=["standard", "robust", "none"], default="standard",
                       help="per-series scaling, fitted on the training part")  # fmt: skip
        g.add_argument("--no-calendar", action="store_true", help="no calendar features from the dates")
        g.add_argument("--no-floor", action="store_true", help="let forecasts go below 0 (default: a series "
                       "whose training target is never negative is never forecast negative)")  # fmt: skip
        m = parser.add_argument_group("model")
        m.add_argument("--cell", choices=["lstm", "gru", "rnn"], default="lstm")
        m.add_argument("--hidden-size", type=POSITIVE, help="units of each recurrent layer (default: 32 below "
                       f"{SMALL_DATA:,} training windows, else 64)")  # fmt: skip
        m.add_argument("--num-layers", type=POSITIVE, default=1)
        m.add_argument("--bidirectional", action="store_true", help="bidirectional encoder over the past window")
        m.add_argument("--decoder", action="store_true", help="encoder-decoder: a decoder RNN over the H steps "
                       "(default: a direct multi-horizon head on the encoder's last output)")  # fmt: skip
        m.add_argument("--likelihood", choices=["gaussian", "student_t", "quantile"], default="student_t")
        m.add_argument("--head-size", type=Number(int, 0), help="hidden layer of the head (0: none; default: the "
                       "hidden size)")  # fmt: skip
        m.add_argument("--series-embedding", type=Number(int, 0), help="size of each series' learned vector "
                       "(default: 0 for one series, else min(16, (series + 1) // 2))")  # fmt: skip
        m.add_argument("--no-window-scaling", action="store_true",
                       help="feed the series-scaled target as it is, not centred and scaled per window")
        m.add_argument("--dropout", type=DROPOUT, help="dropout on what the head reads (and between layers; "
                       f"default: {SMALL_DROPOUT} below {SMALL_DATA:,} training windows, else 0)")  # fmt: skip
        add_rnn_options(m)

    @classmethod
    def train_defaults(cls) -> dict:
        return {"batch_size": 64, "lr": 1e-3, "schedule": "constant", "clip_norm": 1.0, "eval_every": 50,
                "default_epochs": 50}  # fmt: skip

    @classmethod
    def data_config(cls, args: argparse.Namespace) -> tuple[ForecastDataConfig, SeriesSet, dict]:
        for flag in ("data", "target", "horizon"):
            if getattr(args, flag) is None:
                raise ConfigError(f"rnnkit train forecast needs --{flag} (or --resume RUN)")
        if not Path(args.data).is_file():
            raise DataError(f"{args.data}: no such file")
        series = read_series(args.data, args.target, date=args.date, features=args.features, id=args.id)
        frequency = series.frequency
        usual = frequency.season if frequency is not None else 1
        season = args.season if args.season is not None else usual
        shortest = min(len(s) for s in series.series)
        held = args.calibration if args.calibration is not None else default_calibration(args.horizon, shortest, season)
        lookback = args.lookback or default_lookback(args.horizon, usual, shortest - held * args.horizon)
        chosen = {}
        if args.season is None:
            chosen["season"] = f"{season} ({frequency.name if frequency is not None else 'no dates'})"
        if args.lookback is None:
            chosen["lookback"] = f"{lookback} (max(2H, 2 x {usual})" + (", shortened for the shortest series)"
                                                                         if lookback < max(2 * args.horizon, 2 * usual)
                                                                         else ")")  # fmt: skip
        if args.calibration is None:
            chosen["calibration"] = (f"{held} windows of {args.horizon} ({CALIBRATION_SHARE:.0%} of the shortest "
                                     f"series' {shortest - 2 * args.horizon} training rows, at most "
                                     f"{MAX_CALIBRATION}; or one season of {season} where that takes at most "
                                     f"{SEASON_CALIBRATION_SHARE:.0%})")  # fmt: skip
        data = ForecastDataConfig(
            data=str(Path(args.data).resolve()), target=args.target, horizon=args.horizon, lookback=lookback,
            season=season, date=args.date, features=args.features, id=args.id, scaling=args.scaling,
            calendar=not args.no_calendar, batch_size=args.batch_size, seed=args.seed, calibration=held,
            floor=not args.no_floor,
        )  # fmt: skip
        return data, series, chosen

    @classmethod
    def from_args(cls, args: argparse.Namespace, device: torch.device):
        """Build (task, model, run config, vocabulary) from the command line."""
        data, series, chosen = cls.data_config(args)
        prepared = prepare(series, data.spec)
        task = cls(data, series, prepared, device)  # refuses series too short for a training window
        check_season(series, data)
        n = len(prepared.series)
        embedding = args.series_embedding
        if embedding is None:
            embedding = 0 if n == 1 else min(16, (n + 1) // 2)
        window_scaling = not args.no_window_scaling
        static = embedding + (2 if window_scaling else 0)
        C, K = len(prepared.channels), len(prepared.known_channels)
        if args.hidden_size is None:
            args.hidden_size = default_size(len(task.origins))
            chosen["hidden_size"] = f"{args.hidden_size} ({len(task.origins):,} training windows)"
        if args.dropout is None:
            args.dropout = SMALL_DROPOUT if len(task.origins) < SMALL_DATA else 0.0
            chosen["dropout"] = f"{args.dropout:g} ({len(task.origins):,} training windows)"
        head_size = args.hidden_size if args.head_size is None else args.head_size
        rnn = rnn_config_from_args(args, input_size=C + static, bidirectional=args.bidirectional)
        model = Forecaster(ForecasterConfig(
            input_size=C, known_size=K, horizon=data.horizon, rnn=rnn,
            decoder=decoder_config(rnn, K + static + 1) if args.decoder else None, num_series=n,
            series_embedding=embedding, likelihood=args.likelihood, head_size=head_size, dropout=args.dropout,
            window_scaling=window_scaling,
        ))  # fmt: skip
        task.notes += baseline_notes(prepared, data.season)
        task.notes.append(f"{len(task.origins):,} training windows of {data.lookback} steps -> {data.horizon} "
                          f"from {n} series; season {data.season}")  # fmt: skip
        floored = [s.id or "the series" for s in prepared.series if s.id in prepared.stats.floor]
        if data.floor and floored:
            task.notes.append(f"never negative in training, so forecast at 0 or above (--no-floor: not): "
                              f"{', '.join(floored[:5])}{' ...' if len(floored) > 5 else ''}")  # fmt: skip
        if chosen:
            task.notes.append("defaults chosen from the data: " + "; ".join(f"{k} {v}" for k, v in chosen.items()))
        record = run_record(data, prepared, task.series_index)
        record["chosen_defaults"] = chosen
        return task, model, record, None

    @classmethod
    def from_run(cls, run_dir: Path, config: dict, device: torch.device) -> ForecastTask:
        """Rebuild the task of a saved run (to resume it), with the statistics it was fitted with."""
        data, stats, index = load_run(run_dir, config)
        series = data.read()
        return cls(data, series, prepare_like(series, data, stats, config), device, index)

    @classmethod
    def check_run(cls, run_dir: Path, config: dict) -> None:
        """config.json's series, channels and horizon must be those its model was built for."""
        data, _, index = load_run(run_dir, config)
        model = (config.get("model") or {}).get("config") or {}
        implied = {"num_series": len(index), "input_size": len(config.get("channels") or []),
                   "known_size": len(config.get("known_channels") or []), "horizon": data.horizon}  # fmt: skip
        for key, value in implied.items():
            if key in model and model[key] != value:
                raise CheckpointError(f"{run_dir}/{checkpoint.CONFIG}: its data imply model {key} = {value}, its "
                                      f"model has {model[key]}")  # fmt: skip

    @classmethod
    def evaluate_run(cls, run_dir: Path, config: dict, args: argparse.Namespace, device: torch.device) -> dict:
        """``rnnkit eval RUN [--data FULL.csv] [--backtest K]``: the forecast from everything before the last H
        rows of the file against those rows, for the model and every baseline; with K, also K rolling origins."""
        model, data, stats, index = load_parts(run_dir, config, device)
        series = data.read(getattr(args, "data", None))
        prepared = prepare_like(series, data, stats, config)
        own = prepared if getattr(args, "data", None) is None else None  # no --data: the run's own file
        scales = calibration(model, data, stats, config, index, device, own)
        raw, _ = model_forecasts(model, prepared, "test", device, series_index=index)
        forecasts = calibrated(raw, scales, prepared, data)
        model_scores = score_part(forecasts, prepared, "test", data.season)
        uncalibrated = score_part(raw, prepared, "test", data.season)
        baselines = score_baselines(prepared, "test", data.season)
        result = {
            "task": cls.name,
            "metrics": reported(model_scores),
            "baselines": {name: reported(scores) for name, scores in baselines.items()},
            "forecast": forecast_rows(forecasts, prepared, "test"),
            "details": {  # what the three keys leave out: MAPE, spl, the fitted models, the reader's notes
                "model": {k: model_scores.get(k) for k in METRICS if k not in REPORTED},
                "baselines": {name: {**{k: s.get(k) for k in METRICS if k not in REPORTED}, "method": s["method"]}
                              for name, s in baselines.items()},
                "interval_scales": {str(level): scale for level, scale in scales.items()},
                "uncalibrated": {k: uncalibrated.get(k) for k in ("coverage_80", "coverage_95", "spl")},
                "series": len(prepared.series), "horizon": data.horizon, "season": data.season,
                "notes": list(series.notes + prepared.notes),
            },
        }  # fmt: skip
        folds = getattr(args, "backtest", None)
        if folds:
            result["backtest"] = backtest(model, series, data, stats, config, index, folds, device, scales)
        return result

    @classmethod
    def predict_run(cls, run_dir: Path, config: dict, args: argparse.Namespace, device: torch.device) -> dict:
        """``rnnkit predict RUN --data FILE.csv [--horizon H] [--csv OUT] [--plot OUT.png]``: the forecast of the
        H steps after the end of the file (at most the model's horizon), with the baselines fitted on all of it."""
        model, data, stats, index = load_parts(run_dir, config, device)
        steps = getattr(args, "horizon", None) or data.horizon
        if steps > data.horizon:
            raise ConfigError(f"--horizon {steps}: this run forecasts at most {data.horizon} steps (its --horizon)")
        if getattr(args, "data", None) is None:
            raise ConfigError("rnnkit predict on a forecast run needs --data FILE.csv (the history to forecast from)")
        series = data.read(args.data)
        prepared = prepare_like(series, data, stats, config)
        scales = calibration(model, data, stats, config, index, device)
        raw, _ = model_forecasts(model, prepared, "future", device, series_index=index)
        forecasts = calibrated(raw, scales, prepared, data)
        baselines, fitted = baseline_forecasts(prepared, "future", data.season)
        rows = forecast_rows(forecasts, prepared, "future", steps)
        text = rows_csv(rows)
        if getattr(args, "csv", None):
            Path(args.csv).write_text(text, encoding="utf-8")
        if getattr(args, "plot", None):
            plot_forecast(args.plot, prepared, forecasts, baselines, steps, data.target)
        baseline_rows = {name: forecast_rows([f for f in per if f is not None], prepared, "future", steps)
                         for name, per in baselines.items() if all(f is not None for f in per)}  # fmt: skip
        return {"task": cls.name, "forecast": rows, "baselines": baseline_rows, "fitted": fitted,
                "notes": list(series.notes + prepared.notes), "text": text.rstrip("\n")}  # fmt: skip


def baseline_notes(prepared: Prepared, season: int) -> list[str]:
    """The validation MASE of the two naive forecasts, for reading the training log against."""
    scores = {}
    for name, fn in (("naive", lambda y: seasonal_naive(y, prepared.spec.horizon, 1)),
                     ("seasonal naive", lambda y: seasonal_naive(y, prepared.spec.horizon, season))):  # fmt: skip
        try:
            per = [fn(s.history("val")) for s in prepared.series]
        except ValueError:
            continue
        scores[name] = score_part(per, prepared, "val", season)["mase"]
    if not scores:
        return []
    return ["validation MASE of the baselines: " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items())]


def run_record(data: ForecastDataConfig, prepared: Prepared, index: dict[str, int]) -> dict:
    """What config.json holds besides the model: the data, the fitted statistics, the channels, the series."""
    return {
        "task": ForecastTask.name,
        "data": asdict(data),
        "stats": prepared.stats.to_dict(),
        "channels": list(prepared.channels),
        "known_channels": list(prepared.known_channels),
        "frequency": None if prepared.frequency is None else prepared.frequency.to_dict(),
        "series": list(index),
    }


def load_run(run_dir: Path, config: dict) -> tuple[ForecastDataConfig, TrainingStats, dict[str, int]]:
    where = f"{run_dir}/config.json"
    data = config_from_dict(ForecastDataConfig, config.get("data"), f"{where} data")
    try:
        stats = TrainingStats.from_dict(config.get("stats") or {})
    except DataError as error:
        raise CheckpointError(f"{where}: {error}") from None
    ids = config.get("series")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or not ids:
        raise CheckpointError(f'{where}: "series" must be the list of series ids')
    return data, stats, {name: k for k, name in enumerate(ids)}


def calibration(model: Forecaster, data: ForecastDataConfig, stats: TrainingStats, config: dict,
                index: dict[str, int], device, own: Prepared | None = None) -> dict[int, float]:
    """The factors (per interval level) that make the model's intervals cover their level on the held-out parts
    of the run's own file, calibration and validation windows pooled
    (:func:`rnnkit.baselines.scoring.interval_scales`), whatever file is scored; ``own``: that file already
    prepared, when the caller has it (not read twice)."""
    own = own if own is not None else prepare_like(data.read(), data, stats, config)
    forecasts, actuals = [], []
    for part in ("calibration", "val"):
        which, origins = window_origins(own, part)
        if len(origins):
            forecasts += model_forecasts(model, own, part, device, series_index=index)[0]
            actuals += [own.series[k].actual_from(o) for k, o in zip(which.tolist(), origins.tolist())]
    return interval_scales(forecasts, actuals)


def calibrated(raw: list[Forecast], scales: dict[int, float], prepared: Prepared, data: ForecastDataConfig
               ) -> list[Forecast]:  # fmt: skip
    """The model's forecasts of a val/test/future part (one per series of ``prepared``) with their intervals
    widened by ``scales`` and, unless ``--no-floor``, clipped at each series' floor (``TrainingStats.floor``)."""
    floors = [prepared.stats.floor.get(s.id, -math.inf) if data.floor else -math.inf for s in prepared.series]
    return [widen(f, scales, floor) for f, floor in zip(raw, floors, strict=True)]


def load_parts(run_dir: Path, config: dict, device) -> tuple[Forecaster, ForecastDataConfig, TrainingStats, dict]:
    data, stats, index = load_run(run_dir, config)
    return load_model(run_dir, device=device, task=ForecastTask.name), data, stats, index


def prepare_like(series: SeriesSet, data: ForecastDataConfig, stats: TrainingStats, config: dict) -> Prepared:
    """``series`` prepared with a run's statistics, checked to give the run's channels."""
    prepared = prepare(series, data.spec, stats=stats)
    channels = config.get("channels")
    if channels is not None and list(prepared.channels) != list(channels):
        raise DataError(f"{series.source} gives the channels {', '.join(prepared.channels)}; the run was trained on "
                        f"{', '.join(channels)}")  # fmt: skip
    frequency = config.get("frequency")
    if frequency is not None and series.frequency is not None and series.frequency != Frequency.from_dict(frequency):
        raise DataError(f"{series.source} is {series.frequency.name}; the run was trained on "
                        f"{Frequency.from_dict(frequency).name} data")  # fmt: skip
    return prepared


def backtest(model: Forecaster, series: SeriesSet, data: ForecastDataConfig, stats: TrainingStats, config: dict,
             index: dict[str, int], folds: int, device, scales: dict[int, float]) -> dict:  # fmt: skip
    """K rolling origins H apart (the last one is the plain split): per fold the metrics of the model and of every
    baseline (refitted on the data before each origin), and their mean and spread (population std). Where the
    shortest series cannot hold K origins H apart, they are closer (the step shrinks; the result says it).

    The model is not retrained per fold: an origin whose test part lies inside the rows the run trained on
    (``"in_training"``) scores it on points it has seen; only the others are out of sample."""
    trained = {s.id: len(s) - (2 + data.calibration) * data.horizon for s in data.read().series}  # training rows
    spare = min(len(s) for s in series.series) - data.spec.min_length
    step = data.horizon if folds == 1 else max(1, min(data.horizon, spare // (folds - 1)))
    per_fold = []
    for k, fold in enumerate(backtest_sets(series, data.spec, folds, step)):
        prepared = prepare_like(fold, data, stats, config)
        raw, _ = model_forecasts(model, prepared, "test", device, series_index=index)
        forecasts = calibrated(raw, scales, prepared, data)
        seen = any(s.split.val_end < trained.get(s.id, 0) for s in prepared.series)
        per_fold.append({"fold": k, "in_training": seen, "model": score_part(forecasts, prepared, "test", data.season),
                         "baselines": score_baselines(prepared, "test", data.season)})  # fmt: skip

    def spread(scores: list[dict]) -> dict:
        out = {}
        for key in METRICS:
            values = [s.get(key) for s in scores]
            if values and all(isinstance(v, float) for v in values):
                out[key] = {"mean": statistics.fmean(values), "std": statistics.pstdev(values)}
        return out

    return {
        "folds": folds, "step": step,
        "model": spread([f["model"] for f in per_fold]),
        "baselines": {m: spread([f["baselines"][m] for f in per_fold]) for m in BASELINES},
        "out_of_sample_folds": sum(not f["in_training"] for f in per_fold),
        "per_fold": per_fold,
    }  # fmt: skip


def plot_forecast(path: str, prepared: Prepared, forecasts: list[Forecast], baselines: dict, steps: int,
                  target: str) -> None:  # fmt: skip
    """History (the last max(L, 4H) points), the median, the 80% and 95% bands and the baselines dashed, one panel
    per series (the first :data:`MAX_PLOTTED`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = list(range(min(len(prepared.series), MAX_PLOTTED)))
    fig, axes = plt.subplots(len(shown), 1, figsize=(10, 3.2 * len(shown)), squeeze=False)
    for ax, k in zip(axes[:, 0], shown):
        s, f = prepared.series[k], forecasts[k]
        back = min(len(s.raw), max(prepared.spec.lookback, 4 * steps))
        if s.dates is not None and s.future_dates is not None:
            past, ahead = s.dates[-back:], s.future_dates[:steps]
        else:
            past, ahead = np.arange(len(s.raw) - back, len(s.raw)), np.arange(len(s.raw), len(s.raw) + steps)
        ax.plot(past, s.raw[-back:], color="black", lw=1, label="history")
        ax.fill_between(ahead, f.lo95[:steps], f.hi95[:steps], color="tab:blue", alpha=0.18, label="95%")
        ax.fill_between(ahead, f.lo80[:steps], f.hi80[:steps], color="tab:blue", alpha=0.35, label="80%")
        ax.plot(ahead, f.median[:steps], color="tab:blue", lw=1.8, label="rnnkit median")
        for (name, per), color in zip(baselines.items(), ("tab:gray", "tab:green", "tab:orange", "tab:red")):
            if per[k] is not None:
                ax.plot(ahead, per[k].median[:steps], ls="--", lw=1.1, color=color, label=name)
        ax.set_title(f"{target}" + (f" ({s.id})" if s.id else ""))
        ax.legend(loc="upper left", fontsize=8, ncol=4)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
