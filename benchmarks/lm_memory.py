"""Peak memory of training a language model on a 100 MB corpus (issue 3: "within 2 GB of RAM").

Builds a ~107 MB text by repeating ../shared/data/corpora, then runs ``rnnkit train lm`` at character and
word level for a few steps in a child process and reads its peak resident set size.

    python benchmarks/lm_memory.py [--copies 11]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from common import DATA, ROOT, machine, write_results


def peak_rss_mb(argv: list[str]) -> float:
    """Run ``python -m rnnkit ARGV`` in a child and return the child's peak RSS in MB."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-m", "rnnkit", *argv], check=True, env=env, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(before, after) / 1024  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=11)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lm-memory-"))
    corpus = work / "big.txt"
    with open(corpus, "wb") as out:
        for _ in range(args.copies):
            for part in sorted((DATA / "corpora").glob("*.txt")):
                out.write(part.read_bytes())
    size_mb = corpus.stat().st_size / 1e6
    rows = {}
    for level in ("char", "word"):  # word second: ru_maxrss of children is a running maximum
        argv = ["train", "lm", "--data", str(corpus), "--level", level, "--max-steps", "3", "--eval-tokens",
                "20000", "--out", str(work / level), "--quiet", "--json"]  # fmt: skip
        rows[level] = peak_rss_mb(argv)
        print(f"{level}: peak {rows[level]:.0f} MB for a {size_mb:.0f} MB corpus", flush=True)
    md = (f"# Training memory on a {size_mb:.0f} MB corpus\n\n| level | peak resident memory |\n|---|---|\n"
          + "\n".join(f"| {k} | {v:.0f} MB |" for k, v in rows.items())
          + "\n\nTarget: under 2 GB. (Word level's figure is the maximum over both runs.)")  # fmt: skip
    write_results("lm_memory", {"corpus_mb": size_mb, "peak_rss_mb": rows, "machine": machine("cpu")}, md)
    print(md)


if __name__ == "__main__":
    main()
