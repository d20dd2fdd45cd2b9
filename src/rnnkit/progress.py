"""What ``rnnkit train`` shows while it runs: a progress bar towards the run's end with its ETA, a line and a
text sample at each evaluation, and the trainer's notes. Command-line display only (it prints; the library
it displays never does)."""

from __future__ import annotations

import sys
import time

from rnnkit.train import Trainer

FINAL_PREVIEW, PREVIEW = 600, 200  # characters of the sample after training and at each evaluation
EXIT_SECONDS = 0.4  # what a command takes after its last word: freeing torch, the interpreter's exit


def describe_metrics(record: dict) -> str:
    """A record's metrics besides the loss, as ``name 0.1234, ...``."""
    parts = []
    skip = ("split", "step", "epoch", "loss", "best", "elapsed", "tokens", "eval_seconds")
    for key, value in record.items():
        if key in skip or not isinstance(value, float):
            continue
        parts.append(f"{key} {value:.4f}")
    return ", ".join(parts)


class ProgressDisplay:
    """A tqdm bar on stderr towards whichever limit (steps, epochs, time) ends the run first, with its ETA,
    loss and tokens/s; a text sample at each evaluation; the trainer's notes."""

    def __init__(self, trainer: Trainer, task, quiet: bool, notes: bool = True) -> None:
        self.trainer, self.task, self.quiet, self.notes, self.bar = trainer, task, quiet, notes, None
        self.valid, self.speed, self.preview_seconds = "", "", 0.0

    def reserve(self) -> float:
        """Seconds the command needs after training: the final sample (timed from the ones during it, else
        guessed), loading the best model for it, and the interpreter's own exit."""
        if not hasattr(self.task, "preview"):
            return EXIT_SECONDS
        sample = self.preview_seconds * FINAL_PREVIEW / PREVIEW if self.preview_seconds else 0.3
        return sample + EXIT_SECONDS

    def __call__(self, event: str, record: dict) -> None:
        if event == "note" and self.notes:
            self._write(f"note: {record['message']}")
        if self.quiet or event in ("note", "end"):
            return
        from tqdm.auto import tqdm

        t, c = self.trainer, self.trainer.config
        if self.bar is None:
            self.bar = tqdm(total=100, initial=100 * t.fraction_done(), file=sys.stderr, dynamic_ncols=True,
                            bar_format="{l_bar}{bar}| {elapsed}<{remaining}{postfix}")  # fmt: skip
        if event == "step":
            self.bar.update(100 * t.fraction_done() - self.bar.n)
        elif event == "train":
            self.speed = f", {record['tokens_per_s']:,.0f} tok/s" if record.get("tokens_per_s") else ""
        elif event == "valid":
            self.valid = f", valid {record['loss']:.3f}"
            self._write(f"step {record['step']}: valid loss {record['loss']:.4f} ({describe_metrics(record)})")
            if hasattr(self.task, "preview"):
                started = time.perf_counter()
                text = self.task.preview(self.trainer.scored, length=PREVIEW)  # the model that is kept
                self.preview_seconds = time.perf_counter() - started
                self._write("    " + text.strip().replace("\n", "\n    "))
        if event in ("step", "train") and record.get("loss") is not None:
            steps = f"step {t.progress.step}" + (f"/{c.max_steps}" if c.max_steps else "")
            self.bar.set_postfix_str(f"{steps}, loss {record['loss']:.3f}{self.valid}{self.speed}", refresh=False)

    def _write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
