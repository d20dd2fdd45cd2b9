"""Training on several processes: PyTorch's DistributedDataParallel, launched by ``torchrun``.

    torchrun --standalone --nproc_per_node 2 -m rnnkit train lm ...      # one machine, 2 processes
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29500 -m rnnkit train ...

torchrun starts one process per rank and tells each where it stands through the environment (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``). :func:`setup` joins the process group from
those (gloo on the CPU, NCCL on CUDA, each rank on GPU ``LOCAL_RANK``); without them, or with a world of
one, every function here is a no-op and training runs exactly as in one process.

How N processes compute what one process computes (docs/distributed.md):

- the global batch of B examples is cut into N contiguous shares (:func:`share`), B/N each;
- rank r's loss L_r is the mean over its c_r predictions; the global loss is L = Σ_r c_r L_r / Σ_r c_r,
  whose gradient is Σ_r (c_r / C) ∇L_r with C = Σ_r c_r. DDP averages gradients over ranks, so each rank
  back-propagates L_r · N c_r / C (:func:`global_loss`): the average is exactly ∇L, also where the
  shares differ in size (the last batch of an epoch) or count tokens;
- after the backward pass every rank holds the same global gradient, so clipping by its norm, the
  optimizer step and the logged pre-clip norm are the global ones on every rank;
- rank 0 alone evaluates, writes the run directory, holds its lock and prints; the metrics and every
  decision that reads a clock (the time budget, the evaluation marks) are rank 0's, broadcast
  (:func:`broadcast`, :func:`agree`), so every rank takes the same steps and stops at the same one.

A rank that dies (an error, ``kill -9``) ends the others: torchrun's agent stops every worker when one
fails; a gloo collective whose peer is gone raises at once, and :func:`collective` turns that into one line.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import signal
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from rnnkit.errors import ConfigError, RnnkitError, TrainingError

ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")  # what torchrun sets for each worker
TIMEOUT = timedelta(minutes=30)  # a collective waits this long (rank 0 evaluating while the others wait)


class PeerLost(TrainingError):
    """A collective failed: another training process has stopped."""


class Terminated(PeerLost):
    """torchrun stopped this process (SIGTERM): another one failed, or the launcher was interrupted."""


class BatchSplitError(ConfigError):
    """The global batch does not divide among the processes. Every rank raises it: only rank 0 prints it."""

    every_rank = True


def launched() -> bool:
    """Whether torchrun (or another launcher that sets its variables) started this process in a world > 1."""
    return all(name in os.environ for name in ENV) and int(os.environ["WORLD_SIZE"]) > 1


def active() -> bool:
    """Whether this process is one of several in an initialised process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world() -> int:
    """How many processes train together (1 without torchrun)."""
    return dist.get_world_size() if active() else 1


def rank() -> int:
    """This process's rank, 0 .. world() - 1 (0 without torchrun)."""
    return dist.get_rank() if active() else 0


def is_main() -> bool:
    """Whether this process is rank 0: the one that evaluates, writes and prints."""
    return rank() == 0


def setup(device: torch.device) -> torch.device:
    """Join torchrun's process group (once; a no-op when not launched by torchrun) and return the device
    this rank trains on: ``cuda:LOCAL_RANK`` for a CUDA device (one GPU per process), else ``device``.
    The backend is NCCL on CUDA and gloo on the CPU."""
    if not launched():
        return device
    local = int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise ConfigError(f"torchrun started local rank {local}, but this machine has {torch.cuda.device_count()} "
                              "GPUs: use --nproc_per_node at most the GPU count")  # fmt: skip
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise ConfigError(f"training on several processes runs on cpu (gloo) or cuda (NCCL), not {device.type}")
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        with collective("joining the process group"):
            dist.init_process_group(backend, timeout=TIMEOUT, **({"device_id": device} if backend == "nccl" else {}))
        # torchrun's agent ends the others with SIGTERM when one worker fails: say so in one line (the
        # trainer adds what the run directory keeps) instead of dying silently
        signal.signal(signal.SIGTERM, _terminated)
    return device


