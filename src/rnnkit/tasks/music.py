"""Polyphonic music: next-frame prediction on the Bach chorales, and music generated one frame at a time.

rnnkit train music --data jsb-chorales-quarter.json [--resolution quarter|16th] [--output sigmoid|nade]
rnnkit eval RUN --data jsb-chorales-quarter.json --split test --json   # nll_per_step, frame_accuracy, P, R
rnnkit sample RUN --prime-notes 60,64,67 --steps 64 --midi out.mid [--roll out.png] [--temperature T --seed S]
rnnkit sample LM_RUN --abc --midi tunes.mid        # a char-level lm trained on ABC: tunes checked with music21

The data are :func:`rnnkit.data.music.read_chorales`'s piano rolls (88 keys, the standard train/valid/test
split); the model is :class:`rnnkit.models.music.MusicModel`. The loss, and the metric every evaluation
reports, is the NLL in nats per time step as Chung et al. (2014) define it: ``-Σ log p(v_t | v_<t)`` over
every step of every piece of the split (the first step of a piece predicted from the silent start frame),
divided by the split's number of steps. Frame accuracy (Bay et al. 2009), precision and recall count the
(frame, key) pairs of the frames the model predicts, given the true past, by keeping the keys whose
probability is above 1/2 (the NADE decides its keys low to high, each decision conditioning the next).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from rnnkit import checkpoint, distributed
from rnnkit.config import config_from_dict
from rnnkit.data.buckets import LengthBuckets
from rnnkit.data.music import (
    BEATS,
    KEYS,
    RESOLUTIONS,
    SPLITS,
    PianoRolls,
    abc_sample_report,
    chorales_path,
    collate_rolls,
    frame_pitches,
    midi_bytes,
    parse_prime_notes,
    read_abc,
    read_chorales,
    reference_sample,
    roll_png,
    roll_to_notes,
)
from rnnkit.data.tokenizers import CharTokenizer, tokenizer_from_json
from rnnkit.decoding import iter_generate
from rnnkit.errors import CheckpointError, ConfigError, DataError
from rnnkit.metrics import frame_scores
from rnnkit.models import load_model
from rnnkit.models.common import length_mask
from rnnkit.models.music import OUTPUTS, MusicModel, MusicModelConfig
from rnnkit.tasks import register_task
from rnnkit.tasks.common import Batches
from rnnkit.tasks.options import (
    COUNT,
    DROPOUT,
    POSITIVE,
    add_cell_options,
    add_rnn_options,
    check_positive,
    rnn_config_from_args,
)
from rnnkit.tasks.presets import Preset

# `rnnkit sample` options of music runs (and of --abc for lm runs): any of them sends the command here
SAMPLE_FLAGS = ("abc", "midi", "roll", "prime_notes")
ABC_PRIME = "X:"  # a tune's first field: the sample starts a tune
# --abc samples at this temperature unless --temperature is given: the share of generated tunes that parse
# by temperature, from one 600 s char-LM run on Nottingham (benchmarks/results/music-cpu2.md)
ABC_TEMPERATURE = 0.8
ABC_CHARS_PER_TUNE = 4000  # --abc gives up on a tune after this many characters (the training tunes: ~430)

# The defaults (rnnkit.tasks.presets; benchmarks/music.py measures them on JSB at a short and a long budget).
# A chorale is 25-160 quarter-note frames and the training split 229 of them: the data are few and an epoch
# takes well under a second, so every budget trains to the best validation NLL (kept), which a 128-unit LSTM
# with dropout 0.3 on what the output reads reaches by epoch ~25 (8.47 on valid, sigmoid output), and then
# overfits. Zoneout 0.1 (Krueger et al. 2016) delays that and lowers the best (LSTM 8.42, GRU 8.41 -> 8.38);
# dropout 0.5, 256 units, two layers, Adam at 1e-3 or weight decay 1e-4 did no better (runs of fixed epochs).
_CHORALES = {"cell": "lstm", "hidden_size": 128, "num_layers": 1, "dropout": 0.3, "zoneout": 0.1, "batch_size": 8,
             "lr": 3e-3, "schedule": "constant"}  # fmt: skip
_WHY = ("JSB quarter notes, best validation NLL at fixed epochs (sigmoid): LSTM 8.42, GRU 8.38 with zoneout 0.1 "
        "(8.47, 8.41 without); not yet timed (benchmarks/music.py)")
PRESETS = {"quarter": [Preset(math.inf, _CHORALES, _WHY)], "16th": [Preset(math.inf, _CHORALES, _WHY)]}


@dataclass(frozen=True)
class MusicDataConfig:
    """Where the chorales come from (a JSON file, or a folder with the file of each resolution) and how
    they are batched."""

    data: str
    resolution: str = "quarter"
    batch_size: int = 8
    seed: int = 0

    @property
    def beats_per_frame(self) -> float:
        return BEATS[self.resolution]


@torch.no_grad()
def score_rolls(model: MusicModel, rolls: list, batch_size: int, device) -> dict:
    """NLL per step and frame scores of ``rolls`` under ``model`` (teacher-forced, eval mode):
    ``{"nll_per_step", "frame_accuracy", "precision", "recall", "steps", "pieces"}``."""
    if not rolls:
        raise DataError("no piece to score")
    was_training = model.training
    model.eval()
    order = sorted(range(len(rolls)), key=lambda i: len(rolls[i]))  # similar lengths together: less padding
    dtype = model.head.weight.dtype  # frames in the model's precision (a float64 model scores in float64)
    nats, steps, tp, fp, fn = 0.0, 0, 0, 0, 0
    try:
        for k in range(0, len(order), batch_size):
            frames, lengths = collate_rolls([rolls[i] for i in order[k : k + batch_size]])
            frames, lengths = frames.to(device, dtype), lengths.to(device)
            mask = length_mask(lengths, frames.shape[1])  # (B, T)
            features, _ = model(model.shift(frames))  # (B, T, F)
            logp = model.log_prob(features, frames)  # (B, T)
            nats -= logp[mask].double().sum().item()
            steps += int(lengths.sum())
            guess = model.sample_keys(features, threshold=True).bool() & mask.unsqueeze(-1)  # (B, T, K)
            truth = frames.bool()
            tp += int((guess & truth).sum())
            fp += int((guess & ~truth).sum())
            fn += int((~guess & truth).sum())
    finally:
        model.train(was_training)
    return {"nll_per_step": nats / steps, **frame_scores(tp, fp, fn), "steps": steps, "pieces": len(rolls)}


@register_task
class MusicTask:
    """Next-frame prediction over whole pieces, batched by length with masks (full BPTT: a chorale is short)."""

    name = "music"
    help = "polyphonic music: next-frame NLL on piano rolls (JSB chorales), one-to-many generation to MIDI"
    monitor = ("loss", "min")
    has_test_set = True  # `rnnkit eval RUN --split test` without --data scores the run's own file

    def __init__(self, data: MusicDataConfig, splits: dict[str, PianoRolls], device: torch.device) -> None:
        self.data, self.device = data, torch.device(device)
        self.train, self.valid = splits["train"], splits["valid"]
        self.notes: list[str] = []  # what building the task did that the user should hear (the CLI prints them)
        dropped = sum(s.dropped for s in splits.values())
        if dropped:
            self.notes.append(f"{dropped:,} notes outside the piano's MIDI 21-108 were dropped from {data.data}")

    # -- the trainer's protocol -------------------------------------------------------------------

    def train_batches(self, epoch: int, start: int):
        buckets = LengthBuckets(self.train.lengths, self.data.batch_size, self.data.seed, epoch, start)
        # the global batches; under torchrun each process takes its share of each
        share = distributed.share
        return Batches(buckets, lambda indices: collate_rolls([self.train.rolls[i] for i in share(indices).tolist()]))

    def loss(self, model: MusicModel, batch) -> tuple[torch.Tensor, int]:
        """Mean NLL per step of the batch's steps (the padding masked out)."""
        frames, lengths = (t.to(self.device, non_blocking=True) for t in batch)
        steps = int(lengths.sum())
        return -model.log_likelihood(frames, lengths).sum() / steps, steps

    def evaluate(self, model: MusicModel, limit: int | None = None) -> dict:
        """NLL per step of the validation pieces (or of the first ``limit`` of them), with the frame scores."""
        rolls = self.valid.rolls if limit is None else self.valid.rolls[: max(1, limit)]
        scores = score_rolls(model, rolls, self.data.batch_size, self.device)
        return {"loss": scores.pop("nll_per_step"), **scores}

    def eval_size(self) -> tuple[int, str, int]:
        """Validation pieces, their unit, and a probe of two batches (for the trainer's timing)."""
        return len(self.valid), "pieces", min(len(self.valid), 2 * self.data.batch_size)

    @property
    def uniform_loss(self) -> float:
        """K log 2: every key a coin toss."""
        return KEYS * math.log(2.0)

    def state_dict(self) -> dict:
        return {}  # batches depend on (seed, epoch) only; nothing is carried between them

    def load_state_dict(self, saved: dict) -> None:
        pass

    @classmethod
    def check_run(cls, run_dir: Path, config: dict) -> None:
        """The model of config.json must read and predict the 88 keys of the piano rolls."""
        model = config.get("model")
        keys = (model.get("config") or {}).get("num_keys", KEYS) if isinstance(model, dict) else KEYS
        if keys != KEYS:
            raise CheckpointError(f"{run_dir / checkpoint.CONFIG}: a music run's model reads the {KEYS} piano keys, "
                                  f"this one {keys!r}")  # fmt: skip

    # -- building ---------------------------------------------------------------------------------

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group("data")
        g.add_argument("--data", help="chorales JSON with train/valid/test (jsb-chorales-quarter.json), or a folder "
                       "holding it and Jsb16thSeparated.json (--resolution picks)")  # fmt: skip
        g.add_argument("--resolution", choices=RESOLUTIONS, default="quarter",
                       help="a frame is a quarter or a 16th note: the file a folder gives, and the MIDI timing")
        m = parser.add_argument_group("model")
        # Options left out here come from the preset for --resolution and --time-budget (PRESETS above).
        add_cell_options(m)
        m.add_argument("--dropout", type=DROPOUT, help="dropout on the RNN's output (and between layers)")
        m.add_argument("--output", choices=OUTPUTS, default="sigmoid",
                       help="independent sigmoids (Chung et al. 2014) or a NADE over the keys, low to high")
        m.add_argument("--nade-hidden", type=POSITIVE, default=128, help="hidden units of the NADE output")
        m.add_argument("--nonlinearity", choices=["tanh", "relu"], default="tanh", help="of the rnn cell")
        m.add_argument("--peephole", action="store_true", help="LSTM peephole connections")
        m.add_argument("--proj-size", type=COUNT, default=0, help="LSTM output projection (0: none)")
        m.add_argument("--skip-connections", action="store_true", help="every layer reads the input too")
        add_rnn_options(m)
        parser.set_defaults(zoneout=None)  # the preset's (a --zoneout given wins)

    preset_table = PRESETS

    @staticmethod
    def preset_variant(args: argparse.Namespace) -> str:
        return args.resolution

    @classmethod
    def train_defaults(cls) -> dict:
        return {"clip_norm": 5.0, "default_epochs": 100}

    @classmethod
    def from_args(cls, args: argparse.Namespace, device: torch.device):
        """Build (task, model, run config, vocabulary: None) from the command line."""
        if args.data is None:
            raise ConfigError("rnnkit train music needs --data CHORALES.json (or --resume RUN)")
        check_positive(args.batch_size, "--batch-size")
        data = MusicDataConfig(data=str(chorales_path(args.data, args.resolution).resolve()),
                               resolution=args.resolution, batch_size=args.batch_size, seed=args.seed)  # fmt: skip
        task = cls(data, read_chorales(data.data), device)
        options = {"nonlinearity": ("tanh", args.nonlinearity), "peephole": (False, args.peephole),
                   "proj_size": (0, args.proj_size), "skip_connections": (False, args.skip_connections)}  # fmt: skip
        overrides = {name: value for name, (default, value) in options.items() if value != default}
        rnn = rnn_config_from_args(args, input_size=KEYS, **overrides)
        model = MusicModel(MusicModelConfig(rnn=rnn, num_keys=KEYS, output=args.output, nade_hidden=args.nade_hidden,
                                            dropout=args.dropout))  # fmt: skip
        model.set_key_rates(task.train.key_rates())
        return task, model, {"task": cls.name, "data": asdict(data)}, None

    @classmethod
    def from_run(cls, run_dir: Path, config: dict, device: torch.device):
        data = config_from_dict(MusicDataConfig, config.get("data"), "config.json data")
        return cls(data, read_chorales(data.data), device)

    @classmethod
    def evaluate_run(cls, run_dir: Path, config: dict, args: argparse.Namespace, device: torch.device) -> dict:
        """``rnnkit eval RUN [--data FILE] [--split test]``: NLL per step and frame scores of one split."""
        model = load_model(run_dir, device=device, task=cls.name)
        data = config_from_dict(MusicDataConfig, config.get("data"), "config.json data")
        split = getattr(args, "split", None) or "test"
        if split not in SPLITS:
            raise ConfigError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
        path = chorales_path(getattr(args, "data", None) or data.data, data.resolution)
        rolls = read_chorales(path)[split]
        metrics = score_rolls(model, rolls.rolls, getattr(args, "batch_size", None) or data.batch_size, device)
        return {"task": cls.name, "split": split, "data": str(path), "metrics": metrics}

    @classmethod
    def generate_run(cls, run_dir: Path, config: dict, args: argparse.Namespace, device: torch.device) -> dict:
        """``rnnkit sample RUN --prime-notes 60,64,67 --steps 64 --midi out.mid [--roll out.png]``: frames
        drawn one at a time and fed back (one-to-many), written as MIDI and as a piano-roll picture."""
        if getattr(args, "abc", False):
            raise ConfigError(f"{run_dir} is a 'music' run: --abc samples tunes from a character-level 'lm' run")
        if getattr(args, "prime", None):
            raise ConfigError("a music run is primed with --prime-notes 60,64,67 (MIDI numbers), not --prime")
        model = load_model(run_dir, device=device, task=cls.name)
        data = config_from_dict(MusicDataConfig, config.get("data"), "config.json data")
        prime = None if not args.prime_notes else torch.from_numpy(parse_prime_notes(args.prime_notes))
        temperature = 1.0 if args.temperature is None else args.temperature
        roll = model.generate(args.steps, prime, temperature=temperature, seed=args.seed).bool().numpy()
        primed = 0 if prime is None else len(prime)
        notes = roll_to_notes(roll, data.beats_per_frame)
        if args.midi:
            write_bytes(args.midi, midi_bytes(notes))
        if args.roll:
            title = f"{Path(run_dir).name}: {args.steps} frames, temperature {temperature:g}"
            write_bytes(args.roll, roll_png(roll, beats_per_frame=data.beats_per_frame, primed=primed, title=title))
        frames = [frame_pitches(f) for f in roll]
        lines = [f"{t:4d}{' *' if t < primed else '  '} " + " ".join(map(str, f)) for t, f in enumerate(frames)]
        wrote = [f"wrote {p}" for p in (args.midi, args.roll) if p]
        lines.append(f"{len(frames)} frames ({primed} primed, marked *), {len(notes)} notes"
                     + (f"; {', '.join(wrote)}" if wrote else ""))  # fmt: skip
        metrics = {"frames": len(frames), "notes": len(notes),
                   "mean_polyphony": sum(map(len, frames[primed:])) / max(1, len(frames) - primed)}  # fmt: skip
        return {"task": cls.name, "frames": frames, "primed": primed, "midi": args.midi, "roll": args.roll,
                "metrics": metrics, "text": "\n".join(lines)}  # fmt: skip


