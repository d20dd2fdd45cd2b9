"""The model registry: what a run directory can rebuild, and how a model is saved into one and loaded back.

Every registered model class has ``get_config() -> dict`` (JSON types only) and ``from_config(dict)``;
``config.json`` stores ``{"model": {"type": NAME, "config": {...}}}`` and loading looks ``NAME`` up in
:data:`MODELS`, so a run directory can only ever build classes registered here. The recurrent layers
(RNN, LSTM, GRU) are registered here; each model family registers its own classes with
:func:`register_model`, and importing :mod:`rnnkit.models` imports every family.
"""

from __future__ import annotations

import dataclasses
import os

import torch
from torch import nn

from rnnkit import checkpoint
from rnnkit.config import config_from_dict
from rnnkit.errors import CheckpointError, ConfigError
from rnnkit.layers import GRU, LSTM, RNN

MODELS: dict[str, type[nn.Module]] = {}


def register_model(cls: type[nn.Module]) -> type[nn.Module]:
    """Class decorator: make ``cls`` buildable from a run directory under its class name."""
    name = cls.__name__
    if name in MODELS:
        raise ValueError(f"model {name!r} is already registered")
    MODELS[name] = cls
    return cls


for _layer in (RNN, LSTM, GRU):
    register_model(_layer)


def model_spec(model: nn.Module) -> dict:
    """``{"type": ..., "config": ...}``: what ``config.json`` stores to rebuild ``model``."""
    name = type(model).__name__
    if MODELS.get(name) is not type(model):
        raise ValueError(f"{name} is not a registered model; registered: {', '.join(sorted(MODELS))}")
    return {"type": name, "config": model.get_config()}


def build_model(spec: dict, *, device=None, dtype=None) -> nn.Module:
    """Build an untrained model from a spec written by :func:`model_spec`."""
    if not isinstance(spec, dict) or set(spec) != {"type", "config"}:
        raise ConfigError('model spec must be {"type": NAME, "config": {...}}')
    cls = MODELS.get(spec["type"])
    if cls is None:
        raise ConfigError(f"unknown model type {spec['type']!r}; registered: {', '.join(sorted(MODELS))}")
    return cls.from_config(spec["config"], device=device, dtype=dtype)


def save_model(
    run_dir: str | os.PathLike,
    model: nn.Module,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    config: dict | None = None,
    vocab=None,
) -> None:
    """Save ``model`` (and ``optimizer`` state for resuming) into ``run_dir``; ``config`` adds keys."""
    training_state = None if optimizer is None else {"optimizer": optimizer.state_dict()}
    full_config = {**(config or {}), "model": model_spec(model)}
    checkpoint.save(run_dir, model, full_config, training_state=training_state, vocab=vocab)


def load_model(run_dir: str | os.PathLike, *, device="cpu", task: str | None = None) -> nn.Module:
    """Rebuild the model saved in ``run_dir`` and load its weights; never unpickles anything."""
    config = checkpoint.load_config(run_dir, task=task)
    try:
        model = build_model(config.get("model"), device=device)
    except ConfigError as error:
        raise CheckpointError(f"{os.fspath(run_dir)}/{checkpoint.CONFIG}: {error}") from None
    return checkpoint.load_weights(run_dir, model, device=device)


class ConfiguredModel(nn.Module):
    """A model built from one frozen config dataclass, ``config_class``, which ``config.json`` stores."""

    config_class: type

    def get_config(self) -> dict:
        return dataclasses.asdict(self.config)

    @classmethod
    def from_config(cls, config: dict, *, device=None, dtype=None) -> ConfiguredModel:
        """Rebuild from ``get_config()``'s dict; unknown keys and wrong types are rejected."""
        return cls(config_from_dict(cls.config_class, config), device=device, dtype=dtype)
