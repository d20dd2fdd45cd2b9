"""``rnnkit baseline ngram|hmm``: the Markov peers of a language model, trained into run directories.

    rnnkit baseline ngram --data TRAIN [--valid VALID] [--level char|word] [--order N] --out RUN
    rnnkit baseline hmm   --data TRAIN [--valid VALID] --states N [--iterations I] --out RUN
    rnnkit eval RUN --data FILE --json       # the keys an LM run reports
    rnnkit sample RUN --prime "ROMEO:" --length 300
    rnnkit compare LM_RUN RUN ... --data FILE

The text is read and tokenised by the code ``rnnkit train lm`` uses (:func:`rnnkit.data.lm.load_corpus`): the
same characters, or words with ``<eos>`` at each line end and ``<unk>`` for words outside the
``--vocab-size`` most frequent, the same held-out last ``--valid-fraction`` without ``--valid``. So the
numbers (nats per token, bits per character or perplexity) are those of an LM run on the same text.

The models are :class:`rnnkit.baselines.ngram.KneserNey` (interpolated modified Kneser-Ney, orders 1-10) and
:class:`rnnkit.baselines.hmm.DiscreteHMM` (Baum-Welch on a bounded sample of the training text; the notes say
how many tokens). A run directory holds what an LM run holds, with the model's arrays in place of weights::

    config.json        {"task": "ngram" | "hmm", "data": {...tokenisation...}, "model": {"type", "config"}}
    model.safetensors  the model's numpy arrays (to_arrays / from_arrays; no pickle)
    vocab.json         the tokenizer, exactly as an LM run writes it
    metrics.jsonl      "train" records (the HMM: one per Baum-Welch iteration) and the "valid" record
    summary.json       steps, seconds, parameters, tokens/s, the valid record as "best", the notes

Parameters: of the n-gram, the probabilities and interpolation weights it stores (alpha and gamma of every
order); of the HMM, its free parameters (N - 1) + N (N - 1) + N (V - 1). Tokens per second: training tokens
processed per second of fitting (the n-gram counts its training text once; the HMM runs its sample through
forward-backward once per iteration).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from rnnkit import checkpoint
from rnnkit.baselines.hmm import DiscreteHMM, HMMConfig, training_windows
from rnnkit.baselines.ngram import KneserNey, NGramConfig
from rnnkit.config import config_from_dict
from rnnkit.data.lm import Corpus, CorpusConfig, encode_file, load_corpus
from rnnkit.data.tokenizers import UNK, Tokenizer, WordTokenizer
from rnnkit.errors import CheckpointError, ConfigError
from rnnkit.tasks.lm import count_unknown_words, encode_prime, load_tokenizer, loss_metrics

BASELINE_TASKS = ("ngram", "hmm")
MODEL_TYPES = {"ngram": KneserNey, "hmm": DiscreteHMM}
Model = KneserNey | DiscreteHMM


@dataclass(frozen=True)
class BaselineDataConfig(CorpusConfig):
    """Where the text comes from and how it becomes tokens, as an LM run reads it
    (:class:`rnnkit.data.lm.CorpusConfig`, which :class:`rnnkit.tasks.lm.LMDataConfig` extends): ``data`` required."""

    data: str = field()  # required (a field of its own: no default inherited)


# -- the command line ------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``rnnkit baseline ngram|hmm`` and their options."""
    kinds = parser.add_subparsers(dest="baseline", metavar="MODEL", required=True)
    ngram = kinds.add_parser("ngram", help="interpolated modified Kneser-Ney n-gram model (orders 1-10)",
                             description="An n-gram language model: interpolated modified Kneser-Ney.")  # fmt: skip
    _add_data_options(ngram)
    ngram.add_argument("--order", type=int, default=5, help="n: each token is predicted from the n-1 before it")
    hmm = kinds.add_parser("hmm", help="discrete hidden Markov model trained by Baum-Welch",
                           description="A discrete HMM language model, trained by Baum-Welch on a bounded sample "
                           "of the training text and scored by the forward algorithm.")  # fmt: skip
    _add_data_options(hmm)
    d = HMMConfig()
    hmm.add_argument("--states", type=int, default=d.states, help="hidden states N (>= 2): log2(N) bits of memory")
    hmm.add_argument("--iterations", type=int, default=d.iterations, help="Baum-Welch iterations at most")
    hmm.add_argument("--tol", type=float, default=d.tol, help="stop when the training nats per token improve less")
    hmm.add_argument("--max-train-tokens", type=int, default=d.max_train_tokens,
                     help="Baum-Welch runs on at most this many training tokens, in windows spread over the text")
    hmm.add_argument("--window", type=int, default=d.window, help="tokens per training window")
    hmm.add_argument("--restarts", type=int, default=d.restarts, help="random starts; the best one is kept")
    hmm.add_argument("--pseudocount", type=float, default=d.pseudocount, help="added to every emission count")
    hmm.add_argument("--seed", type=int, default=d.seed)
    for p in (ngram, hmm):
        p.add_argument("--out", metavar="RUN", help="run directory to create (default: runs/MODEL-DATE-TIME)")
        p.add_argument("--json", action="store_true", help="print the summary as one JSON object")


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    d = BaselineDataConfig(data="")
    g = parser.add_argument_group("data (as rnnkit train lm reads it)")
    g.add_argument("--data", required=True, help="training text: a UTF-8 file or a folder of .txt files")
    g.add_argument("--valid", help="validation text (default: the last --valid-fraction of --data)")
    g.add_argument("--valid-fraction", type=float, default=d.valid_fraction)
    g.add_argument("--level", choices=["char", "word"], default=d.level)
    g.add_argument("--vocab-size", type=int, default=d.vocab_size, help="word level: most frequent words kept")
    g.add_argument("--word-split", choices=["whitespace", "punct"], default=d.word_split)
    g.add_argument("--lowercase", action="store_true", help="word level: lowercase the text")


