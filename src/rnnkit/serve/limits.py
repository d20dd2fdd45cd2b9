"""What a request may ask of the server, and reading a request's JSON against it.

Every bad request becomes a :class:`RequestError`: an HTTP status (4xx) and a one-line message that
names the field, which the app sends as ``{"error": "...", "field": "..."}``. The readers here check
types strictly (``true`` is not an integer, ``"0.8"`` is not a number, NaN and infinities are not
numbers) and reject keys a route does not know, so a typo is an error instead of a silent default.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from rnnkit.errors import ConfigError


@dataclass(frozen=True)
class Limits:
    """The server's limits; ``rnnkit serve`` sets ``max_concurrent`` from ``--max-concurrent``.

    Lengths of text are in characters, generation lengths in tokens, sizes in bytes.
    """

    max_prime_chars: int = 2000  # prime of /api/generate and the text of /api/next
    max_input_chars: int = 5000  # text of /api/classify, /api/tag, /api/seq2seq
    max_texts: int = 16  # texts of one /api/classify request
    max_length: int = 2000  # tokens generated per sample
    max_samples: int = 8  # samples of one /api/generate request
    max_concurrent: int = 8  # generations at once (streamed or not); beyond it: 429
    max_body_bytes: int = 64 * 1024  # any JSON request
    max_upload_bytes: int = 1024 * 1024  # the text of /api/train
    min_train_chars: int = 500  # shorter texts cannot fill a validation split and a batch
    max_trainings: int = 1  # live trainings at once; beyond it: 429
    max_train_seconds: float = 300.0  # budget of one live training
    max_train_hidden: int = 256  # size cap of the live model
    max_train_layers: int = 2
    max_jobs_kept: int = 20  # finished trainings remembered (their records and directories)
    retry_after_s: int = 1  # the Retry-After of a 429

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"serve limit {name} must be a number > 0, got {value!r}")

    def public(self) -> dict:
        """What the page needs to know (its inputs' bounds)."""
        return dict(self.__dict__)


class RequestError(Exception):
    """A bad request: ``status`` (4xx), ``message`` (one line naming the problem), ``field`` (or None)."""

    def __init__(self, message: str, *, field: str | None = None, status: int = 400,
                 headers: dict[str, str] | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.message, self.field, self.status, self.headers = message, field, status, headers or {}

    def body(self) -> dict:
        return {"error": self.message} if self.field is None else {"error": self.message, "field": self.field}


def parse_json(body: bytes) -> dict:
    """The JSON object of a request body; RequestError for malformed JSON or another type.

    NaN and Infinity (which Python's json module accepts) are read as floats so that the field's own
    check names them.
    """
    if not body.strip():
        raise RequestError("the request body is empty; send a JSON object", field="body")
    try:
        payload = json.loads(body.decode("utf-8"), parse_constant=float)
    except UnicodeDecodeError:
        raise RequestError("the request body is not UTF-8 text", field="body", status=400) from None
    except json.JSONDecodeError as error:
        raise RequestError(f"malformed JSON: {error.msg} at line {error.lineno} column {error.colno}",
                           field="body") from None  # fmt: skip
    if not isinstance(payload, dict):
        raise RequestError(f"the request body must be a JSON object, got {type(payload).__name__}", field="body")
    return payload


class Fields:
    """Read the fields of one request's JSON object; :meth:`done` rejects the keys nobody read."""

    def __init__(self, payload: dict) -> None:
        self.payload, self.read = payload, set()

    def _get(self, name: str) -> Any:
        self.read.add(name)
        return self.payload.get(name)

    def done(self) -> None:
        unknown = sorted(set(self.payload) - self.read)
        if unknown:
            raise RequestError(f"unknown field {unknown[0]!r}; this route reads {', '.join(sorted(self.read))}",
                               field=unknown[0])  # fmt: skip

    def string(self, name: str, *, default: str | None = None, max_chars: int | None = None,
               required: bool = False, nonblank: bool = False) -> str | None:  # fmt: skip
        value = self._get(name)
        if value is None:
            if required:
                raise RequestError(f"{name} is required", field=name)
            return default
        if not isinstance(value, str):
            raise RequestError(f"{name} must be a string, got {json.dumps(value)[:40]}", field=name)
        if max_chars is not None and len(value) > max_chars:
            raise RequestError(f"{name} has {len(value)} characters; the limit is {max_chars}", field=name,
                               status=413)  # fmt: skip
        if nonblank and not value.strip():
            raise RequestError(f"{name} is empty", field=name)
        return value

    def integer(self, name: str, *, default: int | None = None, low: int | None = None,
                high: int | None = None) -> int | None:  # fmt: skip
        value = self._get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise RequestError(f"{name} must be an integer, got {_show(value)}", field=name)
        if (low is not None and value < low) or (high is not None and value > high):
            raise RequestError(f"{name} must be {_range(low, high)}, got {value}", field=name)
        return value

    def number(self, name: str, *, default: float | None = None, positive: bool = False, low: float | None = None,
               high: float | None = None, low_open: bool = False) -> float | None:  # fmt: skip
        """A finite number; ``positive``: > 0; ``low_open``: ``low`` itself excluded."""
        value = self._get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise RequestError(f"{name} must be a finite number, got {_show(value)}", field=name)
        if positive and not value > 0:
            raise RequestError(f"{name} must be > 0, got {value}", field=name)
        too_low = low is not None and (value <= low if low_open else value < low)
        if too_low or (high is not None and value > high):
            if low is None:
                bound = f"<= {high}"
            elif high is None:
                bound = f"> {low}" if low_open else f">= {low}"
            else:
                bound = f"in {'(' if low_open else '['}{low}, {high}]"
            raise RequestError(f"{name} must be {bound}, got {value}", field=name)
        return float(value)

    def boolean(self, name: str, *, default: bool = False) -> bool:
        value = self._get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise RequestError(f"{name} must be true or false, got {_show(value)}", field=name)
        return value

    def strings(self, name: str, *, max_items: int, max_chars: int) -> list[str] | None:
        value = self._get(name)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise RequestError(f"{name} must be a list of strings", field=name)
        if not value or len(value) > max_items:
            raise RequestError(f"{name} must hold 1 to {max_items} texts, got {len(value)}", field=name,
                               status=413 if value else 400)  # fmt: skip
        for i, text in enumerate(value):
            if len(text) > max_chars:
                raise RequestError(f"{name}[{i}] has {len(text)} characters; the limit is {max_chars}", field=name,
                                   status=413)  # fmt: skip
        return value


def _show(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return json.dumps(value)[:40]


def _range(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f"an integer in [{low}, {high}]"
    return f">= {low}" if low is not None else f"<= {high}"


def unknown_characters(text: str, known) -> str | None:
    """A description of the characters of ``text`` outside ``known`` (a set or dict), or None."""
    missing = sorted(set(text) - set(known))
    if not missing:
        return None
    shown = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in missing[:10])
    more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
    return f"{len(missing)} character{'s' if len(missing) > 1 else ''} not in the model's vocabulary: {shown}{more}"


def check_text_upload(raw: bytes, limit: int, field: str = "text") -> str:
    """The text of an upload: at most ``limit`` bytes of UTF-8 without NUL bytes (else 'binary')."""
    if len(raw) > limit:
        raise RequestError(f"{field}: the upload has {len(raw)} bytes; the limit is {limit}", field=field, status=413)
    if b"\x00" in raw:
        raise RequestError(f"{field}: the upload looks binary (a NUL byte at offset {raw.index(0)}); send UTF-8 text",
                           field=field, status=415)  # fmt: skip
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RequestError(f"{field}: the upload is not UTF-8 text (byte {error.start}); it looks binary",
                           field=field, status=415) from None  # fmt: skip
