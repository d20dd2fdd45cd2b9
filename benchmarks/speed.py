"""The speed issue's target comparisons, every ratio measured in one process (median of interleaved repeats).

    PYTHONPATH=src python benchmarks/speed.py                 # CPU: about 2-4 minutes on 2 cores
    PYTHONPATH=src python benchmarks/speed.py --device cuda   # the GPU targets
    PYTHONPATH=src python benchmarks/speed.py --smoke --out-dir /tmp/speed   # seconds: checks the script runs

Writes ``benchmarks/results/speed-<machine>.json`` and ``.md``: the machine, each target with its measured
value, and the raw timings. Timings from one round of every implementation are interleaved so a change in
machine load hits all of them alike; each figure is the median over rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import torch
from torch import nn

import rnnkit
from rnnkit.apps.bench import machine_info, make_layer, matvec_floor, plain_token_loop, step_loop, training_memory
from rnnkit.decoding import generate
from rnnkit.kernels import dispatch

SIZES = dict(T=100, B=32, I=128, H=256)  # the training configuration
SMOKE = dict(T=6, B=2, I=8, H=16)


def interleaved(fns: dict, repeats: int, device: torch.device) -> dict[str, float]:
    """Median seconds per function, timing one call of each in turn per round (after a warm-up round)."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(t) for name, t in times.items()}


def training_step(layer: nn.Module, x: torch.Tensor, loop: bool = False):
    def step():
        layer.zero_grad(set_to_none=True)
        out = step_loop(layer, x) if loop else layer(x)[0]
        out.square().mean().backward()

    return step


def training(sizes: dict, repeats: int, device: torch.device) -> dict[str, float]:
    """Forward+backward seconds of every implementation the targets compare."""
    T, B, I, H = sizes["T"], sizes["B"], sizes["I"], sizes["H"]
    torch.manual_seed(0)
    x = torch.randn(T, B, I, device=device, requires_grad=True)
    layers = {
        "torch.nn.LSTM": make_layer("lstm", "torch.nn", I, H, 1, device),
        "torch.nn.GRU": make_layer("gru", "torch.nn", I, H, 1, device),
        "rnnkit LSTM auto": make_layer("lstm", "auto", I, H, 1, device),
        "rnnkit GRU auto": make_layer("gru", "auto", I, H, 1, device),
        "rnnkit LSTM fused": make_layer("lstm", "fused", I, H, 1, device),
        "rnnkit GRU fused": make_layer("gru", "fused", I, H, 1, device),
        "LayerNorm-LSTM fused": make_layer("lstm-layernorm", "fused", I, H, 1, device),
        "GRU reset=before fused": make_layer("gru-before", "fused", I, H, 1, device),
        "LSTM recurrent dropout fused": make_layer("lstm-recurrent-dropout", "fused", I, H, 1, device),
        "LSTM zoneout fused": make_layer("lstm-zoneout", "fused", I, H, 1, device),
        "LayerNorm-GRU fused": make_layer("gru-layernorm", "fused", I, H, 1, device),  # no target: for the record
    }
    fns = {name: training_step(layer, x) for name, layer in layers.items()}
    # the same LayerNorm-LSTM with its steps in PyTorch (TorchScript) instead of C: what the C steps gain
    if dispatch.c_cells_available() and device.type == "cpu":
        fns["LayerNorm-LSTM fused, PyTorch steps"] = with_environment(fns["LayerNorm-LSTM fused"], RNNKIT_C_CELLS="0")
    loops = {
        "LSTM step loop": "lstm", "LayerNorm-LSTM step loop": "lstm-layernorm", "GRU reset=before step loop":
        "gru-before", "LSTM recurrent dropout step loop": "lstm-recurrent-dropout", "LSTM zoneout step loop":
        "lstm-zoneout",
    }  # fmt: skip
    for name, variant in loops.items():
        fns[name] = training_step(make_layer(variant, "loop", I, H, 1, device), x, loop=True)
    return interleaved(fns, repeats, device)


def memory(sizes: dict, device: torch.device) -> dict[str, float]:
    """MiB kept for the backward at T=1000 (CPU: saved tensors; CUDA: peak during the pass)."""
    B, I, H = sizes["B"], sizes["I"], sizes["H"]
    T = sizes.get("T_memory", 1000)
    torch.manual_seed(0)
    x = torch.randn(T, B, I, device=device, requires_grad=True)
    result = {}
    for name, (variant, implementation) in {
        "torch.nn.LSTM": ("lstm", "torch.nn"), "rnnkit LSTM auto": ("lstm", "auto"),
        "rnnkit LSTM fused": ("lstm", "fused"), "LayerNorm-LSTM fused": ("lstm-layernorm", "fused"),
    }.items():  # fmt: skip
        layer = make_layer(variant, implementation, I, H, 1, device)
        result[name] = training_memory(lambda layer=layer: layer(x)[0].square().mean(), device) / 2**20
    return result


