"""Live training: a small character model trained on text from the page, beside serving, never blocking it.

Each training runs in its own process (``multiprocessing`` spawn), at a lower CPU priority (nice 10)
and with one torch thread, under a time budget and a size cap (:class:`LiveTrainConfig`, bounded by
:class:`~rnnkit.serve.limits.Limits`). The server's event loop and generation threads never wait for
it: the worker sends its records (the trainer's ``train`` and ``valid`` records, a sample after each
evaluation, state changes) through a queue that a reader thread appends to the job's list, which the
routes read.

The worker is :class:`rnnkit.train.Trainer` on :class:`rnnkit.tasks.lm.LanguageModelTask`, the code of
``rnnkit train lm``. Pause raises out of ``Trainer.fit`` from its step callback; resume calls ``fit``
again, which continues from the same step, data position and carried state, and does not count the
paused time against the budget. The run directory is valid from the first step; saving copies it (after
the worker wrote its current weights and resume state) to ``save_dir/live-ID`` with the text beside it,
so ``rnnkit sample`` reads it and ``rnnkit train lm --resume`` continues it.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import queue
import secrets
import shutil
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from rnnkit.errors import ConfigError

TEXT = "text.txt"
STATES = ("starting", "running", "paused", "finished", "stopped", "failed")
DONE = ("finished", "stopped", "failed")


@dataclass(frozen=True)
class LiveTrainConfig:
    """The model and the training of one live run (a character-level LSTM, GRU or RNN)."""

    cell: str = "lstm"
    hidden_size: int = 128
    num_layers: int = 1
    embedding_size: int = 32
    seq_len: int = 64
    batch_size: int = 32
    lr: float = 3e-3
    time_budget: float = 60.0
    max_steps: int | None = None
    eval_every: int = 100
    log_every: int = 10
    sample_length: int = 200
    valid_fraction: float = 0.1
    eval_tokens: int = 20000
    seed: int = 0


class Paused(Exception):
    """Raised from the trainer's callback to leave ``fit`` for a pause."""


class Stopped(Exception):
    """Raised from the trainer's callback to end training at the user's request."""


