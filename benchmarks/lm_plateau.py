"""The unigram plateau of the default character LM (issue 17, item 2): its cause, shown step by step.

A language model that predicts every character by its frequency alone scores the unigram entropy
H1 = -sum_c p(c) ln p(c) nats per character (3.31 on tiny Shakespeare). The default char LM used to sit
there for its first steps (the issue saw 120+ on another novel). The cause was its embedding, drawn from
U(-0.1, 0.1) (RMS 0.058), while torch's U(-1/sqrt(H), 1/sqrt(H)) input weights expect inputs of unit scale:
the first layer's input term ``W_ih e_t`` starts ~16x smaller than with N(0, 1), and the gradient of
``W_ih`` (``sum_t delta_t e_t^T``) ~15x. Within a few steps Adam grows the recurrent weights, and the input term's
share of the first layer's pre-activation falls to a few percent: the network runs on its recurrence and
biases, which can learn the characters' frequencies but not which character came last. Adam moves each
embedding entry by about lr a step at most, and not steadily one way: the embedding's RMS is still 0.16-0.21
after 300 steps, and the input term recovers only as ``W_ih`` grows. rnnkit now draws the embedding from
N(0, 1), torch.nn.Embedding's own default. (Figures: benchmarks/results/lm_plateau-cpu2.md.)

From one seed and one sequence of batches (tiny Shakespeare, the shipped corpus, cut into streams as
``rnnkit train lm`` cuts it) this trains, for ``--steps`` steps each:

- before: the current default char model (tasks.lm.PRESETS["char"][0]) with its embedding re-drawn from
  U(-0.1, 0.1); every other weight is the one "after" starts from;
- after: the current default, N(0, 1) embedding;
- before, old preset: the defaults before issue 17 (``git show 588a3a4:src/rnnkit/tasks/lm.py``: LSTM 256x2,
  embedding 128, dropout 0.1, batch 64, lr 8e-3 cosine) with U(-0.1, 0.1), as that code drew it;
- old preset, N(0, 1): the same with only the embedding's init changed (the cause isolated in the LSTM too);
- torch.nn script: the issue's plain PyTorch comparison, torch.nn.Embedding (N(0, 1)) 256 + torch.nn.LSTM
  2x256 (dropout 0.2) + Linear, AdamW 2e-3 cosine to 0.1x, clip 5, on the same batches as "after".

The rnnkit curves run through the command line's own code path (its parser, the preset's values,
``LanguageModelTask.from_args``, ``rnnkit.train.Trainer`` with ``--max-steps``: the optimizer is the
Trainer's default, Adam; the cosine runs over the steps shown), so each is what
``rnnkit train lm --max-steps STEPS --seed SEED`` with those flags logs step by step. For every curve it
records the loss of each step, the gradient norms (before clipping) of the embedding and of the first
layer's input and recurrent weights, and on a fixed batch the embedding's RMS and the RMS of the first
layer's input term W_ih e_t, recurrent term W_hh h_{t-1} and biases.

    flock /tmp/cpu.lock python benchmarks/lm_plateau.py            # 300 steps; writes lm_plateau-cpu2.{md,json,png}
    python benchmarks/lm_plateau.py --quick                        # 20 steps of tiny models; writes nothing

Steps are counted, not seconds: the curves do not depend on the machine's speed or load.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from common import RESULTS, machine, machine_tag, write_results
from rnnkit.bptt import detach_state
from rnnkit.cli import build_parser, train_config_from_args
from rnnkit.tasks import presets
from rnnkit.tasks.lm import PRESETS, LanguageModelTask, score_ids
from rnnkit.train import Trainer

NAME = "lm_plateau"
BELOW = 0.3  # nats under the unigram entropy that count as having left the plateau
# The char defaults before issue 17 (588a3a4: the flags' defaults and train_defaults()).
OLD_PRESET = {"cell": "lstm", "hidden_size": 256, "num_layers": 2, "embedding_size": 128, "dropout": 0.1,
              "tie_weights": False, "seq_len": 100, "batch_size": 64, "lr": 8e-3, "schedule": "cosine"}  # fmt: skip
# The plain PyTorch script (embedding 256, dropout 0.2, AdamW 2e-3, cosine to 0.1x).
TORCH_SCRIPT = {"embedding_size": 256, "hidden_size": 256, "num_layers": 2, "dropout": 0.2, "lr": 2e-3,
                "final_lr_fraction": 0.1, "clip_norm": 5.0}  # fmt: skip
# --quick and the test: models small enough for a few seconds of CPU (one layer, no dropout).
TINY = {"cell": "gru", "hidden_size": 64, "num_layers": 1, "embedding_size": 32, "dropout": 0.0,
        "tie_weights": False, "seq_len": 32, "batch_size": 16, "lr": 8e-3, "schedule": "cosine"}  # fmt: skip
TINY_TORCH = {**TORCH_SCRIPT, "embedding_size": 32, "hidden_size": 64, "num_layers": 1}


# -- what the curves are measured against ----------------------------------------------------------


def unigram_entropy(ids: np.ndarray, vocab_size: int) -> float:
    """H1 = -sum_c p(c) ln p(c) (nats), p the characters' frequencies in ``ids``: the loss of a model that
    has learnt the frequencies and nothing else, where a fresh model's loss falls first."""
    counts = np.bincount(ids.astype(np.int64), minlength=vocab_size).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def first_below(losses: list[float], level: float) -> int | None:
    """The first step (1-based) whose training loss is below ``level``; None if none is."""
    return next((i + 1 for i, loss in enumerate(losses) if loss < level), None)


