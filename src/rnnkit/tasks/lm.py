"""Language models at character or word level: training by truncated BPTT, evaluation, sampling.

rnnkit train lm [--data FILE|DIR] [--level char|word] ...     # tiny Shakespeare without --data
rnnkit train lm --init-from RUN --data NEW.txt                 # fine-tune RUN's model on new text
rnnkit train lm --level word --embeddings glove.txt [--freeze-embeddings]
rnnkit sample RUN --prime "ROMEO:" --temperature 0.8
rnnkit eval RUN --data FILE --json

Fine-tuning (``--init-from RUN``, char-rnn's ``init_from``) starts from RUN's weights and tokenizer; the model's
sizes come from RUN, and a model or tokenizer flag set to another value than RUN's is refused. At character level
characters of the new text that RUN lacks are appended to the vocabulary, each with a fresh row in the embedding
and in the output layer (a note says which); at word level RUN's vocabulary is kept and new words are ``<unk>``
(a note counts them). Pretrained word vectors (``--embeddings``) fill the embedding rows of the words they
cover (see :func:`rnnkit.tasks.options.read_pretrained`).
"""

from __future__ import annotations

import argparse
import itertools
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from rnnkit import checkpoint, distributed
from rnnkit.bptt import detach_state
from rnnkit.config import config_from_dict
from rnnkit.data.lm import Corpus, CorpusConfig, TokenStreams, encode_file, load_corpus
from rnnkit.data.text import iter_lines, iter_text
from rnnkit.data.tokenizers import UNK, CharTokenizer, Tokenizer, WordTokenizer, tokenizer_from_json
from rnnkit.decoding import iter_generate
from rnnkit.errors import CheckpointError, ConfigError, DataError
from rnnkit.models import LanguageModel, LanguageModelConfig, load_model
from rnnkit.tasks import register_task
from rnnkit.tasks.common import Batches
from rnnkit.tasks.options import (
    DROPOUT,
    FRACTION,
    POSITIVE,
    POSITIVE_REAL,
    Number,
    add_cell_options,
    add_embedding_options,
    add_rnn_options,
    check_positive,
    frozen_embeddings,
    hold_embedding,
    new_run_config,
    option_defaults,
    read_pretrained,
    rnn_config_from_args,
)
from rnnkit.tasks.presets import Preset, left_alone

DEFAULT_CORPUS = "tinyshakespeare.txt"
# The winners of benchmarks/lm_defaults.py on 2 CPU cores (results: benchmarks/results/lm_defaults-cpu2.md).
# A short budget wants a small GRU at a high rate (GRU steps run in rnnkit's C loops, ~1.3x the LSTM's
# rate per second at this size); a long one a wider, regularised stack at a lower rate.
_CHAR_SHORT = {"cell": "gru", "hidden_size": 256, "num_layers": 2, "embedding_size": 128, "dropout": 0.0,
               "tie_weights": False, "seq_len": 100, "batch_size": 32, "lr": 8e-3, "schedule": "cosine"}  # fmt: skip
_CHAR_LONG = {**_CHAR_SHORT, "hidden_size": 384, "dropout": 0.2, "lr": 3e-3}
# Word level: ten minutes are three epochs of Penn Treebank; at dropout 0.4 and lr 3e-3 the model still
# underfitted (train and valid perplexity both ~160), so little dropout and a higher rate (117.5 at 600 s).
_WORD = {"cell": "lstm", "hidden_size": 256, "num_layers": 1, "embedding_size": 256, "dropout": 0.1,
         "tie_weights": True, "seq_len": 35, "batch_size": 32, "lr": 5e-3, "schedule": "cosine"}  # fmt: skip
PRESETS = {
    "char": [
        Preset(300, _CHAR_SHORT, "tiny Shakespeare, 120 s: 1.496 nats/char (H=384 dropout 0.2: 1.62)"),
        Preset(math.inf, _CHAR_LONG, "tiny Shakespeare, 600 s: 1.444 nats/char (H=256 without dropout: 1.49)"),
    ],
    "word": [Preset(math.inf, _WORD, "Penn Treebank, 600 s: 117.5 valid perplexity (dropout 0.4, lr 3e-3: 160.3)")],
}


def default_corpus() -> Path:
    """Tiny Shakespeare (karpathy/char-rnn, MIT), shipped inside the package; see its SOURCE.md."""
    return Path(str(resources.files("rnnkit") / "assets" / DEFAULT_CORPUS))


