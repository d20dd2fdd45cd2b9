"""Labelled text for classification: a folder with one text file per class, a file of labelled lines,
or a file of sentiment trees.

Three layouts, told apart by whether the path is a folder and by the first line of a file::

    corpora/                      one file per class; the class is the file name without .txt;
      austen.txt                  the text is cut into consecutive windows of ``window`` tokens
      kjv.txt                     (a file shorter than one window gives one shorter example)
    stsa.binary.train             one example per line: LABEL<space>text (Kim 2014's SST files)
    trees/train.txt               one labelled tree per line, (3 (2 It) (4 ...)) (the Stanford Sentiment
                                  Treebank, :mod:`rnnkit.data.sst`): every labelled phrase to train on,
                                  or only the sentences (the roots) to score

Texts become id arrays with the tokenizers of :mod:`rnnkit.data.tokenizers`: at word level a line
end is ``<eos>`` inside a window (line layout tells corpora apart) and labelled lines get no
``<eos>``; at character level characters the model never saw are dropped (a classifier should not
refuse a text over one odd character). Bad input raises :class:`DataError` naming file and line.
"""

from __future__ import annotations

import os
from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnkit.data.sst import looks_like_trees, tree_examples
from rnnkit.data.text import iter_lines, iter_text, text_files
from rnnkit.data.tokenizers import CharTokenizer, Tokenizer, WordTokenizer, id_dtype
from rnnkit.errors import DataError

LAYOUTS = ("folder", "lines", "trees")
TREE_LABELS = ("binary", "fine")  # SST-2 (neutral dropped) or the five classes 0-4 of SST-5


@dataclass
class Labelled:
    """Examples as token id arrays with their class ids (indices into ``labels``)."""

    sequences: list[np.ndarray]
    targets: np.ndarray  # (N,) int64
    labels: list[str]

    def __len__(self) -> int:
        return len(self.sequences)

    def subset(self, indices: Iterable[int]) -> Labelled:
        indices = list(indices)
        return Labelled([self.sequences[i] for i in indices], self.targets[indices], self.labels)


