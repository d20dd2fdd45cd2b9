"""``rnnkit serve RUN [RUN ...]``: the web page and JSON API of :mod:`rnnkit.serve`, under uvicorn.

    rnnkit serve runs/shakespeare runs/sst runs/conll runs/sort --port 8000
    rnnkit serve runs/corpora            # a 4-corpus system: its classifier and its generators

Only the run directories named here are served; the server listens on 127.0.0.1 (this machine only)
unless ``--host`` says otherwise. The web server (uvicorn, starlette) is imported inside :func:`main`,
so ``rnnkit --help`` does not pay for it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def add_arguments(parser) -> None:
    """Options of ``rnnkit serve``."""
    parser.add_argument("runs", nargs="+", metavar="RUN",
                        help="run directories (lm, classify, tag, seq2seq) to serve; an `rnnkit corpora --out` "
                        "folder serves its classifier and per-corpus generators")  # fmt: skip
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-concurrent", type=int, default=8, metavar="N",
                        help="generations at once; a request beyond them gets 429 with Retry-After")  # fmt: skip
    parser.add_argument("--max-trainings", type=int, default=1, metavar="N", help="live trainings at once")
    parser.add_argument("--train-budget", type=float, default=300.0, metavar="SECONDS",
                        help="the longest a live training may run")  # fmt: skip
    parser.add_argument("--save-dir", default="runs", metavar="DIR", help="saved live trainings go to DIR/live-ID")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per model call (1: many small calls at once run best)")  # fmt: skip
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="info")


def corpora_parts(folder: Path):
    """The run paths, names and :class:`~rnnkit.serve.CorporaSet` of a 4-corpus system's folder."""
    from rnnkit import checkpoint
    from rnnkit.apps.corpora import CorporaConfig
    from rnnkit.config import config_from_dict
    from rnnkit.errors import ConfigError
    from rnnkit.serve import CorporaSet

    config = config_from_dict(CorporaConfig, json.loads((folder / "corpora.json").read_text(encoding="utf-8")),
                              str(folder / "corpora.json"))  # fmt: skip
    name = folder.name or str(folder)
    classifier = folder / "classifier"
    if not (classifier / checkpoint.CONFIG).is_file():
        raise ConfigError(f"{folder} is a corpora folder without a trained classifier (run rnnkit corpora first)")
    labels = checkpoint.load_vocab(classifier).get("labels", [])
    generators = {label: folder / "generators" / label for label in labels}
    generators = {label: path for label, path in generators.items() if (path / checkpoint.CONFIG).is_file()}
    report_path, passages_path = folder / "report.json", folder / "passages.jsonl"
    report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.is_file() else None
    passages = []
    if passages_path.is_file():
        shown: dict[tuple, int] = {}
        for line in passages_path.read_text(encoding="utf-8").splitlines():
            p = json.loads(line)
            key = (p.get("generator"), p.get("corpus"))
            if shown.get(key, 0) < 2:  # two of each kind of generator and corpus
                shown[key] = shown.get(key, 0) + 1
                passages.append({k: p.get(k) for k in ("generator", "corpus", "tokens", "predicted")})
    paths = [classifier, *generators.values()]
    names = [f"{name}/classifier", *(f"{name}/{label}" for label in generators)]
    corpora = CorporaSet(name, names[0], {label: f"{name}/{label}" for label in generators}, config.window,
                         config.temperature, report and report.get("metrics"), tuple(passages))  # fmt: skip
    return paths, names, corpora


def collect_runs(folders: list[str]):
    """Load the runs of ``rnnkit serve RUN [RUN ...]``: run directories and 4-corpus folders."""
    from rnnkit.serve import load_runs
    from rnnkit.serve.runs import run_names

    paths, names, corpora = [], [], []
    plain = [Path(p) for p in folders if not (Path(p) / "corpora.json").is_file()]
    for path, name in zip(plain, run_names(plain)):
        paths.append(path)
        names.append(name)
    for folder in (Path(p) for p in folders if (Path(p) / "corpora.json").is_file()):
        more_paths, more_names, parts = corpora_parts(folder)
        paths += more_paths
        names += more_names
        corpora.append(parts)
    return load_runs(paths, names=names, corpora=corpora)


def main(args) -> int:
    import torch
    import uvicorn

    from rnnkit.errors import ConfigError
    from rnnkit.serve import Limits, create_app

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be in [0, 65535], got {args.port}")
    for option in ("max_concurrent", "max_trainings", "threads"):
        if getattr(args, option) < 1:
            raise ConfigError(f"--{option.replace('_', '-')} must be >= 1, got {getattr(args, option)}")
    if not args.train_budget > 0:
        raise ConfigError(f"--train-budget must be > 0, got {args.train_budget}")
    torch.set_num_threads(args.threads)
    runs = collect_runs(args.runs)
    limits = Limits(max_concurrent=args.max_concurrent, max_trainings=args.max_trainings,
                    max_train_seconds=args.train_budget)  # fmt: skip
    app = create_app(runs, limits=limits, save_dir=args.save_dir)
    print(f"rnnkit serve: {len(runs)} run(s) ({', '.join(r.name for r in runs)}) at http://{args.host}:{args.port}/",
          file=sys.stderr)  # fmt: skip
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"rnnkit serve: listening on {args.host}: anyone who reaches it can use it (no authentication)",
              file=sys.stderr)  # fmt: skip
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, timeout_graceful_shutdown=5)
    return 0