@dataclass(frozen=True)
class LMDataConfig(CorpusConfig):
    """Where the text comes from and how it is cut into tokens (:class:`rnnkit.data.lm.CorpusConfig`; ``data``
    None is the built-in tiny Shakespeare) and into windows."""

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
        # under torchrun process r trains on its contiguous share of the B streams (all B when alone)
        self.train_streams.rows = distributed.share(self.train_streams.rows)
        valid = corpus.valid if data.eval_tokens is None else corpus.valid[: data.eval_tokens]
        self.valid_ids = valid
        self.state = None  # carried across the windows of an epoch (truncated BPTT)
        self.freeze_embeddings = False  # --freeze-embeddings: the embedding never moves
        self.notes: list[str] = []  # what building the task did that the user should hear (the CLI prints them)

    # -- the trainer's protocol -------------------------------------------------------------------

    def train_batches(self, epoch: int, start: int):
        if start == 0:
            self.state = None
        return Batches(range(start, len(self.train_streams)), self.train_streams.window)

    def loss(self, model: LanguageModel, batch) -> tuple[torch.Tensor, int]:
        x, y = (t.to(self.device, non_blocking=True) for t in batch)
        if self.freeze_embeddings:
            hold_embedding(model)
        logits, state = model(x, self.state)  # (B, T, V)
        self.state = detach_state(state)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1)), y.numel()

    def evaluate(self, model: LanguageModel, limit: int | None = None) -> dict:
        """Nats per token of the validation text, or of its first ``limit`` tokens (a bounded evaluation)."""
        ids = self.valid_ids if limit is None or limit >= len(self.valid_ids) else self.valid_ids[: max(2, limit)]
        nats, count = score_ids(model, ids, self.data.batch_size, self.data.seq_len, self.device)
        return {"loss": nats, **self.loss_metrics(nats), "tokens": count}

    def eval_size(self) -> tuple[int, str, int]:
        """Validation tokens, their unit, and a probe of two windows of every stream (for the trainer's timing)."""
        n = len(self.valid_ids)
        return n, "tokens", min(n, 2 * self.data.batch_size * (self.data.seq_len + 1))

    @property
    def uniform_loss(self) -> float:
        return math.log(len(self.tokenizer))

    def loss_metrics(self, nats: float) -> dict:
        return loss_metrics(self.tokenizer, nats)

    def state_dict(self) -> dict:
        """The carried state of all B streams (under torchrun gathered from every process's share)."""
        state = self.state
        if isinstance(state, tuple):
            return {"state": [distributed.gather(s, dim=1) for s in state]}
        return {"state": None if state is None else distributed.gather(state, dim=1)}

    def load_state_dict(self, saved: dict) -> None:
        state = saved.get("state")
        parts = state if isinstance(state, list) else [state] if state is not None else []
        for part in parts:
            if not isinstance(part, torch.Tensor) or part.dim() != 3 or part.shape[1] != self.data.batch_size:
                shape = list(part.shape) if isinstance(part, torch.Tensor) else type(part).__name__
                raise CheckpointError(f"the carried state ({shape}) is not (layers, {self.data.batch_size} streams, "
                                      "hidden) as the run's --batch-size makes it")  # fmt: skip
        # each process carries its share of the streams' states (all of them when alone)
        if isinstance(state, list):
            state = tuple(distributed.share(s, dim=1).to(self.device) for s in state)
        elif state is not None:
            state = distributed.share(state, dim=1).to(self.device)
        self.state = state

    def check_state(self, model: LanguageModel) -> None:
        """The carried state must fit ``model``: one step from it, on the first window's first column."""
        if self.state is None:
            return
        x, _ = self.train_streams.window(0)
        try:
            with torch.no_grad():
                model(x[:, :1].to(self.device), self.state)
        except (RuntimeError, ValueError, IndexError) as error:
            first = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
            raise CheckpointError(f"the carried state does not fit the model: {first}") from None

    @classmethod
    def check_run(cls, run_dir: Path, config: dict) -> None:
        """vocab.json and the model of config.json must agree on the vocabulary size."""
        checkpoint.check_model_config(run_dir, config, {"vocab_size": len(load_tokenizer(run_dir))})

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
        g.add_argument("--valid-fraction", type=FRACTION, default=0.1)
        g.add_argument("--level", choices=["char", "word"], default="char")
        g.add_argument("--vocab-size", type=Number(int, 2), default=10000, help="word level: most frequent words kept")
        g.add_argument("--word-split", choices=["whitespace", "punct"], default="whitespace",
                       help="word level: split on whitespace only (PTB) or also at punctuation")  # fmt: skip
        g.add_argument("--lowercase", action="store_true", help="word level: lowercase the text")
        g.add_argument("--seq-len", type=POSITIVE, help="truncated BPTT window (steps)")
        g.add_argument("--eval-tokens", type=Number(int, 2), help="score only the first N validation tokens")
        g.add_argument("--init-from", metavar="RUN", help="fine-tune: start from RUN's model and tokenizer "
                       "(new characters get fresh rows; new words become <unk>)")  # fmt: skip
        m = parser.add_argument_group("model")
        # Options left out here come from the preset for --time-budget (presets() below, rnnkit.tasks.presets).
        add_cell_options(m)
        m.add_argument("--embedding-size", type=POSITIVE)
        m.add_argument("--dropout", type=DROPOUT, help="dropout on non-recurrent connections")
        m.add_argument("--tie-weights", action="store_true", default=None,
                       help="share the embedding with the output layer")  # fmt: skip
        m.add_argument("--init-range", type=POSITIVE_REAL, help="draw every parameter from U(-r, r) (Zaremba et al.)")
        add_rnn_options(m)
        add_embedding_options(m)

    @classmethod
    def train_defaults(cls) -> dict:
        return {"clip_norm": 5.0}

    preset_table = PRESETS

    @staticmethod
    def preset_variant(args: argparse.Namespace) -> str:
        return args.level

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
        if left_alone(args, "tie_weights") and (args.freeze_embeddings or args.embeddings is not None):
            args.tie_weights = False  # the preset's tying yields to vectors of their own size, or frozen ones
        if args.freeze_embeddings and args.tie_weights:
            raise ConfigError("--freeze-embeddings with --tie-weights would freeze the output layer too; drop one")
        if args.init_from is not None:
            return cls.fine_tune(args, data, device)
        if args.embeddings is not None and data.level != "word":
            raise ConfigError("--embeddings needs --level word: pretrained vectors are vectors of words")
        if args.freeze_embeddings and args.embeddings is None:
            raise ConfigError("--freeze-embeddings needs --embeddings FILE (or --init-from RUN)")
        corpus = load_corpus(
            data.path, data.level, valid_path=data.valid, valid_fraction=data.valid_fraction,
            vocab_size=data.vocab_size, word_split=data.word_split, lowercase=data.lowercase,
        )  # fmt: skip
        task = cls(data, corpus, device)
        vocab = corpus.tokenizer.tokens
        vectors, embedding_size = read_pretrained(args, vocab, option_defaults(cls.add_arguments)["embedding_size"])
        rnn = rnn_config_from_args(args, input_size=embedding_size)
        if left_alone(args, "tie_weights") and rnn.output_features != embedding_size:
            args.tie_weights = False  # the preset's tying yields to sizes the user chose apart
        model_config = LanguageModelConfig(
            vocab_size=len(corpus.tokenizer), embedding_size=embedding_size, rnn=rnn,
            dropout=args.dropout, tie_weights=args.tie_weights, init_range=args.init_range,
        )  # fmt: skip
        model = LanguageModel(model_config)
        run_config = new_run_config(task, model, data, vectors, vocab, args)
        return task, model, run_config, corpus.tokenizer.to_json()

    @classmethod
    def fine_tune(cls, args: argparse.Namespace, data: LMDataConfig, device: torch.device):
        """``--init-from RUN``: (task, model, run config, vocabulary) for training RUN's model further on
        ``data``, with RUN's tokenizer (grown by the new text's characters at character level)."""
        run = Path(args.init_from)
        config = checkpoint.load_config(run, task=cls.name)
        source = load_model(run, task=cls.name)
        old = load_tokenizer(run)
        old_data = config_from_dict(LMDataConfig, config.get("data"), f"{run}/config.json data")
        if args.embeddings is not None:
            raise ConfigError("--embeddings and --init-from exclude each other: the run brings its own embedding")
        c = source.config
        fixed = {
            "level": old.level, "vocab_size": old_data.vocab_size, "word_split": old_data.word_split,
            "lowercase": old_data.lowercase, "cell": c.rnn.cell, "hidden_size": c.rnn.hidden_size,
            "num_layers": c.rnn.num_layers, "embedding_size": c.embedding_size, "dropout": c.dropout,
            "tie_weights": c.tie_weights, "init_range": c.init_range, "layer_norm": c.rnn.layer_norm,
            "recurrent_dropout": c.rnn.recurrent_dropout, "zoneout": c.rnn.zoneout, "reset": c.rnn.reset,
            "backend": c.rnn.backend,
        }  # fmt: skip
        # a flag left alone (at its default, or filled by the budget's preset) takes RUN's value; any other
        # value must be RUN's
        defaults = option_defaults(cls.add_arguments)
        for name, value in fixed.items():
            given = getattr(args, name)
            if given != defaults[name] and given != value and not left_alone(args, name):
                flag = "--" + name.replace("_", "-")
                raise ConfigError(f"{flag} {given} differs from {run}'s {value}: with --init-from the model and its "
                                  f"tokenizer come from the run; leave {flag} out")  # fmt: skip
        if c.tie_weights and args.freeze_embeddings:
            raise ConfigError(f"{run} ties its embedding to the output layer: --freeze-embeddings would freeze both")
        data = replace(data, level=old.level, vocab_size=old_data.vocab_size, word_split=old_data.word_split,
                       lowercase=old_data.lowercase)  # fmt: skip
        paths = [data.path] + ([data.valid] if data.valid is not None else [])
        added: list[str] = []
        notes = []
        if isinstance(old, CharTokenizer):
            seen = CharTokenizer.build(itertools.chain.from_iterable(iter_text(p) for p in paths))
            added = [ch for ch in seen.tokens if ch not in old.index]
            tokenizer: Tokenizer = CharTokenizer(old.tokens + added)  # old ids unchanged, new ones after them
            if added:
                notes.append(f"--init-from: {len(added)} characters not in {run}'s vocabulary get fresh embedding "
                             f"and output rows: {''.join(added)!r}")  # fmt: skip
        else:
            tokenizer = old
            unknown, total = (sum(n) for n in zip(*(count_unknown_words(p, old) for p in paths)))
            if unknown:
                notes.append(f"--init-from: {unknown:,} of {total:,} words of the new text are not in {run}'s "
                             f"vocabulary and become {UNK}")  # fmt: skip
        task = cls(data, encode_corpus(tokenizer, data), device)
        task.notes.extend(notes)
        task.freeze_embeddings = args.freeze_embeddings
        model = grow_vocabulary(source, len(tokenizer))
        run_config = {"task": cls.name, "data": asdict(data),
                      "init_from": {"run": str(run.resolve()), "added_tokens": added}}  # fmt: skip
        if args.freeze_embeddings:
            run_config["embeddings"] = {"freeze": True, "source": "init_from"}
        return task, model, run_config, tokenizer.to_json()

    @classmethod
    def from_run(cls, run_dir: Path, config: dict, device: torch.device):
        """Rebuild the task of a saved run (to resume it), encoding its data with the saved vocabulary."""
        data = config_from_dict(LMDataConfig, config.get("data"), "config.json data")
        task = cls(data, encode_corpus(load_tokenizer(run_dir), data), device)
        task.freeze_embeddings = frozen_embeddings(config)
        return task

    @classmethod
    def evaluate_run(cls, run_dir: Path, config: dict, args: argparse.Namespace, device: torch.device) -> dict:
        """``rnnkit eval RUN --data FILE``: nats per token (and bits per char or perplexity) of FILE."""
        model = load_model(run_dir, device=device, task=cls.name)
        data = config_from_dict(LMDataConfig, config.get("data"), "config.json data")
        tokenizer = load_tokenizer(run_dir)
        ids = encode_file(args.data, tokenizer)
        nats, count = score_ids(model, ids, args.batch_size, data.seq_len, device)
        metrics = {"nats_per_token": nats, **loss_metrics(tokenizer, nats), "tokens": count}
        return {"task": cls.name, "metrics": metrics}


