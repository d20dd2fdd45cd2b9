"""Gradient flow across time for fresh cells, as the course notes derive it: one plot per scale of the
recurrent weights, and a table of the fitted rates per step.

    python benchmarks/gradflow.py [--length 100] [--scales 0.5 1.0 1.5]
"""

from __future__ import annotations

import argparse

from common import RESULTS, machine, rnnkit, write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--length", type=int, default=100)
    parser.add_argument("--scales", type=float, nargs="+", default=[0.5, 1.0, 1.5])
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows = {}
    for scale in args.scales:
        png = RESULTS / f"gradflow-scale{scale:g}.png"
        result = rnnkit("gradflow", "--length", str(args.length), "--init-scale", str(scale), "--plot", str(png))
        rows[f"{scale:g}"] = {cell: m["decay_per_step"] for cell, m in result["metrics"].items()}
    relu = rnnkit("gradflow", "--cell", "rnn", "--nonlinearity", "relu", "--length", str(args.length),
                  "--init-scale", "2.0")["metrics"]["decay_per_step"]  # fmt: skip
    cells = list(next(iter(rows.values())))
    md = (f"# Gradient flow over {args.length} steps (fresh cells, random inputs)\n\n"
          "Fitted rate r of ||dL/dh_{T-d}|| ~ r^d per step, for recurrent weights of spectral norm s "
          "(s x an orthogonal matrix per gate). Plots: gradflow-scale*.png\n\n"
          f"| s | {' | '.join(cells)} |\n|---|{'---|' * len(cells)}\n"
          + "\n".join(f"| {s} | " + " | ".join(f"{r[c]:.3f}" for c in cells) + " |" for s, r in rows.items())
          + f"\n\nrelu RNN at s = 2: r = {relu:.3f} per step (exploding).")  # fmt: skip
    write_results("gradflow", {"length": args.length, "rates": rows, "relu_rnn_scale2": relu,
                               "machine": machine("cpu")}, md)  # fmt: skip
    print(md)


if __name__ == "__main__":
    main()
