"""The training loop, shared by every task: clipping, evaluation, early stopping, checkpoints, resuming,
time budgets. The options, optimizer and schedule are :mod:`rnnkit.trainconfig`'s; the checks of a
resumed run's parts are :mod:`rnnkit.resume`'s; both are re-exported here.

Like minGPT's trainer it knows nothing about any task. A task plugs in through four methods::

    task.train_batches(epoch, start)   # an iterable over the epoch's batches from index ``start``; has len()
    task.loss(model, batch)            # -> (mean loss tensor, number of predictions it averages)
    task.evaluate(model)               # -> {"loss": ..., other metrics}, run under no_grad in eval mode
    task.state_dict() / task.load_state_dict(state)   # data position and carried state, for resuming
and the attribute ``task.monitor = ("loss", "min")`` (or e.g. ``("accuracy", "max")``) for early stopping
and for choosing the best checkpoint. Optional, and used where a task has them:

    task.eval_size()                   # -> (units, unit name, probe units): what evaluate(model, limit) counts
    task.evaluate(model, limit=N)      # the metrics of a fixed subset of N units (the same N, the same subset)
    task.after_evaluate(model)         # -> extra metrics; side effects of an evaluation (a curriculum's level)
    task.uniform_loss                  # log V: the loss of a uniform guess, for spotting divergence
    task.check_state(model)            # resumed carried state against the model

**Time budgets cover everything**: the run, its evaluations, its last save and what the caller does
after it end within the budget (:mod:`rnnkit.budget`: when to stop, when to evaluate, how much of the
validation split one evaluation scores).

**Nothing lost.** The run directory is locked (:class:`rnnkit.runlock.RunLock`) while a trainer writes
it. Nothing that is not finite is saved; a validation loss that is not finite, far above the uniform
guess or far above the best stops the run (``allow_divergence`` goes on) and keeps the best weights.
A resumed run checks its parts against each other (:mod:`rnnkit.resume`) and cuts
``metrics.jsonl`` back to the step it resumes from, so no step is logged twice.

**Polyak averaging** (``average=d``, ``--average d``): after every step ``a <- d a + (1 - d) w`` (torch's
``AveragedModel``; ``a`` starts as the first step's weights); evaluations score ``a``, checkpoints keep it,
and the training state carries it, so a resumed run averages on as if it had not stopped.

The model and device are passed in; every random draw goes through the seeded global and task
generators whose states the run directory saves; all writes go through :meth:`Trainer.save` and
:meth:`Trainer.log`.

**Several processes** (torchrun; :mod:`rnnkit.distributed`): each step runs ``task.loss`` inside
DistributedDataParallel on this rank's share of the batch and back-propagates it weighted by its share
of the global count, so the averaged gradient, its clipped norm and the logged loss are the global ones.
Rank 0 alone evaluates (its metrics broadcast), writes and holds the lock; decisions that read a clock
are rank 0's, broadcast, so every rank takes the same steps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from rnnkit import checkpoint, distributed
from rnnkit.bptt import clip_gradients
from rnnkit.budget import EVAL_SHARE, MARKS, Budget
from rnnkit.errors import CheckpointError, RnnkitError, TrainingError
from rnnkit.models import model_spec
from rnnkit.resume import Progress, check_training_state, resume_parts
from rnnkit.runlock import RunLock
from rnnkit.trainconfig import (
    OPTIMIZERS,
    SCHEDULES,
    TRAIN_RANGES,
    Schedule,
    TrainConfig,
    make_optimizer,
    training_dtype,
)

# rnnkit.train is where callers find the training API; the options and the resume checks live beside it
__all__ = [
    "EVAL_SHARE", "MARKS", "Budget", "OPTIMIZERS", "SCHEDULES", "TRAIN_RANGES", "Callback", "Diverged", "Progress",
    "Schedule", "TrainConfig", "Trainer", "describe_device", "make_optimizer", "max_abs_gradient", "resume_parts",
    "training_dtype",
]  # fmt: skip



Callback = Callable[[str, dict], None]


class Diverged(TrainingError):
    """The validation loss diverged; the run stopped and kept its best checkpoint."""

    every_rank = True  # on several processes every rank stops on the same broadcast metrics


class Trainer:
    """Train ``model`` on ``task`` into ``run_dir``; ``callback(event, record)`` reports progress.

    Events: ``"step"`` after every step (``step``, ``loss``, ``lr``), ``"train"`` every ``log_every``
    steps and ``"valid"`` at every evaluation (the records written to ``metrics.jsonl``), ``"note"``
    (``message``: what a user should know, e.g. that evaluation is bounded), ``"end"``.

    ``lock``: the run directory's lock, if the caller took it already (else :meth:`fit` takes it);
    ``started``: the ``time.perf_counter()`` at which this session's work began (default: when
    :meth:`fit` starts), so that a time budget covers what came before training too. ``reserve``, a
    callable, says how many seconds the caller needs after :meth:`fit` returns (a last sample); they
    are kept free inside the budget. Call :meth:`close` when done (it releases the lock).
    """

    def __init__(
        self,
        model: nn.Module,
        task: Any,
        config: TrainConfig,
        run_dir: str | Path,
        *,
        run_config: dict,
        vocab: Any = None,
        device: torch.device | str = "cpu",
        callback: Callback | None = None,
        lock: RunLock | None = None,
        started: float | None = None,
    ) -> None:
        self.model, self.task, self.config = model, task, config
        self.run_dir, self.run_config, self.vocab = Path(run_dir), run_config, vocab
        self.device = torch.device(device)
        self.callback = callback or (lambda event, record: None)
        self.optimizer = make_optimizer(config, model.parameters())
        # Polyak averaging: what is scored and kept is the moving average of the weights, when asked for
        self.averaged = None if config.average is None else AveragedModel(
            model, multi_avg_fn=get_ema_multi_avg_fn(config.average), use_buffers=True)
        self.schedule = Schedule(config)
        self.progress = Progress()
        self.metric, self.mode = getattr(task, "monitor", ("loss", "min"))
        self.lock = lock or RunLock(self.run_dir)
        self.reserve: Callable[[], float] = lambda: 0.0
        self.notes: list[str] = []
        self._epoch_length = 1
        self._started = started
        self._clock = (time.perf_counter(), 0.0)  # (wall time at start of this session, elapsed before it)
        self._on_disk: dict[str, int | None] = {"state": None, "weights": None}  # steps of what is saved
        self.budget = Budget(config)  # the limits, and what a step, an evaluation and a save take
        self._evals = 0  # evaluations in this session
        self._step_loss: Callable | None = None  # task.loss, under DistributedDataParallel on several processes

    def _tick(self) -> None:
        """Bring ``progress.elapsed`` up to now: wall time over all sessions of this run."""
        start, before = self._clock
        self.progress.elapsed = before + time.perf_counter() - start

    def note(self, message: str) -> None:
        """Tell the user something about the run (the command line prints it; summary.json keeps it)."""
        if message not in self.notes:
            self.notes.append(message)
            self.callback("note", {"message": message})

    def close(self) -> None:
        """Release the run directory's lock."""
        self.lock.release()

    def __enter__(self) -> Trainer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- resuming ---------------------------------------------------------------------------------

    def training_state(self, task_state: dict | None = None) -> dict:
        state = {
            "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            **({} if self.averaged is None else {"average": self.averaged.state_dict()}),
            "progress": asdict(self.progress),
            "task": self.task.state_dict() if task_state is None else task_state,
            "rng_cpu": torch.get_rng_state(),
        }
        if self.device.type == "cuda":
            state["rng_cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_training_state(self, state: dict) -> None:
        """Restore weights, optimizer, schedule, progress, data position and RNGs from ``optimizer.pt``,
        after checking each part against the model and the data: a mismatch is one CheckpointError line
        that names the part and the key or shape."""
        where = f"{self.run_dir / checkpoint.TRAINING_STATE}"
        progress, length = check_training_state(state, self.model, self.task, where)
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.schedule.load_state_dict(state["schedule"])
            if self.averaged is not None:
                self.averaged.load_state_dict(state["average"])
            self.task.load_state_dict(state["task"])
            if hasattr(self.task, "check_state"):
                self.task.check_state(self.model)
            torch.set_rng_state(state["rng_cpu"])
            if self.device.type == "cuda" and "rng_cuda" in state:
                torch.cuda.set_rng_state(state["rng_cuda"], self.device)
        except RnnkitError as error:
            raise CheckpointError(f"{where}: {error}") from None
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as error:
            raise CheckpointError(f"{where} does not fit this run: {type(error).__name__}: "
                                  f"{checkpoint._first_line(error)}") from None  # fmt: skip
        self.progress = progress
        self._epoch_length = length
        self._on_disk = {"state": progress.last_saved_step,
                         "weights": checkpoint.weights_step(self.run_dir) or progress.best_step}  # fmt: skip

    # -- writing ----------------------------------------------------------------------------------

    def on_disk(self) -> str:
        """What the run directory holds now, for messages: the resume point and the best weights."""
        state, weights = self._on_disk["state"], self._on_disk["weights"]
        if state is None:
            return f"nothing was saved in {self.run_dir}"
        kind = "the best weights" if self.progress.best is not None else "the weights"
        best = "" if weights is None else f" and {kind} (step {weights})"
        return f"{self.run_dir} keeps the checkpoint of step {state}{best}"

    def save(self, *, weights: bool) -> None:
        """The one place that writes the run: resume state always, weights when they are the best.

        Refuses (TrainingError, nothing written) a state that is not finite; a failed write (a full disk)
        is a TrainingError too, and the files of the previous save stay as they were. Every rank calls it
        (the task's state may gather every rank's part); rank 0 writes."""
        task_state = self.task.state_dict()
        p = self.progress
        p.epoch_batches = self._epoch_length
        saved = p.last_saved_step
        p.last_saved_step = p.step
        if not distributed.is_main():
            self._on_disk["state"] = p.step
            self._on_disk["weights"] = p.step if weights else self._on_disk["weights"]
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.lock.acquire()
        started = time.perf_counter()
        config = {**self.run_config, "model": model_spec(self.model), "train": asdict(self.config)}
        try:
            checkpoint.save(self.run_dir, self.scored if weights else None, config,
                            training_state=self.training_state(task_state), vocab=self.vocab, step=p.step)  # fmt: skip
        except CheckpointError as error:
            p.last_saved_step = saved
            raise TrainingError(f"at step {p.step} {error}; {self.on_disk()}") from None
        except OSError as error:
            p.last_saved_step = saved
            raise TrainingError(f"could not write the checkpoint of step {p.step}: {_os_error(error)}; "
                                f"{self.on_disk()}") from None  # fmt: skip
        self._on_disk["state"] = p.step
        if weights:
            self._on_disk["weights"] = p.step
        self.budget.estimate("save", time.perf_counter() - started)

    def log(self, record: dict) -> None:
        if not distributed.is_main():
            return
        try:
            checkpoint.append_jsonl(self.run_dir / checkpoint.METRICS, record)
        except OSError as error:
            raise TrainingError(f"could not write {checkpoint.METRICS} at step {self.progress.step}: "
                                f"{_os_error(error)}; {self.on_disk()}") from None  # fmt: skip
        self.callback(record["split"], record)

    # -- budgets ----------------------------------------------------------------------------------

    def fraction_done(self) -> float:
        """How far the run is towards whichever of its limits comes first, in [0, 1]."""
        return min(1.0, self._progress_fraction(self.progress.epoch + self.progress.position / self._epoch_length))

    def _progress_fraction(self, epoch_fraction: float) -> float:
        return self.budget.fraction(self.progress, epoch_fraction)

    def _time_up(self) -> bool:
        if self.config.time_budget is None:
            return False
        return distributed.agree(self.budget.time_up(self.progress, float(self.reserve())))  # rank 0's clock

    def _out_of_budget(self) -> str | None:
        c, p = self.config, self.progress
        if c.max_steps is not None and p.step >= c.max_steps:
            return "max_steps"
        if self._time_up():
            return "time_budget"
        if c.epochs is not None and p.epoch >= c.epochs:
            return "epochs"
        return None

    def _mark_due(self) -> bool:
        due = self.budget.mark_due(self.progress)
        return due is not None and distributed.agree(due)

    def _eval_limit(self) -> tuple[int | None, dict | None]:
        """How many validation units each evaluation scores, fixed at the first evaluation under a budget by
        timing a probe of ``eval_size()``'s probe units; and the probe's metrics where the limit is the probe
        itself (a short budget: that evaluation is done, and is not run twice)."""
        c, p = self.config, self.progress
        if p.eval_limit is not None or c.time_budget is None or not hasattr(self.task, "eval_size"):
            return p.eval_limit, None
        size, unit, probe = self.task.eval_size()
        if probe >= size:
            p.eval_limit = size
            return size, None
        started = time.perf_counter()
        probed = self._score(lambda model: self.task.evaluate(model, limit=probe))
        per_unit = (time.perf_counter() - started) / max(probe, 1)
        p.eval_limit = self.budget.eval_limit(size, probe, per_unit)
        if p.eval_limit == size:
            return size, None
        self.note(f"validation bounded: every evaluation scores the same {p.eval_limit:,} of the {size:,} "
                  f"validation {unit}, ~{max(EVAL_SHARE * c.time_budget, per_unit * p.eval_limit):.2g} s of the "
                  f"{c.time_budget:g} s budget (all {size:,}: ~{per_unit * size:.0f} s)")  # fmt: skip
        return p.eval_limit, probed if p.eval_limit == probe else None

    # -- evaluating -------------------------------------------------------------------------------

    def _divergence(self, metrics: dict) -> str | None:
        """Why the validation metrics say training diverged, or None.

        Diverged: a loss or monitored metric that is not finite; a loss far above the uniform guess log V
        (by max(1, log V / 4) nats where the loss is what is monitored; else above 3 log V + 2, since a
        classifier's loss grows when it overfits while its accuracy holds); or, where the loss is
        monitored, above twice the best loss plus one nat."""
        loss, value = metrics.get("loss"), metrics.get(self.metric)
        for name, v in (("loss", loss), (self.metric, value)):
            if isinstance(v, float) and not math.isfinite(v):
                return f"the validation {name} is {v}"
        if not isinstance(loss, (int, float)):
            return None
        uniform = getattr(self.task, "uniform_loss", None)
        on_loss = self.metric == "loss"
        if uniform is not None:
            limit = uniform + max(1.0, uniform / 4) if on_loss else 3 * uniform + 2
            if loss > limit:
                return f"the validation loss {loss:.4g} is far above {uniform:.4g}, the loss of a uniform guess"
        best = self.progress.best_loss
        if on_loss and best is not None and loss > 2 * best + 1:
            return f"the validation loss {loss:.4g} is far above the best, {best:.4g} (step {self.progress.best_step})"
        return None

    @property
    def scored(self) -> nn.Module:
        """The model that evaluations score and checkpoints keep: the weights' average, or the weights."""
        return self.model if self.averaged is None else self.averaged.module

    def _score(self, score: Callable[[nn.Module], dict]) -> dict:
        model = self.scored
        model.eval()
        try:
            with torch.no_grad():
                return score(model)
        finally:
            model.train()

    def evaluate(self) -> dict:
        """Score the model (bounded under a time budget), log the record, save; stop on divergence."""
        p, c = self.progress, self.config
        started = time.perf_counter()
        scoring, metrics = started, None
        if distributed.is_main():  # on several processes rank 0 scores, and the others wait for its metrics
            limit, metrics = self._eval_limit()
            if metrics is None:  # else the probe that fixed the limit was this evaluation, and what it cost
                scoring = time.perf_counter()  # a probe is not part of what the evaluations cost
                bounded = {} if limit is None else {"limit": limit}
                metrics = self._score(lambda model: self.task.evaluate(model, **bounded))
            p.marks_done = self.budget.marks_passed(p)
        metrics, p.eval_limit, p.marks_done = distributed.broadcast((metrics, p.eval_limit, p.marks_done))
        if hasattr(self.task, "after_evaluate"):  # every rank: its side effects (a curriculum level) shape the data
            metrics = {**metrics, **self._score(self.task.after_evaluate)}
        self._evals += 1
        diverged = self._divergence(metrics)
        value = metrics[self.metric]
        improved = (diverged is None or c.allow_divergence) and math.isfinite(value) and (
            p.best is None or (value < p.best if self.mode == "min" else value > p.best)
        )
        if improved:
            p.best, p.best_step, p.evals_without_improvement = value, p.step, 0
        else:
            p.evals_without_improvement += 1
        loss = metrics.get("loss")
        if diverged is None and isinstance(loss, (int, float)) and (p.best_loss is None or loss < p.best_loss):
            p.best_loss = float(loss)
        self.schedule.after_eval(improved)
        record = {"split": "valid", "step": p.step, "epoch": p.epoch + p.position / self._epoch_length, **metrics,
                  "best": p.best, "elapsed": round(p.elapsed, 3),
                  "eval_seconds": round(time.perf_counter() - started, 3)}  # fmt: skip
        if diverged is not None:
            record["diverged"] = diverged
        self.log(record)
        self._tick()
        self.budget.estimate("eval", time.perf_counter() - scoring)
        if diverged is not None and not c.allow_divergence:
            raise Diverged(f"training diverged at step {p.step}: {diverged}; stopped. {self.on_disk()}; "
                           "--allow-divergence goes on regardless")  # fmt: skip
        if diverged is not None and not any("going on (--allow-divergence)" in n for n in self.notes):
            self.note(f"training diverged at step {p.step} ({diverged}); going on (--allow-divergence)")
        self.save(weights=improved)
        self._tick()
        return record

    # -- the loop ---------------------------------------------------------------------------------

    def fit(self) -> dict:
        """Train until a budget runs out or early stopping; return the summary written to summary.json."""
        c, p = self.config, self.progress
        self.model.to(self.device).train()
        if self.averaged is not None:
            self.averaged.to(self.device)
        if self._step_loss is None:  # on several processes: DDP, which first gives every rank rank 0's weights
            self._step_loss = distributed.wrap(self.model, self.task.loss, self.device)
        if distributed.rank() > 0:  # dropout and other draws differ between ranks (rank 0 draws as one process)
            torch.manual_seed(distributed.rank_seed(c.seed * 1_000_003 + p.step))
        if distributed.is_main():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.lock.acquire()
            checkpoint.remove_temporaries(self.run_dir)  # left by a save that was killed
        start = self._started if self._started is not None else time.perf_counter()
        self._started = None  # a second fit (after a pause) counts from its own start
        self._clock = (start, p.elapsed)
        self._tick()
        if p.last_saved_step is None:
            self._epoch_length = max(1, len(self.task.train_batches(p.epoch, p.position)) + p.position)
            self.save(weights=True)  # a valid run directory from the first moment
        elif distributed.is_main():
            dropped = checkpoint.truncate_metrics(self.run_dir, p.step)
            if dropped:
                self.note(f"resumed at step {p.step}: {dropped} records of {checkpoint.METRICS} after it, from the "
                          "interrupted session, are removed and logged again")  # fmt: skip
        fresh = p.step == 0
        stopped = None if fresh and c.max_steps != 0 else self._out_of_budget()
        window: list[tuple[float, int, float, bool]] = []
        window_start = time.perf_counter()
        try:
            while stopped is None:
                batches = self.task.train_batches(p.epoch, p.position)
                self._epoch_length = max(1, len(batches) + p.position)
                for batch in batches:
                    step_start = time.perf_counter()
                    fraction = self._progress_fraction(p.epoch + p.position / self._epoch_length)
                    if c.time_budget is not None:  # it reads the clock: rank 0's, so every rank sets the same rate
                        fraction = distributed.agree(fraction)
                    scale = self.schedule.scale(p.step, p.epoch, fraction)
                    for group in self.optimizer.param_groups:
                        group["lr"] = c.lr * scale
                    with distributed.collective(f"training step {p.step + 1}"):
                        loss, count = self._step_loss(batch)
                        # the global mean over every rank's predictions (this rank's loss in one process)
                        loss, value, count = distributed.global_loss(loss, count)
                        if not math.isfinite(value):
                            error = TrainingError(f"the training loss became {value} at step {p.step + 1}; stopped. "
                                                  f"{self.on_disk()}")  # fmt: skip
                            error.every_rank = True  # the global loss: every rank stops here with this line
                            raise error
                        self.optimizer.zero_grad(set_to_none=True)
                        loss.backward()  # DDP: the gradients are the global ones once this returns
                    clipped = c.clip_value is not None and max_abs_gradient(self.model) > c.clip_value
                    norm = clip_gradients(self.model.parameters(), max_norm=c.clip_norm, max_value=c.clip_value)
                    clipped = clipped or (c.clip_norm is not None and norm > c.clip_norm)
                    self.optimizer.step()
                    if self.averaged is not None:
                        self.averaged.update_parameters(self.model)
                    p.step += 1
                    p.position += 1
                    window.append((value, count, norm, clipped))
                    self.callback("step", {"step": p.step, "loss": window[-1][0], "lr": c.lr * scale})
                    if p.step % c.log_every == 0:
                        self._tick()
                        self._log_train(window, time.perf_counter() - window_start, c.lr * scale)
                        window, window_start = [], time.perf_counter()
                    self._tick()
                    self.budget.estimate("step", time.perf_counter() - step_start)
                    stopped = self._out_of_budget()
                    if (c.eval_every and p.step % c.eval_every == 0) or (stopped and c.eval_every) or (
                        not stopped and self._mark_due()
                    ):
                        self.evaluate()
                        if c.patience is not None and p.evals_without_improvement >= c.patience:
                            stopped = "early_stopping"
                        stopped = stopped or self._out_of_budget()
                    if stopped:
                        break
                else:  # the epoch ran to its end
                    p.epoch += 1
                    p.position = 0
                    if not c.eval_every:
                        self.evaluate()
                        if c.patience is not None and p.evals_without_improvement >= c.patience:
                            stopped = "early_stopping"
                    stopped = stopped or self._out_of_budget()
            if window:
                self._log_train(window, time.perf_counter() - window_start, self.optimizer.param_groups[0]["lr"])
            if p.last_saved_step != p.step:
                self.evaluate()
        except Diverged:
            self._write_summary("diverged")
            raise
        except distributed.PeerLost as error:
            raise distributed.PeerLost(f"{error}; {self.on_disk()}") from None
        if stopped == "time_budget" and fresh and self._evals == 1:
            self._tick()
            over = "" if p.elapsed <= 1.05 * c.time_budget else (
                f"; the run took {p.elapsed:.1f} s: starting, reading the data and one evaluation need more")
            self.note(f"the time budget of {c.time_budget:g} s left room for {p.step} training "
                      f"step{'s' if p.step != 1 else ''} and one evaluation, at the end{over}")  # fmt: skip
        summary = self._write_summary(stopped)
        self.callback("end", summary)
        self.lock.release()  # the run is complete; a later save (or --resume) takes the lock again
        return summary

    def _write_summary(self, stopped: str | None) -> dict:
        self._tick()
        summary = self._summary(stopped)
        if not distributed.is_main():
            return summary
        try:
            checkpoint.write_json(self.run_dir / checkpoint.SUMMARY, checkpoint._finite(summary))
        except OSError as error:
            raise TrainingError(f"could not write {checkpoint.SUMMARY}: {_os_error(error)}; {self.on_disk()}") from None
        return summary

    def _log_train(self, window: list, seconds: float, lr: float) -> None:
        count = sum(n for _, n, _, _ in window)
        record = {
            "split": "train",
            "step": self.progress.step,
            "epoch": self.progress.epoch + self.progress.position / self._epoch_length,
            "loss": sum(loss * n for loss, n, _, _ in window) / max(count, 1),
            "grad_norm": sum(g for _, _, g, _ in window) / len(window),
            "grad_norm_max": max(g for _, _, g, _ in window),
            "clipped": sum(1 for *_, was in window if was),
            "steps": len(window),
            "lr": lr,
            "tokens_per_s": count / seconds if seconds > 0 else None,
            "elapsed": round(self.progress.elapsed, 3),
        }
        record.update(self.task.loss_metrics(record["loss"]) if hasattr(self.task, "loss_metrics") else {})
        self.log(record)

    def _summary(self, stopped: str | None) -> dict:
        p = self.progress
        records = checkpoint.read_metrics(self.run_dir) if distributed.is_main() else []  # rank 0's files
        valid = [r for r in records if r.get("split") == "valid"]
        best = next((r for r in valid if r["step"] == p.best_step), None)
        return {
            "task": self.run_config.get("task"),
            "stopped": stopped,
            "steps": p.step,
            "epochs": p.epoch + p.position / self._epoch_length,
            "seconds": round(p.elapsed, 3),
            "device": describe_device(self.device),
            **({"processes": distributed.world()} if distributed.active() else {}),  # under torchrun
            "best": best,
            "final": valid[-1] if valid else None,
            "parameters": sum(t.numel() for t in self.model.parameters()),
            "notes": list(self.notes),
        }


def _os_error(error: OSError) -> str:
    """An OSError as one line: the system's words and the file, named as the run names it (a save writes
    ``.optimizer.pt.XXXX.tmp`` and renames it to ``optimizer.pt``)."""
    name = getattr(error, "filename", None)
    if name:
        path = Path(name)
        if path.name.startswith(".") and path.name.endswith(".tmp"):
            path = path.with_name(path.name[1:-4].rsplit(".", 1)[0])
        return f"{error.strerror or error} ({path})"
    return str(error.strerror or error)


def max_abs_gradient(model: nn.Module) -> float:
    grads = [p.grad.abs().max() for p in model.parameters() if p.grad is not None]
    return float(torch.stack(grads).max()) if grads else 0.0


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {torch.get_num_threads()} threads"