def main(args: argparse.Namespace) -> int:
    """``rnnkit baseline MODEL ...``: fit, score the validation text, save the run, print what it scored."""
    result = fit_run(args)
    summary, out = result["summary"], result["run"]
    if args.json:
        print(json.dumps({"task": summary["task"], "metrics": result["metrics"], "run": out, "summary": summary}))
        return 0
    for note in summary["notes"]:
        print(f"note: {note}", file=sys.stderr)
    best = summary["best"]
    char = "bits_per_char" in best
    unit = f"bits/char {best['bits_per_char']:.4f}" if char else f"perplexity {best['perplexity']:.2f}"
    print(f"validation {best['loss']:.4f} nats/token ({unit}) over {best['tokens']:,} tokens; {summary['model']}, "
          f"{summary['parameters']:,} parameters; {summary['seconds']:.1f} s; run saved in {out}",
          file=sys.stderr)  # fmt: skip
    model, tokenizer = load_run(Path(out))
    print(tokenizer.decode(model.sample(300, encode_prime(tokenizer, None), temperature=0.8, generator=0).tolist()))
    return 0


# -- training a run --------------------------------------------------------------------------------------


def fit_run(args: argparse.Namespace) -> dict:
    """Fit the baseline that ``args`` describe and write its run directory; returns {"run", "metrics",
    "summary"}. Every option is checked before the text is read, the folder is made only after the fit."""
    started = time.perf_counter()
    kind = args.baseline
    data = BaselineDataConfig(
        data=str(Path(args.data).resolve()), valid=None if args.valid is None else str(Path(args.valid).resolve()),
        valid_fraction=args.valid_fraction, level=args.level, vocab_size=args.vocab_size,
        word_split=args.word_split, lowercase=args.lowercase,
    )  # fmt: skip
    if args.vocab_size < 3:
        raise ConfigError(f"--vocab-size must be >= 3 (<eos>, <unk> and a word), got {args.vocab_size}")
    if kind == "ngram":
        config = NGramConfig(order=args.order, level=data.level, vocab_size=data.vocab_size,
                             word_split=data.word_split, lowercase=data.lowercase)  # fmt: skip
        model_config = {"order": config.order, "discount_fallback": list(config.discount_fallback)}
    else:
        config = HMMConfig(states=args.states, iterations=args.iterations, tol=args.tol, restarts=args.restarts,
                           window=args.window, max_train_tokens=args.max_train_tokens, pseudocount=args.pseudocount,
                           seed=args.seed)  # fmt: skip
        model_config = asdict(config)
    out = Path(args.out) if args.out else Path("runs") / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"
    if (out / checkpoint.CONFIG).exists():
        raise ConfigError(f"{out} already holds a run; choose another --out")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: that is a file, not a folder")

    corpus = load_corpus(
        data.data, data.level, valid_path=data.valid, valid_fraction=data.valid_fraction, vocab_size=data.vocab_size,
        word_split=data.word_split, lowercase=data.lowercase,
    )  # fmt: skip
    notes = _unknown_notes(corpus, data)
    V = len(corpus.tokenizer)
    fit_started = time.perf_counter()
    if kind == "ngram":
        model = KneserNey.fit(corpus.train, V, config.order, config.discount_fallback)
        processed, steps, stopped = len(corpus.train), 1, None
        describe = f"{config.order}-gram over {V:,} tokens, {sum(model.num_ngrams):,} n-grams"
    else:
        model, processed, sample = _fit_hmm(corpus.train, V, config)
        steps = len(model.history) - 1
        stopped = "iterations" if steps >= config.iterations else "converged"
        describe = f"HMM with {config.states} states over {V:,} tokens, {steps} Baum-Welch iterations"
        notes.append(f"Baum-Welch trained on {sample:,} of the {len(corpus.train):,} training tokens "
                     f"(--max-train-tokens {config.max_train_tokens:,}, windows of {config.window})")  # fmt: skip
    fit_seconds = time.perf_counter() - fit_started
    nats, count = model.score(corpus.valid)
    elapsed = round(time.perf_counter() - started, 3)
    metrics = {"loss": nats, **loss_metrics(corpus.tokenizer, nats), "tokens": count}
    valid = {"split": "valid", "step": steps, "epoch": 1.0, **metrics, "best": nats, "elapsed": elapsed}
    tokens_per_s = processed / fit_seconds if fit_seconds > 0 else None
    if kind == "ngram":
        train_nats = float(-model.log_probs(corpus.train).mean())  # in-sample: how far it overfits
        train = [{"split": "train", "step": 1, "loss": train_nats, **loss_metrics(corpus.tokenizer, train_nats),
                  "tokens_per_s": tokens_per_s, "elapsed": round(fit_seconds, 3)}]  # fmt: skip
    else:
        train = [{"split": "train", "step": i, "loss": h, **loss_metrics(corpus.tokenizer, h)}
                 for i, h in enumerate(model.history)]  # fmt: skip
        train[-1]["tokens_per_s"] = tokens_per_s
    summary = {
        "task": kind, "stopped": stopped, "steps": steps, "epochs": 1.0, "seconds": elapsed,
        "fit_seconds": round(fit_seconds, 3), "device": "cpu", "best": valid, "final": valid,
        "parameters": parameter_count(model), "tokens_per_s": tokens_per_s, "train_tokens": len(corpus.train),
        "model": describe, "notes": notes,
    }  # fmt: skip
    run_config = {"task": kind, "data": asdict(data), "model": {"type": type(model).__name__, "config": model_config}}
    save_run(out, model, run_config, corpus.tokenizer, [*train, valid], summary)
    return {"run": str(out), "metrics": {k: v for k, v in valid.items() if k not in ("split", "best")},
            "summary": summary}  # fmt: skip


