"""Tiny runs of every served task, trained in a few steps through the command line, for the serve tests
(tests/test_serve.py and tests/browser/). Each builder writes its own small data; nothing from ../shared."""

from __future__ import annotations

import json
import random
from dataclasses import asdict
from pathlib import Path

from rnnkit.cli import main

WORDS = {
    "sea": "wave ship sail salt tide harbour anchor storm gull deck".split(),
    "farm": "cow wheat barn plough field hay tractor goat hen mud".split(),
}
FIRST = ["John", "Mary", "Peter", "Anna", "Karl", "Olga"]
LAST = ["Smith", "Brown", "Meyer", "Novak"]
CITIES = [["Paris"], ["London"], ["New", "York"], ["Berlin"]]
ORGS = [["Acme", "Corp"], ["United", "Nations"]]


def lm_text(seed: int = 0, lines: int = 300) -> str:
    rng = random.Random(seed)
    words = WORDS["sea"] + WORDS["farm"]
    return "".join(" ".join(rng.choice(words) for _ in range(rng.randint(3, 8))) + ".\n" for _ in range(lines))


def train_lm(out: Path, text: str, steps: int = 30, hidden: int = 32) -> Path:
    data = out.parent / f"{out.name}.txt"
    data.write_text(text, encoding="utf-8")
    code = main(["train", "lm", "--data", str(data), "--out", str(out), "--max-steps", str(steps), "--hidden-size",
                 str(hidden), "--num-layers", "1", "--embedding-size", "16", "--batch-size", "8", "--seq-len", "32",
                 "--eval-every", str(steps), "--quiet"])  # fmt: skip
    assert code == 0
    return out


def class_folder(root: Path, lines: int = 80, seed: int = 0) -> Path:
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for label, words in WORDS.items():
        body = "".join(" ".join(rng.choice(words) for _ in range(8)) + "\n" for _ in range(lines))
        (root / f"{label}.txt").write_text(body, encoding="utf-8")
    return root


def train_classifier(out: Path, folder: Path, steps: int = 40) -> Path:
    code = main(["train", "classify", "--train", str(folder), "--window", "10", "--out", str(out), "--max-steps",
                 str(steps), "--hidden-size", "24", "--embedding-size", "16", "--batch-size", "16",
                 "--quiet"])  # fmt: skip
    assert code == 0
    return out


def conll(path: Path, sentences: int = 200, seed: int = 0) -> Path:
    """A CoNLL-2003-like file in IOB1: people who visit places or join organisations."""
    rng = random.Random(seed)
    lines = ["-DOCSTART- -X- -X- O", ""]
    for _ in range(sentences):
        words = [(w, "I-PER") for w in [rng.choice(FIRST)] + ([rng.choice(LAST)] if rng.random() < 0.6 else [])]
        if rng.random() < 0.5:
            words += [(rng.choice(["visited", "left", "saw"]), "O")] + [(w, "I-LOC") for w in rng.choice(CITIES)]
        else:
            words += [("joined", "O"), ("the", "O")] + [(w, "I-ORG") for w in rng.choice(ORGS)]
        lines += [f"{w} NN I-NP {t}" for w, t in words + [(".", "O")]] + [""]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def train_tagger(out: Path, steps: int = 80) -> Path:
    data = conll(out.parent / f"{out.name}.conll")
    code = main(["train", "tag", "--train", str(data), "--out", str(out), "--max-steps", str(steps), "--hidden-size",
                 "24", "--embedding-size", "16", "--char-embedding-size", "8", "--char-hidden-size", "8",
                 "--batch-size", "16", "--lr", "0.01", "--eval-every", str(steps), "--quiet"])  # fmt: skip
    assert code == 0
    return out


def train_seq2seq(out: Path, steps: int = 60) -> Path:
    code = main(["train", "seq2seq", "--task", "copy", "--length", "5", "--attention", "luong", "--lr", "0.01",
                 "--epoch-size", str(steps), "--max-steps", str(steps), "--out", str(out), "--hidden-size", "32",
                 "--embedding-size", "16", "--batch-size", "32", "--valid-size", "50", "--test-size", "50",
                 "--quiet"])  # fmt: skip
    assert code == 0
    return out


def build_all(root: Path) -> dict[str, Path]:
    """One run of each served task under ``root``: {"lm", "classify", "tag", "seq2seq"}."""
    root.mkdir(parents=True, exist_ok=True)
    return {
        "lm": train_lm(root / "lm", lm_text()),
        "classify": train_classifier(root / "classify", class_folder(root / "classes")),
        "tag": train_tagger(root / "tag"),
        "seq2seq": train_seq2seq(root / "seq2seq"),
    }


def build_corpora(root: Path) -> Path:
    """A 4-corpus system's folder (here two corpora) as ``rnnkit corpora --out`` lays it out."""
    from rnnkit.apps.corpora import CorporaConfig

    folder = class_folder(root / "data", lines=60, seed=1)
    out = root / "corpora"
    (out / "generators").mkdir(parents=True)
    (out / "corpora.json").write_text(json.dumps(asdict(CorporaConfig(data=str(folder), out=str(out), window=10))))
    train_classifier(out / "classifier", folder)
    for name in WORDS:
        train_lm(out / "generators" / name, (folder / f"{name}.txt").read_text(encoding="utf-8"), steps=20)
    return out


class LiveServer:
    """``app`` under uvicorn on 127.0.0.1 (a free port) in a thread: ``with LiveServer(app) as url: ...``."""

    def __init__(self, app) -> None:
        import socket
        import threading

        import uvicorn

        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def __enter__(self) -> str:
        import time

        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()


def slow_generation(monkeypatch, delay: float = 0.005) -> dict:
    """Make every served generation sample one token per ``delay`` seconds, as a large model would, and
    record how many steps it yielded and whether it was closed (``{"yielded", "closed"}``)."""
    import time

    from rnnkit.serve import generation

    seen = {"yielded": 0, "closed": 0}
    real = generation.iter_generate

    def slow(*args, **kwargs):
        try:
            for step in real(*args, **kwargs):
                time.sleep(delay)
                seen["yielded"] += 1
                yield step
        finally:
            seen["closed"] += 1

    monkeypatch.setattr(generation, "iter_generate", slow)
    return seen


def serve_app(runs: dict[str, Path], save_dir: Path, **limits):
    """The app over :func:`build_all`'s runs named by their task, and :func:`build_corpora`'s system
    (``runs["corpora"]``) as ``rnnkit serve`` finds it."""
    from rnnkit.apps.serve import corpora_parts
    from rnnkit.serve import Limits, create_app, load_runs

    paths, names, corpora = corpora_parts(runs["corpora"])
    tasks = ["lm", "classify", "tag", "seq2seq"]
    served = load_runs([runs[k] for k in tasks] + paths, names=tasks + names, corpora=[corpora])
    return create_app(served, limits=Limits(**limits), save_dir=save_dir)
