"""The training loop, shared by every task: optimizer, schedule, clipping, evaluation, early stopping,
checkpoints, resuming, time budgets.

Like minGPT's trainer it knows nothing about any task. A task plugs in through four methods::

    task.train_batches(epoch, start)   # an iterable over the epoch's batches from index ``start``; has len()
    task.loss(model, batch)            # -> (mean loss tensor, number of predictions it averages)
    task.evaluate(model)               # -> {"loss": ..., other metrics}, run under no_grad in eval mode
    task.state_dict() / task.load_state_dict(state)   # data position and carried state, for resuming
and the attribute ``task.monitor = ("loss", "min")`` (or e.g. ``("accuracy", "max")``) for early stopping
and for choosing the best checkpoint.

The model and device are passed in; every random draw goes through the seeded global and task
generators whose states the run directory saves; all writes go through :meth:`Trainer.save`, the one
place to limit to rank 0 under DistributedDataParallel.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rnnkit import checkpoint
from rnnkit.bptt import clip_gradients
from rnnkit.errors import ConfigError, TrainingError
from rnnkit.models import model_spec

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("constant", "step", "cosine", "plateau")


@dataclass(frozen=True)
class TrainConfig:
    """How to train. At least one of ``epochs``, ``max_steps``, ``time_budget`` bounds the run."""

    optimizer: str = "adam"
    lr: float = 2e-3
    weight_decay: float = 0.0
    momentum: float = 0.0
    schedule: str = "constant"
    lr_decay: float = 0.5  # factor of "step" (per epoch) and "plateau"
    decay_start: int = 1  # "step": the first epoch (1-based) that runs at the decayed rate is decay_start + 1
    warmup_steps: int = 0
    plateau_patience: int = 0
    clip_norm: float | None = 5.0
    clip_value: float | None = None
    epochs: int | None = None
    max_steps: int | None = None
    time_budget: float | None = None
    eval_every: int | None = None  # steps; None: at the end of every epoch
    patience: int | None = None  # early stopping: evaluations without improvement
    log_every: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        for name in ("epochs", "max_steps", "eval_every", "patience"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")
        for name in ("clip_norm", "clip_value", "time_budget"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"{name} must be > 0, got {value}")
        if self.epochs is None and self.max_steps is None and self.time_budget is None:
            raise ConfigError("give at least one of epochs, max_steps or time_budget")
        if self.log_every < 1 or self.warmup_steps < 0 or not 0 < self.lr_decay <= 1:
            raise ConfigError("log_every must be >= 1, warmup_steps >= 0 and lr_decay in (0, 1]")


def make_optimizer(config: TrainConfig, parameters) -> torch.optim.Optimizer:
    params = [p for p in parameters if p.requires_grad]
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return torch.optim.RMSprop(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


class Schedule:
    """The learning-rate multiplier: warmup, then constant, step decay per epoch, cosine over the run's
    progress (steps, epochs or time budget, whichever bounds it), or decay on a validation plateau."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.plateau_scale, self.bad_evals = 1.0, 0

    def scale(self, step: int, epoch: int, progress: float) -> float:
        c = self.config
        warm = min(1.0, (step + 1) / c.warmup_steps) if c.warmup_steps else 1.0
        if c.schedule == "step":
            return warm * c.lr_decay ** max(0, epoch + 1 - c.decay_start)
        if c.schedule == "cosine":
            return warm * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
        if c.schedule == "plateau":
            return warm * self.plateau_scale
        return warm

    def after_eval(self, improved: bool) -> None:
        if self.config.schedule != "plateau":
            return
        self.bad_evals = 0 if improved else self.bad_evals + 1
        if self.bad_evals > self.config.plateau_patience:
            self.plateau_scale *= self.config.lr_decay
            self.bad_evals = 0

    def state_dict(self) -> dict:
        return {"plateau_scale": self.plateau_scale, "bad_evals": self.bad_evals}

    def load_state_dict(self, state: dict) -> None:
        self.plateau_scale, self.bad_evals = float(state["plateau_scale"]), int(state["bad_evals"])


