"""``python -m rnnkit_onnx OUT.onnx --vocab RUN/vocab.json [options]``: sample text without PyTorch.

The options and the output are ``rnnkit sample``'s (``rnnkit sample --onnx`` calls :func:`run`). Mistakes
print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys

from rnnkit_onnx.sampler import LanguageModel, Vocabulary, sample_text, write_samples


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rnnkit_onnx", description=__doc__.splitlines()[0])
    parser.add_argument("onnx", metavar="OUT.onnx", help="an lm run exported by rnnkit export (its .step.onnx beside)")
    parser.add_argument("--vocab", required=True, metavar="RUN/vocab.json", help="the run's vocabulary")
    parser.add_argument("--prime", help="text the samples start from")
    parser.add_argument("--length", type=positive, default=500, help="tokens to generate")
    parser.add_argument("--temperature", type=float, default=1.0, help="0: greedy")
    parser.add_argument("--top-k", type=positive)
    parser.add_argument("--top-p", type=float)
    parser.add_argument("--num-samples", type=positive, default=1, help="samples generated together as one batch")
    parser.add_argument("--seed", type=int, help="same seed, same text (numpy's PCG64 draws, not torch's)")
    parser.add_argument("--threads", type=positive, help="onnxruntime intra-op threads")
    parser.add_argument("--json", action="store_true")
    return parser


def run(args: argparse.Namespace, out=None) -> int:
    """Sample as ``args`` say and write to ``out`` (stdout) what ``rnnkit sample`` writes; ValueError for a bad
    option or file."""
    out = out or sys.stdout
    model = LanguageModel(args.onnx, getattr(args, "threads", None))
    vocab = Vocabulary.load(args.vocab)
    pieces = sample_text(model, vocab, length=args.length, prime=args.prime, temperature=args.temperature,
                         top_k=args.top_k, top_p=args.top_p, num_samples=args.num_samples, seed=args.seed)  # fmt: skip
    write_samples(pieces, args.prime or "", num_samples=args.num_samples, length=args.length, task="lm",
                  as_json=args.json, out=out)  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except ValueError as error:
        print(f"rnnkit_onnx: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
