"""Music as data: polyphonic piano rolls of the Bach chorales, MIDI files, piano-roll pictures and ABC tunes.

**Chorales.** The Boulanger-Lewandowski (2012) JSON files (``{"train": [...], "valid": [...], "test": [...]}``,
each piece a list of time steps, each step a list of the MIDI pitches that sound) become 88-key binary piano
rolls, ``roll[t, k] = 1`` when pitch ``LOWEST + k`` (MIDI 21 A0 .. 108 C8, the piano) sounds at step t. The
voice-separated 16th-note file (Coconet's ``Jsb16thSeparated.json``: four numbers a step, ``-1`` for a silent
voice) reads the same way: ``-1`` is silence, two voices on one pitch are one key. A pitch outside 0-127, a
piece with no steps or a split that is missing is refused with one :class:`~rnnkit.errors.DataError` line; a
pitch inside MIDI's 0-127 but off the piano (below 21 or above 108) is dropped and counted in
:attr:`PianoRolls.dropped` (none of the chorales' pitches, 36-96, is).

**MIDI** is made and read with mido, as bytes (so are the piano-roll PNGs): the caller writes the file,
atomically, and this leaf writes nothing. A frame lasts ``BEATS[resolution]`` beats (a quarter note = one
beat, at ``TEMPO_BPM``); the rolls do not tell a held note from a repeated one (the data set says so itself),
so a run of frames in which a key sounds becomes one held note.

**ABC tunes** are checked with music21 (a dependency of rnnkit; imported only when a tune is checked, since it
takes most of a second to import): :func:`check_tune` says whether a tune parses and whether its bars are
consistent with its metre, :func:`tune_report` gives the shares over many tunes, :func:`abc_sample_report`
reads generated text the way ``rnnkit sample RUN --abc`` does.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from rnnkit.errors import ConfigError, DataError

LOWEST, HIGHEST = 21, 108  # the piano's keys in MIDI numbers: A0 .. C8
KEYS = HIGHEST - LOWEST + 1  # 88
SPLITS = ("train", "valid", "test")
SILENT = -1  # a silent voice in the voice-separated (Coconet) files
RESOLUTIONS = ("quarter", "16th")
BEATS = {"quarter": 1.0, "16th": 0.25}  # beats (quarter notes) per frame
FILES = {"quarter": "jsb-chorales-quarter.json", "16th": "Jsb16thSeparated.json"}  # inside a data folder
TEMPO_BPM = 120.0


# -- chorales as piano rolls ----------------------------------------------------------------------


@dataclass(frozen=True)
class PianoRolls:
    """The pieces of one split: ``rolls[i]`` is (T_i, 88) bool; ``dropped`` counts the notes off the piano."""

    rolls: list[np.ndarray]
    dropped: int = 0

    def __len__(self) -> int:
        return len(self.rolls)

    @property
    def lengths(self) -> list[int]:
        return [len(r) for r in self.rolls]

    @property
    def steps(self) -> int:
        """Time steps of the split: what its NLL per step averages over."""
        return sum(self.lengths)

    def key_rates(self) -> np.ndarray:
        """(88,) the share of the split's steps in which each key sounds."""
        return np.concatenate(self.rolls).mean(axis=0)


def chorales_path(path: str | os.PathLike, resolution: str = "quarter") -> Path:
    """The JSON file of ``path``: the file itself, or in a folder the file of ``resolution`` (:data:`FILES`)."""
    if resolution not in RESOLUTIONS:
        raise ConfigError(f"resolution must be one of {', '.join(RESOLUTIONS)}, got {resolution!r}")
    path = Path(path)
    if path.is_dir():
        path = path / FILES[resolution]
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    return path