def with_environment(fn: Callable[[], object], **variables: str) -> Callable[[], object]:
    """``fn`` run with environment variables set, e.g. ``RNNKIT_C_CELLS="0"`` to switch a C path off."""

    def run():
        with mock.patch.dict(os.environ, variables):
            return fn()

    return run


def generation(sizes: dict, tokens: int, repeats: int, device: torch.device) -> dict[str, float]:
    """Tokens/s: rnnkit.generate against calling torch.nn.LSTM per token and the matrix-vector floor."""
    V, E = 65, 64
    result = {}
    for H, L in sizes["generation"]:
        torch.manual_seed(0)
        model = (nn.Embedding(V, E, device=device), nn.LSTM(E, H, L, device=device), nn.Linear(H, V, device=device))
        lstm, head = model[1], model[2]
        weights = [(getattr(lstm, f"weight_ih_l{k}"), getattr(lstm, f"weight_hh_l{k}")) for k in range(L)]
        # a custom cell torch.nn has no kernel for: the LayerNorm-LSTM, at batch 1
        custom = (model[0], rnnkit.LSTM(E, H, L, layer_norm=True, device=device).eval(), model[2])
        fns = {}
        for B in (1, 16):
            tag = f"H={H} L={L} B={B}"
            fns[f"rnnkit.generate {tag}"] = lambda B=B, m=model: generate(*m, tokens, seed=0, num_samples=B)
            if dispatch.c_generation_applies([], None) and device.type == "cpu":  # what the C loop adds
                fns[f"rnnkit.generate, PyTorch step {tag}"] = with_environment(
                    lambda B=B, m=model: generate(*m, tokens, seed=0, num_samples=B), RNNKIT_C_GENERATION="0"
                )
            if B == 1:
                fns[f"rnnkit.generate LayerNorm-LSTM {tag}"] = lambda m=custom: generate(*m, tokens, seed=0)
                if dispatch.c_generation_applies([], None) and device.type == "cpu":
                    fns[f"rnnkit.generate LayerNorm-LSTM, PyTorch step {tag}"] = with_environment(
                        lambda m=custom: generate(*m, tokens, seed=0), RNNKIT_C_GENERATION="0"
                    )
            fns[f"torch.nn.LSTM per token {tag}"] = lambda B=B, m=model: plain_token_loop(*m, tokens, B)
            fns[f"matrix-vector floor {tag}"] = lambda B=B, w=weights, h=head: matvec_floor(w, h, tokens, B)
        seconds = interleaved(fns, repeats, device)
        for name, s in seconds.items():
            B = int(name.rsplit("B=", 1)[1])
            result[name] = tokens * B / s
    return result


def targets(train: dict, mem: dict, gen: dict, sizes: dict, device: torch.device) -> list[dict]:
    """Each target of the issue with its measured value."""
    t = train
    small, big = sizes["generation"]
    g1 = f"H={small[0]} L={small[1]}"
    g2 = f"H={big[0]} L={big[1]}"
    rows = [
        ("plain LSTM via auto: speed vs torch.nn.LSTM", t["torch.nn.LSTM"] / t["rnnkit LSTM auto"], ">=", 0.95),
        ("plain GRU via auto: speed vs torch.nn.GRU", t["torch.nn.GRU"] / t["rnnkit GRU auto"], ">=", 0.95),
        ("fused forced on plain LSTM: speed vs torch.nn.LSTM", t["torch.nn.LSTM"] / t["rnnkit LSTM fused"], ">=",
         0.8),
        ("LayerNorm-LSTM: time vs torch.nn.LSTM", t["LayerNorm-LSTM fused"] / t["torch.nn.LSTM"], "<=", 1.25),
        ("GRU reset=before: time vs torch.nn.GRU", t["GRU reset=before fused"] / t["torch.nn.GRU"], "<=", 1.25),
        ("LSTM recurrent dropout: time vs torch.nn.LSTM", t["LSTM recurrent dropout fused"] / t["torch.nn.LSTM"], "<=",
         1.25),
        ("LSTM zoneout: time vs torch.nn.LSTM", t["LSTM zoneout fused"] / t["torch.nn.LSTM"], "<=", 1.25),
        ("LayerNorm-LSTM: speed vs its step loop", t["LayerNorm-LSTM step loop"] / t["LayerNorm-LSTM fused"], ">=",
         1.5),
        ("GRU reset=before: speed vs its step loop", t["GRU reset=before step loop"] / t["GRU reset=before fused"],
         ">=", 1.5),
        ("LSTM recurrent dropout: speed vs its step loop",
         t["LSTM recurrent dropout step loop"] / t["LSTM recurrent dropout fused"], ">=", 1.5),
        ("LSTM zoneout: speed vs its step loop", t["LSTM zoneout step loop"] / t["LSTM zoneout fused"], ">=", 1.5),
        (f"generation batch 1 ({g1}): tokens/s vs torch.nn.LSTM per token",
         gen[f"rnnkit.generate {g1} B=1"] / gen[f"torch.nn.LSTM per token {g1} B=1"], ">=",
         10.0 if device.type == "cuda" else 5.0),
        (f"generation batch 1 ({g2}): time per token vs the matrix-vector floor",
         gen[f"matrix-vector floor {g2} B=1"] / gen[f"rnnkit.generate {g2} B=1"], "<=", 1.5),
        (f"generation ({g2}): tokens/s of 16 samples in one batch vs one",
         gen[f"rnnkit.generate {g2} B=16"] / gen[f"rnnkit.generate {g2} B=1"], ">=", 3.0),
        ("training memory at T=1000: fused LSTM vs torch.nn.LSTM", mem["rnnkit LSTM fused"] / mem["torch.nn.LSTM"],
         "<=", 1.2),
    ]  # fmt: skip
    if device.type == "cuda":  # the GPU targets replace the CPU ones for the custom cells
        rows += [
            (f"{name}: time vs cuDNN's plain cell", t[f"{name} fused"] / t["torch.nn.GRU" if "GRU" in name else
                                                                            "torch.nn.LSTM"], "<=", 1.5)
            for name in ("LayerNorm-LSTM", "GRU reset=before", "LSTM recurrent dropout", "LSTM zoneout")
        ] + [
            (f"{name}: speed vs its step loop (GPU)", t[f"{name} step loop"] / t[f"{name} fused"], ">=", 3.0)
            for name in ("LayerNorm-LSTM", "GRU reset=before", "LSTM recurrent dropout", "LSTM zoneout")
        ]  # fmt: skip
    out = []
    for name, value, comparison, target in rows:
        met = value >= target if comparison == ">=" else value <= target
        out.append({"target": name, "value": round(value, 3), "comparison": comparison, "goal": target, "met": met})
    return out


