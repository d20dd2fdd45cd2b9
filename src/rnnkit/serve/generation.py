"""Text generation for the server: one :class:`Generation` per request, stepped from a worker thread.

A generation wraps :func:`rnnkit.decoding.iter_generate` with the options of ``rnnkit sample``, so the
same seed gives the same text (the tests compare the two). The event loop never runs the model: it
asks a worker thread for the next tokens (:meth:`Generation.take`), sends them, and asks again, so
the server computes only as far as the client has read (a stopped or vanished client leaves at most
one short batch of work behind), and closing the generation (:meth:`Generation.close`) ends it at once.

``take`` returns the first token alone, so that it reaches the client as soon as it is sampled, and
then batches of what is sampled within a few milliseconds (the C generation loop samples 32 tokens
per call), which keeps the number of thread hops per token low under many concurrent streams.

:class:`Slots` counts the generations running at once; the app answers 429 when none is free.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass

import torch
from torch import Tensor

from rnnkit.decoding import iter_generate
from rnnkit.serve.predict import prime_ids
from rnnkit.serve.runs import ServedRun


@dataclass(frozen=True)
class GenerateOptions:
    """What ``POST /api/generate`` asks for; the fields of ``rnnkit sample``."""

    prime: str | None = None
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    length: int = 200
    seed: int | None = None
    num_samples: int = 1


class Generation:
    """The tokens of one request, ``num_samples`` rows sampled together, produced on demand.

    Without a seed the generation draws one (and reports it), so every text the server writes can be
    written again by ``rnnkit sample RUN --seed SEED`` with the same options.
    """

    def __init__(self, run: ServedRun, options: GenerateOptions) -> None:
        self.run, self.options = run, options
        self.tokenizer = run.vocab
        ids = prime_ids(run, options.prime)  # RequestError naming unknown characters
        self.seed = options.seed if options.seed is not None else secrets.randbelow(2**62)
        model = run.model
        self._steps = iter_generate(
            model.embedding, model.rnn, model.head, options.length, prime=ids, temperature=options.temperature,
            top_k=options.top_k, top_p=options.top_p, num_samples=options.num_samples, seed=self.seed,
        )  # fmt: skip
        self.rows: list[list[int]] = [[] for _ in range(options.num_samples)]
        self.seconds = 0.0  # spent sampling (in take), not waiting for the client
        self.finished = False
        self._lock = threading.Lock()  # take and close may come from different threads

    @property
    def tokens(self) -> int:
        return sum(len(row) for row in self.rows)

    def take(self, max_tokens: int = 64, max_seconds: float = 0.01) -> list[list[int]]:
        """The next steps (each a list of ``num_samples`` ids): one step the first time, then up to
        ``max_tokens`` steps or what ``max_seconds`` of sampling gives; [] once all are sampled."""
        with self._lock:
            if self.finished:
                return []
            if not self.rows[0]:
                max_tokens = 1
            steps: list[list[int]] = []
            started = time.perf_counter()
            # grad mode is per thread and this generator may be resumed on any worker thread
            with torch.no_grad():
                while len(steps) < max_tokens:
                    step: Tensor | None = next(self._steps, None)
                    if step is None:
                        self.finished = True
                        break
                    steps.append(step.tolist())
                    if time.perf_counter() - started >= max_seconds:
                        break
            self.seconds += time.perf_counter() - started
            for step in steps:
                for row, token in zip(self.rows, step):
                    row.append(token)
            return steps

    def close(self) -> None:
        """Stop: the sampling loop is closed and its state freed (safe to call more than once)."""
        with self._lock:
            self.finished = True
            self._steps.close()

    def pieces(self, step: list[int]) -> list[str]:
        """The text of one step's token in each sample."""
        return [self.tokenizer.decode([token]) for token in step]

    def samples(self) -> list[str]:
        """The texts as ``rnnkit sample --json`` prints them: prime + the text of each sample."""
        prime = self.options.prime or ""
        if self.options.num_samples == 1:
            return [prime + "".join(self.tokenizer.decode([t]) for t in self.rows[0])]
        return [prime + self.tokenizer.decode(row) for row in self.rows]

    def summary(self) -> dict:
        tokens = self.tokens
        return {"tokens": tokens, "tokens_per_s": tokens / self.seconds if self.seconds > 0 else None,
                "seed": self.seed}  # fmt: skip


class Slots:
    """At most ``capacity`` generations at once; the counters are read by ``GET /healthz``."""

    def __init__(self, capacity: int) -> None:
        self.capacity, self.active = capacity, 0
        self.started = self.finished = self.stopped = self.refused = 0
        self._lock = threading.Lock()

    def acquire(self) -> bool:
        with self._lock:
            if self.active >= self.capacity:
                self.refused += 1
                return False
            self.active += 1
            self.started += 1
            return True

    def release(self, *, completed: bool) -> None:
        with self._lock:
            self.active -= 1
            if completed:
                self.finished += 1
            else:
                self.stopped += 1

    def stats(self) -> dict:
        return {"active": self.active, "capacity": self.capacity, "started": self.started,
                "finished": self.finished, "stopped": self.stopped, "refused": self.refused}  # fmt: skip
