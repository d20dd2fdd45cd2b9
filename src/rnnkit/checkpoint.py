"""Run directories: save and load a model with everything needed to rebuild and resume it.

A run directory holds::

    config.json        what rebuilds the model and its tokenizer ({"format": "rnnkit-run", ...})
    model.safetensors  the weights (safetensors: loading it cannot run code)
    vocab.json         the tokenizer's vocabulary, where the task has one
    optimizer.pt       optimizer, schedule, RNG and data position, for resuming
    metrics.jsonl      one JSON object per evaluation, appended as training goes
    summary.json       final metrics, steps, seconds, device

Every file is written to a temporary name in the same directory, flushed to disk, then renamed over
the old one (``os.replace`` is atomic on POSIX), so a kill mid-save leaves the previous checkpoint
intact. ``optimizer.pt`` is read with ``torch.load(weights_only=True)``, which refuses any pickle that
would construct arbitrary objects, so a hostile file is rejected without running its code.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_model as _load_safetensors_model
from safetensors.torch import save_model as _save_safetensors_model
from torch import nn

from rnnkit.errors import CheckpointError

FORMAT = "rnnkit-run"
VERSION = 1
CONFIG, WEIGHTS, VOCAB, TRAINING_STATE = "config.json", "model.safetensors", "vocab.json", "optimizer.pt"
METRICS, SUMMARY = "metrics.jsonl", "summary.json"


# -- writing --------------------------------------------------------------------------------------


def _stage(path: Path, write: Callable[[str], None]) -> Path:
    """Write a temporary sibling of ``path`` with ``write(tmp)`` and flush it to disk; return its path."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)``, fsync, then rename over ``path``; on any failure ``path`` is untouched."""
    path = Path(path)
    os.replace(_stage(path, write), path)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    text = json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append one JSON object as a line (metrics.jsonl); non-finite floats become null."""
    line = json.dumps(_finite(record), allow_nan=False)
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def save(
    run_dir: str | os.PathLike,
    model: nn.Module | None,
    config: dict,
    *,
    training_state: dict | None = None,
    vocab: Any | None = None,
) -> None:
    """Save ``model``'s weights with its ``config`` (and resume state, vocabulary) into ``run_dir``.

    ``model=None`` keeps the weights file already there (training keeps the best weights, not the latest).

    Files are staged under temporary names first and renamed together at the end, weights before
    config, so a reader never sees a config that names weights that are not there yet.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {"format": FORMAT, "version": VERSION, **config}
    writers: list[tuple[str, Callable[[str], None]]] = []
    if training_state is not None:
        writers.append((TRAINING_STATE, lambda tmp: torch.save(training_state, tmp)))
    if model is not None:
        writers.append((WEIGHTS, lambda tmp: _save_safetensors_model(model, tmp)))
    if vocab is not None:
        writers.append((VOCAB, lambda tmp: Path(tmp).write_text(json.dumps(vocab, ensure_ascii=False), "utf-8")))
    config_text = json.dumps(config, indent=2, allow_nan=False) + "\n"
    writers.append((CONFIG, lambda tmp: Path(tmp).write_text(config_text, encoding="utf-8")))

    staged: list[tuple[Path, Path]] = []
    try:
        for name, write in writers:
            staged.append((_stage(run_dir / name, write), run_dir / name))
        for tmp, final in staged:
            os.replace(tmp, final)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)


# -- reading --------------------------------------------------------------------------------------


def load_config(run_dir: str | os.PathLike, task: str | None = None) -> dict:
    """Read ``config.json`` of a run; with ``task``, refuse a run of another task."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory {str(run_dir)!r} does not exist")
    path = run_dir / CONFIG
    if not path.is_file():
        raise CheckpointError(f"{str(run_dir)!r} is not an rnnkit run directory: it has no {CONFIG}")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path} is corrupt: {error}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f'{path} is not an rnnkit run config (no "format": "{FORMAT}")')
    if config.get("version") != VERSION:
        raise CheckpointError(f"{path} has format version {config.get('version')!r}; this rnnkit reads {VERSION}")
    if task is not None and config.get("task") != task:
        raise CheckpointError(f"{str(run_dir)!r} is a {config.get('task')!r} run, not a {task!r} run")
    return config


def load_weights(run_dir: str | os.PathLike, model: nn.Module, device: str | torch.device = "cpu") -> nn.Module:
    """Load ``model.safetensors`` into an already built ``model`` (strict: every tensor must match)."""
    path = Path(run_dir) / WEIGHTS
    if not path.is_file():
        raise CheckpointError(f"{path} is missing")
    try:
        missing, unexpected = _load_safetensors_model(model, path, strict=False, device=str(device))
    except (SafetensorError, OSError, RuntimeError, ValueError) as error:
        raise CheckpointError(f"{path} is corrupt or truncated: {_first_line(error)}") from None
    if missing or unexpected:
        detail = f"missing {sorted(missing)[:3]}" if missing else f"unexpected {sorted(unexpected)[:3]}"
        raise CheckpointError(f"{path} does not match the model in {CONFIG}: {detail}")
    return model


def load_training_state(run_dir: str | os.PathLike, device: str | torch.device = "cpu") -> dict | None:
    """Read ``optimizer.pt`` (None if absent) without unpickling anything but tensors and plain data."""
    path = Path(run_dir) / TRAINING_STATE
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, AttributeError, TypeError) as error:
        raise CheckpointError(
            f"{path} is corrupt or not a plain tensor file, refused without running it: {_first_line(error)}"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} does not hold a training state")
    return state


def load_vocab(run_dir: str | os.PathLike) -> Any:
    path = Path(run_dir) / VOCAB
    if not path.is_file():
        raise CheckpointError(f"{path} is missing")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path} is corrupt: {error}") from None


def read_metrics(run_dir: str | os.PathLike) -> list[dict]:
    """All records of ``metrics.jsonl``; a torn last line (a kill mid-write) is skipped."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