def read_chorales(path: str | os.PathLike, resolution: str = "quarter") -> dict[str, PianoRolls]:
    """The train, valid and test splits of a chorales JSON file (or of a folder's file for ``resolution``)."""
    path = chorales_path(path, resolution)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise DataError(f"{path} is not a JSON file: {str(error).splitlines()[0]}") from None
    if not isinstance(data, dict) or not all(split in data for split in SPLITS):
        found = ", ".join(map(str, data)) if isinstance(data, dict) else f"a JSON {type(data).__name__}"
        raise DataError(f"{path} must be a JSON object with the keys train, valid and test (found: {found or 'none'})")
    return {split: pieces_to_rolls(data[split], f"{path} {split}") for split in SPLITS}


def pieces_to_rolls(pieces, where: str = "the data") -> PianoRolls:
    """Pieces as JSON gives them (lists of steps, each a list of MIDI pitches; -1 silent) as piano rolls."""
    if not isinstance(pieces, list) or not pieces:
        raise DataError(f"{where} must be a non-empty list of pieces")
    rolls, dropped = [], 0
    for i, piece in enumerate(pieces):
        if not isinstance(piece, list) or not piece:
            raise DataError(f"{where} piece {i} is empty: a piece needs at least one time step")
        roll = np.zeros((len(piece), KEYS), dtype=bool)
        for t, step in enumerate(piece):
            if not isinstance(step, list):
                raise DataError(f"{where} piece {i}, step {t}: a step must be a list of MIDI pitches, got {step!r}")
            for pitch in step:
                if isinstance(pitch, bool) or not isinstance(pitch, int) or not (pitch == SILENT or 0 <= pitch <= 127):
                    raise DataError(f"{where} piece {i}, step {t}: pitch {pitch!r} is not a MIDI pitch (an integer "
                                    f"0-127, or {SILENT} for a silent voice)")  # fmt: skip
                if LOWEST <= pitch <= HIGHEST:
                    roll[t, pitch - LOWEST] = True
                elif pitch != SILENT:
                    dropped += 1
        rolls.append(roll)
    return PianoRolls(rolls, dropped)


def collate_rolls(rolls: Sequence[np.ndarray]) -> tuple[Tensor, Tensor]:
    """Pieces of different lengths as one batch: frames (B, T_max, K) float32, zero after each piece's end,
    and lengths (B,); ``length_mask(lengths, T_max)`` marks the real steps."""
    lengths = torch.tensor([len(r) for r in rolls], dtype=torch.long)
    frames = torch.zeros(len(rolls), int(lengths.max()), rolls[0].shape[1])
    for i, roll in enumerate(rolls):
        frames[i, : len(roll)] = torch.from_numpy(roll.astype(np.float32))
    return frames, lengths


def frame_pitches(frame: np.ndarray | Tensor) -> list[int]:
    """The MIDI pitches that sound in one 88-key frame, low to high."""
    keys = np.flatnonzero(np.asarray(frame))
    return [int(k) + LOWEST for k in keys]


def pitches_to_frame(pitches: Iterable[int], where: str = "--prime-notes") -> np.ndarray:
    """(88,) bool: the frame in which ``pitches`` sound; a pitch off the piano is a ConfigError."""
    frame = np.zeros(KEYS, dtype=bool)
    for pitch in pitches:
        if not LOWEST <= pitch <= HIGHEST:
            raise ConfigError(f"{where}: pitch {pitch} is off the piano's {LOWEST}-{HIGHEST} (MIDI numbers)")
        frame[pitch - LOWEST] = True
    return frame


def parse_prime_notes(text: str) -> np.ndarray:
    """``"60,64,67"`` -> one frame, ``"60,64,67;62,65,69"`` -> two frames: (P, 88) bool."""
    frames = []
    for part in text.split(";"):
        try:
            pitches = [int(p) for p in part.replace(" ", "").split(",") if p]
        except ValueError:
            raise ConfigError(f"--prime-notes takes MIDI numbers like 60,64,67 (frames split by ';'), "
                              f"got {text!r}") from None
        frames.append(pitches_to_frame(pitches))
    return np.stack(frames)


# -- MIDI -----------------------------------------------------------------------------------------