def logged_loss(losses: list[float], step: int, width: int = 10) -> float | None:
    """The mean of steps step-width+1 .. step: the training loss metrics.jsonl logs at ``step``."""
    if step > len(losses):
        return None
    window = losses[max(0, step - width) : step]
    return float(sum(window) / len(window))


def rms(t: torch.Tensor) -> float:
    return float(t.detach().double().pow(2).mean().sqrt())


# -- the first layer's signals ---------------------------------------------------------------------

_TORCH_CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


@torch.no_grad()
def layer0_states(rnn: nn.Module, cell: str, x: torch.Tensor) -> torch.Tensor:
    """The first layer's hidden states (B, T, H) on inputs ``x`` (B, T, I) from a zero state, computed by a
    one-layer torch.nn module holding ``rnn``'s layer-0 weights (rnnkit's cells compute torch's equations,
    the GRU in its reset-after form; ``rnn`` may be rnnkit's or torch's)."""
    w_ih, w_hh = rnn.weight_ih_l0, rnn.weight_hh_l0
    first = _TORCH_CELLS[cell](w_ih.shape[1], w_hh.shape[1], 1, batch_first=True).to(w_ih.device)
    for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
        getattr(first, name).copy_(getattr(rnn, name))
    return first(x)[0]


@torch.no_grad()
def layer0_signals(embedding: nn.Embedding, rnn: nn.Module, cell: str, tokens: torch.Tensor) -> dict:
    """RMS of the first layer's pre-activation terms on ``tokens`` (B, T), from a zero state, each over
    (B, T, kH): input ``W_ih e_t``; recurrent ``W_hh h_{t-1}``; bias ``b_ih + b_hh`` (over kH);
    ``input_share`` = input / (input + recurrent + bias)."""
    e = embedding(tokens)  # (B, T, E)
    h = layer0_states(rnn, cell, e)  # (B, T, H)
    h_prev = torch.cat([torch.zeros_like(h[:, :1]), h[:, :-1]], dim=1)  # h_{t-1}, h_{-1} = 0
    terms = {"input": rms(e @ rnn.weight_ih_l0.T), "recurrent": rms(h_prev @ rnn.weight_hh_l0.T),
             "bias": rms(rnn.bias_ih_l0 + rnn.bias_hh_l0)}  # fmt: skip
    terms["input_share"] = terms["input"] / (terms["input"] + terms["recurrent"] + terms["bias"])
    return terms


class Recorder:
    """Step by step: the loss; the gradient norms of the embedding and of the first layer's weights as
    backward computes them (tensor hooks: before clipping); and, on a fixed batch, the embedding's RMS and
    :func:`layer0_signals` of the weights that computed the step's loss (entry i: after i updates)."""

    WATCHED = ("embedding", "weight_ih_l0", "weight_hh_l0")

    def __init__(self, embedding: nn.Embedding, rnn: nn.Module, cell: str, probe: torch.Tensor):
        self.embedding, self.rnn, self.cell, self.probe = embedding, rnn, cell, probe
        self.losses: list[float] = []
        self.grad_norm: dict[str, list[float]] = {name: [] for name in self.WATCHED}
        self.signals: list[dict] = []
        params = {"embedding": embedding.weight, "weight_ih_l0": rnn.weight_ih_l0, "weight_hh_l0": rnn.weight_hh_l0}
        for name, p in params.items():
            p.register_hook(lambda g, name=name: self.grad_norm[name].append(float(g.norm())))
        self._probe()

    def _probe(self) -> None:
        training = self.rnn.training
        self.rnn.eval()
        signals = layer0_signals(self.embedding, self.rnn, self.cell, self.probe)
        self.signals.append({"embedding_rms": rms(self.embedding.weight), **signals})
        self.rnn.train(training)

    def after_step(self, loss: float) -> None:
        self.losses.append(loss)
        self._probe()

    def result(self) -> dict:
        return {"loss": self.losses, "grad_norm": self.grad_norm, "signals": self.signals}