def _finite(record: dict) -> dict:
    """JSON-safe: non-finite floats become None (browsers' JSON.parse refuses NaN)."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}


# == the worker process ===========================================================================


def worker_main(job_dir: str, config: dict, events, commands) -> None:
    """Train in ``job_dir/run`` on ``job_dir/text.txt``; report to ``events``, obey ``commands``."""
    try:
        os.nice(10)  # serving comes first when both want a core
    except (AttributeError, OSError):
        pass
    import torch

    torch.set_num_threads(1)
    try:
        _train(Path(job_dir), LiveTrainConfig(**config), events, commands)
    except Exception as error:  # the worker reports every failure as one line; the server keeps serving
        events.put({"event": "error", "error": f"{type(error).__name__}: {error}" if not str(error) else str(error)})
    finally:
        events.put({"event": "exit"})


def _train(job_dir: Path, c: LiveTrainConfig, events, commands) -> None:
    import torch

    from rnnkit.data.lm import load_corpus
    from rnnkit.layers import RecurrentConfig
    from rnnkit.models import LanguageModel, LanguageModelConfig
    from rnnkit.tasks.lm import LanguageModelTask, LMDataConfig
    from rnnkit.train import TrainConfig, Trainer

    text_path = job_dir / TEXT
    corpus = load_corpus(text_path, "char", valid_fraction=c.valid_fraction)
    batch_size = max(1, min(c.batch_size, len(corpus.train) // (c.seq_len + 1)))
    seq_len = min(c.seq_len, len(corpus.train) // batch_size - 1)
    data = LMDataConfig(data=str(text_path), valid_fraction=c.valid_fraction, level="char", batch_size=batch_size,
                        seq_len=seq_len, eval_tokens=c.eval_tokens)  # fmt: skip
    task = LanguageModelTask(data, corpus, "cpu")
    torch.manual_seed(c.seed)
    rnn = RecurrentConfig(c.cell, c.embedding_size, c.hidden_size, num_layers=c.num_layers, batch_first=True)
    model = LanguageModel(LanguageModelConfig(len(corpus.tokenizer), c.embedding_size, rnn))
    train = TrainConfig(lr=c.lr, schedule="constant", clip_norm=5.0, time_budget=c.time_budget, max_steps=c.max_steps,
                        eval_every=c.eval_every, log_every=c.log_every, seed=c.seed)  # fmt: skip
    control = _Control(commands, events)

    def callback(event: str, record: dict) -> None:
        if event == "step":
            control.poll(trainer)
        elif event == "train":
            events.put(_finite({"event": "train", **record}))
        elif event == "valid":
            sample = task.preview(model, length=c.sample_length)
            events.put(_finite({"event": "valid", **record, "sample": sample}))

    trainer = Trainer(model, task, train, job_dir / "run", run_config={"task": "lm", "data": asdict(data)},
                      vocab=corpus.tokenizer.to_json(), callback=callback)  # fmt: skip
    events.put({"event": "start", "vocab_size": len(corpus.tokenizer), "train_chars": int(len(corpus.train)),
                "valid_chars": int(len(corpus.valid)), "batch_size": batch_size, "seq_len": seq_len,
                "parameters": sum(p.numel() for p in model.parameters())})  # fmt: skip
    events.put({"event": "state", "state": "running"})
    while True:
        try:
            summary = trainer.fit()
            events.put({"event": "end", "stopped": summary["stopped"], "steps": summary["steps"]})
            events.put({"event": "state", "state": "finished"})
            break
        except Paused:
            events.put({"event": "state", "state": "paused", "step": trainer.progress.step})
            if control.wait(trainer, limit=max(600.0, 2 * c.time_budget)):
                events.put({"event": "state", "state": "running"})
                continue
            _stop(trainer, events)
            break
        except Stopped:
            _stop(trainer, events)
            break
    control.serve_after_end(trainer)


def _stop(trainer, events) -> None:
    trainer.evaluate()  # a last valid record and sample; the run keeps its best weights
    events.put({"event": "end", "stopped": "user", "steps": trainer.progress.step})
    events.put({"event": "state", "state": "stopped"})


class _Control:
    """The worker's side of the commands: pause, resume, stop, checkpoint (write the current weights)."""

    def __init__(self, commands, events) -> None:
        self.commands, self.events = commands, events

    def _checkpoint(self, trainer) -> None:
        trainer.save(weights=True)
        self.events.put({"event": "checkpointed", "step": trainer.progress.step})

    def _pending(self):
        """The commands already sent, one by one, without waiting for more."""
        while True:
            try:
                yield self.commands.get_nowait()
            except queue.Empty:
                return

    def _take(self, trainer, command: str) -> str:
        """Carry out a checkpoint command at once, running or paused; every command goes back to the caller."""
        if command == "checkpoint":
            self._checkpoint(trainer)
        return command

    def poll(self, trainer) -> None:
        """At every step: act on the commands that came in."""
        for command in self._pending():
            if self._take(trainer, command) == "pause":
                raise Paused
            if command == "stop":
                raise Stopped

    def wait(self, trainer, limit: float) -> bool:
        """While paused: True on resume, False on stop (or after ``limit`` seconds paused)."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                command = self.commands.get(timeout=0.5)
            except queue.Empty:
                continue
            if self._take(trainer, command) == "resume":
                return True
            if command == "stop":
                return False
        return False

    def serve_after_end(self, trainer) -> None:
        """After the end, answer the checkpoint commands already sent (a save racing the end)."""
        for command in self._pending():
            if command == "checkpoint":
                self.events.put({"event": "checkpointed", "step": trainer.progress.step})


# == the server's side ============================================================================


class TrainingJob:
    """One live training as the server sees it: its records, state and worker process."""

    def __init__(self, job_id: str, directory: Path, config: LiveTrainConfig, context) -> None:
        self.id, self.dir, self.config = job_id, directory, config
        self.records: list[dict] = []
        self.state = "starting"
        self.error: str | None = None
        self.saved: str | None = None
        self.created = time.time()
        self.events = context.Queue()
        self.commands = context.Queue()
        self.checkpoints = 0  # "checkpointed" records seen
        self.process = context.Process(target=worker_main, args=(str(directory), asdict(config), self.events,
                                                                 self.commands), daemon=True)  # fmt: skip
        self._changed = threading.Condition()

    @property
    def done(self) -> bool:
        return self.state in DONE

    def start(self) -> None:
        self.process.start()
        threading.Thread(target=self._read, name=f"rnnkit-train-{self.id}", daemon=True).start()

    def _read(self) -> None:
        """Move the worker's records into ``records`` until it exits."""
        while True:
            try:
                record = self.events.get(timeout=0.5)
            except queue.Empty:
                if self.process.is_alive():
                    continue
                record = {"event": "exit"}
            except (OSError, ValueError, EOFError):  # the queue was closed: the server is stopping
                record = {"event": "exit"}
            with self._changed:
                if record["event"] == "exit":
                    if not self.done:
                        self.state = "failed"
                        self.error = self.error or f"the training process ended (exit code {self.process.exitcode})"
                        self.records.append({"event": "error", "error": self.error})
                    self.records.append({"event": "state", "state": self.state})
                    self._changed.notify_all()
                    return
                if record["event"] == "state":
                    self.state = record["state"]
                elif record["event"] == "error":
                    self.state, self.error = "failed", record["error"]
                elif record["event"] == "checkpointed":
                    self.checkpoints += 1
                    self._changed.notify_all()
                    continue  # internal to saving, not a record for the page
                self.records.append(record)
                self._changed.notify_all()

    def send(self, command: str) -> None:
        if self.process.is_alive():
            self.commands.put(command)

    def checkpoint(self, timeout: float = 30.0) -> None:
        """Ask a live worker to write its current weights; wait until it has (or has exited)."""
        with self._changed:
            seen = self.checkpoints
            if not self.process.is_alive() or self.done:
                return
            self.commands.put("checkpoint")
            self._changed.wait_for(lambda: self.checkpoints > seen or self.done, timeout=timeout)

    def status(self) -> dict:
        return {"id": self.id, "state": self.state, "config": asdict(self.config), "error": self.error,
                "saved": self.saved, "records": len(self.records)}  # fmt: skip

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=5)
        for channel in (self.events, self.commands):  # free their semaphores now, not at interpreter exit
            channel.cancel_join_thread()
            channel.close()


