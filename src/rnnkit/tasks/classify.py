"""Sequence classification (many-to-one): which class does a text belong to?

rnnkit train classify --train corpora/ [--valid DIR] --window 50      # one .txt file per class
rnnkit train classify --train stsa.binary.train --valid stsa.binary.dev --bidirectional --cell gru
rnnkit train classify --train sst/trees/train.txt --valid sst/trees/dev.txt   # SST-2 from its phrases
rnnkit eval RUN --data PATH --json          # accuracy, macro F1, confusion matrix
rnnkit predict RUN --text "..." [--json]    # the label with its probabilities

Data layouts are those of :mod:`rnnkit.data.labelled`. A tree file trains on every labelled phrase
(``--no-phrases``: on the sentences alone) and is scored on its sentences; ``--tree-labels`` picks
SST-2 or SST-5 labels. Without ``--valid``, a seeded random ``--valid-fraction`` of the training
examples is held out (of a tree file, of its trees, so no held-out sentence is trained on in part). The model is
:class:`rnnkit.models.SequenceClassifier`; training keeps the weights with the best validation
accuracy and stops early after ``--patience`` evaluations without improvement.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit import checkpoint, distributed
from rnnkit.config import config_from_dict
from rnnkit.data.buckets import LengthBuckets
from rnnkit.data.labelled import TREE_LABELS, Labelled, build_tokenizer, encode_text, layout_of, load_labelled
from rnnkit.data.sst import count_trees
from rnnkit.data.tokenizers import Tokenizer, tokenizer_from_json
from rnnkit.errors import CheckpointError, ConfigError, DataError
from rnnkit.metrics import classification_report
from rnnkit.models import SequenceClassifier, SequenceClassifierConfig, load_model
from rnnkit.tasks import register_task
from rnnkit.tasks.common import Batches
from rnnkit.tasks.options import (
    DROPOUT,
    FRACTION,
    POSITIVE,
    add_embedding_options,
    add_rnn_options,
    check_positive,
    frozen_embeddings,
    hold_embedding,
    new_run_config,
    option_defaults,
    predict_inputs,
    read_pretrained,
    rnn_config_from_args,
)
from rnnkit.tasks.presets import Preset

CLASS_WEIGHTS = ("none", "balanced")
# The defaults, by the data's layout: a bidirectional GRU with max pooling over its outputs, which reached
# 0.845 on SST-2 phrases (benchmarks/results/classify_sst-cpu2.md), for labelled lines (sentences; 0.800 on
# SST-2 sentences in 150 s over three seeds, 0.797 over five; no change of size, cell, pooling, dropout, rate,
# batch, epochs, vocabulary, word dropout, weight averaging, weight decay (AdamW 0.1: 0.797 over five seeds) or
# recurrent dropout (0.25: 0.798 over three) did better: benchmarks/results/defaults_sweep-cpu2.md;
# nor did a bag of hashed unigrams and bigrams beside the GRU, 0.795 over five seeds (tried in a8a64e2, reverted),
# nor averaging 3 seeds' probabilities, 0.802 for three times the time: the runs stop early, on over-fitting);
# the same for treebank files, whose 77 201 labelled phrases give it ten times the examples (SST-2 dev 0.837 in
# 150 s, 0.834-0.849 over five seeds, and 0.846 in 600 s, where sentences alone give 0.798);
# a smaller one for class folders, whose 50-token windows are many and long (0.994 in 180 s:
# benchmarks/results/defaults-cpu2.md).
_LINES = {"cell": "gru", "embedding_size": 300, "hidden_size": 150, "num_layers": 1, "bidirectional": True,
          "pooling": "max", "dropout": 0.5, "batch_size": 64, "lr": 1e-3, "schedule": "cosine"}  # fmt: skip
_FOLDERS = {**_LINES, "embedding_size": 128, "hidden_size": 128, "dropout": 0.3, "lr": 2e-3}
PRESETS = {
    "lines": [Preset(math.inf, _LINES, "SST-2 sentences")],
    "trees": [Preset(math.inf, _LINES, "SST-2 treebank phrases")],
    "folders": [Preset(math.inf, _FOLDERS, "the four corpora of ../shared/data/corpora")],
}


@dataclass(frozen=True)
class ClassifyDataConfig:
    """Where the labelled text comes from and how it becomes token ids."""

    train: str
    valid: str | None = None
    valid_fraction: float = 0.1
    level: str = "word"
    vocab_size: int = 20000
    word_split: str = "whitespace"
    lowercase: bool = False
    window: int = 50
    batch_size: int = 32
    seed: int = 0
    class_weights: str = "none"
    word_dropout: float = 0.0  # training only: the share of words read as <unk> (word level)
    layout: str = "auto"  # "folder", "lines" or "trees", fixed when the run is made
    tree_labels: str = "binary"  # trees: "binary" (SST-2) or "fine" (SST-5)
    phrases: bool = True  # trees: train on every labelled phrase, not only the sentences

    @property
    def folder(self) -> bool:
        """True for a folder of class files (windows keep line ends), False for labelled lines."""
        return self.layout == "folder" if self.layout != "auto" else Path(self.train).is_dir()


def collate(sequences: list[np.ndarray], pad: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id arrays into (B, T_max) int64 with their lengths (B,)."""
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    batch = torch.full((len(sequences), int(lengths.max())), pad, dtype=torch.long)
    for i, s in enumerate(sequences):
        batch[i, : len(s)] = torch.from_numpy(s.astype(np.int64))
    return batch, lengths


