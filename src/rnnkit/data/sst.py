"""The Stanford Sentiment Treebank's trees (Socher et al. 2013) as labelled phrases.

Each line of ``trees/{train,dev,test}.txt`` is a binarised parse tree whose every node carries a
sentiment label 0-4: ``(3 (2 It) (4 (2 's) (3 (2 a) (3 lovely) (2 film))))``. Training on every
labelled phrase, not only the whole sentences, is how the SST results of Socher et al. 2013, Kim 2014
and Tai et al. 2015 were obtained. Phrases are written as ``stsa.*`` (Kim 2014) writes its sentences,
lowercased with the tree's tokens kept (``-lrb-``), so a model trained on them reads those files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Container, Iterator

from rnnkit.data.text import iter_lines
from rnnkit.errors import DataError

TOKEN = re.compile(r"\(|\)|[^\s()]+")


def parse_tree(line: str, where: str = "tree") -> list[tuple[int, list[str]]]:
    """Every node of one tree as ``(label, words of its span)``, the root first."""
    tokens = TOKEN.findall(line)
    nodes: list[tuple[int, list[str]]] = []
    position = 0

    def node() -> list[str]:
        nonlocal position
        if position + 1 >= len(tokens) or tokens[position] != "(" or not tokens[position + 1].isdigit():
            raise DataError(f"{where}: malformed tree near token {position + 1}")
        label = int(tokens[position + 1])
        position += 2
        slot = len(nodes)
        nodes.append((label, []))
        words: list[str] = []
        while position < len(tokens) and tokens[position] != ")":
            if tokens[position] == "(":
                words += node()
            else:
                word = tokens[position]
                words.append(word.lower())
                position += 1
        if position >= len(tokens):
            raise DataError(f"{where}: unbalanced parentheses")
        position += 1
        nodes[slot] = (label, words)
        return words

    node()
    if position != len(tokens):
        raise DataError(f"{where}: text after the end of the tree")
    return nodes


def looks_like_trees(line: str) -> bool:
    """Whether a line opens a labelled tree, ``(3 ...``, rather than a labelled line ``3 text``."""
    return re.match(r"\(\s*\d", line.lstrip()) is not None


def tree_examples(path: str | os.PathLike, *, binary: bool = False, phrases: bool = True,
                  keep: Container[int] | None = None) -> Iterator[tuple[str, str, str]]:  # fmt: skip
    """``(label, text, "FILE:LINE")`` of the trees of a tree file: every distinct labelled phrase, or only
    the roots (the sentences, each one, as they come) with ``phrases=False``.

    ``binary``: SST-2 labels, 0 (labels 0, 1) or 1 (labels 3, 4), neutral phrases dropped.
    ``keep``: the trees to read, by their index among the file's trees (0 for the first); all without it.
    """
    seen: set[tuple[str, str]] = set()
    index = -1
    for number, line in enumerate(iter_lines(path), 1):
        if not line.strip():
            continue
        index += 1
        if keep is not None and index not in keep:
            continue
        where = f"{os.fspath(path)}:{number}"
        nodes = parse_tree(line, where)
        for label, words in nodes if phrases else nodes[:1]:
            if binary:
                if label == 2:
                    continue
                label = int(label > 2)
            item = (str(label), " ".join(words))
            if phrases:
                if item in seen:
                    continue
                seen.add(item)
            yield (*item, where)


def count_trees(path: str | os.PathLike) -> int:
    """How many trees a tree file holds (its non-blank lines)."""
    return sum(1 for line in iter_lines(path) if line.strip())


def labelled_phrases(
    path: str | os.PathLike, *, binary: bool = False, phrases: bool = True
) -> Iterator[tuple[str, str]]:
    """``(label, text)`` of every distinct labelled phrase of a tree file (only roots with ``phrases=False``)."""
    for label, text, _ in tree_examples(path, binary=binary, phrases=phrases):
        yield label, text