class Note(NamedTuple):
    """One note: MIDI ``pitch`` from ``start`` to ``end`` (in beats), struck with ``velocity``."""

    pitch: int
    start: float
    end: float
    velocity: int = 80


def roll_to_notes(roll: np.ndarray, beats_per_frame: float = 1.0, velocity: int = 80) -> list[Note]:
    """The notes of a (T, 88) roll: each run of frames in which a key sounds is one held note."""
    roll = np.asarray(roll, dtype=bool)
    notes = []
    padded = np.zeros((len(roll) + 2, roll.shape[1]), dtype=np.int8)
    padded[1:-1] = roll
    edges = np.diff(padded, axis=0)  # +1 where a run starts, -1 just after it ends
    for key in range(roll.shape[1]):
        starts, ends = np.flatnonzero(edges[:, key] == 1), np.flatnonzero(edges[:, key] == -1)
        for s, e in zip(starts, ends):
            notes.append(Note(LOWEST + key, s * beats_per_frame, e * beats_per_frame, velocity))
    return sorted(notes, key=lambda n: (n.start, n.pitch))


def notes_to_roll(notes: Iterable[Note], beats_per_frame: float = 1.0, steps: int | None = None) -> np.ndarray:
    """(T, 88) bool: frame t sounds a key when a note of it covers the frame (starts are rounded to frames)."""
    notes = [n for n in notes if LOWEST <= n.pitch <= HIGHEST]
    if steps is None:
        steps = max((round(n.end / beats_per_frame) for n in notes), default=0)
    roll = np.zeros((steps, KEYS), dtype=bool)
    for n in notes:
        start, end = round(n.start / beats_per_frame), round(n.end / beats_per_frame)
        roll[start : max(end, start + 1), n.pitch - LOWEST] = True
    return roll


def midi_bytes(notes: Iterable[Note], *, tempo_bpm: float = TEMPO_BPM, ticks_per_beat: int = 480,
               program: int = 0) -> bytes:  # fmt: skip
    """A standard MIDI file's bytes (type 0, one track, channel 0, General MIDI ``program``; 0 is the piano)."""
    import mido

    events = []  # (tick, order, message): note-offs before note-ons at the same tick, so a repeat restrikes
    for n in notes:
        start, end = round(n.start * ticks_per_beat), round(n.end * ticks_per_beat)
        events.append((start, 1, mido.Message("note_on", note=n.pitch, velocity=n.velocity)))
        events.append((max(end, start + 1), 0, mido.Message("note_off", note=n.pitch, velocity=0)))
    events.sort(key=lambda e: (e[0], e[1], e[2].note))
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm), time=0))
    track.append(mido.Message("program_change", program=program, time=0))
    now = 0
    for tick, _, message in events:
        track.append(message.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    midi = mido.MidiFile(type=0, ticks_per_beat=ticks_per_beat)
    midi.tracks.append(track)
    out = io.BytesIO()
    midi.save(file=out)
    return out.getvalue()


def read_midi(path: str | os.PathLike | None = None, *, data: bytes | None = None,
              tempo_bpm: float = TEMPO_BPM) -> list[Note]:  # fmt: skip
    """The notes of a MIDI file (or of its bytes), every track and channel, in beats at ``tempo_bpm``
    (the file's own tempo changes are followed: a note's time is its time in seconds, re-counted in beats)."""
    import mido

    try:
        midi = mido.MidiFile(path) if data is None else mido.MidiFile(file=io.BytesIO(data))
    except (OSError, EOFError, ValueError, KeyError, IndexError) as error:
        raise DataError(f"{path or 'the MIDI data'} is not a MIDI file: {error}") from None
    beats_per_second = tempo_bpm / 60.0
    sounding: dict[tuple[int, int], list[tuple[float, int]]] = {}
    notes, now = [], 0.0
    for message in midi:  # merged tracks, times in seconds
        now += message.time
        if message.type not in ("note_on", "note_off"):
            continue
        key = (message.channel, message.note)
        if message.type == "note_on" and message.velocity > 0:
            sounding.setdefault(key, []).append((now, message.velocity))
        elif sounding.get(key):
            start, velocity = sounding[key].pop(0)
            notes.append(Note(message.note, start * beats_per_second, now * beats_per_second, velocity))
    return sorted(notes, key=lambda n: (n.start, n.pitch))


def roll_png(roll: np.ndarray, *, beats_per_frame: float = 1.0, title: str | None = None, primed: int = 0) -> bytes:
    """A piano-roll picture as PNG bytes: time across, pitch up, the first ``primed`` frames (the prime) shaded."""
    from matplotlib.figure import Figure

    roll = np.asarray(roll, dtype=bool)
    sounding = np.flatnonzero(roll.any(axis=0))
    low, high = (sounding.min(), sounding.max()) if len(sounding) else (39, 48)  # middle C's octave when empty
    low, high = max(0, low - 2), min(KEYS - 1, high + 2)
    fig = Figure(figsize=(max(6.0, min(24.0, len(roll) * beats_per_frame / 4)), 4.0))
    ax = fig.add_subplot()
    ax.imshow(roll[:, low : high + 1].T, origin="lower", aspect="auto", cmap="Greys", interpolation="nearest",
              extent=(0, len(roll) * beats_per_frame, LOWEST + low - 0.5, LOWEST + high + 0.5))  # fmt: skip
    if primed:
        ax.axvspan(0, primed * beats_per_frame, color="tab:orange", alpha=0.2, label="prime")
        ax.legend(loc="upper right")
    ax.set_xlabel("beats")
    ax.set_ylabel("MIDI pitch")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=100)
    return out.getvalue()