# -- rnnkit, through the command line's own code path ---------------------------------------------


def build_rnnkit(values: dict, steps: int, seed: int, data: str | None = None, device: str = "cpu"):
    """(task, model, TrainConfig, run config, vocab) as ``rnnkit train lm --max-steps STEPS --seed SEED``
    with ``values`` as its flags builds them (cli.cmd_train's steps, without the run directory)."""
    argv = ["train", "lm", "--max-steps", str(steps), "--seed", str(seed), "--log-every", "10"]
    args = build_parser().parse_args(argv + ([] if data is None else ["--data", data]))
    for name, value in values.items():
        setattr(args, name, value)
    args.allow_divergence = True  # the curve runs its steps whatever the validation loss does
    presets.apply(LanguageModelTask, args)  # fills only what ``values`` leaves unset
    train_config = train_config_from_args(args, LanguageModelTask.train_defaults())
    torch.manual_seed(seed)
    task, model, run_config, vocab = LanguageModelTask.from_args(args, torch.device(device))
    return task, model, train_config, run_config, vocab


def uniform_embedding_(embedding: nn.Embedding, r: float, seed: int) -> None:
    """Re-draw ``embedding`` from U(-r, r) with a generator of its own, so every other draw of the run
    (the other weights, dropout masks) stays what it is with the N(0, 1) embedding."""
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        embedding.weight.copy_(torch.rand(embedding.weight.shape, generator=generator) * (2 * r) - r)


def train_rnnkit(values: dict, init: str, steps: int, seed: int, *, data: str | None = None,
                 device: str = "cpu") -> dict:  # fmt: skip
    """Train the LM of ``values`` for ``steps`` steps with the embedding ``init`` ("normal": N(0, 1), the
    model's own; "uniform": U(-0.1, 0.1)); the :class:`Recorder`'s curves, the validation loss at the end,
    and the model's initial weights' checksum (equal across inits for all but the embedding)."""
    task, model, train_config, run_config, vocab = build_rnnkit(values, steps, seed, data, device)
    if init == "uniform":
        uniform_embedding_(model.embedding, 0.1, seed)
    elif init != "normal":
        raise ValueError(f"init must be 'normal' or 'uniform', got {init!r}")
    others = sum(float(p.detach().double().sum()) for n, p in model.named_parameters() if n != "embedding.weight")
    probe = task.train_streams.window(0)[0]
    recorder = Recorder(model.embedding, model.rnn, model.config.rnn.cell, probe)
    valid: list[dict] = []

    def callback(event: str, record: dict) -> None:
        if event == "step":
            recorder.after_step(record["loss"])
        elif event == "valid":
            valid.append({"step": record["step"], "loss": record["loss"]})

    with tempfile.TemporaryDirectory(prefix="lm_plateau-") as root:
        trainer = Trainer(model, task, train_config, Path(root) / "run", run_config=run_config, vocab=vocab,
                          device=device, callback=callback)  # fmt: skip
        try:
            trainer.fit()
        finally:
            trainer.close()
    config = {k: getattr(train_config, k) for k in ("optimizer", "lr", "schedule", "clip_norm", "warmup_steps")}
    return {**recorder.result(), "valid": valid, "other_weights_sum": others, "train": config,
            "model": {**values, "embedding_init": "U(-0.1, 0.1)" if init == "uniform" else "N(0, 1)"},
            "vocab_size": model.config.vocab_size, "train_tokens": int(len(task.corpus.train))}  # fmt: skip


# -- the plain PyTorch script ----------------------------------------------------------------------


