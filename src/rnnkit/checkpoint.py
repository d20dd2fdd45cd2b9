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
intact. The weights are renamed first: a kill between two renames leaves weights at least as new as
the resume state, and resuming retrains to the same step and saves them again. Nothing that is not
finite is ever written (:func:`save` refuses it before writing a byte), and ``model.safetensors``
records the step it was saved at, so messages can name the step that is on disk.

``optimizer.pt`` is read with ``torch.load(weights_only=True)``, which refuses any pickle that
would construct arbitrary objects, so a hostile file is rejected without running its code. Weights
are checked key by key and shape by shape against the model that ``config.json`` builds before any
is loaded, and refused when they hold NaN or infinity.
"""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model as _load_safetensors_model
from safetensors.torch import save_model as _save_safetensors_model
from torch import nn

from rnnkit.errors import CheckpointError, ConfigError
from rnnkit.runlock import LOCK

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
    except OSError as error:
        Path(tmp).unlink(missing_ok=True)
        if error.filename is None:  # a failed write() names no file; the message must (a full disk)
            raise OSError(error.errno, error.strerror or str(error), tmp) from None
        raise
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
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
    except OSError as error:
        if error.filename is None:
            raise OSError(error.errno, error.strerror or str(error), str(path)) from None
        raise


def save(
    run_dir: str | os.PathLike,
    model: nn.Module | None,
    config: dict,
    *,
    training_state: dict | None = None,
    vocab: Any | None = None,
    step: int | None = None,
) -> None:
    """Save ``model``'s weights with its ``config`` (and resume state, vocabulary) into ``run_dir``.

    ``model=None`` keeps the weights file already there (training keeps the best weights, not the latest);
    ``step`` is recorded in the weights file. Raises :class:`CheckpointError`, before anything is
    written, when a weight or a tensor of ``training_state`` holds NaN or infinity.

    Files are staged under temporary names first and renamed together at the end, weights first and
    config last, so a reader never sees a config that names weights that are not there yet.
    """
    run_dir = Path(run_dir)
    for what, obj in (("the weights hold", None if model is None else model.state_dict()),
                      ("the training state holds", training_state)):  # fmt: skip
        bad = non_finite(obj)
        if bad is not None:
            raise CheckpointError(f"{what} non-finite values ({bad}); not saved")
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {"format": FORMAT, "version": VERSION, **config}
    metadata = {"format": "pt"} if step is None else {"format": "pt", "step": str(int(step))}
    writers: list[tuple[str, Callable[[str], None]]] = []
    if model is not None:
        writers.append((WEIGHTS, lambda tmp: _write_weights(model, tmp, metadata)))
    if vocab is not None:
        writers.append((VOCAB, lambda tmp: Path(tmp).write_text(json.dumps(vocab, ensure_ascii=False), "utf-8")))
    if training_state is not None:
        writers.append((TRAINING_STATE, lambda tmp: _write_torch(training_state, tmp)))
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


def _write_torch(obj: Any, path: str) -> None:
    """``torch.save`` into memory, then one plain write: a failed write (a full disk) is then an OSError
    that says why, where torch's own file writer would raise an opaque RuntimeError."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with open(path, "wb") as f:
        f.write(buffer.getbuffer())


def _write_weights(model: nn.Module, path: str, metadata: dict[str, str]) -> None:
    try:
        _save_safetensors_model(model, path, metadata=metadata)
    except SafetensorError as error:  # its I/O errors as OSError, as every other write reports them
        found = re.search(r"os error (\d+)", str(error))
        if found is None:
            raise
        code = int(found.group(1))
        raise OSError(code, os.strerror(code), path) from None


def non_finite(obj: Any, where: str = "") -> str | None:
    """The path of the first floating tensor (or float) in ``obj`` that holds NaN or infinity, else None."""
    if isinstance(obj, torch.Tensor):
        if obj.is_floating_point() or obj.is_complex():
            return None if bool(torch.isfinite(obj).all()) else (where or "a tensor")
        return None
    if isinstance(obj, float):
        return None if math.isfinite(obj) else (where or "a number")
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        return None
    for key, value in items:
        bad = non_finite(value, f"{where}.{key}" if where else str(key))
        if bad is not None:
            return bad
    return None


def remove_temporaries(run_dir: str | os.PathLike) -> list[str]:
    """Delete the temporary files a killed save left in ``run_dir`` (call it holding the run's lock)."""
    removed = []
    for path in Path(run_dir).glob(".*.tmp"):
        path.unlink(missing_ok=True)
        removed.append(path.name)
    return removed