def markdown(result: dict) -> str:
    m = result["machine"]
    s = result["sizes"]
    lines = [
        f"# Speed targets: {result['name']}",
        "",
        f"- CPU: {m['cpu']}, {m['cpu_count']} cores, {m['torch_threads']} torch threads",
        f"- GPU: {m['gpu'] or 'none'}; device: {m['device']}",
        f"- torch {m['torch']}, rnnkit {m['rnnkit']}, Python {m['python']}, {m['platform']}",
        f"- training: T={s['T']}, B={s['B']}, I={s['I']}, H={s['H']}; memory at T={s.get('T_memory', 1000)}; "
        f"median of {result['repeats']} interleaved rounds",
        "",
        "| target | measured | goal | met |",
        "|---|---:|---:|:---:|",
    ]
    for t in result["targets"]:
        lines.append(f"| {t['target']} | {t['value']:.2f} | {t['comparison']} {t['goal']} | "
                     f"{'yes' if t['met'] else '**no**'} |")  # fmt: skip
    lines += ["", "## Forward+backward (ms)", "", "| implementation | ms |", "|---|---:|"]
    lines += [f"| {k} | {v * 1e3:.1f} |" for k, v in result["training_seconds"].items()]
    lines += ["", "## Memory kept for the backward (MiB)", "", "| implementation | MiB |", "|---|---:|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in result["memory_mib"].items()]
    lines += ["", "## Generation (tokens/s)", "", "| implementation | tokens/s |", "|---|---:|"]
    lines += [f"| {k} | {v:,.0f} |" for k, v in result["generation_tokens_per_s"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--tokens", type=int, default=200, help="tokens per generation run")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--machine", help="name in the result files (default: from the CPU/GPU model)")
    parser.add_argument("--out-dir", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and one round: checks the script runs")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = dict(SMOKE if args.smoke else SIZES)
    sizes["generation"] = [(16, 1), (24, 2)] if args.smoke else [(256, 1), (512, 2)]
    sizes["T_memory"] = 20 if args.smoke else 1000
    repeats, tokens = (1, 5) if args.smoke else (args.repeats, args.tokens)
    info = machine_info(device)
    name = args.machine or re.sub(r"[^A-Za-z0-9]+", "-", info["gpu"] or f"{info['cpu']}-{info['cpu_count']}cores")
    name = name.strip("-").lower()

    started = time.perf_counter()
    print(f"speed targets on {name} ({device})", file=sys.stderr)
    train = training(sizes, repeats, device)
    mem = memory(sizes, device)
    gen = generation(sizes, tokens, repeats, device)
    result = {
        "name": name, "machine": info, "sizes": sizes, "repeats": repeats, "smoke": args.smoke,
        "rnnkit": rnnkit.__version__, "targets": targets(train, mem, gen, sizes, device),
        "training_seconds": train, "memory_mib": mem, "generation_tokens_per_s": gen,
        "seconds": time.perf_counter() - started,
    }  # fmt: skip
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"speed-{name}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (out_dir / f"speed-{name}.md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
    print(f"wrote {out_dir / f'speed-{name}.json'} and .md in {result['seconds']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