def class_name(file: Path) -> str:
    name = file.name
    for suffix in (".txt.gz", ".txt"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def class_files(folder: str | os.PathLike, *, need: int = 2) -> dict[str, Path]:
    """``{class: file}`` of a class folder; it must hold at least ``need`` class files."""
    files = {class_name(f): f for f in text_files(folder)}
    if len(files) < need:
        raise DataError(
            f"{os.fspath(folder)} holds {len(files)} class file ({', '.join(files)}); a classifier needs at least "
            f"{need} classes, one .txt file each"
        )
    return files


def layout_of(path: str | os.PathLike) -> str:
    """"folder", "trees" (the first non-blank line opens a labelled tree) or "lines"."""
    if Path(path).is_dir():
        return "folder"
    for line in iter_lines(path):
        if line.strip():
            return "trees" if looks_like_trees(line) else "lines"
    return "lines"


def read_labelled_lines(path: str | os.PathLike) -> Iterator[tuple[str, str, str]]:
    """Yield ``(label, text, "FILE:LINE")`` for each non-blank line ``LABEL<space>text``."""
    for number, line in enumerate(iter_lines(path), 1):
        if not line.strip():
            continue
        label, _, text = line.strip().partition(" ")
        if not text.strip():
            raise DataError(
                f"{os.fspath(path)}:{number}: a labelled line needs a label, a space and text, got {line.strip()!r}"
            )
        yield label, text.strip(), f"{os.fspath(path)}:{number}"


def sort_labels(labels: Iterable[str]) -> list[str]:
    """Labels in numeric order when they are all integers ("0" < "2" < "10"), else in text order."""
    labels = set(labels)
    if all(label.lstrip("-").isdigit() for label in labels):
        return sorted(labels, key=int)
    return sorted(labels)


def read_examples(path: str | os.PathLike, *, tree_labels: str = "binary", phrases: bool = False,
                  trees: Container[int] | None = None) -> Iterator[tuple[str, str, str]]:  # fmt: skip
    """``(label, text, "FILE:LINE")`` of a file of labelled lines or of trees. Of trees: every distinct
    labelled phrase with ``phrases``, else the sentences; only the trees numbered in ``trees`` if given."""
    if layout_of(path) == "lines":
        return read_labelled_lines(path)
    if tree_labels not in TREE_LABELS:
        raise DataError(f"tree labels must be one of {', '.join(TREE_LABELS)}, got {tree_labels!r}")
    return tree_examples(path, binary=tree_labels == "binary", phrases=phrases, keep=trees)


def lines_of(path: str | os.PathLike) -> Iterator[str]:
    """The text lines of a data path (any layout, labels left out), for building a vocabulary."""
    layout = layout_of(path)
    if layout == "folder":
        for file in class_files(path).values():
            yield from iter_lines(file)
    elif layout == "trees":
        for _, text, _ in tree_examples(path, phrases=False):  # a tree's phrases hold its sentence's words
            yield text
    else:
        for _, text, _ in read_labelled_lines(path):
            yield text


def build_tokenizer(paths: list, level: str, *, vocab_size: int | None = 20000, word_split: str = "whitespace",
                    lowercase: bool = False) -> Tokenizer:  # fmt: skip
    """A tokenizer from the texts of ``paths``. Characters come from all of them (so validation text can
    be scored, as the lm task does); words from the first (training) path only."""
    if level == "char":
        return CharTokenizer.build(["\n", *(line for path in paths for line in lines_of(path))])
    if level != "word":
        raise DataError(f"level must be 'char' or 'word', got {level!r}")
    return WordTokenizer.build(lines_of(paths[0]), max_size=vocab_size, split=word_split, lowercase=lowercase)


def encode_text(tokenizer: Tokenizer, text: str, *, line_ends: bool) -> np.ndarray:
    """Ids of ``text``: unknown words are ``<unk>``, unknown characters are dropped."""
    if isinstance(tokenizer, CharTokenizer):
        unknown = set(text) - tokenizer.index.keys()
        if unknown:
            text = text.translate({ord(c): None for c in unknown})
        return tokenizer.encode(text)
    if line_ends:
        return tokenizer.encode(text)
    return np.array(tokenizer.encode_line(text.replace("\n", " "), eos=False), dtype=id_dtype(len(tokenizer)))


def encode_file(tokenizer: Tokenizer, file: Path) -> np.ndarray:
    if isinstance(tokenizer, CharTokenizer):
        parts = [encode_text(tokenizer, chunk, line_ends=True) for chunk in iter_text(file)]
        return np.concatenate(parts)
    return tokenizer.encode_lines(iter_lines(file))


def has_text(tokenizer: Tokenizer, ids: np.ndarray) -> bool:
    """Whether ``ids`` hold more than line ends and spaces."""
    if isinstance(tokenizer, CharTokenizer):
        blank = [i for i, c in enumerate(tokenizer.tokens) if c.isspace()]
        return bool(len(ids)) and not np.isin(ids, blank).all()
    return bool((ids != tokenizer.eos).any())


def windows(ids: np.ndarray, window: int) -> list[np.ndarray]:
    """Consecutive, non-overlapping windows of ``window`` tokens; the rest is dropped, unless the text
    is shorter than one window, which then gives one shorter example."""
    if len(ids) < window:
        return [ids] if len(ids) else []
    return [ids[k * window : (k + 1) * window] for k in range(len(ids) // window)]


def load_labelled(path: str | os.PathLike, tokenizer: Tokenizer, *, window: int = 50,
                  labels: list[str] | None = None, tree_labels: str = "binary", phrases: bool = False,
                  trees: Container[int] | None = None) -> Labelled:  # fmt: skip
    """Encode a data path of any layout. ``labels`` fixes the class list (a run's); without it the
    classes are those found. A class or label outside a given ``labels`` raises DataError.
    ``tree_labels``, ``phrases`` and ``trees`` choose what a tree file gives (:func:`read_examples`)."""
    path = Path(path)
    sequences: list[np.ndarray] = []
    names: list[str] = []
    if path.is_dir():
        files = class_files(path, need=2 if labels is None else 1)
        for name, file in files.items():
            if labels is not None and name not in labels:
                raise DataError(f"{file}: class {name!r} is not one of the model's classes ({', '.join(labels)})")
            ids = encode_file(tokenizer, file)
            if not has_text(tokenizer, ids):
                raise DataError(f"{file} holds no tokens, only blank lines; a class file must hold text")
            cut = windows(ids, window)
            sequences += cut
            names += [name] * len(cut)
        found = sorted(files) if labels is None else labels
    else:
        for label, text, where in read_examples(path, tree_labels=tree_labels, phrases=phrases, trees=trees):
            if labels is not None and label not in labels:
                raise DataError(f"{where}: label {label!r} is not one of the model's labels ({', '.join(labels)})")
            ids = encode_text(tokenizer, text, line_ends=False)
            if len(ids) == 0:
                raise DataError(f"{where}: the text has no token the model knows")
            sequences.append(ids)
            names.append(label)
        if not sequences:
            raise DataError(f"{path} holds no labelled lines" if layout_of(path) == "lines" else
                            f"{path} holds no labelled tree the run reads (SST-2 drops neutral ones)")
        found = sort_labels(names) if labels is None else labels
        if labels is None and len(found) < 2:
            raise DataError(f"{path}: every line has the label {found[0]!r}; a classifier needs at least two labels")
    index = {name: i for i, name in enumerate(found)}
    return Labelled(sequences, np.array([index[n] for n in names], dtype=np.int64), list(found))