def _fit_hmm(train: np.ndarray, vocab_size: int, config: HMMConfig) -> tuple[DiscreteHMM, int, int]:
    """DiscreteHMM.fit's restarts one by one (same seeds, same choice of the best), to count the tokens the
    E-steps process: (model, tokens processed, tokens in the training sample)."""
    sample = training_windows(np.asarray(train, dtype=np.int64), config.window, config.max_train_tokens).size
    best, processed = None, 0
    for r in range(config.restarts):
        model = DiscreteHMM.fit(train, vocab_size, replace(config, restarts=1, seed=config.seed + r))
        processed += sample * len(model.history)
        if best is None or model.history[-1] < best.history[-1]:
            best = model
    return best, processed, sample


def _unknown_notes(corpus: Corpus, data: BaselineDataConfig) -> list[str]:
    """Word level: how many validation words are outside the vocabulary and were mapped to <unk>."""
    tokenizer = corpus.tokenizer
    if not isinstance(tokenizer, WordTokenizer):
        return []
    if data.valid is not None:
        unknown, total = count_unknown_words(data.valid, tokenizer)
        return [f"{unknown:,} of the {total:,} validation words are not in the vocabulary of {len(tokenizer):,} "
                f"and count as {UNK}"] if unknown else []  # fmt: skip
    unknown = int((corpus.valid == tokenizer.unk).sum())
    return [f"{unknown:,} of the {len(corpus.valid):,} held-out validation tokens are {UNK} (words outside the "
            f"vocabulary of {len(tokenizer):,}, or {UNK} in the text)"] if unknown else []  # fmt: skip


def parameter_count(model: Model) -> int:
    """The n-gram's stored probabilities and interpolation weights; the HMM's free parameters."""
    if isinstance(model, DiscreteHMM):
        return model.num_parameters
    return int(sum(len(model.alpha[n]) + len(model.gamma[n]) for n in range(1, model.order + 1)))


# -- run directories ------------------------------------------------------------------------------------