@dataclass
class Progress:
    """Where training stands; saved in ``optimizer.pt`` so a run resumes exactly."""

    step: int = 0
    epoch: int = 0  # completed epochs
    position: int = 0  # batches done in the current epoch
    elapsed: float = 0.0  # seconds spent, over all sessions of this run
    best: float | None = None
    best_step: int = 0
    evals_without_improvement: int = 0
    last_saved_step: int | None = None


Callback = Callable[[str, dict], None]


class Trainer:
    """Train ``model`` on ``task`` into ``run_dir``; ``callback(event, record)`` reports progress.

    Events: ``"step"`` after every step (``step``, ``loss``, ``lr``), ``"train"`` every ``log_every``
    steps and ``"valid"`` at every evaluation (the records written to ``metrics.jsonl``), ``"end"``.
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
    ) -> None:
        self.model, self.task, self.config = model, task, config
        self.run_dir, self.run_config, self.vocab = Path(run_dir), run_config, vocab
        self.device = torch.device(device)
        self.callback = callback or (lambda event, record: None)
        self.optimizer = make_optimizer(config, model.parameters())
        self.schedule = Schedule(config)
        self.progress = Progress()
        self.metric, self.mode = getattr(task, "monitor", ("loss", "min"))
        self._epoch_length = 1
        self._clock = (time.perf_counter(), 0.0)  # (wall time at start of this session, elapsed before it)

    def _tick(self) -> None:
        """Bring ``progress.elapsed`` up to now: wall time over all sessions of this run."""
        start, before = self._clock
        self.progress.elapsed = before + time.perf_counter() - start

    # -- resuming ---------------------------------------------------------------------------------

    def training_state(self) -> dict:
        state = {
            "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "progress": asdict(self.progress),
            "task": self.task.state_dict(),
            "rng_cpu": torch.get_rng_state(),
        }
        if self.device.type == "cuda":
            state["rng_cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_training_state(self, state: dict) -> None:
        """Restore weights, optimizer, schedule, progress, data position and RNGs from ``optimizer.pt``."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.progress = Progress(**state["progress"])
        self.task.load_state_dict(state["task"])
        torch.set_rng_state(state["rng_cpu"])
        if self.device.type == "cuda" and "rng_cuda" in state:
            torch.cuda.set_rng_state(state["rng_cuda"], self.device)

    # -- writing ----------------------------------------------------------------------------------

    def save(self, *, weights: bool) -> None:
        """The one place that writes the run: resume state always, weights when they are the best."""
        config = {**self.run_config, "model": model_spec(self.model), "train": asdict(self.config)}
        checkpoint.save(
            self.run_dir,
            self.model if weights else None,
            config,
            training_state=self.training_state(),
            vocab=self.vocab,
        )
        self.progress.last_saved_step = self.progress.step

    def log(self, record: dict) -> None:
        checkpoint.append_jsonl(self.run_dir / checkpoint.METRICS, record)
        self.callback(record["split"], record)

    # -- the loop ---------------------------------------------------------------------------------

    def _progress_fraction(self, epoch_fraction: float) -> float:
        c, p = self.config, self.progress
        fractions = []
        if c.max_steps:
            fractions.append(p.step / c.max_steps)
        if c.epochs:
            fractions.append(epoch_fraction / c.epochs)
        if c.time_budget:
            fractions.append(p.elapsed / c.time_budget)
        return max(fractions)

    def _out_of_budget(self) -> str | None:
        c, p = self.config, self.progress
        if c.max_steps is not None and p.step >= c.max_steps:
            return "max_steps"
        if c.time_budget is not None and p.elapsed >= c.time_budget:
            return "time_budget"
        if c.epochs is not None and p.epoch >= c.epochs:
            return "epochs"
        return None

    def evaluate(self) -> dict:
        self.model.eval()
        try:
            with torch.no_grad():
                metrics = self.task.evaluate(self.model)
        finally:
            self.model.train()
        p = self.progress
        value = metrics[self.metric]
        improved = math.isfinite(value) and (
            p.best is None or (value < p.best if self.mode == "min" else value > p.best)
        )
        if improved:
            p.best, p.best_step, p.evals_without_improvement = value, p.step, 0
        else:
            p.evals_without_improvement += 1
        self.schedule.after_eval(improved)
        record = {"split": "valid", "step": p.step, "epoch": p.epoch + p.position / self._epoch_length, **metrics,
                  "best": p.best, "elapsed": round(p.elapsed, 3)}  # fmt: skip
        self.log(record)
        self._tick()
        self.save(weights=improved)
        return record

    def fit(self) -> dict:
        """Train until a budget runs out or early stopping; return the summary written to summary.json."""
        c, p = self.config, self.progress
        self.model.to(self.device).train()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._clock = (time.perf_counter(), p.elapsed)
        if p.last_saved_step is None:
            self.save(weights=True)  # a valid run directory from the first moment
        stopped = self._out_of_budget()
        window: list[tuple[float, int, float, bool]] = []
        window_start = time.perf_counter()
        while stopped is None:
            batches = self.task.train_batches(p.epoch, p.position)
            self._epoch_length = max(1, len(batches) + p.position)
            for batch in batches:
                scale = self.schedule.scale(
                    p.step, p.epoch, self._progress_fraction(p.epoch + p.position / self._epoch_length)
                )
                for group in self.optimizer.param_groups:
                    group["lr"] = c.lr * scale
                loss, count = self.task.loss(self.model, batch)
                if not torch.isfinite(loss):
                    kept = f"step {p.last_saved_step}" if p.last_saved_step is not None else "none"
                    raise TrainingError(
                        f"the training loss became {loss.item()} at step {p.step + 1}; stopped. "
                        f"The last good checkpoint ({kept}) is kept in {self.run_dir}"
                    )
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                clipped = c.clip_value is not None and max_abs_gradient(self.model) > c.clip_value
                norm = clip_gradients(self.model.parameters(), max_norm=c.clip_norm, max_value=c.clip_value)
                clipped = clipped or (c.clip_norm is not None and norm > c.clip_norm)
                self.optimizer.step()
                p.step += 1
                p.position += 1
                self._tick()
                window.append((loss.item(), count, norm, clipped))
                self.callback("step", {"step": p.step, "loss": window[-1][0], "lr": c.lr * scale})
                if p.step % c.log_every == 0:
                    self._log_train(window, time.perf_counter() - window_start, c.lr * scale)
                    window, window_start = [], time.perf_counter()
                stopped = self._out_of_budget()
                if (c.eval_every and p.step % c.eval_every == 0) or (stopped and c.eval_every):
                    self.evaluate()
                    if c.patience is not None and p.evals_without_improvement >= c.patience:
                        stopped = "early_stopping"
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
        summary = self._summary(stopped)
        checkpoint.write_json(self.run_dir / checkpoint.SUMMARY, summary)
        self.callback("end", summary)
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
        valid = [r for r in checkpoint.read_metrics(self.run_dir) if r.get("split") == "valid"]
        best = next((r for r in valid if r["step"] == p.best_step), None)
        return {
            "task": self.run_config.get("task"),
            "stopped": stopped,
            "steps": p.step,
            "epochs": p.epoch + p.position / self._epoch_length,
            "seconds": round(p.elapsed, 3),
            "device": describe_device(self.device),
            "best": best,
            "final": valid[-1] if valid else None,
            "parameters": sum(t.numel() for t in self.model.parameters()),
        }


def max_abs_gradient(model: nn.Module) -> float:
    grads = [p.grad.abs().max() for p in model.parameters() if p.grad is not None]
    return float(torch.stack(grads).max()) if grads else 0.0


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {torch.get_num_threads()} threads"