# -- helpers (the command line, the apps and benchmarks use them too) -----------------------------


def loss_metrics(tokenizer: Tokenizer, nats: float) -> dict:
    """Bits per character at character level, perplexity at word level."""
    if tokenizer.level == "char":
        return {"bits_per_char": nats / math.log(2)}
    return {"perplexity": math.exp(min(nats, 50.0))}


def load_tokenizer(run_dir: Path) -> Tokenizer:
    try:
        return tokenizer_from_json(checkpoint.load_vocab(run_dir))
    except DataError as error:
        raise CheckpointError(f"{run_dir}: {error}") from None


def encode_corpus(tokenizer: Tokenizer, data: LMDataConfig) -> Corpus:
    """``data``'s training and validation ids under an existing ``tokenizer`` (a run's, when resuming or
    fine-tuning): the --valid file, or the last ``valid_fraction`` of the training ids."""
    train = encode_file(data.path, tokenizer)
    if data.valid is not None:
        return Corpus(tokenizer, train, encode_file(data.valid, tokenizer))
    cut = int(len(train) * (1.0 - data.valid_fraction))
    return Corpus(tokenizer, train[:cut], train[cut:])


def count_unknown_words(path, tokenizer: WordTokenizer) -> tuple[int, int]:
    """(words of ``path`` not in the vocabulary, which encoding maps to ``<unk>``; all its words)."""
    index, unknown, total = tokenizer.index, 0, 0
    for line in iter_lines(path):
        words = tokenizer.words(line)
        total += len(words)
        unknown += sum(1 for w in words if w not in index)
    return unknown, total