def save_run(out: Path, model: Model, config: dict, tokenizer: Tokenizer, records: list[dict], summary: dict) -> None:
    """Write a baseline run: arrays first, then vocab and config together (checkpoint.save), then the records."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"cannot create {out}: {error.strerror}") from None
    arrays = {name: np.ascontiguousarray(a) for name, a in model.to_arrays().items()}
    checkpoint.atomic_write(out / checkpoint.WEIGHTS, lambda tmp: save_file(arrays, tmp, metadata={"format": "np"}))
    checkpoint.save(out, None, config, vocab=tokenizer.to_json())
    for record in records:
        checkpoint.append_jsonl(out / checkpoint.METRICS, record)
    checkpoint.write_json(out / checkpoint.SUMMARY, summary)


def load_run(run_dir: Path, config: dict | None = None) -> tuple[Model, Tokenizer]:
    """The model and tokenizer of a baseline run; a missing, corrupt or mismatched part is a CheckpointError."""
    run_dir = Path(run_dir)
    config = checkpoint.load_config(run_dir) if config is None else config
    kind = config.get("task")
    if kind not in MODEL_TYPES:
        raise CheckpointError(f"{run_dir} is a {kind!r} run, not a baseline ({', '.join(BASELINE_TASKS)}) run")
    config_from_dict(BaselineDataConfig, config.get("data"), f"{run_dir / checkpoint.CONFIG} data")
    cls = MODEL_TYPES[kind]
    spec = config.get("model")
    if not isinstance(spec, dict) or spec.get("type") != cls.__name__:
        where = run_dir / checkpoint.CONFIG
        raise CheckpointError(f'{where}: a {kind} run has "model": {{"type": "{cls.__name__}", ...}}')
    path = run_dir / checkpoint.WEIGHTS
    if not path.is_file():
        raise CheckpointError(f"{path} is missing")
    try:
        arrays = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path} is corrupt or truncated: {str(error).splitlines()[0][:200]}") from None
    model = cls.from_arrays(arrays)
    tokenizer = load_tokenizer(run_dir)
    if model.vocab_size != len(tokenizer):
        raise CheckpointError(f"{path} has {model.vocab_size} tokens but {run_dir / checkpoint.VOCAB} lists "
                              f"{len(tokenizer)}")  # fmt: skip
    return model, tokenizer


def token_losses(model: Model, ids: np.ndarray) -> np.ndarray:
    """-log p(ids[t] | ids[:t]) of every token: (L,) float64 (token 0 from the model's unconditioned guess)."""
    return -model.log_probs(ids)


# -- what `rnnkit eval` and `rnnkit sample` call (cli.run_task dispatches by config.json's "task") -------------


class BaselineRun:
    """A baseline run as ``rnnkit eval`` and ``rnnkit sample`` see a task: ``name``, ``evaluate_run``,
    ``sample_run``."""

    name = ""

    @classmethod
    def evaluate_run(cls, run_dir: Path, config: dict, args: argparse.Namespace, device) -> dict:
        """``rnnkit eval RUN --data FILE``: the keys an LM run reports (FILE tokenised by the run's tokenizer)."""
        model, tokenizer = load_run(run_dir, config)
        nats, count = model.score(encode_file(args.data, tokenizer))
        return {"task": cls.name, "metrics": {"nats_per_token": nats, **loss_metrics(tokenizer, nats), "tokens": count}}

    @classmethod
    def sample_run(cls, run_dir: Path, config: dict, *, length: int, prime: str | None = None,
                   temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                   num_samples: int = 1, seed: int | None = None) -> Iterator[str]:  # fmt: skip
        """``rnnkit sample RUN``: the text of each sample in turn (one piece for one sample), the prime read
        as ``rnnkit sample`` reads it for an LM run."""
        model, tokenizer = load_run(run_dir, config)
        ids = encode_prime(tokenizer, prime)
        generator = torch.Generator()
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(seed)
        for _ in range(num_samples):
            drawn = model.sample(length, ids, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
            yield tokenizer.decode(drawn.tolist())


class NGramRun(BaselineRun):
    name = "ngram"


class HMMRun(BaselineRun):
    name = "hmm"


def run_task(task: str) -> type[BaselineRun]:
    """The class ``rnnkit eval`` and ``rnnkit sample`` use for a run whose config.json says ``task``."""
    runs = {"ngram": NGramRun, "hmm": HMMRun}
    if task not in runs:
        raise ConfigError(f"unknown baseline {task!r}; available: {', '.join(runs)}")
    return runs[task]
