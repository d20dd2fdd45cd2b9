"""Sequence labelling (many-to-many, aligned): one tag per word, e.g. named entities.

rnnkit train tag --train eng.train --valid eng.testa --crf --scheme bioes --char-features lstm
rnnkit train tag --train eng.train --valid eng.testa --binary-names   # is this word part of a person's name?
rnnkit eval RUN --data eng.testa --json      # entity precision, recall, F1 (as conlleval), per type
rnnkit predict RUN --text "John lives in New York" [--json]

Files are CoNLL files (:mod:`rnnkit.data.conll`) whose tags are in ``--input-scheme`` (CoNLL-2003:
IOB1); the model learns them in ``--scheme`` (BIO or BIOES). The model is
:class:`rnnkit.models.SequenceTagger` (Lample et al. 2016): word embeddings, character features (a
char BiLSTM or CNN), optionally a casing embedding, a BiLSTM, and a softmax or CRF output. Training
keeps the weights with the best validation entity F1.
"""

from __future__ import annotations

import argparse
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rnnkit import checkpoint, distributed
from rnnkit.config import config_from_dict
from rnnkit.data.buckets import LengthBuckets
from rnnkit.data.conll import Sentence, casing, convert, names_only, read_conll, split_words
from rnnkit.data.tokenizers import EOS, UNK, WordTokenizer, tokenizer_from_json
from rnnkit.errors import CheckpointError, ConfigError, DataError
from rnnkit.metrics import entities, entity_scores
from rnnkit.models import CharFeaturesConfig, SequenceTagger, SequenceTaggerConfig, load_model
from rnnkit.tasks import register_task
from rnnkit.tasks.common import Batches
from rnnkit.tasks.options import (
    COUNT,
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

# The defaults (benchmarks/tag_conll.py; results in benchmarks/results/tag_conll-cpu2.md): Lample et al.'s
# BiLSTM-CRF with a character BiLSTM, BIOES tags, lowercased words with an embedded casing class (Reimers &
# Gurevych 2017), which reached dev F1 0.9005 on CoNLL-2003 in 905 s without pretrained vectors.
_BILSTM_CRF = {"cell": "lstm", "embedding_size": 100, "hidden_size": 200, "casing_size": 8, "lowercase": True,
               "scheme": "bioes", "crf": True, "dropout": 0.5, "batch_size": 16, "lr": 1e-3,
               "schedule": "constant"}  # fmt: skip
PRESETS = {"conll": [Preset(math.inf, _BILSTM_CRF, "CoNLL-2003 dev F1 0.9005 in 905 s")]}

PAD_CHAR, UNK_CHAR = "<pad>", "<unk>"


@dataclass(frozen=True)
class TagDataConfig:
    """Where the sentences come from and how words, characters and tags become ids."""

    train: str
    valid: str | None = None
    valid_fraction: float = 0.1
    input_scheme: str = "iob1"
    scheme: str = "bio"
    binary_names: bool = False
    lowercase: bool = False
    vocab_size: int | None = None
    max_word_length: int = 30
    unk_replace: float = 0.5
    batch_size: int = 32
    seed: int = 0

    @property
    def model_scheme(self) -> str:
        return "io" if self.binary_names else self.scheme


@dataclass
class Encoded:
    """Sentences as ids: words (N lists), characters per word, casing classes, tag ids."""

    sentences: list[Sentence]
    words: list[np.ndarray]
    chars: list[list[np.ndarray]]
    casings: list[np.ndarray]
    tags: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.words)

    def subset(self, indices: list[int]) -> Encoded:
        pick = lambda items: [items[i] for i in indices]  # noqa: E731
        return Encoded(pick(self.sentences), pick(self.words), pick(self.chars), pick(self.casings), pick(self.tags))


