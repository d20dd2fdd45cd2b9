"""How to train: the options (:class:`TrainConfig`, checked once against :data:`TRAIN_RANGES`), the
optimizer they make and the learning-rate schedule. :mod:`rnnkit.train` runs them and re-exports these names."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch

from rnnkit.errors import ConfigError
from rnnkit.tasks.options import COUNT, POSITIVE, POSITIVE_REAL, SEED, Number

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("constant", "step", "cosine", "plateau")
# The range of every numeric training option: TrainConfig checks its values against these and the command
# line's flags parse with them, so a flag and the config.json value it becomes are checked the same way.
TRAIN_RANGES: dict[str, Number] = {
    "lr": Number(float, 0.0, 1e3, low_open=True),
    "weight_decay": Number(float, 0.0, 10.0),
    "momentum": Number(float, 0.0, 1.0, high_open=True),
    "lr_decay": Number(float, 0.0, 1.0, low_open=True),
    "decay_start": COUNT,
    "warmup_steps": COUNT,
    "plateau_patience": COUNT,
    "clip_norm": POSITIVE_REAL,
    "clip_value": POSITIVE_REAL,
    "epochs": POSITIVE,
    "max_steps": POSITIVE,
    "time_budget": POSITIVE_REAL,
    "eval_every": POSITIVE,
    "patience": POSITIVE,
    "log_every": POSITIVE,
    "seed": SEED,
    "average": Number(float, 0.0, 1.0, low_open=True, high_open=True),
}


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
    allow_divergence: bool = False  # go on when the validation loss diverges (see Trainer.evaluate)
    average: float | None = None  # decay per step of the weights' moving average that is scored and kept

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        for name, number in TRAIN_RANGES.items():
            value = getattr(self, name)
            if value is not None or name in ("lr", "weight_decay", "momentum", "lr_decay", "log_every", "seed"):
                number.check(value, name)
        if not isinstance(self.allow_divergence, bool):
            raise ConfigError(f"allow_divergence must be true or false, got {self.allow_divergence!r}")
        if self.epochs is None and self.max_steps is None and self.time_budget is None:
            raise ConfigError("give at least one of epochs, max_steps or time_budget")


def training_dtype() -> torch.dtype:
    """The weights' dtype: float32, or float64 under ``RNNKIT_DTYPE=float64`` (exact comparisons of runs,
    such as one process against several in tests/test_distributed.py)."""
    name = os.environ.get("RNNKIT_DTYPE", "float32")
    if name not in ("float32", "float64"):
        raise ConfigError(f"RNNKIT_DTYPE must be float32 or float64, got {name!r}")
    return getattr(torch, name)


def make_optimizer(config: TrainConfig, parameters) -> torch.optim.Optimizer:
    """The optimizer ``config`` names over the trainable ``parameters``, at the base rate ``config.lr``
    (the :class:`Schedule` scales each step's rate from it)."""
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
