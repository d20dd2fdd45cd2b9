"""Resuming a run: where training stands (:class:`Progress`, saved in ``optimizer.pt``) and the checks of a
run directory's parts against each other before any of them is used.

A run directory holds config.json (the model and how it trains), model.safetensors (the best weights),
vocab.json, and optimizer.pt (the last weights, the optimizer's moments, the schedule, the progress, the
data position and the random states). Each was written at its own moment, and a user can edit, copy or
damage any of them; so resuming checks each against the others (names and shapes of weights and of
optimizer moments, finiteness, the data position against the data's batches per epoch) and refuses a
mismatch with one :class:`~rnnkit.errors.CheckpointError` line that names the part and the key or shape.
:meth:`rnnkit.train.Trainer.load_training_state` applies what :func:`check_training_state` passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rnnkit import checkpoint
from rnnkit.config import config_from_dict
from rnnkit.errors import CheckpointError, ConfigError
from rnnkit.models import build_model
from rnnkit.trainconfig import TrainConfig

PARTS = ("model", "optimizer", "schedule", "progress", "task", "rng_cpu")  # what optimizer.pt must hold


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
    best_loss: float | None = None  # the lowest validation loss yet (divergence is judged against it)
    eval_limit: int | None = None  # validation units each evaluation scores (None: all), fixed by the first
    marks_done: int = 0  # how many of rnnkit.train.MARKS have had their evaluation
    epoch_batches: int | None = None  # batches per epoch when saved: the data position's frame


def check_training_state(state: Any, model: nn.Module, task: Any, where: str) -> tuple[Progress, int]:
    """Check ``state`` (optimizer.pt, read by :func:`rnnkit.checkpoint.load_training_state`) against ``model``
    and ``task``'s data; return its progress and the number of batches per epoch the data make now.

    Checked: every part is there; the weights are named tensors of the model's names and shapes (old
    names read as the layers read them) and finite; the optimizer part (:func:`check_optimizer_state`);
    the progress record's fields; the data position inside an epoch of today's data. Anything else is
    left to loading, which :meth:`rnnkit.train.Trainer.load_training_state` turns into one line too.
    """
    if not isinstance(state, dict):
        raise CheckpointError(f"{where} is not a training state")
    missing = [k for k in PARTS if k not in state]
    if missing:
        raise CheckpointError(f"{where} is incomplete: it has no {missing[0]!r} part")
    model_state = state["model"]
    if not isinstance(model_state, dict) or not all(isinstance(v, torch.Tensor) for v in model_state.values()):
        raise CheckpointError(f"{where}: its 'model' part is not a set of named tensors")
    wanted = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = checkpoint.loaded_names(model, {k: tuple(v.shape) for k, v in model_state.items()})
    checkpoint.compare_shapes(found, wanted, f"{where} (its 'model' part)", f"the model in {checkpoint.CONFIG}")
    bad = checkpoint.non_finite(model_state)
    if bad is not None:
        raise CheckpointError(f"{where}: its weights hold non-finite values ({bad}); refused")
    check_optimizer_state(state["optimizer"], model, where)
    progress = config_from_dict(Progress, state["progress"], f"{where} progress")
    if progress.step < 0 or progress.epoch < 0 or progress.position < 0:
        raise CheckpointError(f"{where}: progress step, epoch and position must be >= 0")
    length = len(task.train_batches(progress.epoch, 0))  # before the task's state is loaded: this resets it
    if progress.epoch_batches is not None and progress.epoch_batches != length or progress.position > length:
        saved = progress.epoch_batches if progress.epoch_batches is not None else f">= {progress.position}"
        raise CheckpointError(
            f"{where}: its data position (epoch {progress.epoch}, batch {progress.position} of {saved}) does not "
            f"fit the training data, which now make {length} batches per epoch; the data changed since the run"
        )
    return progress, length


def check_optimizer_state(saved: Any, model: nn.Module, where: str) -> None:
    """The optimizer part: one entry per trainable parameter, each tensor of the parameter's shape, all finite."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    params = [p for p in model.parameters() if p.requires_grad]
    if not isinstance(saved, dict) or not isinstance(saved.get("state"), dict) or not isinstance(
        saved.get("param_groups"), list
    ):
        raise CheckpointError(f"{where}: its 'optimizer' part is not an optimizer state (state, param_groups)")
    ids = [i for group in saved["param_groups"] if isinstance(group, dict) for i in group.get("params", [])]
    if len(ids) != len(params):
        raise CheckpointError(f"{where}: its optimizer holds {len(ids)} parameters, the model in "
                              f"{checkpoint.CONFIG} has {len(params)}")  # fmt: skip
    for position, index in enumerate(ids):
        entry = saved["state"].get(index, {})
        if not isinstance(entry, dict):
            raise CheckpointError(f"{where}: optimizer state of {names[position]!r} is not a set of tensors")
        for key, value in entry.items():
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != params[position].shape:
                raise CheckpointError(
                    f"{where}: optimizer {key} of {names[position]!r} has shape {list(value.shape)}, the "
                    f"parameter in {checkpoint.CONFIG} has {list(params[position].shape)}"
                )
    bad = checkpoint.non_finite(saved["state"])
    if bad is not None:
        raise CheckpointError(f"{where}: its optimizer state holds non-finite values ({bad}); refused")


def resume_parts(run_dir: str | Path, task_cls: type, device, overrides: dict | None = None) -> tuple:
    """What resuming ``run_dir`` continues: (task, model, train config, run config, vocabulary, training state).

    Each part is checked against the others before anything runs: config.json's model against the
    weights' names and shapes, the vocabulary against the model's sizes (the task's ``check_run``);
    :meth:`rnnkit.train.Trainer.load_training_state` then checks optimizer.pt. ``overrides`` replace
    train-config fields (raised limits). A mismatch is one CheckpointError line naming the part and the
    key or shape.
    """
    run_dir = Path(run_dir)
    config = checkpoint.load_config(run_dir, task=task_cls.name)
    train_config = config_from_dict(TrainConfig, config.get("train"), f"{run_dir / checkpoint.CONFIG} train")
    if overrides:
        train_config = TrainConfig(**{**train_config.__dict__, **overrides})
    state = checkpoint.load_training_state(run_dir, device="cpu")
    if state is None:
        raise CheckpointError(f"{run_dir} has no {checkpoint.TRAINING_STATE} to resume from")
    try:
        model = build_model(config.get("model"))
    except ConfigError as error:
        raise CheckpointError(f"{run_dir / checkpoint.CONFIG}: {error}") from None
    checkpoint.check_weights(run_dir, model)
    if hasattr(task_cls, "check_run"):
        task_cls.check_run(run_dir, config)
    task = task_cls.from_run(run_dir, config, device)
    run_config = {k: v for k, v in config.items() if k not in ("format", "version", "model", "train")}
    vocab = checkpoint.load_vocab(run_dir) if (run_dir / checkpoint.VOCAB).is_file() else None
    return task, model.to(device), train_config, run_config, vocab, state