class Vocabulary:
    """Words (a WordTokenizer's index, ``<unk>`` for unknown words), characters (0 = padding,
    1 = unknown) and tags of one run; ``to_json`` is vocab.json."""

    def __init__(self, words: WordTokenizer, chars: list[str], tags: list[str]) -> None:
        if chars[:2] != [PAD_CHAR, UNK_CHAR] or len(set(chars)) != len(chars):
            raise DataError(f"the character list must start with {PAD_CHAR}, {UNK_CHAR} and hold distinct entries")
        self.words, self.chars, self.tags = words, chars, tags
        self.char_index = {c: i for i, c in enumerate(chars)}
        self.tag_index = {t: i for i, t in enumerate(tags)}

    @classmethod
    def build(cls, sentences: list[Sentence], scheme: str, lowercase: bool, vocab_size: int | None) -> Vocabulary:
        counts: Counter[str] = Counter()
        chars: set[str] = set()
        kinds: set[str] = set()
        for s in sentences:
            counts.update(w.lower() if lowercase else w for w in s.words)
            for w in s.words:
                chars.update(w)
            kinds.update(t[2:] for t in s.tags if t != "O")
        keep = counts.most_common(vocab_size)
        words = WordTokenizer([EOS, UNK] + [w for w, _ in keep if w not in (EOS, UNK)], lowercase=lowercase)
        prefixes = {"bio": "BI", "bioes": "BIES", "io": "I"}[scheme]
        tags = ["O"] + [f"{p}-{kind}" for kind in sorted(kinds) for p in prefixes]
        return cls(words, [PAD_CHAR, UNK_CHAR, *sorted(chars)], tags)

    def to_json(self) -> dict:
        return {"words": self.words.to_json(), "chars": self.chars, "tags": self.tags}

    @classmethod
    def from_json(cls, data) -> Vocabulary:
        if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("chars", "tags")):
            raise DataError('vocab.json must be {"words": {...}, "chars": [...], "tags": [...]}')
        words = tokenizer_from_json(data.get("words"))
        if not isinstance(words, WordTokenizer):
            raise DataError("vocab.json: words must be a word-level tokenizer")
        return cls(words, [str(c) for c in data["chars"]], [str(t) for t in data["tags"]])

    def word_ids(self, words: list[str]) -> np.ndarray:
        index, unk, lower = self.words.index, self.words.unk, self.words.lowercase
        return np.array([index.get(w.lower() if lower else w, unk) for w in words], dtype=np.int64)

    def char_ids(self, word: str, max_length: int) -> np.ndarray:
        return np.array([self.char_index.get(c, 1) for c in word[:max_length]], dtype=np.int64)

    def encode(self, sentences: list[Sentence], max_word_length: int, with_tags: bool = True) -> Encoded:
        tags = []
        if with_tags:
            for s in sentences:
                for i, tag in enumerate(s.tags):
                    if tag not in self.tag_index:
                        raise DataError(f"{s.where(i)}: tag {tag!r} is not one of the model's tags "
                                        f"({', '.join(self.tags)})")  # fmt: skip
                tags.append(np.array([self.tag_index[t] for t in s.tags], dtype=np.int64))
        else:
            tags = [np.zeros(len(s.words), dtype=np.int64) for s in sentences]
        return Encoded(
            sentences,
            [self.word_ids(s.words) for s in sentences],
            [[self.char_ids(w, max_word_length) for w in s.words] for s in sentences],
            [np.array([casing(w) for w in s.words], dtype=np.int64) for s in sentences],
            tags,
        )


def collate(data: Encoded, indices: list[int]) -> dict[str, torch.Tensor]:
    """Right-padded batch tensors: words, casing, tags (B, T); chars (B, T, L); lengths, char_lengths."""
    B = len(indices)
    lengths = torch.tensor([len(data.words[i]) for i in indices], dtype=torch.long)
    T = int(lengths.max())
    L = max(len(c) for i in indices for c in data.chars[i])
    words = torch.zeros(B, T, dtype=torch.long)
    casings = torch.zeros(B, T, dtype=torch.long)
    tags = torch.zeros(B, T, dtype=torch.long)
    chars = torch.zeros(B, T, max(L, 1), dtype=torch.long)
    char_lengths = torch.zeros(B, T, dtype=torch.long)
    for b, i in enumerate(indices):
        n = len(data.words[i])
        words[b, :n] = torch.from_numpy(data.words[i])
        casings[b, :n] = torch.from_numpy(data.casings[i])
        tags[b, :n] = torch.from_numpy(data.tags[i])
        for t, c in enumerate(data.chars[i]):
            chars[b, t, : len(c)] = torch.from_numpy(c)
            char_lengths[b, t] = len(c)
    return {"words": words, "lengths": lengths, "chars": chars, "char_lengths": char_lengths, "casing": casings,
            "tags": tags}  # fmt: skip


