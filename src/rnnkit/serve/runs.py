"""The runs a server shows: the run directories named when it started, loaded once, found by name.

A request names a run by the name :func:`load_runs` gave it (the directory's name, or its path as given
where two names clash) and nothing else: no path from a request ever reaches the file system. Each run
is loaded at start, so a corrupt or unsupported run is an error before the server listens, and a request
never waits for a load. Models are put in eval mode once; requests only read them, so several threads
may run the same model at once.

A 4-corpus system (``rnnkit corpora --out DIR``) is served as its classifier, its per-corpus generators
(each an lm run) and a :class:`CorporaSet` that ties them together; the command line finds its parts
(:mod:`rnnkit.apps.serve`), this module only loads run directories.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rnnkit import checkpoint
from rnnkit.config import config_from_dict
from rnnkit.errors import ConfigError
from rnnkit.models import load_model

SERVED_TASKS = ("lm", "classify", "tag", "seq2seq")


@dataclass
class ServedRun:
    """One loaded run: its ``model`` (eval mode), its task's vocabulary and data config, and what
    ``GET /api/runs`` says about it (``info``)."""

    name: str
    path: Path
    task: str
    model: nn.Module
    vocab: Any  # lm: a Tokenizer; classify: (Tokenizer, labels); tag: Vocabulary; seq2seq: Seq2SeqVocab
    data: Any  # the task's data config dataclass
    info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class CorporaSet:
    """A served 4-corpus system: the names of its classifier run and of its generator runs per corpus,
    the tokens per passage (``window``) and the sampling temperature it was built with, and what its
    report and saved passages say (shown beside what the page generates)."""

    name: str
    classifier: str
    generators: dict[str, str]
    window: int
    temperature: float
    report: dict | None = None
    passages: tuple[dict, ...] = ()


def _load(name: str, path: Path, device: torch.device) -> ServedRun:
    config = checkpoint.load_config(path)
    task = config.get("task")
    if task not in SERVED_TASKS:
        raise ConfigError(f"{path} is a {task!r} run; rnnkit serve shows {', '.join(SERVED_TASKS)} runs")
    model = load_model(path, device=device, task=task).eval()
    info: dict = {"name": name, "task": task, "parameters": sum(p.numel() for p in model.parameters())}
    summary_path = path / checkpoint.SUMMARY
    if summary_path.is_file():
        best = (json.loads(summary_path.read_text(encoding="utf-8")).get("best") or {})
        info["metrics"] = {k: v for k, v in best.items() if isinstance(v, (int, float)) and k != "epoch"}
    if task == "lm":
        from rnnkit.tasks.lm import LMDataConfig, load_tokenizer

        vocab = load_tokenizer(path)
        data = config_from_dict(LMDataConfig, config.get("data"), "config.json data")
        info.update(level=vocab.level, vocab_size=len(vocab))
    elif task == "classify":
        from rnnkit.tasks.classify import ClassifyDataConfig
        from rnnkit.tasks.classify import load_vocab as load_classify_vocab

        vocab = load_classify_vocab(path)
        data = config_from_dict(ClassifyDataConfig, config.get("data"), "config.json data")
        info.update(level=vocab[0].level, labels=vocab[1])
    elif task == "tag":
        from rnnkit.tasks.tag import TagDataConfig
        from rnnkit.tasks.tag import load_vocab as load_tag_vocab

        vocab = load_tag_vocab(path)
        data = config_from_dict(TagDataConfig, config.get("data"), "config.json data")
        info.update(types=sorted({t[2:] for t in vocab.tags if t != "O"}))
    else:
        from rnnkit.data.algorithmic import make_generator
        from rnnkit.tasks.seq2seq import data_config, fixed_set
        from rnnkit.tasks.seq2seq import load_vocab as load_seq2seq_vocab

        vocab = load_seq2seq_vocab(path)
        data = data_config(config)
        examples = fixed_set(make_generator(data.generator), data.seed, "test", 3)
        info.update(generator=data.generator.task, attention=model.config.attention,
                    max_input_tokens=data.max_input_tokens, separator=vocab.separator,
                    examples=[{"input": e.input, "target": e.target} for e in examples])  # fmt: skip
    return ServedRun(name, path, task, model, vocab, data, info)


def run_names(paths: list[Path]) -> list[str]:
    """A name per run: the directory's name, or the path as given where names clash."""
    names = [p.name or str(p) for p in paths]
    return [name if names.count(name) == 1 else os.fspath(path) for name, path in zip(names, paths)]


class Runs:
    """The served runs by name, and the served 4-corpus systems."""

    def __init__(self, runs: list[ServedRun], corpora: list[CorporaSet] | None = None) -> None:
        self.by_name: dict[str, ServedRun] = {}
        for run in runs:
            if run.name in self.by_name:
                raise ConfigError(f"two served runs are named {run.name!r}")
            self.by_name[run.name] = run
        self.corpora = {c.name: c for c in corpora or []}
        for c in self.corpora.values():
            for part in (c.classifier, *c.generators.values()):
                if part not in self.by_name:
                    raise ConfigError(f"corpora set {c.name!r} names run {part!r}, which is not served")
            self.by_name[c.classifier].info["corpora"] = c.name
            for corpus, run in c.generators.items():
                self.by_name[run].info.update(corpora=c.name, corpus=corpus)

    def __len__(self) -> int:
        return len(self.by_name)

    def __iter__(self):
        return iter(self.by_name.values())

    def get(self, name: str) -> ServedRun | None:
        return self.by_name.get(name)


def load_runs(paths: list[str | os.PathLike], *, names: list[str] | None = None,
              corpora: list[CorporaSet] | None = None, device: str | torch.device = "cpu") -> Runs:  # fmt: skip
    """Load every run directory of ``paths`` (named by ``names`` or :func:`run_names`)."""
    paths = [Path(p) for p in paths]
    names = names or run_names(paths)
    device = torch.device(device)
    return Runs([_load(name, path, device) for name, path in zip(names, paths)], corpora)