def _terminated(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    raise Terminated("torchrun stopped this process: another training process ended (or the launcher was "
                     "interrupted)")  # fmt: skip


def barrier() -> None:
    """Wait until every rank is here (the end of a run: no rank tears the group down under another)."""
    if active():
        with collective("finishing"):
            dist.barrier()


def shutdown() -> None:
    """Leave the process group (at the end of a run). DDP's reducer holds the group too (and the trainer,
    through its progress display, sits in a reference cycle): collect it first, so that gloo's threads end
    now and not while the interpreter is torn down (which aborts the process, pytorch PR 179291)."""
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


@contextlib.contextmanager
def collective(what: str) -> Iterator[None]:
    """Run a collective (or a step that holds DDP's): a failure there means another rank stopped; it becomes
    one :class:`PeerLost` line instead of a traceback. Without a process group nothing is caught."""
    if not (dist.is_available() and dist.is_initialized()):
        yield
        return
    try:
        yield
    except RnnkitError:
        raise  # the user's errors (a TrainingError is a RuntimeError too) are not the network's
    except (dist.DistError, RuntimeError) as error:
        if isinstance(error, RuntimeError) and not isinstance(error, dist.DistError) and not _looks_distributed(error):
            raise
        first = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
        first = re.sub(r"^\[[^\]]*\.(?:cc|cpp|h):\d+\]\s*", "", first)  # gloo's source position
        raise PeerLost(f"another training process stopped while {what} ({first[:160]})") from None


def _looks_distributed(error: RuntimeError) -> bool:
    text = str(error).lower()
    return any(word in text for word in ("gloo", "nccl", "connection", "peer", "timed out", "timeout", "socket",
                                         "process group", "broken pipe"))  # fmt: skip


def check_batch(batch_size: int) -> None:
    """The global batch must divide among the processes: each rank takes ``batch_size / world()``."""
    n = world()
    if batch_size % n:
        raise BatchSplitError(f"--batch-size {batch_size} does not divide among the {n} training processes: each "
                              f"takes an equal share of the global batch; use a multiple of {n}")  # fmt: skip


def share(items: Any, dim: int = 0) -> Any:
    """This rank's contiguous share of ``items`` (a tensor or array along ``dim``, or a sequence): of n
    items rank r takes [r n / N, (r + 1) n / N), so the shares cover the whole in order. A rank whose share
    would be empty (fewer items than ranks: a last, short batch) takes item r mod n once, as
    DistributedSampler pads; that repeat is the one place N processes see other data than one."""
    n_ranks, r = world(), rank()
    if n_ranks == 1:
        return items
    n = items.shape[dim] if hasattr(items, "shape") else len(items)
    lo, hi = r * n // n_ranks, (r + 1) * n // n_ranks
    if hi == lo and n:
        lo, hi = r % n, r % n + 1
    if isinstance(items, torch.Tensor):
        return items.narrow(dim, lo, hi - lo)
    if hasattr(items, "shape"):  # a numpy array
        return items[(slice(None),) * dim + (slice(lo, hi),)]
    return items[lo:hi]


def gather(tensor: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """Every rank's equal share of a tensor, concatenated along ``dim`` in rank order (the inverse of :func:`share`)."""
    if not active():
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(world())]
    with collective("gathering the carried state"):
        dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, dim=dim)


def global_loss(loss: torch.Tensor, count: int) -> tuple[torch.Tensor, float, int]:
    """(the tensor to back-propagate, the global mean loss, the global count) for this rank's mean ``loss``
    over ``count`` predictions: one all-reduce of (c_r L_r, c_r). Back-propagating L_r N c_r / C makes DDP's
    gradient average Σ_r c_r ∇L_r / C, the gradient of the global mean (module docstring). One process:
    ``loss`` itself. A non-finite loss on any rank makes the global one non-finite on every rank."""
    if not active():
        return loss, loss.item(), count
    sums = torch.tensor([loss.item() * count, float(count)], dtype=torch.float64, device=_device())
    with collective("adding up the losses"):
        dist.all_reduce(sums)
    total_loss, total = sums.tolist()
    scale = count * world() / total if total > 0 else 0.0
    return loss * scale, total_loss / total if total > 0 else float("nan"), int(total)


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` (anything picklable, e.g. a metrics dict) on every rank."""
    if not active():
        return obj
    box = [obj]
    with collective("receiving rank 0's results"):
        dist.broadcast_object_list(box, src=0, device=_device())
    return box[0]


def agree(value: bool | float) -> bool | float:
    """Rank 0's ``value`` (a flag or a number) on every rank: a decision that reads a clock, taken once so
    that no rank goes on alone, or the run's progress that the learning rate follows."""
    if not active():
        return value
    box = torch.tensor([float(value)], dtype=torch.float64, device=_device())
    with collective("agreeing with rank 0"):
        dist.broadcast(box, src=0)
    return bool(box.item()) if isinstance(value, bool) else box.item()


class TaskLoss(nn.Module):
    """``loss(model, batch)`` as a module's forward, so that DistributedDataParallel sees the whole step:
    the task's own calls into the model (an encoder, a CRF) happen inside DDP's forward."""

    def __init__(self, model: nn.Module, loss: Callable[[nn.Module, Any], tuple[torch.Tensor, int]]) -> None:
        super().__init__()
        self.model, self.loss_fn = model, loss

    def forward(self, batch: Any) -> tuple[torch.Tensor, int]:
        return self.loss_fn(self.model, batch)


def wrap(model: nn.Module, loss: Callable, device: torch.device) -> Callable[[Any], tuple[torch.Tensor, int]]:
    """``batch -> loss(model, batch)``; on several processes through DistributedDataParallel (rank 0's
    weights broadcast to all at the start; gradients averaged in the backward pass). Parameters that a step
    leaves without a gradient (a frozen embedding, an unused branch) are allowed: ``find_unused_parameters``."""
    if not active():
        return lambda batch: loss(model, batch)
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    with collective("starting DistributedDataParallel"):
        return DistributedDataParallel(TaskLoss(model, loss), device_ids=ids, find_unused_parameters=True)


def rank_seed(seed: int) -> int:
    """A seed for draws that must differ between ranks (fresh data, dropout): ``seed`` itself on rank 0
    (so one process draws as it always did), a distinct one on every other rank."""
    r = rank()
    return seed if r == 0 else (seed * 1_000_003 + 7_919 * r) % 2**63


def _device() -> torch.device:
    """Where this backend's collectives want their tensors: the rank's GPU for NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