def grow_vocabulary(model: LanguageModel, vocab_size: int) -> LanguageModel:
    """``model`` over ``vocab_size`` >= V tokens: tokens V.. get the rows a fresh model draws for them (embedding,
    output weight and bias, as :meth:`LanguageModel.reset_parameters` initialises); every other weight is
    ``model``'s. ``model`` itself when the size is unchanged."""
    V = model.config.vocab_size
    if vocab_size == V:
        return model
    grown = LanguageModel(replace(model.config, vocab_size=vocab_size))
    target = grown.state_dict()  # tensors that share the new model's storage
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name in ("embedding.weight", "head.weight", "head.bias"):
                target[name][:V] = tensor
            else:
                target[name].copy_(tensor)
    return grown


def _scoring_streams(ids: np.ndarray, batch_size: int, seq_len: int) -> TokenStreams:
    """``ids`` as at most ``batch_size`` streams, fewer (and shorter windows) for a short text."""
    batch_size = max(1, min(batch_size, (len(ids) - 1) // (seq_len + 1)))
    if len(ids) < 2:
        raise DataError("the text to score has fewer than 2 tokens")
    return TokenStreams(ids, batch_size, min(seq_len, len(ids) // batch_size - 1), "the text to score")


def _window_losses(model: LanguageModel, streams: TokenStreams, device) -> Iterator[tuple[int, torch.Tensor]]:
    """(first column, losses (B, T) in nats) of each window of ``streams`` in order, the state carried from
    window to window, in eval mode and without gradients."""
    was_training = model.training
    model.eval()
    state = None
    try:
        with torch.no_grad():
            for k in range(len(streams)):
                x, y = (t.to(device) for t in streams.window(k))
                logits, state = model(x, state)  # (B, T, V)
                losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="none")
                yield k * streams.seq_len, losses.view(y.shape)
    finally:
        model.train(was_training)


def score_ids(model: LanguageModel, ids: np.ndarray, batch_size: int, seq_len: int, device) -> tuple[float, int]:
    """Mean negative log-likelihood (nats per token) of ``ids`` under ``model``, streams carried over."""
    total, count = 0.0, 0
    for _, losses in _window_losses(model, _scoring_streams(ids, batch_size, seq_len), device):
        total += losses.double().sum().item()
        count += losses.numel()
    return total / count, count


def token_losses(model: LanguageModel, ids: np.ndarray, batch_size: int = 32, seq_len: int = 100,
                 device="cpu") -> np.ndarray:  # fmt: skip
    """-log p(ids[t] | ids before t in its stream) for every t: (L,) float64, NaN at the tokens that
    :func:`score_ids` does not predict (the first of each of the B streams, the remainder after the last).

    Stream b holds ids[b·n : (b+1)·n] (n = L // B), so these are exactly the losses ``score_ids`` averages:
    ``np.nanmean(token_losses(...)) == score_ids(...)[0]``."""
    streams = _scoring_streams(ids, batch_size, seq_len)
    out = np.full(len(ids), np.nan)
    B, n = streams.rows.shape
    grid = out[: B * n].reshape(B, n)  # a view: position b·n + j of the text is row b, column j
    for start, losses in _window_losses(model, streams, device):
        grid[:, start + 1 : start + 1 + losses.shape[1]] = losses.double().cpu().numpy()
    return out


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