def truncate_metrics(run_dir: str | os.PathLike, step: int) -> int:
    """Keep only the records of ``metrics.jsonl`` up to ``step`` (a resumed run logs the steps after it
    again); torn lines go too. Returns how many records were dropped."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return 0
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    kept = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= step:
            kept.append(line)
    if len(kept) != len(lines):
        text = "".join(line + "\n" for line in kept)
        atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return len(lines) - len(kept)


def check_new_run_dir(path: str | os.PathLike, flag: str = "--out") -> None:
    """Refuse, before anything is created, a place where a new run cannot be made: a file, a folder that
    already holds a run, a path under a regular file, a folder this process cannot write in."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path}: that is a file, not a folder")
    if (path / CONFIG).exists():
        raise ConfigError(f"{path} already holds a run; continue it with --resume {path} or choose another {flag}")
    ancestor = path
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(f"{flag} {path}: {ancestor} is a file, so no folder can be made under it")
    try:  # os.access says yes to root even where writing fails (a read-only mount), so try it
        fd, probe = tempfile.mkstemp(prefix=".rnnkit-probe-", dir=ancestor)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise ConfigError(f"{flag} {path}: cannot write in {ancestor} ({error.strerror})") from None


def make_run_dir(path: str | os.PathLike) -> list[Path]:
    """Create ``path`` and its missing parents; return the folders this call created, outermost first."""
    path = Path(path)
    created = []
    for folder in [*reversed(path.parents), path]:
        if not folder.exists():
            created.append(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"cannot create {path}: {error.strerror}") from None
    return created


