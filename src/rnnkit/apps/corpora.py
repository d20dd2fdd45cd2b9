"""The course notes' 4-corpus system: a classifier tells which corpus a passage comes from, a generator
per corpus writes new passages, and the classifier checks that each passage is assigned to its own corpus.

    rnnkit corpora --data ../shared/data/corpora --out runs/corpora --passages 100 --time-budget 5400

Stages, each a run directory under ``--out`` (a stage whose run finished is skipped when the command
is run again; an interrupted one resumes)::

    data/train/NAME.txt, data/valid/NAME.txt   each corpus cut by lines: the last valid_fraction held out
    classifier/          word-level LSTM over windows of 50 tokens (notes: embedding 256, hidden 256)
    generators/NAME/     a character-level LSTM language model per corpus (notes: hidden 512), an lm run
    conditional/         one ConditionalGenerator for all corpora, its initial state set by the corpus label
    passages.jsonl       the generated passages (the first 50 tokens of each) with the class assigned
    report.json, report.md

The report gives the classifier's accuracy on the held-out windows, and for the per-corpus generators and
for the conditioned one the share of passages assigned to their own corpus with a confusion matrix
(rows: the corpus that generated, columns: the corpus the classifier chose).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rnnkit import checkpoint
from rnnkit.config import config_from_dict
from rnnkit.data.batching import EpochBatches
from rnnkit.data.labelled import class_files, encode_text
from rnnkit.data.lm import load_corpus
from rnnkit.data.text import iter_lines
from rnnkit.data.tokenizers import CharTokenizer, tokenizer_from_json
from rnnkit.decoding import generate
from rnnkit.errors import ConfigError, DataError
from rnnkit.layers import RecurrentConfig
from rnnkit.metrics import classification_report
from rnnkit.models import (
    ConditionalGenerator,
    ConditionalGeneratorConfig,
    LanguageModel,
    LanguageModelConfig,
    SequenceClassifier,
    SequenceClassifierConfig,
    build_model,
    load_model,
)
from rnnkit.tasks.classify import ClassifyDataConfig, ClassifyTask, predict_probabilities, score_examples
from rnnkit.tasks.common import Batches
from rnnkit.tasks.lm import LanguageModelTask, LMDataConfig
from rnnkit.train import TrainConfig, Trainer, describe_device

# Shares of --time-budget: the classifier, all per-corpus generators together, the conditioned generator.
BUDGET_SHARES = {"classifier": 0.2, "generators": 0.5, "conditional": 0.3}


@dataclass(frozen=True)
class CorporaConfig:
    """Everything the corpus system does; the command line sets the main fields."""

    data: str
    out: str
    valid_fraction: float = 0.1
    window: int = 50  # tokens per classifier example and per generated passage
    passages: int = 100  # generated per corpus, by each kind of generator
    temperature: float = 0.8
    # the classifier (course notes: embedding 256, hidden 256)
    classifier_embedding: int = 256
    classifier_hidden: int = 256
    classifier_cell: str = "lstm"
    classifier_bidirectional: bool = False
    classifier_pooling: str = "last"
    classifier_dropout: float = 0.3
    classifier_vocab: int = 20000
    classifier_lr: float = 2e-3
    classifier_batch: int = 64
    classifier_epochs: int = 10
    # the generators (course notes: hidden 512), character level
    generator_embedding: int = 64
    generator_hidden: int = 512
    generator_layers: int = 1
    generator_dropout: float = 0.0
    generator_seq_len: int = 100
    generator_batch: int = 64
    generator_lr: float = 3e-3
    generator_epochs: int = 2
    conditional_label_size: int = 32
    eval_tokens: int = 100_000  # validation characters scored per generator evaluation
    eval_every: int = 500  # generator steps between evaluations
    # budgets
    time_budget: float | None = None  # seconds for everything, shared out by BUDGET_SHARES
    max_steps: int | None = None  # per stage (smoke tests)
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.valid_fraction < 1.0:
            raise ConfigError(f"valid_fraction must lie strictly between 0 and 1, got {self.valid_fraction}")
        for name in ("window", "passages", "classifier_epochs", "generator_epochs", "eval_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.time_budget is not None and not self.time_budget > 0:
            raise ConfigError(f"time_budget must be > 0, got {self.time_budget}")

    def train_config(self, stage: str, *, lr: float, epochs: int, share: float, patience: int | None = None,
                     eval_every: int | None = None) -> TrainConfig:  # fmt: skip
        budget = None if self.time_budget is None else self.time_budget * share
        if budget is not None and stage != "classifier":
            # Under a time budget a generator trains for all of its share, its cosine schedule ending with
            # it; the epoch count bounds it only without a budget (two epochs of a small corpus take a
            # fraction of the share). The classifier keeps its epochs and stops early on validation.
            epochs = None
        return TrainConfig(
            lr=lr, epochs=epochs, max_steps=self.max_steps, time_budget=budget, patience=patience,
            eval_every=eval_every, schedule="cosine" if stage != "classifier" else "constant", seed=self.seed,
            log_every=50,
        )  # fmt: skip


Callback = Callable[[str, dict], None]


def _fit(run_dir: Path, build: Callable[[], tuple], train_config: TrainConfig, device, callback: Callback,
         stage: str) -> dict:  # fmt: skip
    """Train one stage into ``run_dir`` (resuming it if interrupted); return its summary. A finished stage
    (summary.json written) is not trained again."""
    summary_path = run_dir / checkpoint.SUMMARY
    if summary_path.is_file():
        callback("skip", {"stage": stage, "run": str(run_dir)})
        return json.loads(summary_path.read_text(encoding="utf-8"))
    task, model, run_config, vocab = build()
    trainer = Trainer(model, task, train_config, run_dir, run_config=run_config, vocab=vocab, device=device,
                      callback=lambda event, record: callback(event, {"stage": stage, **record}))  # fmt: skip
    state = checkpoint.load_training_state(run_dir) if (run_dir / checkpoint.CONFIG).is_file() else None
    if state is not None:
        trainer.load_training_state(state)
    callback("start", {"stage": stage, "run": str(run_dir), "resumed": state is not None})
    return trainer.fit()


# -- data -----------------------------------------------------------------------------------------


def split_corpora(config: CorporaConfig) -> tuple[list[str], Path, Path]:
    """Cut each corpus by lines into out/data/train and out/data/valid; return (names, train, valid)."""
    files = class_files(config.data)
    root = Path(config.out) / "data"
    train, valid = root / "train", root / "valid"
    if not all((folder / f"{name}.txt").is_file() for name in files for folder in (train, valid)):
        train.mkdir(parents=True, exist_ok=True)
        valid.mkdir(parents=True, exist_ok=True)
        for name, file in files.items():
            lines = list(iter_lines(file))
            cut = int(len(lines) * (1.0 - config.valid_fraction))
            for folder, part in ((train, lines[:cut]), (valid, lines[cut:])):
                text = "\n".join(part) + "\n"
                checkpoint.atomic_write(folder / f"{name}.txt", lambda tmp, t=text: Path(tmp).write_text(t, "utf-8"))
    return sorted(files), train, valid


class ConditionalLMTask:
    """Next-character prediction on windows of every corpus, each starting from its corpus's state.

    Each example is a window of ``seq_len + 1`` characters of one corpus and that corpus's label; the
    model starts every window from the label's initial state, so the label alone must carry the style.
    """

    name = "conditional-lm"
    monitor = ("loss", "min")

    def __init__(self, tokenizer: CharTokenizer, train: list[np.ndarray], valid: list[np.ndarray], seq_len: int,
                 batch_size: int, seed: int, device, eval_windows: int = 200) -> None:  # fmt: skip
        self.tokenizer, self.seq_len, self.batch_size, self.seed = tokenizer, seq_len, batch_size, seed
        self.device = torch.device(device)
        self.train_ids, self.valid_ids = train, valid
        self.examples = self._windows(train)
        rows = []
        for c, ids in enumerate(valid):  # the first eval_windows windows of each corpus's validation text
            starts = self._windows([ids])[:eval_windows, 1]
            rows.append(np.column_stack([np.full(len(starts), c), starts]))
        self.valid_examples = np.concatenate(rows)
        if len(self.examples) == 0 or len(self.valid_examples) == 0:
            raise DataError(f"the corpora are too short for one window of {seq_len + 1} characters")

    def _windows(self, corpora: list[np.ndarray]) -> np.ndarray:
        """(N, 2) rows of (class, start offset) of the non-overlapping windows of every corpus."""
        rows = []
        for c, ids in enumerate(corpora):
            starts = np.arange(0, len(ids) - self.seq_len - 1, self.seq_len)
            rows.append(np.column_stack([np.full(len(starts), c), starts]))
        return np.concatenate(rows)

    def _batch(self, rows: np.ndarray, corpora: list[np.ndarray]):
        block = np.stack([corpora[c][s : s + self.seq_len + 1] for c, s in rows]).astype(np.int64)
        block = torch.from_numpy(block)
        return block[:, :-1], block[:, 1:], torch.from_numpy(rows[:, 0].astype(np.int64))

    def train_batches(self, epoch: int, start: int):
        batches = EpochBatches(len(self.examples), self.batch_size, self.seed, epoch, start)
        return Batches(batches, lambda indices: self._batch(self.examples[indices.numpy()], self.train_ids))

    def loss(self, model: ConditionalGenerator, batch) -> tuple[torch.Tensor, int]:
        x, y, labels = (t.to(self.device) for t in batch)
        logits, _ = model(x, labels)  # (B, T, V)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)), y.numel()

    def evaluate(self, model: ConditionalGenerator) -> dict:
        total, count = 0.0, 0
        for k in range(0, len(self.valid_examples), self.batch_size):
            x, y, labels = (t.to(self.device) for t in self._batch(self.valid_examples[k : k + self.batch_size],
                                                                     self.valid_ids))  # fmt: skip
            logits, _ = model(x, labels)
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum").item()
            count += y.numel()
        nats = total / max(count, 1)
        return {"loss": nats, "bits_per_char": nats / np.log(2), "tokens": count}

    def loss_metrics(self, nats: float) -> dict:
        return {"bits_per_char": nats / np.log(2)}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, saved: dict) -> None:
        pass


# -- the stages -----------------------------------------------------------------------------------


def train_classifier(config: CorporaConfig, train: Path, valid: Path, device, callback: Callback) -> dict:
    run_dir = Path(config.out) / "classifier"
    data = ClassifyDataConfig(
        train=str(train), valid=str(valid), level="word", vocab_size=config.classifier_vocab, word_split="punct",
        window=config.window, batch_size=config.classifier_batch, seed=config.seed, class_weights="balanced",
        layout="folder",
    )  # fmt: skip

    def build():
        if (run_dir / checkpoint.CONFIG).is_file():
            task = ClassifyTask.from_run(run_dir, checkpoint.load_config(run_dir, task="classify"), device)
        else:
            task = ClassifyTask.build(data, device)
        torch.manual_seed(config.seed)
        rnn = RecurrentConfig(config.classifier_cell, config.classifier_embedding, config.classifier_hidden,
                              batch_first=True, bidirectional=config.classifier_bidirectional)  # fmt: skip
        model = SequenceClassifier(
            SequenceClassifierConfig(
                len(task.tokenizer),
                config.classifier_embedding,
                len(task.labels),
                rnn,
                pooling=config.classifier_pooling,
                dropout=config.classifier_dropout,
            )  # fmt: skip
        )
        return task, model, {"task": "classify", "data": asdict(data)}, task.vocab()

    train_config = config.train_config("classifier", lr=config.classifier_lr, epochs=config.classifier_epochs,
                                       share=BUDGET_SHARES["classifier"], patience=3)  # fmt: skip
    return _fit(run_dir, build, train_config, device, callback, "classifier")


def train_generator(config: CorporaConfig, name: str, train: Path, valid: Path, share: float, device,
                    callback: Callback) -> dict:  # fmt: skip
    run_dir = Path(config.out) / "generators" / name
    data = LMDataConfig(
        data=str(train / f"{name}.txt"), valid=str(valid / f"{name}.txt"), level="char",
        batch_size=config.generator_batch, seq_len=config.generator_seq_len, eval_tokens=config.eval_tokens,
    )  # fmt: skip

    def build():
        if (run_dir / checkpoint.CONFIG).is_file():
            task = LanguageModelTask.from_run(run_dir, checkpoint.load_config(run_dir, task="lm"), device)
        else:
            corpus = load_corpus(data.path, "char", valid_path=data.valid)
            task = LanguageModelTask(data, corpus, device)
        torch.manual_seed(config.seed)
        rnn = RecurrentConfig("lstm", config.generator_embedding, config.generator_hidden,
                              num_layers=config.generator_layers, batch_first=True)  # fmt: skip
        model = LanguageModel(LanguageModelConfig(len(task.tokenizer), config.generator_embedding, rnn,
                                                  dropout=config.generator_dropout))  # fmt: skip
        return task, model, {"task": "lm", "data": asdict(data)}, task.tokenizer.to_json()

    train_config = config.train_config("generator", lr=config.generator_lr, epochs=config.generator_epochs,
                                       share=share, eval_every=config.eval_every)  # fmt: skip
    return _fit(run_dir, build, train_config, device, callback, f"generator {name}")


def train_conditional(config: CorporaConfig, names: list[str], train: Path, valid: Path, device,
                      callback: Callback) -> dict:  # fmt: skip
    run_dir = Path(config.out) / "conditional"

    def build():
        if (run_dir / checkpoint.VOCAB).is_file():
            tokenizer = tokenizer_from_json(checkpoint.load_vocab(run_dir))
        else:
            files = [folder / f"{n}.txt" for folder in (train, valid) for n in names]
            tokenizer = CharTokenizer.build(line + "\n" for f in files for line in iter_lines(f))
        corpora = [[encode_text(tokenizer, "\n".join(iter_lines(folder / f"{n}.txt")) + "\n", line_ends=True)
                    for n in names] for folder in (train, valid)]  # fmt: skip
        task = ConditionalLMTask(tokenizer, corpora[0], corpora[1], config.generator_seq_len, config.generator_batch,
                                 config.seed, device)  # fmt: skip
        torch.manual_seed(config.seed)
        rnn = RecurrentConfig("lstm", config.generator_embedding, config.generator_hidden,
                              num_layers=config.generator_layers, batch_first=True)  # fmt: skip
        model = ConditionalGenerator(
            ConditionalGeneratorConfig(len(tokenizer), config.generator_embedding, len(names), rnn,
                                       label_size=config.conditional_label_size, dropout=config.generator_dropout)
        )  # fmt: skip
        return task, model, {"task": ConditionalLMTask.name, "labels": names}, tokenizer.to_json()

    train_config = config.train_config("conditional", lr=config.generator_lr, epochs=config.generator_epochs,
                                       share=BUDGET_SHARES["conditional"], eval_every=config.eval_every)  # fmt: skip
    return _fit(run_dir, build, train_config, device, callback, "conditional")


# -- generating and checking ----------------------------------------------------------------------


def _start_ids(tokenizer: CharTokenizer) -> list[int]:
    return [tokenizer.index.get("\n", 0)]


def generate_passages(config: CorporaConfig, names: list[str], device) -> list[dict]:
    """``config.passages`` passages per corpus from each per-corpus generator and from the conditioned one."""
    chars = config.window * 10  # comfortably more than `window` word tokens
    passages = []
    for c, name in enumerate(names):
        run_dir = Path(config.out) / "generators" / name
        model = load_model(run_dir, device=device, task="lm")
        tokenizer = tokenizer_from_json(checkpoint.load_vocab(run_dir))
        ids = generate(model.embedding, model.rnn, model.head, chars, prime=_start_ids(tokenizer),
                       temperature=config.temperature, num_samples=config.passages, seed=config.seed + c)  # fmt: skip
        passages += [{"generator": "per_corpus", "corpus": name, "text": tokenizer.decode(row)} for row in ids.tolist()]
    run_dir = Path(config.out) / "conditional"
    model = build_model(checkpoint.load_config(run_dir)["model"], device=device)
    checkpoint.load_weights(run_dir, model, device=device)
    tokenizer = tokenizer_from_json(checkpoint.load_vocab(run_dir))
    for c, name in enumerate(names):
        labels = torch.full((config.passages,), c, dtype=torch.long, device=device)
        ids = model.generate(labels, chars, prime=_start_ids(tokenizer), temperature=config.temperature,
                             seed=config.seed + 100 + c)  # fmt: skip
        passages += [
            {"generator": "conditional", "corpus": name, "text": tokenizer.decode(row)} for row in ids.tolist()
        ]
    return passages


def classify_passages(config: CorporaConfig, names: list[str], passages: list[dict], device) -> dict:
    """Classify the first ``window`` tokens of each passage, and score each kind of generator."""
    run_dir = Path(config.out) / "classifier"
    model = load_model(run_dir, device=device, task="classify")
    vocab = checkpoint.load_vocab(run_dir)
    tokenizer, labels = tokenizer_from_json(vocab["tokenizer"]), vocab["labels"]
    sequences = []
    for p in passages:
        ids = encode_text(tokenizer, p["text"], line_ends=True)[: config.window]
        p["tokens"] = tokenizer.decode(ids.tolist()).strip()  # what the classifier read
        sequences.append(ids if len(ids) else np.array([tokenizer.unk]))
    probs = predict_probabilities(model, sequences, 64, device)
    for p, row in zip(passages, probs.tolist()):
        p["predicted"] = labels[max(range(len(labels)), key=row.__getitem__)]
        p["probabilities"] = dict(zip(labels, row))
    results = {}
    for kind in ("per_corpus", "conditional"):
        chosen = [p for p in passages if p["generator"] == kind]
        report = classification_report([labels.index(p["corpus"]) for p in chosen],
                                       [labels.index(p["predicted"]) for p in chosen], labels)  # fmt: skip
        results[kind] = {
            "own_corpus_share": report["accuracy"],
            "per_corpus_share": {name: report["per_class"][name]["recall"] for name in labels},
            "confusion_matrix": report["confusion_matrix"],
            "passages": len(chosen),
        }
    return {"labels": labels, **results}


def run(config: CorporaConfig, device="cpu", callback: Callback | None = None) -> dict:
    """Run every stage (skipping finished ones) and write report.json and report.md under ``config.out``."""
    callback = callback or (lambda event, record: None)
    device = torch.device(device)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "corpora.json"
    if saved.is_file():
        previous = config_from_dict(CorporaConfig, json.loads(saved.read_text(encoding="utf-8")), str(saved))
        fixed = {k: v for k, v in asdict(previous).items() if k not in ("time_budget", "max_steps")}
        if fixed != {k: v for k, v in asdict(config).items() if k not in ("time_budget", "max_steps")}:
            raise ConfigError(f"{out} holds a corpora run with other settings; use another --out")
    checkpoint.write_json(saved, asdict(config))
    started = time.perf_counter()
    names, train, valid = split_corpora(config)
    classifier = train_classifier(config, train, valid, device, callback)
    generators = {}
    for name in names:
        share = BUDGET_SHARES["generators"] / len(names)
        generators[name] = train_generator(config, name, train, valid, share, device, callback)
    conditional = train_conditional(config, names, train, valid, device, callback)
    callback("generate", {"stage": "passages", "passages": config.passages * len(names) * 2})
    passages = generate_passages(config, names, device)
    checks = classify_passages(config, names, passages, device)
    with open(out / "passages.jsonl", "w", encoding="utf-8") as f:
        for p in passages:
            f.write(json.dumps(p) + "\n")
    held_out = _held_out(config, device)
    report = {
        "task": "corpora",
        "metrics": {
            "classifier_accuracy": held_out["metrics"]["accuracy"],
            "per_corpus_generators_own_share": checks["per_corpus"]["own_corpus_share"],
            "conditional_generator_own_share": checks["conditional"]["own_corpus_share"],
        },
        "labels": names,
        "classifier": {**held_out, "summary": _brief(classifier)},
        "generators": {name: _brief(s) for name, s in generators.items()},
        "conditional": _brief(conditional),
        "passages": {k: checks[k] for k in ("per_corpus", "conditional")},
        "device": describe_device(device),
        "seconds": round(time.perf_counter() - started, 1),
        "config": asdict(config),
    }
    checkpoint.write_json(out / "report.json", report)
    text = report_markdown(report)
    checkpoint.atomic_write(out / "report.md", lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return report


def _held_out(config: CorporaConfig, device) -> dict:
    """The classifier's scores on every held-out window of the valid split."""
    run_dir = Path(config.out) / "classifier"
    task = ClassifyTask.from_run(run_dir, checkpoint.load_config(run_dir, task="classify"), device)
    model = load_model(run_dir, device=device, task="classify")
    return score_examples(model, task.valid, 64, device)