def split_indices(count: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """A seeded random split of ``range(count)``: (kept, held out), ``fraction`` (at least one) held out."""
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"--valid-fraction must lie strictly between 0 and 1, got {fraction}")
    if count < 2:
        raise DataError("the training data has fewer than 2 examples; nothing can be held out for validation")
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed)).tolist()
    cut = min(count - 1, max(1, round(count * fraction)))
    return sorted(order[cut:]), sorted(order[:cut])


def split_examples(examples: Labelled, fraction: float, seed: int) -> tuple[Labelled, Labelled]:
    """A seeded random split: (train, valid) with ``fraction`` of the examples (at least one) held out."""
    kept, held = split_indices(len(examples), fraction, seed)
    return examples.subset(kept), examples.subset(held)


def drop_words(tokens: Tensor, lengths: Tensor, p: float, unk: int) -> Tensor:
    """Word dropout (Iyyer et al. 2015; Dai & Le 2015): each real token of ``tokens`` (B, T) becomes ``unk``
    with probability ``p``; padding beyond ``lengths`` (B,) is left as it is. The model must then read a
    sentence from the words it has, not memorise the rare word that gives a training sentence away."""
    real = torch.arange(tokens.shape[1], device=tokens.device) < lengths.unsqueeze(1)  # (B, T)
    drop = real & (torch.rand(tokens.shape, device=tokens.device) < p)
    return torch.where(drop, torch.full_like(tokens, unk), tokens)


def class_weights(targets: np.ndarray, num_classes: int) -> torch.Tensor:
    """Balanced weights ``N / (C · n_c)``: each class weighs as much in the loss as any other."""
    counts = np.bincount(targets, minlength=num_classes).astype(np.float64)
    weights = len(targets) / (num_classes * np.maximum(counts, 1.0))
    return torch.tensor(weights, dtype=torch.float32)


@torch.no_grad()
def predict_probabilities(model: SequenceClassifier, sequences: list[np.ndarray], batch_size: int, device) -> Tensor:
    """p(class | sequence) for every sequence, (N, C), batched by length for speed."""
    was_training = model.training
    model.eval()
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    probs = torch.empty(len(sequences), model.config.num_classes, dtype=torch.float32)  # as below, any model dtype
    try:
        for k in range(0, len(order), batch_size):
            chunk = order[k : k + batch_size]
            tokens, lengths = collate([sequences[i] for i in chunk])
            logits = model(tokens.to(device), lengths.to(device))
            probs[chunk] = logits.float().softmax(-1).cpu()
    finally:
        model.train(was_training)
    return probs


