"""Speed and memory of rnnkit's backends against torch.nn and a plain step loop, measured in one process.

``rnnkit bench`` prints what :func:`run_bench` returns. Training rows time one forward+backward pass
of a layer over T steps (median of ``repeats`` after a warm-up) for each implementation:

- ``auto``, ``torch``, ``fused``, ``reference``: an rnnkit layer with that backend (``torch`` only
  where torch's kernels compute the cell, i.e. plain cells);
- ``torch.nn``: ``torch.nn.LSTM/GRU/RNN`` of the same size, always the *plain* cell: for a custom cell
  (layer norm, zoneout, ...) it is the peer the custom cell's cost is compared with;
- ``loop``: the cell's own equations stepped in a plain PyTorch loop (``CellSpec.advance`` per step).

Each row has the time, tokens/s (T * B / time), the ratio of its time to torch's, and the memory kept
for the backward: on CPU the bytes of the tensors saved for backward (distinct storages, through
``torch.autograd.graph.saved_tensors_hooks``; CPU allocators keep no peak statistics), on CUDA the peak
of ``torch.cuda.max_memory_allocated`` during the pass. On CUDA times come from CUDA events.

Generation rows give tokens/s of :func:`rnnkit.generate` at batch 1 and 16 next to calling the modules
per token (for plain cells: torch.nn's own layer) and the matrix-vector floor: the time of the step's
matrix products alone (every layer's ``W_ih x`` and ``W_hh h`` and the head), with nothing else.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

import rnnkit
from rnnkit.decoding import generate, sample_logits
from rnnkit.errors import ConfigError
from rnnkit.layers import RecurrentConfig

# name -> (cell, options): the plain cells and the custom ones torch.nn does not have
VARIANTS: dict[str, tuple[str, dict]] = {
    "lstm": ("lstm", {}),
    "gru": ("gru", {}),
    "rnn": ("rnn", {}),
    "lstm-layernorm": ("lstm", {"layer_norm": True}),
    "lstm-peephole": ("lstm", {"peephole": True}),
    "lstm-recurrent-dropout": ("lstm", {"recurrent_dropout": 0.25}),
    "lstm-zoneout": ("lstm", {"zoneout": 0.1}),
    "gru-before": ("gru", {"reset": "before"}),
    "gru-layernorm": ("gru", {"layer_norm": True}),
    "rnn-layernorm": ("rnn", {"layer_norm": True}),
}
IMPLEMENTATIONS = ("auto", "torch", "fused", "reference", "torch.nn", "loop")
TORCH_LAYERS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


@dataclass
class BenchConfig:
    """What to measure. Sizes are crossed: every variant x hidden size x batch size."""

    variants: list[str] = field(default_factory=lambda: ["lstm", "gru", "rnn"])
    hidden_sizes: list[int] = field(default_factory=lambda: [64, 128, 256, 512, 1024])
    batch_sizes: list[int] = field(default_factory=lambda: [1, 16, 64])
    seq_len: int = 100
    input_size: int | None = None  # None: the hidden size
    num_layers: int = 1
    implementations: list[str] = field(default_factory=lambda: list(IMPLEMENTATIONS))
    repeats: int = 5
    training: bool = True
    generation: bool = True
    generation_batches: list[int] = field(default_factory=lambda: [1, 16])
    generation_layers: int = 1
    generation_tokens: int = 100
    vocab_size: int = 65
    embedding_size: int = 64
    device: str = "cpu"

    def __post_init__(self) -> None:
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown:
            raise ConfigError(f"unknown cell {unknown[0]!r}; choose from {', '.join(VARIANTS)}")
        unknown = [b for b in self.implementations if b not in IMPLEMENTATIONS]
        if unknown:
            raise ConfigError(f"unknown backend {unknown[0]!r}; choose from {', '.join(IMPLEMENTATIONS)}")
        for name in ("hidden_sizes", "batch_sizes", "generation_batches"):
            bad = [n for n in getattr(self, name) if isinstance(n, bool) or not isinstance(n, int) or n < 1]
            if bad or not getattr(self, name):
                raise ConfigError(f"{name.replace('_', ' ')} must be integers >= 1, got {getattr(self, name)}")
        for name in ("seq_len", "num_layers", "repeats", "generation_layers", "generation_tokens", "vocab_size",
                     "embedding_size"):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name.replace('_', ' ')} must be an integer >= 1, got {value!r}")
        if self.input_size is not None and self.input_size < 1:
            raise ConfigError(f"input size must be >= 1, got {self.input_size}")


# -- the machine ----------------------------------------------------------------------------------------


def machine_info(device: torch.device) -> dict:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "rnnkit": rnnkit.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    }
    return info


def available_bytes(device: torch.device) -> int | None:
    """Free memory on the device (MemAvailable on Linux CPUs); None when unknown."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_fits(config: BenchConfig, device: torch.device) -> None:
    """Refuse sizes whose activations and weights cannot fit, before allocating anything."""
    free = available_bytes(device)
    if free is None:
        return
    element = 4
    T, L = config.seq_len, config.num_layers
    worst = 0
    for H in config.hidden_sizes:
        I = config.input_size or H
        weights = 4 * H * (I + H) + (L - 1) * 4 * H * 2 * H
        for B in config.batch_sizes:
            # a step loop keeps ~20 (B, H) tensors per step and layer for the backward, the input and outputs
            activations = T * B * (I + 24 * H * L)
            worst = max(worst, element * (4 * weights + 2 * activations))
    if worst > free:
        H, B = max(config.hidden_sizes), max(config.batch_sizes)
        raise ConfigError(
            f"--hidden-size {H} with --batch-size {B} and --seq-len {T} needs about {worst / 2**30:.1f} GiB, "
            f"more than the {free / 2**30:.1f} GiB free on {device}; choose smaller sizes"
        )