# -- ABC tunes ------------------------------------------------------------------------------------

TUNE_START = re.compile(r"^X:", re.MULTILINE)
FIELD = re.compile(r"^([A-Za-z]):(.*)$", re.MULTILINE)


def split_tunes(text: str) -> list[str]:
    """The tunes of an ABC text: each starts at a line ``X:`` and runs to the next; text before the first is
    not a tune."""
    starts = [m.start() for m in TUNE_START.finditer(text)] + [len(text)]
    return [text[a:b].strip() + "\n" for a, b in zip(starts, starts[1:]) if text[a:b].strip()]


def complete_tunes(text: str) -> tuple[list[str], int]:
    """The tunes of generated text that are complete, and how many were cut off: a tune is complete when
    another ``X:`` line follows it, or when the text ends after a blank line (so the last tune of a sample
    that stopped mid-tune is not judged)."""
    tunes = split_tunes(text)
    if tunes and not re.search(r"\n[ \t]*\n\s*$", text):
        return tunes[:-1], 1
    return tunes, 0


def _music21():
    try:
        import music21
    except ImportError:
        raise ConfigError("checking ABC tunes needs music21 (one of rnnkit's dependencies): "
                          "pip install music21") from None
    return music21


@dataclass(frozen=True)
class TuneCheck:
    """What music21 makes of one ABC tune.

    ``parses``: music21 read it without an error or a warning, it has a metre (``M:``) and a key (``K:``)
    and at least one bar with a note. ``consistent``: it parses and every bar lasts what its metre says,
    except a short bar at the start or end of the tune or of a section (a pickup, or the bar that completes
    it, next to a repeat sign or a double bar); no bar is ever longer. (music21 splits a bar that is too long
    into a full bar and the rest, so a tune with more bars in the score than between its ``|`` signs had one.)
    """

    parses: bool
    consistent: bool
    bars: int = 0
    notes: int = 0
    error: str | None = None
    score: object = field(default=None, repr=False, compare=False)  # the music21 Score, when it parses