class Trainings:
    """The server's live trainings: start (at most ``max_trainings`` at once), find, command, save."""

    def __init__(self, limits, work_dir: Path, save_dir: Path) -> None:
        self.limits, self.work_dir, self.save_dir = limits, Path(work_dir), Path(save_dir)
        self.jobs: dict[str, TrainingJob] = {}
        self._context = multiprocessing.get_context("spawn")  # a fork of a threaded server is unsafe
        self._lock = threading.Lock()

    def running(self) -> int:
        return sum(not job.done for job in self.jobs.values())

    def start(self, text: str, config: LiveTrainConfig) -> TrainingJob | None:
        """A new job training on ``text``, or None when ``max_trainings`` are already running."""
        with self._lock:
            if self.running() >= self.limits.max_trainings:
                return None
            self._forget_old()
            job_id = secrets.token_hex(6)
            directory = self.work_dir / job_id
            directory.mkdir(parents=True)
            (directory / TEXT).write_text(text, encoding="utf-8")
            job = TrainingJob(job_id, directory, config, self._context)
            self.jobs[job_id] = job
        job.start()
        return job

    def _forget_old(self) -> None:
        finished = sorted((j for j in self.jobs.values() if j.done), key=lambda j: j.created)
        while len(self.jobs) >= self.limits.max_jobs_kept and finished:
            job = finished.pop(0)
            del self.jobs[job.id]
            shutil.rmtree(job.dir, ignore_errors=True)

    def get(self, job_id: str) -> TrainingJob | None:
        return self.jobs.get(job_id)

    def save(self, job: TrainingJob) -> str:
        """Copy the job's run (with its current weights) to ``save_dir/live-ID``; return that path."""
        job.checkpoint()
        run = job.dir / "run"
        if not (run / "config.json").is_file():
            raise ConfigError("the training has not written its run yet; save again in a moment")
        dest = self.save_dir / f"live-{job.id}"
        staging = self.save_dir / f".live-{job.id}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(run, staging)
        shutil.copy2(job.dir / TEXT, staging / TEXT)
        _point_data_at(staging, dest / TEXT)
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(staging, dest)
        job.saved = str(dest.resolve())
        return job.saved

    def shutdown(self) -> None:
        for job in self.jobs.values():
            job.kill()


def _point_data_at(run: Path, text: Path) -> None:
    """Make the copied run's config name its own copy of the text (so ``--resume`` finds it)."""
    from rnnkit import checkpoint
    from rnnkit.config import config_from_dict
    from rnnkit.tasks.lm import LMDataConfig

    config = checkpoint.load_config(run, task="lm")
    data = config_from_dict(LMDataConfig, config.get("data"), "config.json data")
    config["data"] = asdict(replace(data, data=str(text.resolve())))
    checkpoint.write_json(run / checkpoint.CONFIG, config)


def training_config(fields, limits) -> LiveTrainConfig:
    """The :class:`LiveTrainConfig` of a request's fields (a :class:`~rnnkit.serve.limits.Fields`)."""
    from rnnkit.serve.limits import RequestError

    cell = fields.string("cell", default="lstm")
    if cell not in ("lstm", "gru", "rnn"):
        raise RequestError(f"cell must be lstm, gru or rnn, got {json.dumps(cell)}", field="cell")
    budget = limits.max_train_seconds
    return LiveTrainConfig(
        cell=cell,
        hidden_size=fields.integer("hidden_size", default=128, low=1, high=limits.max_train_hidden),
        num_layers=fields.integer("num_layers", default=1, low=1, high=limits.max_train_layers),
        embedding_size=fields.integer("embedding_size", default=32, low=1, high=limits.max_train_hidden),
        seq_len=fields.integer("seq_len", default=64, low=4, high=256),
        batch_size=fields.integer("batch_size", default=32, low=1, high=128),
        lr=fields.number("lr", default=3e-3, positive=True, high=1.0),
        time_budget=fields.number("time_budget", default=min(60.0, budget), positive=True, high=budget),
        max_steps=fields.integer("max_steps", low=1, high=1_000_000),
        eval_every=fields.integer("eval_every", default=100, low=1, high=100_000),
        log_every=fields.integer("log_every", default=10, low=1, high=10_000),
        sample_length=fields.integer("sample_length", default=200, low=1, high=2000),
        seed=fields.integer("seed", default=0, low=0, high=2**62),
    )