# -- measuring ------------------------------------------------------------------------------------------


def timed(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs after one warm-up (CUDA events on a GPU)."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize(device)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end) / 1000.0)
        else:
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def training_memory(forward: Callable[[], torch.Tensor], device: torch.device) -> int:
    """Bytes a forward keeps for its backward (CPU: saved tensors) or the pass's peak (CUDA), then backward."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        forward().backward()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor):
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = forward()
    loss.backward()
    return sum(storages.values())


def _run_or_refuse(fn: Callable[[], object]) -> object:
    try:
        return fn()
    except (torch.OutOfMemoryError, MemoryError) as error:
        raise ConfigError(f"out of memory while benchmarking ({error}); choose smaller sizes") from None
    except RuntimeError as error:
        if "out of memory" in str(error) or "can't allocate memory" in str(error):
            raise ConfigError(f"out of memory while benchmarking ({error}); choose smaller sizes") from None
        raise


# -- training: forward + backward ----------------------------------------------------------------------


def make_layer(variant: str, implementation: str, input_size: int, hidden_size: int, num_layers: int,
               device: torch.device) -> nn.Module | None:  # fmt: skip
    """The module an implementation runs for a variant; None where it does not apply."""
    cell, options = VARIANTS[variant]
    if implementation == "torch.nn":
        return TORCH_LAYERS[cell](input_size, hidden_size, num_layers, device=device)
    backend = "reference" if implementation == "loop" else implementation
    config = RecurrentConfig(cell, input_size, hidden_size, num_layers, **options, backend="auto")
    if backend == "torch" and not config.is_plain:
        return None
    layer = rnnkit.Recurrent.from_config(RecurrentConfig(**{**config.__dict__, "backend": backend}), device=device)
    return layer.train()


def step_loop(layer: rnnkit.Recurrent, x: torch.Tensor) -> torch.Tensor:
    """The cells' own equations stepped in a plain loop (one direction): the output of the last layer."""
    T, B = x.shape[:2]
    for i, spec in enumerate(layer.specs):
        weights = layer.cell_weights(i)
        state = spec.init_state(B, device=x.device, dtype=x.dtype)
        recurrent, zoneout = spec.draw_masks(T, B, x)
        outputs = []
        for t in range(T):
            masks = None if zoneout is None else tuple(m[t] for m in zoneout)
            if masks is not None and len(masks) == 1:
                masks = masks[0]  # a single-tensor state takes a single mask
            out, state = spec.advance(weights, x[t], state, recurrent, masks, True)
            outputs.append(out)
        x = torch.stack(outputs)
    return x


def training_rows(config: BenchConfig, device: torch.device) -> Iterator[dict]:
    """One row per variant x hidden size x batch size x implementation."""
    for variant in config.variants:
        for H in config.hidden_sizes:
            I = config.input_size or H
            for B in config.batch_sizes:
                x = torch.randn(config.seq_len, B, I, device=device, requires_grad=True)
                rows = []
                for implementation in config.implementations:
                    layer = make_layer(variant, implementation, I, H, config.num_layers, device)
                    if layer is None:
                        continue
                    if implementation == "loop":

                        def forward(layer=layer, x=x):
                            return step_loop(layer, x).square().mean()
                    else:

                        def forward(layer=layer, x=x):
                            return layer(x)[0].square().mean()

                    def step(forward=forward, layer=layer):
                        layer.zero_grad(set_to_none=True)
                        forward().backward()

                    seconds = _run_or_refuse(lambda step=step: timed(step, config.repeats, device))
                    memory = _run_or_refuse(lambda forward=forward: training_memory(forward, device))
                    rows.append({
                        "cell": variant, "implementation": implementation, "hidden_size": H, "input_size": I,
                        "batch_size": B, "seq_len": config.seq_len, "num_layers": config.num_layers,
                        "ms": seconds * 1e3, "tokens_per_s": config.seq_len * B / seconds,
                        "memory_mb": memory / 2**20,
                    })  # fmt: skip
                torch_ms = next((r["ms"] for r in rows if r["implementation"] == "torch.nn"), None)
                for row in rows:
                    row["time_vs_torch"] = None if torch_ms is None else row["ms"] / torch_ms
                yield from rows


# -- generation ---------------------------------------------------------------------------------------


def plain_token_loop(embedding: nn.Module, rnn: nn.Module, head: nn.Module, n_tokens: int, batch: int) -> None:
    """Generation by calling the modules for every token (what rnnkit.generate avoids)."""
    generator = torch.Generator(device=embedding.weight.device).manual_seed(0)
    tokens = torch.zeros(batch, 1, dtype=torch.long, device=embedding.weight.device)
    state = None
    with torch.no_grad():
        for _ in range(n_tokens):
            out, state = rnn(embedding(tokens).transpose(0, 1), state)
            tokens = sample_logits(head(out[-1]), generator=generator).unsqueeze(1)


def matvec_floor(cells: list[tuple[torch.Tensor, torch.Tensor]], head: nn.Linear, n_tokens: int, batch: int) -> None:
    """The step's matrix products alone, into preallocated outputs: the floor a token step cannot beat."""
    device, dtype = head.weight.device, head.weight.dtype
    x = torch.randn(batch, cells[0][0].shape[1], device=device, dtype=dtype)
    h = [torch.randn(batch, W_hh.shape[1], device=device, dtype=dtype) for _, W_hh in cells]
    gates = [torch.empty(batch, W_ih.shape[0], device=device, dtype=dtype) for W_ih, _ in cells]
    logits = torch.empty(batch, head.weight.shape[0], device=device, dtype=dtype)
    with torch.no_grad():
        for _ in range(n_tokens):
            inputs = x
            for (W_ih, W_hh), g, h_l in zip(cells, gates, h):
                torch.mm(inputs, W_ih.t(), out=g)
                g.addmm_(h_l, W_hh.t())
                inputs = h_l
            torch.mm(inputs, head.weight.t(), out=logits)


def generation_rows(config: BenchConfig, device: torch.device) -> Iterator[dict]:
    """Tokens/s of rnnkit.generate, of per-token module calls and of the matrix-vector floor."""
    V, E, L, n = config.vocab_size, config.embedding_size, config.generation_layers, config.generation_tokens
    for variant in config.variants:
        cell, options = VARIANTS[variant]
        for H in config.hidden_sizes:
            torch.manual_seed(0)
            embedding = nn.Embedding(V, E, device=device)
            if options:
                rnn = rnnkit.Recurrent.from_config(RecurrentConfig(cell, E, H, L, **options), device=device)
                weights = [(w.weight_ih, w.weight_hh) for w in map(rnn.cell_weights, range(L))]
            else:
                rnn = TORCH_LAYERS[cell](E, H, L, device=device)
                weights = [(getattr(rnn, f"weight_ih_l{k}"), getattr(rnn, f"weight_hh_l{k}")) for k in range(L)]
            head = nn.Linear(H, V, device=device)
            for B in config.generation_batches:
                model = (embedding, rnn, head)
                runs = {
                    "rnnkit.generate": lambda B=B, m=model: generate(*m, n, seed=0, num_samples=B),
                    "module per token": lambda B=B, m=model: plain_token_loop(*m, n, B),
                    "matrix-vector floor": lambda B=B, w=weights, h=head: matvec_floor(w, h, n, B),
                }
                rows = []
                for name, fn in runs.items():
                    seconds = _run_or_refuse(lambda fn=fn: timed(fn, config.repeats, device))
                    rows.append({"cell": variant, "implementation": name, "hidden_size": H, "num_layers": L,
                                 "batch_size": B, "tokens_per_s": n * B / seconds})  # fmt: skip
                floor = rows[-1]["tokens_per_s"]
                for row in rows:
                    row["floor_time_ratio"] = floor / row["tokens_per_s"]  # time per token / floor's
                yield from rows


# -- the whole run ---------------------------------------------------------------------------------------


def run_bench(config: BenchConfig, progress: Callable[[dict], None] | None = None) -> dict:
    """Measure everything ``config`` asks for: {"machine", "config", "training": [...], "generation": [...]}."""
    try:
        device = torch.device(config.device)
    except RuntimeError:
        raise ConfigError(f"unknown device {config.device!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {config.device!r} asked for, but CUDA is not available on this machine")
    check_fits(config, device)
    result = {"machine": machine_info(device), "config": dict(config.__dict__), "training": [], "generation": []}
    sections = [("training", training_rows)] if config.training else []
    sections += [("generation", generation_rows)] if config.generation else []
    for name, rows in sections:
        for row in rows(config, device):
            result[name].append(row)
            if progress is not None:
                progress(row)
    return result


def format_table(result: dict) -> str:
    """The result as two aligned text tables."""
    lines = []
    m = result["machine"]
    lines.append(f"{m['cpu']} ({m['cpu_count']} cores, {m['torch_threads']} torch threads), torch {m['torch']}"
                 + (f", {m['gpu']}" if m.get("gpu") else ""))  # fmt: skip
    if result["training"]:
        lines.append("")
        lines.append("forward+backward, T={} (time vs torch.nn of the plain cell; memory kept for backward)".format(
            result["training"][0]["seq_len"]))  # fmt: skip
        header = (f"{'cell':<24}{'H':>6}{'B':>5}  {'implementation':<11}{'ms':>10}{'tokens/s':>12}{'x torch':>9}"
                  f"{'MB':>9}")  # fmt: skip
        lines += [header, "-" * len(header)]
        for r in result["training"]:
            ratio = "" if r["time_vs_torch"] is None else f"{r['time_vs_torch']:.2f}"
            lines.append(f"{r['cell']:<24}{r['hidden_size']:>6}{r['batch_size']:>5}  {r['implementation']:<11}"
                         f"{r['ms']:>10.2f}{r['tokens_per_s']:>12,.0f}{ratio:>9}{r['memory_mb']:>9.2f}")  # fmt: skip
    if result["generation"]:
        lines.append("")
        lines.append("generation (time per token vs the matrix-vector floor)")
        header = f"{'cell':<24}{'H':>6}{'L':>3}{'B':>5}  {'implementation':<21}{'tokens/s':>12}{'x floor':>9}"
        lines += [header, "-" * len(header)]
        for r in result["generation"]:
            lines.append(f"{r['cell']:<24}{r['hidden_size']:>6}{r['num_layers']:>3}{r['batch_size']:>5}  "
                         f"{r['implementation']:<21}{r['tokens_per_s']:>12,.0f}"
                         f"{r['floor_time_ratio']:>9.2f}")  # fmt: skip
    return "\n".join(lines)


# -- the command line ------------------------------------------------------------------------------


def add_arguments(parser) -> None:
    """The options of ``rnnkit bench``."""
    parser.add_argument("--cell", nargs="+", default=["lstm", "gru", "rnn"], metavar="CELL",
                       help=f"cells to time: {', '.join(VARIANTS)}")  # fmt: skip
    parser.add_argument("--hidden-size", nargs="+", type=int, default=[64, 128, 256, 512, 1024], metavar="H")
    parser.add_argument("--batch-size", nargs="+", type=int, default=[1, 16, 64], metavar="B")
    parser.add_argument("--seq-len", type=int, default=100, metavar="T")
    parser.add_argument("--input-size", type=int, help="default: the hidden size")
    parser.add_argument("--num-layers", type=int, default=1)
    parser.add_argument("--backend", nargs="+", default=list(IMPLEMENTATIONS), metavar="BACKEND",
                       help=f"implementations: {', '.join(IMPLEMENTATIONS)}")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median)")
    parser.add_argument("--skip", choices=["training", "generation"], help="leave out one part")
    parser.add_argument("--generation-layers", type=int, default=1)
    parser.add_argument("--generation-tokens", type=int, default=100)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def main(args) -> int:
    """``rnnkit bench``: run the measurements the options ask for and print the table (or JSON)."""
    config = BenchConfig(
        variants=args.cell, hidden_sizes=args.hidden_size, batch_sizes=args.batch_size, seq_len=args.seq_len,
        input_size=args.input_size, num_layers=args.num_layers, implementations=args.backend, repeats=args.repeats,
        training=args.skip != "training", generation=args.skip != "generation",
        generation_layers=args.generation_layers, generation_tokens=args.generation_tokens, device=args.device,
    )  # fmt: skip

    def progress(row: dict) -> None:
        if not args.quiet:
            speed = f"{row['tokens_per_s']:,.0f} tokens/s"
            print(f"  {row['cell']} H={row['hidden_size']} B={row['batch_size']} {row['implementation']}: {speed}",
                  file=sys.stderr, flush=True)  # fmt: skip

    result = run_bench(config, progress)
    if args.json:
        metrics = {"training": result["training"], "generation": result["generation"]}
        print(json.dumps({"task": "bench", "metrics": metrics, "machine": result["machine"],
                          "config": result["config"]}))  # fmt: skip
    else:
        print(format_table(result))
    return 0