def remove_unused(created: list[Path]) -> None:
    """Remove the folders of :func:`make_run_dir` again if no run was saved in them: they hold nothing
    but a lock or temporary files (anything else is left alone)."""
    for folder in reversed(created):
        try:
            leftovers = list(folder.iterdir())
            if any(p.name != LOCK and not (p.name.startswith(".") and p.name.endswith(".tmp")) for p in leftovers):
                return
            for p in leftovers:
                p.unlink(missing_ok=True)
            folder.rmdir()
        except OSError:
            return


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
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise CheckpointError(f"{path} is corrupt: {error}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f'{path} is not an rnnkit run config (no "format": "{FORMAT}")')
    if config.get("version") != VERSION:
        raise CheckpointError(f"{path} has format version {config.get('version')!r}; this rnnkit reads {VERSION}")
    if task is not None and config.get("task") != task:
        raise CheckpointError(f"{str(run_dir)!r} is a {config.get('task')!r} run, not a {task!r} run")
    return config


def load_weights(run_dir: str | os.PathLike, model: nn.Module, device: str | torch.device = "cpu") -> nn.Module:
    """Load ``model.safetensors`` into an already built ``model``: every tensor must be there with the
    model's shape, and finite."""
    path = Path(run_dir) / WEIGHTS
    check_weights(run_dir, model)
    try:
        missing, unexpected = _load_safetensors_model(model, path, strict=False, device=str(device))
    except (SafetensorError, OSError, RuntimeError, ValueError) as error:
        raise CheckpointError(f"{path} is corrupt or truncated: {_first_line(error)}") from None
    if missing or unexpected:
        detail = f"missing {sorted(missing)[:3]}" if missing else f"unexpected {sorted(unexpected)[:3]}"
        raise CheckpointError(f"{path} does not match the model in {CONFIG}: {detail}")
    bad = non_finite(model.state_dict())
    if bad is not None:
        raise CheckpointError(f"{path} holds non-finite values in {bad}; refused")
    return model


def check_weights(run_dir: str | os.PathLike, model: nn.Module) -> dict[str, str]:
    """Check that ``model.safetensors`` holds exactly the tensors of ``model``'s state dict, with the same
    shapes, under the names loading reads them by (:func:`loaded_names`), reading only its header;
    returns its metadata. One-line CheckpointError otherwise."""
    path = Path(run_dir) / WEIGHTS
    expected = model.state_dict()
    if not path.is_file():
        raise CheckpointError(f"{path} is missing")
    try:
        with safe_open(str(path), framework="pt") as f:
            shapes = {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, RuntimeError, ValueError, TypeError) as error:
        raise CheckpointError(f"{path} is corrupt or truncated: {_first_line(error)}") from None
    # a tensor shared under two names (tied weights) is stored once, under either name
    seen: dict[tuple, str] = {}
    wanted = {}
    for key, tensor in expected.items():
        same = (tensor.data_ptr(), tuple(tensor.shape), tensor.dtype) if tensor.numel() else None
        if same is not None and same in seen and (key not in shapes or seen[same] in shapes):
            continue
        if same is not None and same in seen and seen[same] not in shapes:
            wanted.pop(seen[same])
        if same is not None:
            seen[same] = key
        wanted[key] = tuple(tensor.shape)
    compare_shapes(loaded_names(model, shapes), wanted, f"{path}", f"the model in {CONFIG}")
    return metadata


def loaded_names(model: nn.Module, found: dict) -> dict:
    """``found`` (a state dict, or its names mapped to anything, e.g. shapes) under the names that
    ``model.load_state_dict`` reads it by: each submodule's load_state_dict pre-hooks run over a copy,
    parents first, as loading runs them. So the checks before loading compare what loading will see:
    layers read the ``rnn.cells.0.weight_ih`` of run directories saved before torch's names as
    ``rnn.weight_ih_l0`` (:meth:`rnnkit.layers.Recurrent._rename_old_keys`)."""
    renamed = dict(found)
    for prefix, module in model.named_modules():
        for hook in module._load_state_dict_pre_hooks.values():
            hook(renamed, f"{prefix}." if prefix else "", {}, True, [], [], [])
    return renamed


def compare_shapes(found: dict, wanted: dict, where: str, against: str) -> None:
    """CheckpointError naming the first key that is missing, unexpected, or of another shape."""
    for key, shape in wanted.items():
        if key not in found:
            raise CheckpointError(f"{where} does not match {against}: it has no {key!r} (shape {list(shape)})")
        if tuple(found[key]) != tuple(shape):
            raise CheckpointError(f"{where} does not match {against}: {key!r} has shape {list(found[key])}, "
                                  f"{against} has {list(shape)}")  # fmt: skip
    extra = sorted(set(found) - set(wanted))
    if extra:
        raise CheckpointError(f"{where} does not match {against}: unexpected {extra[0]!r}")


def weights_step(run_dir: str | os.PathLike) -> int | None:
    """The training step ``model.safetensors`` was saved at (None if not recorded or unreadable)."""
    try:
        with safe_open(str(Path(run_dir) / WEIGHTS), framework="pt") as f:
            step = (f.metadata() or {}).get("step")
    except (SafetensorError, OSError, RuntimeError, ValueError, TypeError):
        return None
    return int(step) if isinstance(step, str) and step.isdigit() else None


def check_model_config(run_dir: str | os.PathLike, config: dict, expected: dict, part: str = VOCAB) -> None:
    """Check the model section of ``config`` against values another part of the run implies (``expected``:
    dotted keys of the model's config, e.g. ``{"vocab_size": 65}``); one-line CheckpointError naming both."""
    model = config.get("model")
    values = model.get("config") if isinstance(model, dict) else None
    if not isinstance(values, dict):
        return  # no model to compare with: loading it says so
    for key, want in expected.items():
        value: Any = values
        for name in key.split("."):
            value = value.get(name) if isinstance(value, dict) else None
        if value != want:
            shown = want if not isinstance(want, list) else f"{len(want)} entries"
            have = value if not isinstance(value, list) else f"{len(value)} entries"
            raise CheckpointError(f"{Path(run_dir) / part} does not match {CONFIG}: it implies model {key} = {shown}, "
                                  f"{CONFIG} has {have}")  # fmt: skip


def load_training_state(run_dir: str | os.PathLike, device: str | torch.device = "cpu") -> dict | None:
    """Read ``optimizer.pt`` (None if absent) without unpickling anything but tensors and plain data."""
    path = Path(run_dir) / TRAINING_STATE
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, AttributeError, TypeError) as error:
        raise CheckpointError(
            f"{path} is corrupt or not a plain tensor file, refused without running it: {_unpickling_reason(error)}"
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
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise CheckpointError(f"{path} is corrupt: {error}") from None


def read_metrics(run_dir: str | os.PathLike) -> list[dict]:
    """All records of ``metrics.jsonl``; a torn line (a kill mid-write) or one that is not a JSON object
    is skipped."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def _first_line(error: BaseException) -> str:
    """The first line of an error's message, without terminal colours, at most 200 characters."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip().splitlines()
    return text[0].strip()[:200] if text and text[0].strip() else type(error).__name__


def _unpickling_reason(error: BaseException) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in a few words: its message opens with
    paragraphs on how to load the file anyway, and names what it refused after ``WeightsUnpickler error:``
    (an object such as ``io.open`` it would have called, an opcode it does not run)."""
    text = str(error)
    _, marker, rest = text.partition("WeightsUnpickler error:")
    if marker:
        lines = [line.strip() for line in rest.splitlines() if line.strip()]
        if lines:
            reason = lines[0].split(" was not an allowed global")[0]
            return f"{reason.rstrip('.')} (only tensors and plain data are read)"
    return _first_line(error)


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