class TorchLM(nn.Module):
    """torch.nn.Embedding (N(0, 1), its default) -> dropout -> torch.nn.LSTM -> dropout -> Linear."""

    def __init__(self, vocab_size: int, embedding_size: int, hidden_size: int, num_layers: int, dropout: float):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_size)
        self.rnn = nn.LSTM(embedding_size, hidden_size, num_layers, batch_first=True,
                           dropout=dropout if num_layers > 1 else 0.0)  # fmt: skip
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, tokens: torch.Tensor, state=None):
        out, state = self.rnn(self.drop(self.embedding(tokens)), state)  # (B, T, H)
        return self.head(self.drop(out)), state  # (B, T, V)


def train_torch(task: LanguageModelTask, spec: dict, steps: int, seed: int, *, device: str = "cpu") -> dict:
    """The plain script on ``task``'s windows, in the Trainer's order (window k of the epoch, the state
    carried and detached, reset at each epoch's start): AdamW, lr cosine from ``lr`` to
    ``final_lr_fraction * lr`` over ``steps``, clipped global norm."""
    torch.manual_seed(seed)
    vocab_size = len(task.tokenizer)
    model = TorchLM(vocab_size, spec["embedding_size"], spec["hidden_size"], spec["num_layers"], spec["dropout"])
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec["lr"])
    streams = task.train_streams
    recorder = Recorder(model.embedding, model.rnn, "lstm", streams.window(0)[0].to(device))
    state = None
    for step in range(steps):
        k = step % len(streams)
        if k == 0:
            state = None
        fraction = spec["final_lr_fraction"]
        for group in optimizer.param_groups:
            group["lr"] = spec["lr"] * (fraction + (1 - fraction) * 0.5 * (1 + math.cos(math.pi * step / steps)))
        x, y = (t.to(device) for t in streams.window(k))
        logits, state = model(x, state)  # (B, T, V)
        state = detach_state(state)
        loss = F.cross_entropy(logits.reshape(-1, vocab_size), y.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), spec["clip_norm"])
        optimizer.step()
        recorder.after_step(loss.item())
    nats, _ = score_ids(model, task.valid_ids, task.data.batch_size, task.data.seq_len, device)
    return {**recorder.result(), "valid": [{"step": steps, "loss": nats}],
            "train": {"optimizer": "adamw", "lr": spec["lr"], "schedule": f"cosine to {spec['final_lr_fraction']}x",
                      "clip_norm": spec["clip_norm"], "warmup_steps": 0},
            "model": {"cell": "lstm (torch.nn)", **{k: spec[k] for k in ("hidden_size", "num_layers",
                      "embedding_size", "dropout")}, "seq_len": task.data.seq_len,
                      "batch_size": task.data.batch_size, "embedding_init": "N(0, 1)"},
            "vocab_size": vocab_size, "train_tokens": int(len(task.corpus.train))}  # fmt: skip


# -- the benchmark ---------------------------------------------------------------------------------


def describe(values: dict) -> str:
    """A model's preset values in a few words, for the curves' labels."""
    return (f"{values['cell'].upper()} {values['hidden_size']}x{values['num_layers']}, emb {values['embedding_size']}, "
            f"batch {values['batch_size']}")  # fmt: skip


def curves_to_run(quick: bool) -> list[tuple[str, str, dict, str]]:
    """(key, label, values, embedding init) of each rnnkit curve."""
    current = TINY if quick else PRESETS["char"][0].values
    old = {**TINY, "cell": "lstm", "batch_size": 32} if quick else OLD_PRESET
    return [
        ("before", f"before: default ({describe(current)}), U(-0.1, 0.1) embedding", current, "uniform"),
        ("after", f"after: default ({describe(current)}), N(0, 1) embedding", current, "normal"),
        ("before_old_preset", f"before, old preset ({describe(old)}), U(-0.1, 0.1)", old, "uniform"),
        ("old_preset_normal", f"old preset ({describe(old)}), N(0, 1)", old, "normal"),
    ]


def run(steps: int, seed: int, *, quick: bool = False, data: str | None = None, log=print) -> dict:
    """Every curve, the unigram entropy of the training text, and what the tables show."""
    curves: dict[str, dict] = {}
    labels: dict[str, str] = {}
    for key, label, values, init in curves_to_run(quick):
        log(f"{key}: {steps} steps ...")
        curves[key] = train_rnnkit(values, init, steps, seed, data=data)
        labels[key] = label
    task = build_rnnkit(curves_to_run(quick)[1][2], steps, seed, data)[0]  # the batches "after" trained on
    log(f"torch_script: {steps} steps ...")
    spec = TINY_TORCH if quick else TORCH_SCRIPT
    curves["torch_script"] = train_torch(task, spec, steps, seed)
    labels["torch_script"] = (f"torch.nn script: LSTM {spec['hidden_size']}x{spec['num_layers']}, "
                              f"emb {spec['embedding_size']}, AdamW {spec['lr']:g}")  # fmt: skip
    entropy = unigram_entropy(task.corpus.train, len(task.tokenizer))
    for key, curve in curves.items():
        curve["label"] = labels[key]
        curve["leaves_plateau_at"] = first_below(curve["loss"], entropy - BELOW)
        curve["logged_loss"] = {str(s): logged_loss(curve["loss"], s) for s in (100, 200, 300) if s <= steps}
    return {"steps": steps, "seed": seed, "quick": quick, "unigram_entropy": entropy, "below": BELOW,
            "uniform_loss": math.log(len(task.tokenizer)), "curves": _rounded(curves)}  # fmt: skip