def write_bytes(path, data: bytes) -> None:
    """Write a file the user asked for atomically: an old file of that name stays whole until the new one is."""
    checkpoint.atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


# -- `rnnkit sample`: the options and the dispatch the command line hooks in -------------------------------


def add_sample_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``rnnkit sample`` for music runs and for ABC tunes from an lm run."""
    g = parser.add_argument_group("music (a music run, or --abc with a char-level lm run trained on ABC tunes)")
    g.add_argument("--prime-notes", metavar="PITCHES", help="music: the frame(s) to start from, MIDI numbers "
                   "(60,64,67 is a C major chord; ';' separates frames)")  # fmt: skip
    g.add_argument("--steps", type=POSITIVE, default=64, help="music: frames to generate after the prime")
    g.add_argument("--midi", metavar="OUT.mid", help="write the music (with --abc: every tune that parses, "
                   "one after another) as a MIDI file")  # fmt: skip
    g.add_argument("--roll", metavar="OUT.png", help="music: write a piano-roll picture")
    g.add_argument("--abc", action="store_true", help="lm run: generate ABC tunes (primed with 'X:'), check each "
                   "with music21 and compare the shares that parse with the training tunes'")  # fmt: skip
    g.add_argument("--tunes", type=POSITIVE, default=10, help=f"--abc: complete tunes to generate (at most "
                   f"{ABC_CHARS_PER_TUNE:,} characters a tune; --length does not apply)")  # fmt: skip
    g.add_argument("--reference-tunes", type=COUNT, default=100, help="--abc: training tunes checked for the "
                   "reference shares (a seeded sample; 0: none, and no training data read)")  # fmt: skip


def music_sample(task_cls: type, args: argparse.Namespace) -> bool:
    """Whether ``rnnkit sample`` is ours: a music run, or one of the music options given."""
    return hasattr(task_cls, "generate_run") or any(getattr(args, flag, None) for flag in SAMPLE_FLAGS)


def sample_run(task_cls: type, run_dir: Path, config: dict, args: argparse.Namespace, device) -> dict:
    """``rnnkit sample`` for a music run (:meth:`MusicTask.generate_run`) or ``--abc`` for an lm run
    (:func:`sample_abc`): a dict with ``"text"`` (what the command prints) and the rest (what --json prints)."""
    if hasattr(task_cls, "generate_run"):
        return task_cls.generate_run(run_dir, config, args, device)
    if task_cls.name != "lm":
        raise ConfigError(f"{run_dir} is a {task_cls.name!r} run: the music options of rnnkit sample need a "
                          "'music' run, or an 'lm' run with --abc")  # fmt: skip
    if not args.abc:
        given = next(f for f in SAMPLE_FLAGS if getattr(args, f, None))
        raise ConfigError(f"--{given.replace('_', '-')} with an lm run needs --abc (or a music run)")
    if args.prime_notes or args.roll:
        raise ConfigError("--prime-notes and --roll are for music runs; with --abc prime the text with --prime")
    return sample_abc(run_dir, config, args, device)


def sample_abc(run_dir: Path, config: dict, args: argparse.Namespace, device) -> dict:
    """ABC tunes from a character-level lm run: generate until ``--tunes`` tunes are complete, check each
    with music21 (:func:`rnnkit.data.music.abc_sample_report`), write the ones that parse to ``--midi``, and
    set the shares beside those of ``--reference-tunes`` of the run's training tunes."""
    model = load_model(run_dir, device=device, task="lm")
    try:
        tokenizer = tokenizer_from_json(checkpoint.load_vocab(run_dir))
    except DataError as error:
        raise CheckpointError(f"{run_dir}: {error}") from None
    if not isinstance(tokenizer, CharTokenizer):
        raise ConfigError(f"{run_dir} is a word-level lm: --abc needs a character-level run (--level char)")
    prime = args.prime or ABC_PRIME
    temperature = ABC_TEMPERATURE if args.temperature is None else args.temperature
    text = generate_tunes(model, tokenizer, prime, args.tunes, temperature=temperature, top_k=args.top_k,
                          top_p=args.top_p, seed=args.seed)  # fmt: skip
    reference, notes = None, []
    if args.reference_tunes:
        source = (config.get("data") or {}).get("data")
        try:
            found = read_abc(source)
            reference = reference_sample(found.tunes, args.reference_tunes)
            if found.skipped:
                notes.append(f"{len(found.skipped)} of {found.files} training files held no ABC tune and were "
                             f"skipped: {', '.join(Path(f).name for f, _ in found.skipped[:3])}")  # fmt: skip
        except (DataError, TypeError) as error:
            notes.append(f"no reference shares: the run's training data cannot be read ({error})")
    report = abc_sample_report(text, midi=bool(args.midi), reference=reference)
    if report["midi"] is not None:
        write_bytes(args.midi, report["midi"])
        report["midi"] = str(args.midi)
    gen, ref = report["generated"], report["reference"]
    lines = []
    for i, tune in enumerate(report["tunes"], 1):
        verdict = "parses, bars consistent" if tune["consistent"] else "parses" if tune["parses"] else tune["error"]
        lines += [f"--- tune {i}: {verdict} ---", tune["text"].rstrip()]
    lines.append(f"{gen['tunes']} complete tunes ({report['cut_off']} cut off): {gen['parse_share']:.0%} parse, "
                 f"{gen['consistent_share']:.0%} parse with consistent bars")  # fmt: skip
    if ref is not None:
        lines.append(f"training tunes ({ref['tunes']} checked): {ref['parse_share']:.0%} parse, "
                     f"{ref['consistent_share']:.0%} with consistent bars")  # fmt: skip
    if args.midi:
        lines.append(f"wrote {report['midi']} ({report['midi_tunes']} tunes)" if report["midi"]
                     else f"no tune parses: {args.midi} not written")  # fmt: skip
    lines += [f"note: {n}" for n in notes]
    metrics = {"tunes": gen["tunes"], "parse_share": gen["parse_share"], "consistent_share": gen["consistent_share"],
               "temperature": temperature}  # fmt: skip
    if ref is not None:
        metrics.update(reference_parse_share=ref["parse_share"], reference_consistent_share=ref["consistent_share"])
    return {"task": "lm", "metrics": metrics, "abc": report, "notes": notes, "text": "\n".join(lines)}


def generate_tunes(model, tokenizer: CharTokenizer, prime: str, tunes: int, *, temperature: float = 1.0,
                   top_k: int | None = None, top_p: float | None = None, seed: int | None = None) -> str:  # fmt: skip
    """Text from a character-level lm, ``prime`` first, until ``tunes`` tunes are complete (the next tune's
    ``X:`` line has begun) or ``ABC_CHARS_PER_TUNE`` characters a tune have been drawn."""
    ids = tokenizer.encode(prime, where="--prime")
    limit = ABC_CHARS_PER_TUNE * tunes
    pieces = [prime]
    started = prime.count("\nX:") + prime.startswith("X:")
    tail = prime[-2:]
    try:
        steps = iter_generate(model.embedding, model.rnn, model.head, limit, prime=ids, temperature=temperature,
                              top_k=top_k, top_p=top_p, seed=seed)  # fmt: skip
        for token in steps:
            ch = tokenizer.decode([int(token[0])])
            pieces.append(ch)
            tail = (tail + ch)[-3:]
            if tail == "\nX:":
                started += 1
                if started > tunes:  # tune number `tunes` is complete: the one after it has begun
                    break
    except ValueError as error:
        raise ConfigError(str(error)) from None
    return "".join(pieces)
