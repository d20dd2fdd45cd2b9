"""Language models at character or word level: training by truncated BPTT, evaluation, sampling.

rnnkit train lm [--data FILE|DIR] [--level char|word] ...     # tiny Shakespeare without --data
rnnkit sample RUN --prime "ROMEO:" --temperature 0.8
rnnkit eval RUN --data FILE --json
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rnnkit import checkpoint
from rnnkit.bptt import detach_state
from rnnkit.config import config_from_dict
from rnnkit.data.lm import Corpus, TokenStreams, encode_file, load_corpus
from rnnkit.data.tokenizers import CharTokenizer, Tokenizer, WordTokenizer, tokenizer_from_json
from rnnkit.decoding import iter_generate
from rnnkit.errors import CheckpointError, DataError
from rnnkit.models import LanguageModel, LanguageModelConfig, load_model
from rnnkit.tasks import register_task
from rnnkit.tasks.common import Batches
from rnnkit.tasks.options import add_rnn_options, check_positive, rnn_config_from_args

DEFAULT_CORPUS = "tinyshakespeare.txt"


def default_corpus() -> Path:
    """Tiny Shakespeare (karpathy/char-rnn, MIT), shipped inside the package; see its SOURCE.md."""
    return Path(str(resources.files("rnnkit") / "assets" / DEFAULT_CORPUS))


@dataclass(frozen=True)
class LMDataConfig:
    """Where the text comes from and how it is cut into tokens and windows."""

    data: str | None = None  # None: the built-in tiny Shakespeare
    valid: str | None = None
    valid_fraction: float = 0.1
    level: str = "char"
    vocab_size: int = 10000
    word_split: str = "whitespace"
    lowercase: bool = False
    batch_size: int = 64
    seq_len: int = 100
    eval_tokens: int | None = None

    @property
    def path(self) -> Path:
        return Path(self.data) if self.data is not None else default_corpus()


@register_task
class LanguageModelTask:
    """Next-token prediction over B parallel streams, the state carried from window to window."""

    name = "lm"
    help = "character or word language model with text generation"
    monitor = ("loss", "min")

    def __init__(self, data: LMDataConfig, corpus: Corpus, device: torch.device) -> None:
        self.data, self.corpus, self.device = data, corpus, torch.device(device)
        self.tokenizer = corpus.tokenizer
        self.train_streams = TokenStreams(corpus.train, data.batch_size, data.seq_len, "the training text")
        valid = corpus.valid if data.eval_tokens is None else corpus.valid[: data.eval_tokens]
        self.valid_ids = valid
        self.state = None  # carried across the windows of an epoch (truncated BPTT)

    # -- the trainer's protocol -------------------------------------------------------------------

    def train_batches(self, epoch: int, start: int):
        if start == 0:
            self.state = None
        return Batches(range(start, len(self.train_streams)), self.train_streams.window)

    def loss(self, model: LanguageModel, batch) -> tuple[torch.Tensor, int]:
        x, y = (t.to(self.device, non_blocking=True) for t in batch)
        logits, state = model(x, self.state)  # (B, T, V)
        self.state = detach_state(state)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)), y.numel()

    def evaluate(self, model: LanguageModel) -> dict:
        nats, count = score_ids(model, self.valid_ids, self.data.batch_size, self.data.seq_len, self.device)
        return {"loss": nats, **self.loss_metrics(nats), "tokens": count}

    def loss_metrics(self, nats: float) -> dict:
        return _loss_metrics(self.tokenizer, nats)

    def state_dict(self) -> dict:
        state = self.state
        return {"state": list(state) if isinstance(state, tuple) else state}

    def load_state_dict(self, saved: dict) -> None:
        state = saved.get("state")
        if isinstance(state, list):
            state = tuple(s.to(self.device) for s in state)
        elif state is not None:
            state = state.to(self.device)
        self.state = state

    def preview(self, model: LanguageModel, length: int = 200) -> str:
        """A short sample, shown while training."""
        return "".join(sample_text(model, self.tokenizer, length=length, temperature=0.8, seed=0))

    # -- building ---------------------------------------------------------------------------------

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("data")
        g.add_argument("--data", help="training text: a UTF-8 file or a folder of .txt files "
                       "(default: tiny Shakespeare, shipped with rnnkit)")  # fmt: skip
        g.add_argument("--valid", help="validation text (default: the last --valid-fraction of --data)")
        g.add_argument("--valid-fraction", type=float, default=0.1)
        g.add_argument("--level", choices=["char", "word"], default="char")
        g.add_argument("--vocab-size", type=int, default=10000, help="word level: most frequent words kept")
        g.add_argument("--word-split", choices=["whitespace", "punct"], default="whitespace",
                       help="word level: split on whitespace only (PTB) or also at punctuation")  # fmt: skip
        g.add_argument("--lowercase", action="store_true", help="word level: lowercase the text")
        g.add_argument("--seq-len", type=int, default=100, help="truncated BPTT window (steps)")
        g.add_argument("--eval-tokens", type=int, help="score only the first N validation tokens")
        m = parser.add_argument_group("model")
        m.add_argument("--cell", choices=["lstm", "gru", "rnn"], default="lstm")
        # The defaults won benchmarks/lm_sweep.py: the best tiny-Shakespeare model after 10 minutes on 2 CPU cores.
        m.add_argument("--hidden-size", type=int, default=256)
        m.add_argument("--num-layers", type=int, default=2)
        m.add_argument("--embedding-size", type=int, default=128)
        m.add_argument("--dropout", type=float, default=0.1, help="dropout on non-recurrent connections")
        m.add_argument("--tie-weights", action="store_true", help="share the embedding with the output layer")
        m.add_argument("--init-range", type=float, help="draw every parameter from U(-r, r) (Zaremba et al.)")
        add_rnn_options(m)

    @classmethod
    def train_defaults(cls) -> dict:
        return {"batch_size": 64, "lr": 8e-3, "schedule": "cosine", "clip_norm": 5.0}

    @classmethod
    def from_args(cls, args: argparse.Namespace, device: torch.device):
        """Build (task, model, run config, vocabulary) from the command line."""
        data = LMDataConfig(
            data=None if args.data is None else str(Path(args.data).resolve()),
            valid=None if args.valid is None else str(Path(args.valid).resolve()),
            valid_fraction=args.valid_fraction, level=args.level, vocab_size=args.vocab_size,
            word_split=args.word_split, lowercase=args.lowercase, batch_size=args.batch_size,
            seq_len=args.seq_len, eval_tokens=args.eval_tokens,
        )  # fmt: skip
        check_positive(data.seq_len, "--seq-len")
        check_positive(data.batch_size, "--batch-size")
        check_positive(data.vocab_size, "--vocab-size")
        corpus = load_corpus(
            data.path, data.level, valid_path=data.valid, valid_fraction=data.valid_fraction,
            vocab_size=data.vocab_size, word_split=data.word_split, lowercase=data.lowercase,
        )  # fmt: skip
        task = cls(data, corpus, device)
        rnn = rnn_config_from_args(args, input_size=args.embedding_size)
        model_config = LanguageModelConfig(
            vocab_size=len(corpus.tokenizer), embedding_size=args.embedding_size, rnn=rnn,
            dropout=args.dropout, tie_weights=args.tie_weights, init_range=args.init_range,
        )  # fmt: skip
        model = LanguageModel(model_config)
        return task, model, {"task": cls.name, "data": asdict(data)}, corpus.tokenizer.to_json()

    @classmethod
    def from_run(cls, run_dir: Path, config: dict, device: torch.device):
        """Rebuild the task of a saved run (to resume it), encoding its data with the saved vocabulary."""
        data = config_from_dict(LMDataConfig, config.get("data"), "config.json data")
        tokenizer = load_tokenizer(run_dir)
        train = encode_file(data.path, tokenizer)
        if data.valid is not None:
            corpus = Corpus(tokenizer, train, encode_file(data.valid, tokenizer))
        else:
            cut = int(len(train) * (1.0 - data.valid_fraction))
            corpus = Corpus(tokenizer, train[:cut], train[cut:])
        return cls(data, corpus, device)

    @classmethod
    def evaluate_run(cls, run_dir: Path, config: dict, args: argparse.Namespace, device: torch.device) -> dict:
        """``rnnkit eval RUN --data FILE``: nats per token (and bits per char or perplexity) of FILE."""
        model = load_model(run_dir, device=device, task=cls.name)
        data = config_from_dict(LMDataConfig, config.get("data"), "config.json data")
        tokenizer = load_tokenizer(run_dir)
        ids = encode_file(args.data, tokenizer)
        nats, count = score_ids(model, ids, args.batch_size, data.seq_len, device)
        metrics = {"nats_per_token": nats, **_loss_metrics(tokenizer, nats), "tokens": count}
        return {"task": cls.name, "metrics": metrics}


# -- helpers (the command line, the apps and benchmarks use them too) -----------------------------


def _loss_metrics(tokenizer: Tokenizer, nats: float) -> dict:
    """Bits per character at character level, perplexity at word level."""
    if tokenizer.level == "char":
        return {"bits_per_char": nats / math.log(2)}
    return {"perplexity": math.exp(min(nats, 50.0))}


def load_tokenizer(run_dir: Path) -> Tokenizer:
    try:
        return tokenizer_from_json(checkpoint.load_vocab(run_dir))
    except DataError as error:
        raise CheckpointError(f"{run_dir}: {error}") from None


def score_ids(model: LanguageModel, ids: np.ndarray, batch_size: int, seq_len: int, device) -> tuple[float, int]:
    """Mean negative log-likelihood (nats per token) of ``ids`` under ``model``, streams carried over."""
    batch_size = max(1, min(batch_size, (len(ids) - 1) // (seq_len + 1)))
    if len(ids) < 2:
        raise DataError("the text to score has fewer than 2 tokens")
    streams = TokenStreams(ids, batch_size, min(seq_len, len(ids) // batch_size - 1), "the text to score")
    was_training = model.training
    model.eval()
    total, count, state = 0.0, 0, None
    with torch.no_grad():
        for k in range(len(streams)):
            x, y = (t.to(device) for t in streams.window(k))
            logits, state = model(x, state)
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum").item()
            count += y.numel()
    model.train(was_training)
    return total / count, count


def encode_prime(tokenizer: Tokenizer, prime: str | None) -> list[int]:
    """Prime text as ids: unknown characters are an error, unknown words become <unk>."""
    if prime:
        if isinstance(tokenizer, CharTokenizer):
            return tokenizer.encode(prime, where="--prime").tolist()
        return tokenizer.encode_line(prime, eos=False) or [tokenizer.eos]
    if isinstance(tokenizer, WordTokenizer):
        return [tokenizer.eos]  # start as after a line end
    return [tokenizer.index.get("\n", 0)]


def sample_text(
    model: LanguageModel,
    tokenizer: Tokenizer,
    *,
    length: int,
    prime: str | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    num_samples: int = 1,
    seed: int | None = None,
) -> Iterator[str]:
    """Stream decoded text for one sample, or whole samples one after another for ``num_samples > 1``."""
    ids = encode_prime(tokenizer, prime)
    steps = iter_generate(
        model.embedding, model.rnn, model.head, length, prime=ids, temperature=temperature, top_k=top_k,
        top_p=top_p, num_samples=num_samples, seed=seed,
    )  # fmt: skip
    if num_samples == 1:
        for token in steps:
            yield tokenizer.decode([int(token[0])])
        return
    tokens = torch.stack(list(steps), dim=1).tolist()
    for row in tokens:
        yield tokenizer.decode(row)