def _rounded(value):
    """``value`` with every float cut to 6 significant digits (the JSON stays readable)."""
    if isinstance(value, float):
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def markdown(result: dict, png: str) -> str:
    entropy, below, steps = result["unigram_entropy"], result["below"], result["steps"]
    c = result["curves"]
    lines = [
        "# The unigram plateau of the default char LM: before and after the N(0, 1) embedding (issue 17)",
        "",
        f"Tiny Shakespeare (the shipped corpus, nanoGPT's split), the first {steps} training steps, seed "
        f"{result['seed']}, the same batches for every curve of one batch size. Unigram entropy of the training "
        f"text H1 = {entropy:.3f} nats/char (uniform guess ln V = {result['uniform_loss']:.3f}). "
        f"'Leaves the plateau': the first step whose training loss is under H1 - {below} = {entropy - below:.3f}; "
        "'last step not below': the last step whose loss is not under it. "
        "Losses at steps 100/200/300 are the mean of the 10 steps ending there (what metrics.jsonl logs); "
        f"valid: nats/char of the validation text after the last step. Plot: {png}",
        "",
        "Command: `flock /tmp/cpu.lock python benchmarks/lm_plateau.py`",
        "",
        *_summary(c, steps),
        "| curve | model | batch | optimizer | leaves the plateau at step | last step not below | loss @100 | @200 | "
        "@300 | valid |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for curve in c.values():
        m, t = curve["model"], curve["train"]
        model = (f"{m['cell']} {m['hidden_size']}x{m['num_layers']}, emb {m['embedding_size']} "
                 f"{m['embedding_init']}, dropout {m['dropout']}")  # fmt: skip
        optimizer = f"{t['optimizer']} {t['lr']:g} {t['schedule']}, clip {t['clip_norm']:g}"
        at = curve["leaves_plateau_at"]
        at = at if at is not None else f"not within {steps}"
        last = max((i + 1 for i, loss in enumerate(curve["loss"]) if loss >= entropy - below), default="-")
        cells = [f"{curve['logged_loss'].get(str(s)):.3f}" if curve["logged_loss"].get(str(s)) is not None else "-"
                 for s in (100, 200, 300)]  # fmt: skip
        valid = f"{curve['valid'][-1]['loss']:.3f}" if curve["valid"] else "-"
        lines.append(f"| {curve['label']} | {model} | {m['batch_size']}x{m['seq_len']} | {optimizer} | "
                     f"{at} | {last} | {' | '.join(cells)} | {valid} |")  # fmt: skip
    for pair, title in ((("before", "after"), "the default model"),
                        (("before_old_preset", "old_preset_normal"), "the old preset (LSTM)")):  # fmt: skip
        if not all(k in c for k in pair):
            continue
        u, n = (c[k] for k in pair)
        same = "equal" if u["other_weights_sum"] == n["other_weights_sum"] else "NOT equal"
        lines += [
            "",
            f"## Step by step, {title}: only the embedding's init differs",
            "",
            f"Every other initial weight is the same (checksums {same}), and so are the batches and dropout masks. "
            "Gradient norms are taken before clipping; 'input share' is the RMS of the first layer's input term "
            "W_ih e_t over the sum of the RMS of it, of the recurrent term W_hh h_{t-1} and of the biases, on a "
            "fixed batch, of the weights that computed the step's loss (step 1: the initial weights).",
            "",
            "| step | loss U / N | emb RMS U / N | grad emb U / N | grad W_ih_l0 U / N | grad W_hh_l0 U / N | "
            "input term RMS U / N | recurrent term RMS U / N | input share U / N |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for step in [s for s in (1, 2, 5, 10, 20, 50, 100, 150, 200, 300) if s <= steps]:
            i = step - 1  # entry i: the loss and gradients of step i + 1, the signals of the weights it used
            su, sn = u["signals"][i], n["signals"][i]
            row = [f"{u['loss'][i]:.3f} / {n['loss'][i]:.3f}", f"{su['embedding_rms']:.3f} / {sn['embedding_rms']:.3f}"]
            row += [f"{u['grad_norm'][name][i]:.3g} / {n['grad_norm'][name][i]:.3g}" for name in Recorder.WATCHED]
            row += [f"{su[k]:.3g} / {sn[k]:.3g}" for k in ("input", "recurrent", "input_share")]
            lines.append(f"| {step} | " + " | ".join(row) + " |")
    lines += ["", f"Machine: {', '.join(f'{k} {v}' for k, v in result['machine'].items())}"]
    return "\n".join(lines)


def _summary(c: dict, steps: int) -> list[str]:
    """One sentence per before/after pair, from the figures."""
    lines = []
    pairs = (("before", "after", "The default model"), ("before_old_preset", "old_preset_normal", "The old preset"))
    for u, n, what in pairs:
        at_u, at_n = c[u]["leaves_plateau_at"], c[n]["leaves_plateau_at"]
        gap = logged_loss(c[u]["loss"], steps) - logged_loss(c[n]["loss"], steps)
        lines.append(f"{what} leaves the plateau at step {at_n} with the N(0, 1) embedding and at step "
                     f"{at_u if at_u is not None else f'> {steps}'} with U(-0.1, 0.1); with N(0, 1) its loss is "
                     f"{gap:.3f} nats/char lower at step {steps}.")  # fmt: skip
    return [" ".join(lines), ""]


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    c, entropy = result["curves"], result["unigram_entropy"]
    fig, (ax, axg, axs) = plt.subplots(1, 3, figsize=(18, 5.5))
    styles = {"before": ("tab:red", "-"), "after": ("tab:blue", "-"), "before_old_preset": ("tab:red", ":"),
              "old_preset_normal": ("tab:blue", ":"), "torch_script": ("tab:green", "-")}  # fmt: skip
    for key, curve in c.items():
        color, style = styles[key]
        steps = np.arange(1, len(curve["loss"]) + 1)
        ax.plot(steps, curve["loss"], color=color, linestyle=style, linewidth=1.2, label=curve["label"])
    ax.axhline(entropy, color="black", linestyle="--", linewidth=1, label=f"unigram entropy {entropy:.2f}")
    ax.set(xlabel="training step", ylabel="training loss (nats/char)", title="first steps on tiny Shakespeare",
           ylim=(1.4, max(max(curve["loss"]) for curve in c.values()) + 0.1))  # fmt: skip
    ax.legend(fontsize=8)
    for key in ("before", "after"):
        color, _ = styles[key]
        steps = np.arange(1, len(c[key]["loss"]) + 1)
        init = c[key]["model"]["embedding_init"]
        axg.semilogy(steps, c[key]["grad_norm"]["embedding"], color=color, linestyle="-", label=f"embedding, {init}")
        axg.semilogy(steps, c[key]["grad_norm"]["weight_ih_l0"], color=color, linestyle=":",
                     label=f"W_ih layer 0, {init}")  # fmt: skip
        signals = c[key]["signals"][: len(steps)]
        axs.plot(steps, [s["input_share"] for s in signals], color=color, label=f"input share of layer 0, {init}")
        axs.plot(steps, [s["embedding_rms"] for s in signals], color=color, linestyle=":",
                 label=f"embedding RMS, {init}")  # fmt: skip
    axg.set(xlabel="training step", ylabel="gradient norm (before clipping)", title="default model: gradients")
    axg.legend(fontsize=8)
    axs.set(xlabel="training step", ylim=(0, 1.1), title="default model: input signal of the first layer")
    axs.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="20 steps of tiny models; writes nothing")
    args = parser.parse_args(argv)
    if args.steps < 1:
        print(f"lm_plateau: error: --steps must be >= 1, got {args.steps}", file=sys.stderr)
        return 2
    steps = 20 if args.quick else args.steps

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    result = run(steps, args.seed, quick=args.quick, log=log)
    result["machine"] = machine("cpu")
    png = f"{NAME}-{machine_tag(result['machine'])}.png"
    text = markdown(result, png)
    if args.quick:
        print(text)
        return 0
    write_results(NAME, result, text)
    plot(result, RESULTS / png)
    log(f"wrote {RESULTS / png}")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
