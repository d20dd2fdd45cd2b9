"""Gradient flow across time: watch BPTT's gradients vanish or explode, and plot training curves.

Backpropagating a loss at the last step T to the state h_t multiplies δ = T - t Jacobians,

    dL/dh_t = (dh_{t+1}/dh_t)^T ... (dh_T/dh_{T-1})^T dL/dh_T,   dh_{k+1}/dh_k = diag(1 - h_{k+1}^2) V   (tanh RNN)

so ||dL/dh_t|| shrinks or grows roughly geometrically in δ, at a rate set by the scale of V and the
saturation of the nonlinearity, unless gates keep it alive (the LSTM's cell path, the GRU's update gate).
:func:`gradient_flow` measures, for every step, ``||dL/dh_t||`` and the spectral norm of the Jacobian
product ``dh_T/dh_t``, and fits the geometric rate per step.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rnnkit.cells import GRUCell, LSTMCell, RecurrentCell, RNNCell, as_tuple

CELL_CHOICES = ("rnn", "lstm", "gru")


@dataclass
class GradientFlow:
    """Measurements for one model. Index 0 is the last step (δ = 0), index T-1 the first."""

    grad_norms: list[float]
    jacobian_norms: list[float]
    decay_per_step: float

    def to_json(self) -> dict:
        return {"grad_norms": self.grad_norms, "decay_per_step": self.decay_per_step,
                "jacobian_norms": self.jacobian_norms}  # fmt: skip


def make_cell(
    kind: str, input_size: int, hidden_size: int, init_scale: float | None = None, nonlinearity: str = "tanh"
) -> RecurrentCell:
    """A fresh cell; with ``init_scale`` s, every recurrent gate block is s times a random orthogonal matrix,
    so s is its spectral norm (the scale of V in the course notes)."""
    if kind not in CELL_CHOICES:
        raise ValueError(f"cell must be one of {', '.join(CELL_CHOICES)}, got {kind!r}")
    if kind == "lstm":
        cell: RecurrentCell = LSTMCell(input_size, hidden_size)
    elif kind == "gru":
        cell = GRUCell(input_size, hidden_size)
    else:
        cell = RNNCell(input_size, hidden_size, nonlinearity=nonlinearity)
    if init_scale is not None:
        scale_recurrent_weights(cell, init_scale)
    return cell


def scale_recurrent_weights(cell: RecurrentCell, scale: float) -> None:
    """Set every recurrent gate block of ``cell`` to ``scale`` times a random orthogonal matrix."""
    if not scale > 0:
        raise ValueError(f"init scale must be > 0, got {scale}")
    with torch.no_grad():
        for block in cell.weight_hh.split(cell.hidden_size):
            nn.init.orthogonal_(block)
            block.mul_(scale)


def run_states(cells: Sequence[RecurrentCell], x: Tensor) -> list[Tensor]:
    """Run a stack of cells over x (T, B, I) step by step; return the top layer's h_t for every t,
    each a separate tensor that keeps its gradient."""
    states = [cell.init_state(x.shape[1], dtype=x.dtype) for cell in cells]
    hs = []
    for x_t in x:
        inp = x_t
        for i, cell in enumerate(cells):
            inp, states[i] = cell.advance(inp, states[i])
        h = as_tuple(states[-1])[0]
        h.retain_grad()
        hs.append(h)
    return hs


def gradient_norms(cells: Sequence[RecurrentCell], x: Tensor, loss_fn) -> list[float]:
    """Mean over the batch of ||dL/dh_t||, ordered from the last step back to the first."""
    hs = run_states(cells, x)
    loss_fn(hs[-1]).backward()
    norms = torch.stack([h.grad.norm(dim=-1).mean() for h in hs])  # (T,)
    return norms.flip(0).tolist()


def jacobian_norms(cells: Sequence[RecurrentCell], x: Tensor) -> list[float]:
    """Spectral norm of dh_T/dh_t for every t, for the first sequence of x, ordered from t = T back.

    One backward pass gives all the Jacobians: the sequence is copied into a batch of H rows and row
    i backpropagates the unit vector e_i from h_T, so row i of dL/dh_t is row i of dh_T/dh_t.
    """
    H = cells[-1].output_size
    copies = x[:, :1].expand(-1, H, -1).contiguous()  # (T, H, I)
    hs = run_states(cells, copies)
    hs[-1].backward(torch.eye(H, dtype=x.dtype))
    jac = torch.stack([h.grad for h in hs])  # (T, H, H): jac[t] = dh_T/dh_t
    return torch.linalg.matrix_norm(jac, ord=2).flip(0).tolist()


def fit_decay(norms: Sequence[float]) -> float:
    """Geometric rate r of ``norms[δ] ≈ a r^δ``: exp of the least-squares slope of log norm on δ.

    Values that are zero or not finite (fully vanished or overflowed) are left out."""
    points = [(d, math.log(v)) for d, v in enumerate(norms) if v > 0 and math.isfinite(v)]
    if len(points) < 2:
        return float("nan")
    n = len(points)
    mean_d = sum(d for d, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((d - mean_d) ** 2 for d, _ in points)
    slope = sum((d - mean_d) * (y - mean_y) for d, y in points) / var
    return math.exp(slope)


def gradient_flow(cells: Sequence[RecurrentCell], x: Tensor, loss_fn=None, readout_seed: int = 0) -> GradientFlow:
    """Measure gradient flow through ``cells`` over inputs x (T, B, I).

    Without ``loss_fn`` the loss is a fixed random unit readout of the last state, ``L = u · h_T``, so
    ||dL/dh_T|| = 1 and the norms read directly as the gain over δ steps.
    """
    cells = list(cells)
    was = [c.training for c in cells]
    for c in cells:
        c.eval()
    try:
        if loss_fn is None:
            H = cells[-1].output_size
            u = torch.randn(H, generator=torch.Generator().manual_seed(readout_seed), dtype=x.dtype)
            u = u / u.norm()

            def loss_fn(h_T):
                return (h_T @ u).sum()

        grads = gradient_norms(cells, x, loss_fn)
        jacs = jacobian_norms(cells, x)
    finally:
        for c, mode in zip(cells, was):
            c.train(mode)
    return GradientFlow(grads, jacs, fit_decay(grads))


# -- plots ----------------------------------------------------------------------------------------


def plot_gradient_flow(results: dict[str, GradientFlow], path: str | os.PathLike, title: str = "") -> None:
    """Gradient norms against δ, log scale, one line per model, the fitted rate in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, flow in results.items():
        deltas = range(len(flow.grad_norms))
        values = [v if v > 0 and math.isfinite(v) else float("nan") for v in flow.grad_norms]
        ax.semilogy(deltas, values, label=f"{name}: x{flow.decay_per_step:.3g} per step")
        jac = [v if v > 0 and math.isfinite(v) else float("nan") for v in flow.jacobian_norms]
        ax.semilogy(deltas, jac, linestyle=":", color=ax.lines[-1].get_color(), alpha=0.7)
    ax.set_xlabel("δ = steps back from the last step")
    ax.set_ylabel(r"$\|\partial L/\partial h_{T-\delta}\|$   (dotted: $\|\partial h_T/\partial h_{T-\delta}\|_2$)")
    ax.set_title(title or "Gradient flow across time")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_runs(runs: dict[str, list[dict]], path: str | os.PathLike) -> None:
    """Training and validation loss, and the gradient norm before clipping, of one or more runs.

    ``runs`` maps a label to the records of its metrics.jsonl."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (loss_ax, grad_ax) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    for label, records in runs.items():
        train = [r for r in records if r.get("split") == "train" and r.get("loss") is not None]
        valid = [r for r in records if r.get("split") == "valid" and r.get("loss") is not None]
        (line,) = loss_ax.plot([r["step"] for r in train], [r["loss"] for r in train], label=f"{label} train")
        if valid:
            loss_ax.plot([r["step"] for r in valid], [r["loss"] for r in valid], "o--", color=line.get_color(),
                         label=f"{label} valid")  # fmt: skip
        grads = [r for r in train if r.get("grad_norm") is not None]
        if grads:
            grad_ax.semilogy([r["step"] for r in grads], [r["grad_norm"] for r in grads], color=line.get_color(),
                             label=label)  # fmt: skip
            clipped = [r for r in grads if r.get("clipped")]
            if clipped:
                grad_ax.semilogy([r["step"] for r in clipped], [r["grad_norm"] for r in clipped], "x",
                                 color=line.get_color())  # fmt: skip
    loss_ax.set_ylabel("loss (nats per prediction)")
    loss_ax.grid(True, alpha=0.3)
    loss_ax.legend(fontsize="small")
    grad_ax.set_ylabel("gradient norm before clipping\n(x: windows with clipped steps)")
    grad_ax.set_xlabel("step")
    grad_ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
