"""What every benchmark script shares: a description of the machine, results files, and the training
throughput of an rnnkit language model next to the same model built on torch.nn.LSTM."""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import rnnkit

RESULTS = Path(__file__).resolve().parent / "results"


def machine(device: str = "cpu") -> dict:
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
        "rnnkit": rnnkit.__version__,
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def machine_tag(info: dict) -> str:
    return "gpu" if "gpu" in info else f"cpu{info['torch_threads']}"


def write_results(name: str, result: dict, markdown: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = RESULTS / f"{name}-{machine_tag(result['machine'])}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown + "\n")
    return stem


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
    """rnnkit's LanguageModel against the same model on torch.nn.LSTM, measured alternately in one process."""
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
        "backend": rnnkit_model.rnn.backend,
    }
