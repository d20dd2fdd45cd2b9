"""What every benchmark script shares: a description of the machine, results files, running the
command line in-process, and the training throughput of an rnnkit language model next to the same
model built on torch.nn.LSTM. Scripts run from anywhere with ``PYTHONPATH=src`` (or rnnkit installed)."""

from __future__ import annotations

import contextlib
import io
import json
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from rnnkit import __version__ as rnnkit_version
from rnnkit.cli import main as rnnkit_main

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"


def machine(device: str = "auto") -> dict:
    """CPU model, cores and threads, torch version, and the GPU when one is used."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cpu_count": torch.multiprocessing.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "rnnkit": rnnkit_version,
    }
    if device != "cpu" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def machine_tag(info: dict) -> str:
    return "gpu" if "gpu" in info else f"cpu{info['torch_threads']}"


def machine_markdown(info: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in info.items())


def write_results(name: str, result: dict, markdown: str, results_dir: Path = RESULTS) -> Path:
    """Write ``NAME-TAG.json`` and ``.md`` (TAG: gpu or cpuN) into ``results_dir``; return the stem."""
    results_dir.mkdir(parents=True, exist_ok=True)
    stem = results_dir / f"{name}-{machine_tag(result['machine'])}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown.rstrip("\n") + "\n")
    print(f"wrote {stem}.json and .md", file=sys.stderr)
    return stem


def variant_name(name: str, label: str) -> str:
    """``name`` for a benchmark's default run (``label`` empty), else ``name-label`` with ``label`` (its flags, budget,
    series) lower-cased and reduced to letters, digits and dashes: an exploration's results do not overwrite the
    default measurement's."""
    tail = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
    return f"{name}-{tail}" if tail else name


def rnnkit(*argv: str) -> dict:
    """Run ``rnnkit ARGV --json`` in this process and return its JSON; progress goes to stderr."""
    out = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out):
        code = rnnkit_main([*argv, "--json"])
    if code != 0:
        raise SystemExit(f"rnnkit {' '.join(argv)} failed with status {code}")
    result = json.loads(out.getvalue().strip().splitlines()[-1])
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    return result


def head_lines(source: Path, target: Path, lines: int) -> Path:
    """The first ``lines`` lines of ``source`` (for smoke runs)."""
    with open(source, encoding="utf-8") as f:
        text = "".join(line for _, line in zip(range(lines), f))
    target.write_text(text, encoding="utf-8")
    return target


class TorchLanguageModel(nn.Module):
    """The peer: the same embedding / LSTM / head, on torch.nn.LSTM."""

    def __init__(self, vocab_size: int, embedding_size: int, hidden_size: int, num_layers: int, dropout: float):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_size)
        self.rnn = nn.LSTM(embedding_size, hidden_size, num_layers, batch_first=True,
                           dropout=dropout if num_layers > 1 else 0.0)  # fmt: skip
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, tokens, state=None):
        out, state = self.rnn(self.dropout(self.embedding(tokens)), state)
        return self.head(self.dropout(out)), state


def training_throughput(model: nn.Module, vocab_size: int, batch_size: int, seq_len: int, device: str,
                        steps: int = 20, repeats: int = 5) -> float:  # fmt: skip
    """Training tokens per second (forward, backward, Adam step), median over repeats."""
    model = model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randint(0, vocab_size, (batch_size, seq_len), device=device)
    y = torch.randint(0, vocab_size, (batch_size, seq_len), device=device)

    def step():
        logits, _ = model(x)
        loss = F.cross_entropy(logits.reshape(-1, vocab_size), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    rates = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(steps):
            step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        rates.append(steps * batch_size * seq_len / (time.perf_counter() - started))
    return statistics.median(rates)


def compare_throughput(rnnkit_model: nn.Module, batch_size: int, seq_len: int, device: str) -> dict:
    """rnnkit's LanguageModel against the same model on torch.nn.LSTM, measured alternately in one process.

    Both are trained on random tokens while timed: ``rnnkit_model``'s weights are changed."""
    c = rnnkit_model.config
    peer = TorchLanguageModel(c.vocab_size, c.embedding_size, c.rnn.hidden_size, c.rnn.num_layers, c.dropout)
    ours, theirs = [], []
    for _ in range(3):
        ours.append(training_throughput(rnnkit_model, c.vocab_size, batch_size, seq_len, device, repeats=1))
        theirs.append(training_throughput(peer, c.vocab_size, batch_size, seq_len, device, repeats=1))
    return {
        "rnnkit_tokens_per_s": statistics.median(ours),
        "torch_nn_lstm_tokens_per_s": statistics.median(theirs),
        "ratio": statistics.median(ours) / statistics.median(theirs),
        "backend": rnnkit_model.rnn.backend_for(seq_len),
    }
