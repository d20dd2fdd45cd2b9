"""Helpers shared by the classification, tagging and corpus benchmarks: run the CLI, describe the machine,
write results. Scripts run from the repository root with ``PYTHONPATH=src``."""

from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from rnnkit.cli import main

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"


def machine() -> dict:
    """What the figures were measured on."""
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        if names:
            info["cpu"] = names[0]
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def rnnkit(*argv: str) -> dict:
    """Run ``rnnkit ARGV --json`` in this process and return its JSON; progress goes to stderr."""
    out = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out):
        code = main([*argv, "--json"])
    if code != 0:
        raise SystemExit(f"rnnkit {' '.join(argv)} failed with status {code}")
    result = json.loads(out.getvalue().strip().splitlines()[-1])
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    return result


def write_results(results_dir: Path, name: str, payload: dict, markdown: str) -> None:
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    (results_dir / f"{name}.md").write_text(markdown, encoding="utf-8")
    print(f"wrote {results_dir / name}.json and .md", file=sys.stderr)


def machine_markdown(info: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in info.items())


def head_lines(source: Path, target: Path, lines: int) -> Path:
    """The first ``lines`` lines of ``source`` (for smoke runs)."""
    with open(source, encoding="utf-8") as f:
        text = "".join(line for _, line in zip(range(lines), f))
    target.write_text(text, encoding="utf-8")
    return target