def emissions_of(model: SequenceTagger, batch: dict, device) -> torch.Tensor:
    b = {k: v.to(device) for k, v in batch.items()}
    return model(b["words"], b["lengths"], b["chars"], b["char_lengths"], b["casing"])


@torch.no_grad()
def tag_sentences(model: SequenceTagger, data: Encoded, batch_size: int, device) -> tuple[list[list[int]], float]:
    """Decoded tag ids of every sentence, and the mean loss per word (against ``data.tags``)."""
    was_training = model.training
    model.eval()
    order = sorted(range(len(data)), key=lambda i: len(data.words[i]))
    decoded: list[list[int]] = [[] for _ in range(len(data))]
    total, words = 0.0, 0
    try:
        for k in range(0, len(order), batch_size):
            chunk = order[k : k + batch_size]
            batch = collate(data, chunk)
            emissions = emissions_of(model, batch, device)
            lengths = batch["lengths"].to(device)
            n = int(batch["lengths"].sum())
            total += model.loss(emissions, batch["tags"].to(device), lengths).item() * n
            words += n
            for i, path in zip(chunk, model.decode(emissions, lengths)):
                decoded[i] = path
    finally:
        model.train(was_training)
    return decoded, total / max(words, 1)


def read_sentences(path: str, data: TagDataConfig) -> list[Sentence]:
    """Read a CoNLL file and convert its tags to the scheme the model learns."""
    sentences = read_conll(path, data.input_scheme)
    for s in sentences:
        s.tags = names_only(s.tags) if data.binary_names else convert(s.tags, data.input_scheme, data.scheme)
    return sentences


