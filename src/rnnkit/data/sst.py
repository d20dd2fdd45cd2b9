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
from collections.abc import Iterator

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


def labelled_phrases(
    path: str | os.PathLike, *, binary: bool = False, phrases: bool = True
) -> Iterator[tuple[str, str]]:
    """``(label, text)`` of every distinct labelled phrase of a tree file (only roots with ``phrases=False``).

    ``binary``: SST-2 labels, 0 (labels 0, 1) or 1 (labels 3, 4), neutral phrases dropped.
    """
    seen: set[tuple[str, str]] = set()
    for number, line in enumerate(iter_lines(path), 1):
        if not line.strip():
            continue
        nodes = parse_tree(line, f"{os.fspath(path)}:{number}")
        for label, words in nodes if phrases else nodes[:1]:
            if binary:
                if label == 2:
                    continue
                label = int(label > 2)
            item = (str(label), " ".join(words))
            if item not in seen:
                seen.add(item)
                yield item