def _fields(tune: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for letter, value in FIELD.findall(tune):
        found.setdefault(letter, value.strip())
    return found


def check_tune(tune: str) -> TuneCheck:
    """Parse one ABC tune with music21 and check its bars against its metre (see :class:`TuneCheck`)."""
    m21 = _music21()
    fields = _fields(tune)
    missing = [f"{k}:" for k in ("X", "M", "K") if k not in fields]
    if missing:
        return TuneCheck(False, False, error=f"no {' or '.join(missing)} field")
    captured = io.StringIO()  # music21 writes its warnings straight to stderr; library code stays quiet
    try:
        with contextlib.redirect_stderr(captured), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            score = m21.converter.parseData(tune, format="abc")
            written = _written_bars(tune, m21)
    except Exception as error:  # noqa: BLE001 - any failure of the parser is the verdict "does not parse"
        message = str(error).splitlines()[0] if str(error) else ""
        return TuneCheck(False, False, error=f"{type(error).__name__}: {message}"[:200])
    if captured.getvalue().strip():
        return TuneCheck(False, False, error="music21 warned: " + captured.getvalue().strip().splitlines()[0][:160])
    parts = list(score.parts) if len(score.parts) else [score]
    measures = [list(p.getElementsByClass("Measure")) for p in parts]
    bars = sum(len(m) for m in measures)
    notes = sum(len(m.notes) for ms in measures for m in ms)
    if bars == 0 or notes == 0:
        return TuneCheck(False, False, bars, notes, error="no bar with a note")
    consistent = bars == written and all(_bars_consistent(ms, m21) for ms in measures)
    return TuneCheck(True, consistent, bars, notes, score=score)


def _written_bars(tune: str, m21) -> int:
    """The bars with notes between the tune's bar lines, voice by voice, as music21's ABC reader makes them
    into measures (before it splits the bars that are too long)."""
    handler = m21.abcFormat.ABCHandler()
    handler.process(tune)
    voices = handler.splitByVoice()
    parts = voices if len(voices) == 1 else [voices[0] + v for v in voices[1:]]  # the header, then each voice
    bars = 0
    for part in parts:
        if part.definesMeasures():
            merged = m21.abcFormat.mergeLeadingMetaData(part.splitByMeasure())
            bars += sum(1 for bar in merged if bar.hasNotes()) if len(merged) > 1 else 0
    return bars


def _bars_consistent(measures: list, m21) -> bool:
    def boundary(barline) -> bool:
        return barline is not None and (isinstance(barline, m21.bar.Repeat) or barline.type not in ("regular",))

    for i, m in enumerate(measures):
        length, full = m.duration.quarterLength, m.barDuration.quarterLength
        if length == full:
            continue
        if length > full:
            return False
        edge = (i in (0, len(measures) - 1) or boundary(m.leftBarline) or boundary(m.rightBarline)
                or boundary(measures[i - 1].rightBarline) or boundary(measures[i + 1].leftBarline))  # fmt: skip
        if not edge:
            return False
    return True


def tune_notes(check: TuneCheck) -> list[Note]:
    """The notes of a tune that parses, in beats, as music21 plays it: repeats played, as a listener hears
    them; a tune whose repeat signs do not pair up (an opened ``|:`` never closed) is played once, as written.
    A tune music21 parses but cannot write as MIDI (its own errors, seen on some generated tunes) gives no
    notes: the caller leaves it out of the MIDI file rather than stop."""
    m21 = _music21()
    captured = io.StringIO()
    with contextlib.redirect_stderr(captured), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            data = m21.midi.translate.music21ObjectToMidiFile(check.score).writestr()
        except m21.repeat.ExpanderException:
            score = check.score
            once = m21.stream.Score([p.flatten() for p in score.parts] if len(score.parts) else [score.flatten()])
            try:
                data = m21.midi.translate.music21ObjectToMidiFile(once).writestr()  # no measures: nothing to expand
            except Exception:  # noqa: BLE001 - music21's internals (e.g. SitesException) on a malformed tune
                return []
        except Exception:  # noqa: BLE001 - as above
            return []
    return read_midi(data=data)


def tune_report(tunes: Sequence[str], checks: Sequence[TuneCheck] | None = None) -> dict:
    """``{"tunes", "parse", "consistent", "parse_share", "consistent_share", "errors"}`` over ``tunes``:
    how many parse, how many parse with consistent bars (:class:`TuneCheck`), the commonest errors."""
    checks = [check_tune(t) for t in tunes] if checks is None else checks
    n = len(checks)
    parse = sum(c.parses for c in checks)
    consistent = sum(c.consistent for c in checks)
    errors = Counter(c.error.split(":")[0] for c in checks if c.error)
    return {"tunes": n, "parse": parse, "consistent": consistent, "parse_share": parse / n if n else 0.0,
            "consistent_share": consistent / n if n else 0.0, "errors": dict(errors.most_common(5))}  # fmt: skip


@dataclass(frozen=True)
class AbcTunes:
    """The tunes read from ABC files, with the files that held none (``skipped``: (file, why))."""

    tunes: list[str]
    files: int
    skipped: list[tuple[str, str]]


def read_abc(path: str | os.PathLike) -> AbcTunes:
    """Every tune of an ABC file, or of a folder's ``*.abc`` and ``*.txt`` files in name order. A file that is not
    UTF-8 text or holds no ``X:`` tune is skipped and named in ``skipped`` (the caller reports the count)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in (".abc", ".txt"))
    elif path.is_file():
        files = [path]
    else:
        raise DataError(f"{path}: no such file or folder")
    if not files:
        raise DataError(f"{path} is a folder with no .abc or .txt files")
    tunes, skipped = [], []
    for file in files:
        try:
            found = split_tunes(file.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            skipped.append((str(file), "not UTF-8 text"))
            continue
        if not found:
            skipped.append((str(file), "no tune (no line starting X:)"))
        tunes += found
    if not tunes:
        raise DataError(f"{path}: no ABC tune (a line starting X:) in {len(files)} file(s)")
    return AbcTunes(tunes, len(files), skipped)


def reference_sample(tunes: Sequence[str], limit: int | None, seed: int = 0) -> list[str]:
    """A seeded sample of at most ``limit`` tunes (all of them without a limit), in their order."""
    if limit is None or limit >= len(tunes):
        return list(tunes)
    keep = np.random.default_rng(seed).choice(len(tunes), size=limit, replace=False)
    return [tunes[i] for i in sorted(keep)]


def abc_sample_report(text: str, *, midi: bool = False, reference: Sequence[str] | None = None,
                      gap_beats: float = 4.0) -> dict:  # fmt: skip
    """Judge generated ABC text: split it into tunes, check each with music21, with ``midi`` put the ones
    that parse into one MIDI file, one after another (``gap_beats`` of silence between them), and compare
    the shares with those of the ``reference`` tunes (the training tunes' own shares).

    Returns ``{"generated": report, "reference": report or None, "cut_off", "tunes": [{"text", "parses",
    "consistent", "error"}], "midi": the MIDI file's bytes or None, "midi_tunes"}`` (reports as
    :func:`tune_report`); with ``midi`` and no tune that parses, a DataError."""
    tunes, cut_off = complete_tunes(text)
    checks = [check_tune(t) for t in tunes]
    result = {"generated": tune_report(tunes, checks), "cut_off": cut_off,
              "tunes": [{"text": t, "parses": c.parses, "consistent": c.consistent, "error": c.error}
                        for t, c in zip(tunes, checks)],
              "reference": None if reference is None else tune_report(reference),
              "midi": None, "midi_tunes": 0}  # fmt: skip
    if midi:
        notes, offset, written = [], 0.0, 0
        for check in checks:
            if not check.parses:
                continue
            tune = tune_notes(check)
            if not tune:
                continue
            notes += [n._replace(start=n.start + offset, end=n.end + offset) for n in tune]
            offset = max(n.end for n in notes) + gap_beats
            written += 1
        if not written:
            raise DataError(f"none of the {len(tunes)} complete generated tunes parses: no MIDI file written")
        result["midi"], result["midi_tunes"] = midi_bytes(notes), written
    return result