@register_task
class ClassifyTask:
    """Many-to-one classification of token sequences; early stopping on validation accuracy."""

    name = "classify"
    help = "sequence classification: a class folder or labelled lines -> one label per text"
    monitor = ("accuracy", "max")

    def __init__(self, data: ClassifyDataConfig, tokenizer: Tokenizer, train: Labelled, valid: Labelled,
                 device: torch.device) -> None:  # fmt: skip
        self.data, self.tokenizer, self.train, self.valid = data, tokenizer, train, valid
        self.labels = train.labels
        self.device = torch.device(device)
        self.lengths = [len(s) for s in train.sequences]
        weights = class_weights(train.targets, len(self.labels)) if data.class_weights == "balanced" else None
        self.weights = None if weights is None else weights.to(self.device)
        self.freeze_embeddings = False  # --freeze-embeddings: the embedding never moves
        self.notes: list[str] = []  # what building the task did that the user should hear (the CLI prints them)

    # -- the trainer's protocol -------------------------------------------------------------------

    def train_batches(self, epoch: int, start: int):
        buckets = LengthBuckets(self.lengths, self.data.batch_size, self.data.seed, epoch, start)
        # the global batches; under torchrun each process takes its share of each
        return Batches(buckets, lambda indices: self.training_batch(distributed.share(indices)))

    def training_batch(self, indices: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(tokens, lengths, targets) of the training examples at ``indices``."""
        indices = indices.tolist()
        tokens, lengths = collate([self.train.sequences[i] for i in indices])
        return tokens, lengths, torch.from_numpy(self.train.targets[indices])

    def loss(self, model: SequenceClassifier, batch) -> tuple[torch.Tensor, int]:
        tokens, lengths, targets = (t.to(self.device) for t in batch)
        if self.freeze_embeddings:
            hold_embedding(model)
        if self.data.word_dropout and model.training:
            tokens = drop_words(tokens, lengths, self.data.word_dropout, self.tokenizer.unk)
        logits = model(tokens, lengths)  # (B, C)
        return F.cross_entropy(logits, targets, weight=self.weights), len(targets)

    def evaluate(self, model: SequenceClassifier, limit: int | None = None) -> dict:
        """Validation metrics; with ``limit``, of a fixed seeded sample of that many examples (a bounded evaluation)."""
        return score_examples(model, self.valid_sample(limit), self.data.batch_size, self.device)["metrics"]

    def valid_sample(self, limit: int | None) -> Labelled:
        """The validation examples, or the same seeded sample of ``limit`` of them each time."""
        if limit is None or limit >= len(self.valid):
            return self.valid
        order = torch.randperm(len(self.valid), generator=torch.Generator().manual_seed(self.data.seed)).tolist()
        return self.valid.subset(sorted(order[: max(1, limit)]))

    def eval_size(self) -> tuple[int, str, int]:
        """Validation examples, their unit, and a probe of two batches (for the trainer's timing)."""
        return len(self.valid), "examples", min(len(self.valid), 2 * self.data.batch_size)

    @property
    def uniform_loss(self) -> float:
        return math.log(len(self.labels))

    @classmethod
    def check_run(cls, run_dir: Path, config: dict) -> None:
        """vocab.json and the model of config.json must agree on the vocabulary and the classes."""
        tokenizer, labels = load_vocab(run_dir)
        checkpoint.check_model_config(run_dir, config, {"vocab_size": len(tokenizer), "num_classes": len(labels)})

    def state_dict(self) -> dict:
        return {}  # the data position is the trainer's (epoch, batch); batches depend on (seed, epoch) only

    def load_state_dict(self, saved: dict) -> None:
        pass

    # -- building ---------------------------------------------------------------------------------

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("data")
        g.add_argument("--train", help="a folder with one .txt file per class (the class is the file name), "
                       "a file of labelled lines 'LABEL text', or of sentiment trees '(3 (2 It) ...)'")  # fmt: skip
        g.add_argument("--valid", help="validation data in the same layout (default: a seeded split of --train)")
        g.add_argument("--valid-fraction", type=FRACTION, default=0.1, help="held out without --valid")
        g.add_argument("--level", choices=["char", "word"], default="word")
        g.add_argument("--window", type=POSITIVE, default=50, help="class folders: tokens per example window")
        g.add_argument("--vocab-size", type=POSITIVE, default=20000, help="word level: most frequent words kept")
        g.add_argument("--word-split", choices=["whitespace", "punct"], default="whitespace")
        g.add_argument("--lowercase", action="store_true", help="word level: lowercase the text")
        g.add_argument("--class-weights", choices=CLASS_WEIGHTS, default="none",
                       help="balanced: weigh each class's loss by N / (C n_c), for imbalanced data")  # fmt: skip
        g.add_argument("--word-dropout", type=DROPOUT, default=0.0, metavar="P",
                       help="word level, training only: read each word as <unk> with probability P")  # fmt: skip
        g.add_argument("--tree-labels", choices=TREE_LABELS, default="binary",
                       help="tree files: binary = SST-2 (0 negative, 1 positive, neutral dropped), "
                       "fine = SST-5 (0-4)")  # fmt: skip
        g.add_argument("--phrases", action=argparse.BooleanOptionalAction, default=True,
                       help="tree files: train on every labelled phrase, or (--no-phrases) the sentences")  # fmt: skip
        m = parser.add_argument_group("model")
        # Options left out here come from the preset for the data's layout and --time-budget (PRESETS above).
        m.add_argument("--cell", choices=["lstm", "gru", "rnn"])
        m.add_argument("--embedding-size", type=POSITIVE)
        m.add_argument("--hidden-size", type=POSITIVE)
        m.add_argument("--num-layers", type=POSITIVE)
        m.add_argument("--bidirectional", action=argparse.BooleanOptionalAction)
        m.add_argument("--pooling", choices=["last", "mean", "max"],
                       help="final state, or mean / max of the outputs over the sequence")  # fmt: skip
        m.add_argument("--dropout", type=DROPOUT, help="dropout on the embeddings and the pooled vector")
        add_rnn_options(m)
        add_embedding_options(m)

    @classmethod
    def train_defaults(cls) -> dict:
        return {"clip_norm": 5.0, "patience": 5, "default_epochs": 10}

    preset_table = PRESETS

    @staticmethod
    def preset_variant(args: argparse.Namespace) -> str:
        if args.train is None or not Path(args.train).exists():
            return "lines"  # data_config says what is wrong with --train
        layout = layout_of(args.train)
        return "folders" if layout == "folder" else layout

    @classmethod
    def data_config(cls, args: argparse.Namespace) -> ClassifyDataConfig:
        if args.train is None:
            raise ConfigError("rnnkit train classify needs --train PATH (or --resume RUN)")
        if not Path(args.train).exists():
            raise DataError(f"{args.train}: no such file or folder")
        layout = layout_of(args.train)
        data = ClassifyDataConfig(
            train=str(Path(args.train).resolve()),
            valid=None if args.valid is None else str(Path(args.valid).resolve()),
            valid_fraction=args.valid_fraction, level=args.level, vocab_size=args.vocab_size,
            # tree text is lowercased (as Kim 2014's files are), so what the model is asked to predict is too
            word_split=args.word_split, lowercase=args.lowercase or layout == "trees", window=args.window,
            batch_size=args.batch_size, seed=args.seed, class_weights=args.class_weights,
            word_dropout=args.word_dropout, layout=layout, tree_labels=args.tree_labels, phrases=args.phrases,
        )  # fmt: skip
        if data.word_dropout and data.level != "word":
            raise ConfigError("--word-dropout needs --level word: characters have no <unk> to stand in for them")
        for value, option in ((data.window, "--window"), (data.batch_size, "--batch-size"),
                              (data.vocab_size, "--vocab-size")):  # fmt: skip
            check_positive(value, option)
        return data

    @classmethod
    def build(cls, data: ClassifyDataConfig, device, tokenizer: Tokenizer | None = None,
              labels: list[str] | None = None) -> ClassifyTask:  # fmt: skip
        """Read and encode the data; a run's ``tokenizer`` and ``labels`` when resuming, else new ones."""
        if not Path(data.train).exists():
            raise DataError(f"{data.train}: no such file or folder")
        if data.valid is not None and Path(data.valid).is_dir() != Path(data.train).is_dir():
            raise DataError("--train and --valid must have the same layout (both class folders or both files)")
        if tokenizer is None:
            paths = [data.train] + ([data.valid] if data.valid else [])
            tokenizer = build_tokenizer(paths, data.level, vocab_size=data.vocab_size, word_split=data.word_split,
                                        lowercase=data.lowercase)  # fmt: skip
        read = {"window": data.window, "tree_labels": data.tree_labels}
        if data.valid is None and data.layout == "trees":  # hold out whole trees: none of their phrases trains
            kept, held = (set(part) for part in split_indices(count_trees(data.train), data.valid_fraction, data.seed))
            train = load_labelled(data.train, tokenizer, labels=labels, phrases=data.phrases, trees=kept, **read)
            valid = load_labelled(data.train, tokenizer, labels=train.labels, trees=held, **read)
        elif data.valid is None:
            train, valid = split_examples(load_labelled(data.train, tokenizer, labels=labels, **read),
                                          data.valid_fraction, data.seed)  # fmt: skip
        else:  # validation reads a tree file's sentences only, the examples a test set scores
            train = load_labelled(data.train, tokenizer, labels=labels, phrases=data.phrases, **read)
            valid = load_labelled(data.valid, tokenizer, labels=train.labels, **read)
        return cls(data, tokenizer, train, valid, device)

    @classmethod
    def from_args(cls, args: argparse.Namespace, device: torch.device):
        """Build (task, model, run config, vocabulary) from the command line."""
        if args.embeddings is not None and args.level != "word":
            raise ConfigError("--embeddings needs --level word: pretrained vectors are vectors of words")
        if args.freeze_embeddings and args.embeddings is None:
            raise ConfigError("--freeze-embeddings needs --embeddings FILE")
        task = cls.build(cls.data_config(args), device)
        vocab = task.tokenizer.tokens
        vectors, embedding_size = read_pretrained(args, vocab, option_defaults(cls.add_arguments)["embedding_size"])
        rnn = rnn_config_from_args(args, input_size=embedding_size, bidirectional=args.bidirectional)
        model = SequenceClassifier(
            SequenceClassifierConfig(
                vocab_size=len(task.tokenizer), embedding_size=embedding_size, num_classes=len(task.labels),
                rnn=rnn, pooling=args.pooling, dropout=args.dropout,
            )
        )  # fmt: skip
        run_config = new_run_config(task, model, task.data, vectors, vocab, args)
        return task, model, run_config, task.vocab()

    def vocab(self) -> dict:
        """What vocab.json holds: the tokenizer and the class labels in model order."""
        return {"tokenizer": self.tokenizer.to_json(), "labels": self.labels}

    @classmethod
    def from_run(cls, run_dir: Path, config: dict, device: torch.device) -> ClassifyTask:
        data = config_from_dict(ClassifyDataConfig, config.get("data"), "config.json data")
        tokenizer, labels = load_vocab(run_dir)
        task = cls.build(data, device, tokenizer=tokenizer, labels=labels)
        task.freeze_embeddings = frozen_embeddings(config)
        return task

    @classmethod
    def evaluate_run(cls, run_dir: Path, config: dict, args: argparse.Namespace, device: torch.device) -> dict:
        """``rnnkit eval RUN --data PATH``: accuracy, macro F1, confusion matrix and per-class scores."""
        model = load_model(run_dir, device=device, task=cls.name)
        data = config_from_dict(ClassifyDataConfig, config.get("data"), "config.json data")
        tokenizer, labels = load_vocab(run_dir)
        # a tree file is read with the run's labels: SST-5 for five classes, else SST-2
        tree_labels = data.tree_labels if data.layout == "trees" else "fine" if len(labels) == 5 else "binary"
        examples = load_labelled(args.data, tokenizer, window=data.window, labels=labels, tree_labels=tree_labels)
        return {"task": cls.name, **score_examples(model, examples, args.batch_size, device)}

    @classmethod
    def predict_run(cls, run_dir: Path, config: dict, args: argparse.Namespace, device: torch.device) -> dict:
        """``rnnkit predict RUN --text TEXT | --file FILE`` (one text per line): labels with probabilities."""
        model = load_model(run_dir, device=device, task=cls.name)
        data = config_from_dict(ClassifyDataConfig, config.get("data"), "config.json data")
        tokenizer, labels = load_vocab(run_dir)
        texts = predict_inputs(args)
        sequences = [encode_text(tokenizer, t, line_ends=data.folder) for t in texts]
        empty = [i for i, s in enumerate(sequences) if len(s) == 0]
        if empty:
            raise DataError(f"input {empty[0] + 1} has no token the model knows: {texts[empty[0]]!r}")
        probs = predict_probabilities(model, sequences, 64, device)
        predictions, lines = [], []
        for text, p in zip(texts, probs.tolist()):
            best = max(range(len(labels)), key=p.__getitem__)
            ranked = sorted(zip(labels, p), key=lambda pair: -pair[1])
            predictions.append({"text": text, "label": labels[best], "probabilities": dict(zip(labels, p))})
            lines.append(f"{labels[best]}\t" + "  ".join(f"{label} {q:.3f}" for label, q in ranked))
        return {"task": cls.name, "predictions": predictions, "text": "\n".join(lines)}


def score_examples(model: SequenceClassifier, examples: Labelled, batch_size: int, device) -> dict:
    """Loss (mean nats), accuracy, macro F1, confusion matrix and per-class scores of ``examples``."""
    probs = predict_probabilities(model, examples.sequences, batch_size, device)
    targets = torch.from_numpy(examples.targets)
    loss = F.nll_loss(probs.clamp_min(1e-12).log(), targets).item()
    report = classification_report(targets.tolist(), probs.argmax(-1).tolist(), examples.labels)
    metrics = {"loss": loss, "accuracy": report["accuracy"], "macro_f1": report["macro_f1"], "examples": len(examples)}
    return {"metrics": metrics, "labels": examples.labels, "confusion_matrix": report["confusion_matrix"],
            "per_class": report["per_class"]}  # fmt: skip


def load_vocab(run_dir: Path) -> tuple[Tokenizer, list[str]]:
    vocab = checkpoint.load_vocab(run_dir)
    try:
        if not isinstance(vocab, dict) or not isinstance(vocab.get("labels"), list):
            raise DataError('vocab.json must be {"tokenizer": {...}, "labels": [...]}')
        return tokenizer_from_json(vocab.get("tokenizer")), [str(label) for label in vocab["labels"]]
    except DataError as error:
        raise CheckpointError(f"{run_dir}: {error}") from None