def _brief(summary: dict) -> dict:
    best = summary.get("best") or {}
    keep = ("loss", "accuracy", "macro_f1", "bits_per_char")
    return {"steps": summary.get("steps"), "seconds": summary.get("seconds"), "stopped": summary.get("stopped"),
            **{k: best[k] for k in keep if k in best}}  # fmt: skip


def _matrix_markdown(labels: list[str], matrix: list[list[int]], corner: str) -> str:
    rows = [f"| {corner} | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    rows += [f"| {label} | " + " | ".join(str(n) for n in row) + " |" for label, row in zip(labels, matrix)]
    return "\n".join(rows)


def report_markdown(report: dict) -> str:
    """The report as a short Markdown page."""
    m, labels, c = report["metrics"], report["labels"], report["classifier"]
    per_corpus, conditional = m["per_corpus_generators_own_share"], m["conditional_generator_own_share"]
    lines = [
        "# Corpus classifier and generators",
        "",
        f"Device: {report['device']}; total {report['seconds']:.0f} s.",
        "",
        f"- classifier accuracy on {c['metrics']['examples']} held-out {report['config']['window']}-token windows: "
        f"**{m['classifier_accuracy']:.4f}** (macro F1 {c['metrics']['macro_f1']:.4f}; "
        f"trained {c['summary']['seconds']:.0f} s)",
        f"- passages of the per-corpus generators assigned to their own corpus: **{per_corpus:.4f}**",
        f"- passages of the conditioned generator assigned to their own corpus: **{conditional:.4f}**",
        "",
        "## Classifier, held-out windows",
        "",
        _matrix_markdown(labels, c["confusion_matrix"], "true \\ assigned"),
        "",
    ]
    for kind, title in (("per_corpus", "Per-corpus generators"), ("conditional", "Conditioned generator")):
        p = report["passages"][kind]
        matrix = _matrix_markdown(labels, p["confusion_matrix"], "generated \\ assigned")
        lines += [f"## {title} ({p['passages']} passages)", "", matrix, ""]
    lines += ["## Generators", ""]
    for name, g in [*report["generators"].items(), ("conditional", report["conditional"])]:
        bpc = g.get("bits_per_char", float("nan"))
        lines.append(f"- {name}: validation {bpc:.3f} bits/char; {g['steps']} steps in {g['seconds']:.0f} s")
    return "\n".join(lines) + "\n"


# -- the command line -----------------------------------------------------------------------------


def add_arguments(parser) -> None:
    """Options of ``rnnkit corpora``."""
    parser.add_argument("--data", required=True, help="a folder with one .txt file per corpus (the class is its name)")
    parser.add_argument("--out", required=True, metavar="DIR", help="where the runs, passages and report go")
    parser.add_argument("--passages", type=int, default=100, help="passages generated per corpus by each generator")
    parser.add_argument("--window", type=int, default=50, help="tokens per classifier window and per passage")
    parser.add_argument("--time-budget", type=float, metavar="SECONDS",
                        help="training time for all stages together (classifier 20%%, generators 50%%, "
                        "conditioned generator 30%%); default: epochs")  # fmt: skip
    parser.add_argument("--max-steps", type=int, help="training steps per stage (for a quick check)")
    parser.add_argument("--classifier-embedding", type=int, default=256)
    parser.add_argument("--classifier-hidden", type=int, default=256)
    parser.add_argument("--generator-hidden", type=int, default=512)
    parser.add_argument("--generator-batch", type=int, default=64)
    parser.add_argument("--temperature", type=float, default=0.8, help="sampling temperature of the passages")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def config_from_args(args) -> CorporaConfig:
    for name in ("passages", "window", "classifier_embedding", "classifier_hidden", "generator_hidden",
                 "generator_batch"):  # fmt: skip
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.max_steps is not None and args.max_steps < 1:
        raise ConfigError(f"--max-steps must be >= 1, got {args.max_steps}")
    return CorporaConfig(
        data=str(Path(args.data).resolve()), out=str(Path(args.out).resolve()), window=args.window,
        passages=args.passages, temperature=args.temperature, classifier_embedding=args.classifier_embedding,
        classifier_hidden=args.classifier_hidden, generator_hidden=args.generator_hidden,
        generator_batch=args.generator_batch, time_budget=args.time_budget, max_steps=args.max_steps, seed=args.seed,
    )  # fmt: skip
