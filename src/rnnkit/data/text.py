"""Reading text files as a stream of checked UTF-8 chunks, so a corpus of any size fits in memory.

A path may be a file (``.gz`` files are decompressed on the fly) or a folder (its ``*.txt`` and ``*.abc``
files, gzipped or not, in name order, each ending with a newline: ABC tunes are text). Empty files, binary
files and files that are not UTF-8 raise :class:`DataError` naming the file.
"""

from __future__ import annotations

import codecs
import gzip
import os
import zlib
from collections.abc import Iterator
from pathlib import Path

from rnnkit.errors import DataError

CHUNK_BYTES = 1 << 20
FOLDER_SUFFIXES = (".txt", ".txt.gz", ".abc", ".abc.gz")  # what a folder's text files are called


def text_files(path: str | os.PathLike) -> list[Path]:
    """The files a data path names: the file itself, or a folder's text files (FOLDER_SUFFIXES) in name order."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.name.endswith(FOLDER_SUFFIXES) and p.is_file())
        if not files:
            raise DataError(f"{path} is a folder with no .txt (or .abc) files")
        return files
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if not path.is_file():
        raise DataError(f"{path} is not a regular file")
    return [path]


def iter_text(path: str | os.PathLike, chunk_bytes: int = CHUNK_BYTES) -> Iterator[str]:
    """Yield the decoded text of ``path`` (file or folder) in chunks of about ``chunk_bytes``."""
    for file in text_files(path):
        yield from _iter_file(file, chunk_bytes)


def _iter_file(file: Path, chunk_bytes: int) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset, seen_text, last = 0, False, ""
    try:
        f = gzip.open(file, "rb") if file.suffix == ".gz" else open(file, "rb")
    except OSError as error:
        raise DataError(f"{file}: cannot read ({error.strerror})") from None
    with f:
        while True:
            try:
                raw = f.read(chunk_bytes)
            except (OSError, EOFError, zlib.error) as error:
                raise DataError(f"{file}: cannot read ({error})") from None
            if b"\x00" in raw:
                raise DataError(f"{file} looks binary (it has a NUL byte near offset {offset + raw.index(0)})")
            try:
                text = decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as error:
                raise DataError(
                    f"{file} is not UTF-8 text (invalid byte 0x{error.object[error.start]:02x} at offset "
                    f"{offset + error.start})"
                ) from None
            offset += len(raw)
            if text:
                seen_text = True
                last = text
                yield text
            if not raw:
                break
    if not seen_text:
        raise DataError(f"{file} is empty")
    if not last.endswith("\n"):
        yield "\n"  # files end a line, so concatenated files do not run into each other


def iter_lines(path: str | os.PathLike, chunk_bytes: int = CHUNK_BYTES) -> Iterator[str]:
    """Yield the lines of ``path`` without their line ends, streaming."""
    pending = ""
    for chunk in iter_text(path, chunk_bytes):
        lines = (pending + chunk).split("\n")
        pending = lines.pop()
        yield from lines
    if pending:
        yield pending
