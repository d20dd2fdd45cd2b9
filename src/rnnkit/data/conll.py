"""CoNLL files for sequence labelling: reading, tag schemes (IOB1, BIO, BIOES, IO) and word features.

A CoNLL file has one word per line, its columns separated by spaces with the word first and the tag
last (CoNLL-2003: ``WORD POS CHUNK NER``), a blank line between sentences, and ``-DOCSTART-`` lines
between documents. CoNLL-2003 writes its tags in IOB1: ``I-X`` everywhere, ``B-X`` only where an
entity follows another of the same type. Taggers learn BIO (every entity starts with ``B-X``) or BIOES
(``B-X I-X* E-X`` or ``S-X``) better (Ratinov & Roth 2009; Lample et al. 2016), so tags are converted.

Malformed input raises :class:`DataError` naming the file and line.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from rnnkit.data.text import iter_lines
from rnnkit.errors import DataError

SCHEMES = ("iob1", "bio", "bioes", "io")
PREFIXES = {"iob1": "IB", "bio": "BI", "bioes": "BIES", "io": "I"}
TAG_PATTERN = re.compile(r"^(?:O|([A-Z])-(\S+))$")


@dataclass
class Sentence:
    """One sentence: its words and tags, and the file and line of its first word (for error messages)."""

    words: list[str]
    tags: list[str]
    file: str = ""
    line: int = 0

    def where(self, index: int = 0) -> str:
        """``FILE:LINE`` of word ``index`` (a sentence's words are on consecutive lines)."""
        return f"{self.file}:{self.line + index}"


def check_tag(tag: str, scheme: str, where: str) -> None:
    """Raise DataError unless ``tag`` is ``O`` or ``P-TYPE`` with a prefix P that ``scheme`` uses."""
    match = TAG_PATTERN.match(tag)
    if match is None or (match.group(1) is not None and match.group(1) not in PREFIXES[scheme]):
        prefixes = "/".join(PREFIXES[scheme])
        raise DataError(f"{where}: unknown tag {tag!r} for the {scheme.upper()} scheme (expected O or {prefixes}-TYPE)")


def read_conll(path: str | os.PathLike, scheme: str = "iob1", *, min_columns: int = 2) -> list[Sentence]:
    """Read a CoNLL file: every word line has as many columns as the first; tags are checked against
    ``scheme``. ``-DOCSTART-`` lines end a sentence and are skipped."""
    if scheme not in SCHEMES:
        raise DataError(f"tag scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}")
    sentences: list[Sentence] = []
    words: list[str] = []
    tags: list[str] = []
    columns = None
    start = 0

    def close() -> None:
        if words:
            sentences.append(Sentence(list(words), list(tags), os.fspath(path), start))
            words.clear()
            tags.clear()

    for number, line in enumerate(iter_lines(path), 1):
        fields = line.split()
        if not fields:
            close()
            continue
        where = f"{os.fspath(path)}:{number}"
        if fields[0] == "-DOCSTART-":
            close()
            continue
        if columns is None:
            if len(fields) < min_columns:
                raise DataError(f"{where}: a CoNLL line needs at least {min_columns} columns (word ... tag), "
                                f"got {len(fields)}: {line.strip()!r}")  # fmt: skip
            columns = len(fields)
        elif len(fields) != columns:
            raise DataError(f"{where}: expected {columns} columns as on the first word line, got {len(fields)}: "
                            f"{line.strip()!r}")  # fmt: skip
        check_tag(fields[-1], scheme, where)
        if not words:
            start = number
        words.append(fields[0])
        tags.append(fields[-1])
    close()
    if not sentences:
        raise DataError(f"{os.fspath(path)} holds no sentences")
    return sentences


# -- tag schemes ----------------------------------------------------------------------------------


def _parts(tag: str) -> tuple[str, str]:
    return ("O", "") if tag == "O" else (tag[0], tag[2:])


def iob1_to_bio(tags: list[str]) -> list[str]:
    """IOB1 -> BIO: an ``I-X`` that does not continue an entity of type X becomes ``B-X``."""
    out = []
    prev_kind = ""
    for tag in tags:
        prefix, kind = _parts(tag)
        if prefix == "I" and prev_kind != kind:
            tag = "B-" + kind
        out.append(tag)
        prev_kind = kind
    return out


def bio_to_bioes(tags: list[str]) -> list[str]:
    """BIO -> BIOES: an entity of one word is ``S-X``; the last word of a longer one is ``E-X``."""
    out = []
    for t, tag in enumerate(tags):
        prefix, kind = _parts(tag)
        continues = t + 1 < len(tags) and tags[t + 1] == "I-" + kind
        if prefix == "B":
            out.append(tag if continues else "S-" + kind)
        elif prefix == "I":
            out.append(tag if continues else "E-" + kind)
        else:
            out.append(tag)
    return out


def bioes_to_bio(tags: list[str]) -> list[str]:
    """BIOES -> BIO: ``S-X`` -> ``B-X``, ``E-X`` -> ``I-X``."""
    table = {"S": "B", "E": "I"}
    return [tag if tag == "O" else table.get(tag[0], tag[0]) + tag[1:] for tag in tags]


def to_io(tags: list[str]) -> list[str]:
    """Any scheme -> IO: every entity word is ``I-X``."""
    return [tag if tag == "O" else "I-" + _parts(tag)[1] for tag in tags]


def convert(tags: list[str], source: str, target: str) -> list[str]:
    """Convert a sentence's tags between schemes (``io`` can be a target only: it loses boundaries)."""
    if source == target:
        return list(tags)
    if target == "io":
        return to_io(tags)
    bio = {"iob1": iob1_to_bio, "bio": list, "bioes": bioes_to_bio}[source](tags)
    if target == "bio":
        return bio
    if target == "bioes":
        return bio_to_bioes(bio)
    raise DataError(f"cannot convert tags from {source} to {target}")


def names_only(tags: list[str]) -> list[str]:
    """The course notes' binary task: ``I-PER`` for words of a person's name, ``O`` for the rest."""
    return ["I-PER" if tag != "O" and _parts(tag)[1] == "PER" else "O" for tag in tags]


# -- word features --------------------------------------------------------------------------------

CASINGS = ("<pad>", "numeric", "mainly_numeric", "lower", "upper", "initial_upper", "has_digit", "other")


def casing(word: str) -> int:
    """The casing class of a word (Collobert et al. 2011; Reimers & Gurevych 2017), an id in CASINGS.

    Lower-cased word embeddings lose capitals, the strongest single cue for names; this puts it back.
    """
    digits = sum(c.isdigit() for c in word)
    if word.isdigit():
        return 1
    if digits / max(len(word), 1) > 0.5:
        return 2
    if word.islower():
        return 3
    if word.isupper():
        return 4
    if word[:1].isupper():
        return 5
    if digits:
        return 6
    return 7


WORD_PATTERN = re.compile(r"(?:[A-Za-z]\.){2,}|\w+(?:[-'’.]\w+)*|[^\w\s]")


def split_words(text: str) -> list[str]:
    """Words of raw text for tagging: at whitespace and punctuation, keeping ``U.S.``, ``New-York``, ``O'Neil``."""
    return WORD_PATTERN.findall(text)