@register_task
class TagTask:
    """Tag every word; early stopping on validation entity F1 (conlleval's)."""

    name = "tag"
    help = "sequence labelling (named entities): CoNLL files -> one tag per word"
    monitor = ("f1", "max")

    def __init__(self, data: TagDataConfig, vocab: Vocabulary, train: Encoded, valid: Encoded, device) -> None:
        self.data, self.vocab, self.train, self.valid = data, vocab, train, valid
        self.device = torch.device(device)
        counts = Counter(i for words in train.words for i in words.tolist())
        singleton = torch.zeros(len(vocab.words), dtype=torch.bool)
        singleton[[i for i, n in counts.items() if n == 1]] = True
        singleton[vocab.words.unk] = False
        self.singleton = singleton.to(self.device)
        self.lengths = [len(w) for w in train.words]
        self.freeze_embeddings = False  # --freeze-embeddings: the word embedding never moves
        self.notes: list[str] = []  # what building the task did that the user should hear (the CLI prints them)

    # -- the trainer's protocol -------------------------------------------------------------------

    def train_batches(self, epoch: int, start: int):
        buckets = LengthBuckets(self.lengths, self.data.batch_size, self.data.seed, epoch, start)
        # the global batches; under torchrun each process takes its share of each
        return Batches(buckets, lambda indices: collate(self.train, distributed.share(indices).tolist()))

    def loss(self, model: SequenceTagger, batch: dict) -> tuple[torch.Tensor, int]:
        batch = {k: v.to(self.device) for k, v in batch.items()}
        words = batch["words"]
        if self.data.unk_replace > 0:
            # Lample et al. 2016: a word seen once in training becomes <unk> with probability p, so the
            # <unk> embedding is trained on words that behave like the unknown words of new text.
            drop = self.singleton[words] & (torch.rand(words.shape, device=words.device) < self.data.unk_replace)
            words = words.masked_fill(drop, self.vocab.words.unk)
        if self.freeze_embeddings:
            hold_embedding(model)
        emissions = model(words, batch["lengths"], batch["chars"], batch["char_lengths"], batch["casing"])
        return model.loss(emissions, batch["tags"], batch["lengths"]), int(batch["lengths"].sum())

    def evaluate(self, model: SequenceTagger, limit: int | None = None) -> dict:
        """Validation metrics; with ``limit``, of a fixed seeded sample of that many sentences (bounded evaluation)."""
        valid = self.valid
        if limit is not None and limit < len(valid):
            order = torch.randperm(len(valid), generator=torch.Generator().manual_seed(self.data.seed)).tolist()
            valid = valid.subset(sorted(order[: max(1, limit)]))
        return score_sentences(model, self.vocab, valid, self.data.batch_size, self.device)["metrics"]

    def eval_size(self) -> tuple[int, str, int]:
        """Validation sentences, their unit, and a probe of two batches (for the trainer's timing)."""
        return len(self.valid), "sentences", min(len(self.valid), 2 * self.data.batch_size)

    @property
    def uniform_loss(self) -> float:
        return math.log(len(self.vocab.tags))

    @classmethod
    def check_run(cls, run_dir: Path, config: dict) -> None:
        """vocab.json and the model of config.json must agree on the words, characters and tags."""
        vocab = load_vocab(run_dir)
        expected = {"vocab_size": len(vocab.words), "tags": vocab.tags}
        model = config.get("model")
        if isinstance(model, dict) and isinstance(model.get("config"), dict) and model["config"].get("chars"):
            expected["chars.vocab_size"] = len(vocab.chars)
        checkpoint.check_model_config(run_dir, config, expected)

    def state_dict(self) -> dict:
        return {}  # batches depend on (seed, epoch) only; <unk> draws use the global RNG the trainer saves

    def load_state_dict(self, saved: dict) -> None:
        pass

    # -- building ---------------------------------------------------------------------------------

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("data")
        g.add_argument("--train", help="CoNLL file: word ... tag per line, blank line between sentences")
        g.add_argument("--valid", help="CoNLL file for validation (default: a seeded split of --train)")
        g.add_argument("--valid-fraction", type=FRACTION, default=0.1, help="held out without --valid")
        g.add_argument("--input-scheme", choices=["iob1", "bio", "bioes"], default="iob1",
                       help="tag scheme of the files (CoNLL-2003: iob1)")  # fmt: skip
        g.add_argument("--scheme", choices=["bio", "bioes"], help="tag scheme the model learns")
        g.add_argument("--binary-names", action="store_true",
                       help="tag only whether each word is part of a person's name (PER vs the rest)")  # fmt: skip
        g.add_argument("--lowercase", action=argparse.BooleanOptionalAction,
                       help="lowercase words (use with --casing-size)")  # fmt: skip
        g.add_argument("--vocab-size", type=POSITIVE, help="keep the N most frequent training words (default: all)")
        g.add_argument("--max-word-length", type=POSITIVE, default=30, help="characters read per word")
        g.add_argument("--unk-replace", type=DROPOUT, default=0.5,
                       help="train <unk> by replacing words seen once with it at this probability")  # fmt: skip
        m = parser.add_argument_group("model")
        # Options left out here come from the preset for --time-budget (PRESETS above).
        m.add_argument("--cell", choices=["lstm", "gru", "rnn"])
        m.add_argument("--embedding-size", type=POSITIVE)
        m.add_argument("--hidden-size", type=POSITIVE, help="per direction of the word BiLSTM")
        m.add_argument("--num-layers", type=POSITIVE, default=1)
        m.add_argument("--char-features", choices=["lstm", "cnn", "none"], default="lstm")
        m.add_argument("--char-embedding-size", type=POSITIVE, default=25)
        m.add_argument("--char-hidden-size", type=POSITIVE, default=25,
                       help="char BiLSTM size per direction or CNN filters")  # fmt: skip
        m.add_argument("--char-kernel-size", type=POSITIVE, default=3, help="char CNN filter width")
        m.add_argument("--casing-size", type=COUNT, help="embed each word's casing class in N dims (0: off)")
        m.add_argument("--dropout", type=DROPOUT, help="dropout on the word features and BiLSTM output")
        m.add_argument("--crf", action=argparse.BooleanOptionalAction,
                       help="a linear-chain CRF output with Viterbi decoding")  # fmt: skip
        m.add_argument("--unconstrained", action="store_true", help="CRF: allow transitions the scheme forbids")
        add_rnn_options(m)
        add_embedding_options(m)

    preset_table = PRESETS

    @staticmethod
    def preset_variant(args: argparse.Namespace) -> str:
        return "conll"

    @classmethod
    def train_defaults(cls) -> dict:
        return {"clip_norm": 5.0, "patience": 8,
                "default_epochs": 30}  # fmt: skip

    @classmethod
    def build(cls, data: TagDataConfig, device, vocab: Vocabulary | None = None) -> TagTask:
        """Read and encode the data with a run's ``vocab`` (resuming) or a new one."""
        sentences = read_sentences(data.train, data)
        if data.valid is not None:
            train, valid = sentences, read_sentences(data.valid, data)
        else:
            if not 0.0 < data.valid_fraction < 1.0 or len(sentences) < 2:
                raise ConfigError("without --valid, --train needs >= 2 sentences and --valid-fraction in (0, 1)")
            order = torch.randperm(len(sentences), generator=torch.Generator().manual_seed(data.seed)).tolist()
            cut = min(len(sentences) - 1, max(1, round(len(sentences) * data.valid_fraction)))
            train = [sentences[i] for i in sorted(order[cut:])]
            valid = [sentences[i] for i in sorted(order[:cut])]
        if vocab is None:
            vocab = Vocabulary.build(train, data.model_scheme, data.lowercase, data.vocab_size)
        return cls(data, vocab, vocab.encode(train, data.max_word_length), vocab.encode(valid, data.max_word_length),
                   device)  # fmt: skip

    @classmethod
    def from_args(cls, args: argparse.Namespace, device: torch.device):
        """Build (task, model, run config, vocabulary) from the command line."""
        if args.train is None:
            raise ConfigError("rnnkit train tag needs --train FILE (or --resume RUN)")
        data = TagDataConfig(
            train=str(Path(args.train).resolve()),
            valid=None if args.valid is None else str(Path(args.valid).resolve()),
            valid_fraction=args.valid_fraction, input_scheme=args.input_scheme, scheme=args.scheme,
            binary_names=args.binary_names, lowercase=args.lowercase, vocab_size=args.vocab_size,
            max_word_length=args.max_word_length, unk_replace=args.unk_replace, batch_size=args.batch_size,
            seed=args.seed,
        )  # fmt: skip
        for value, option in ((data.batch_size, "--batch-size"), (data.max_word_length, "--max-word-length")):
            check_positive(value, option)
        if not 0.0 <= data.unk_replace < 1.0:
            raise ConfigError(f"--unk-replace must be a probability in [0, 1), got {data.unk_replace}")
        if args.freeze_embeddings and args.embeddings is None:
            raise ConfigError("--freeze-embeddings needs --embeddings FILE")
        task = cls.build(data, device)
        vocab = task.vocab.words.tokens
        vectors, embedding_size = read_pretrained(args, vocab, option_defaults(cls.add_arguments)["embedding_size"])
        chars = None
        if args.char_features != "none":
            chars = CharFeaturesConfig(
                kind=args.char_features, vocab_size=len(task.vocab.chars), embedding_size=args.char_embedding_size,
                hidden_size=args.char_hidden_size, kernel_size=args.char_kernel_size, backend=args.backend,
            )  # fmt: skip
        features = embedding_size + (chars.output_size if chars else 0) + max(args.casing_size, 0)
        rnn = rnn_config_from_args(args, input_size=features, bidirectional=True)
        config = SequenceTaggerConfig(
            vocab_size=len(task.vocab.words), embedding_size=embedding_size, tags=task.vocab.tags, rnn=rnn,
            chars=chars, casing_size=args.casing_size, dropout=args.dropout, crf=args.crf,
            scheme=data.model_scheme, constrain=not args.unconstrained,
        )  # fmt: skip
        model = SequenceTagger(config)
        run_config = new_run_config(task, model, data, vectors, vocab, args)
        return task, model, run_config, task.vocab.to_json()

    @classmethod
    def from_run(cls, run_dir: Path, config: dict, device: torch.device) -> TagTask:
        data = config_from_dict(TagDataConfig, config.get("data"), "config.json data")
        task = cls.build(data, device, vocab=load_vocab(run_dir))
        task.freeze_embeddings = frozen_embeddings(config)
        return task

    @classmethod
    def evaluate_run(cls, run_dir: Path, config: dict, args: argparse.Namespace, device: torch.device) -> dict:
        """``rnnkit eval RUN --data FILE``: entity precision, recall, F1 (conlleval's) and per-type scores."""
        model = load_model(run_dir, device=device, task=cls.name)
        data = config_from_dict(TagDataConfig, config.get("data"), "config.json data")
        vocab = load_vocab(run_dir)
        encoded = vocab.encode(read_sentences(args.data, data), data.max_word_length)
        return {"task": cls.name, **score_sentences(model, vocab, encoded, args.batch_size, device)}

    @classmethod
    def predict_run(cls, run_dir: Path, config: dict, args: argparse.Namespace, device: torch.device) -> dict:
        """``rnnkit predict RUN --text TEXT | --file FILE`` (a sentence per line): tagged words and entities."""
        model = load_model(run_dir, device=device, task=cls.name)
        data = config_from_dict(TagDataConfig, config.get("data"), "config.json data")
        vocab = load_vocab(run_dir)
        sentences = []
        for n, text in enumerate(predict_inputs(args), 1):
            words = split_words(text)
            if not words:
                raise DataError(f"input {n} has no words: {text!r}")
            sentences.append(Sentence(words, ["O"] * len(words)))
        encoded = vocab.encode(sentences, data.max_word_length, with_tags=False)
        decoded, _ = tag_sentences(model, encoded, 64, device)
        predictions, lines = [], []
        for s, path in zip(sentences, decoded):
            tags = [vocab.tags[i] for i in path]
            found = [{"type": kind, "start": a, "end": b + 1, "text": " ".join(s.words[a : b + 1])}
                     for kind, a, b in entities(tags)]  # fmt: skip
            predictions.append({"tokens": s.words, "tags": tags, "entities": found})
            line = " ".join(w if t == "O" else f"{w}/{t}" for w, t in zip(s.words, tags))
            lines.append(line + ("\n  " + "; ".join(f"{e['type']}: {e['text']}" for e in found) if found else ""))
        return {"task": cls.name, "predictions": predictions, "text": "\n".join(lines)}


def score_sentences(model: SequenceTagger, vocab: Vocabulary, data: Encoded, batch_size: int, device) -> dict:
    """Loss per word and conlleval's entity scores of ``data``: {"metrics": {...}, "per_type": {...}}."""
    decoded, loss = tag_sentences(model, data, batch_size, device)
    gold = [[vocab.tags[i] for i in tags.tolist()] for tags in data.tags]
    predicted = [[vocab.tags[i] for i in path] for path in decoded]
    s = entity_scores(gold, predicted)
    metrics = {"loss": loss, "precision": s["precision"], "recall": s["recall"], "f1": s["f1"],
               "accuracy": s["accuracy"], "sentences": len(data), "entities": s["entities"]}  # fmt: skip
    return {"metrics": metrics, "per_type": s["per_type"]}


def load_vocab(run_dir: Path) -> Vocabulary:
    try:
        return Vocabulary.from_json(checkpoint.load_vocab(run_dir))
    except DataError as error:
        raise CheckpointError(f"{run_dir}: {error}") from None
