"""Music: piano rolls from chorale JSON, MIDI, the next-frame models (sigmoid and NADE), the music task through
the command line, and ABC tunes checked with music21. Every piece of data here is made by the test."""

import itertools
import json
import random

import mido
import numpy as np
import pytest
import torch

from rnnkit.cli import main
from rnnkit.data.music import (
    KEYS,
    LOWEST,
    Note,
    abc_sample_report,
    check_tune,
    collate_rolls,
    complete_tunes,
    midi_bytes,
    notes_to_roll,
    parse_prime_notes,
    read_abc,
    read_chorales,
    read_midi,
    roll_png,
    roll_to_notes,
    split_tunes,
    tune_report,
)
from rnnkit.errors import ConfigError, DataError
from rnnkit.layers import RecurrentConfig
from rnnkit.metrics import frame_scores
from rnnkit.models import build_model, model_spec
from rnnkit.models.music import MusicModel, MusicModelConfig
from rnnkit.tasks.music import ABC_TEMPERATURE, score_rolls

CHORDS = [[60, 64, 67], [62, 65, 69], [64, 67, 71], [65, 69, 72], [67, 71, 74]]  # a scale of triads


def make_pieces(n: int, seed: int) -> list:
    """Learnable pieces: triads walking up or down the scale, each held for one or two steps."""
    rng = random.Random(seed)
    pieces = []
    for _ in range(n):
        i, step, piece = rng.randrange(len(CHORDS)), rng.choice([1, -1]), []
        for _ in range(rng.randrange(6, 14)):
            piece += [list(CHORDS[i])] * rng.choice([1, 2])
            i = (i + step) % len(CHORDS)
        pieces.append(piece)
    return pieces


@pytest.fixture(scope="module")
def chorales(tmp_path_factory):
    path = tmp_path_factory.mktemp("music") / "chorales.json"
    path.write_text(json.dumps({"train": make_pieces(60, 0), "valid": make_pieces(12, 1), "test": make_pieces(12, 2)}))
    return path


def write_json(tmp_path, obj, name="bad.json"):
    path = tmp_path / name
    path.write_text(json.dumps(obj) if not isinstance(obj, str) else obj)
    return path


def model(keys=KEYS, output="sigmoid", hidden=8, cell="lstm", **options) -> MusicModel:
    rnn = RecurrentConfig(cell, keys, hidden, batch_first=True, **options)
    return MusicModel(MusicModelConfig(rnn=rnn, num_keys=keys, output=output, nade_hidden=6))


# -- piano rolls ----------------------------------------------------------------------------------------


def test_read_chorales_makes_88_key_rolls_silences_minus_one_and_counts_what_is_off_the_piano(tmp_path):
    pieces = {"train": [[[60, 64], [-1, 108, 21], [10]]], "valid": [[[]]], "test": [[[127, 60]]]}
    splits = read_chorales(write_json(tmp_path, pieces, "c.json"))
    roll = splits["train"].rolls[0]
    assert roll.shape == (3, KEYS) and roll.dtype == bool
    assert [list(np.flatnonzero(f) + LOWEST) for f in roll] == [[60, 64], [21, 108], []]
    assert splits["train"].dropped == 1 and splits["test"].dropped == 1  # MIDI 10 and 127 are off the piano
    assert splits["valid"].rolls[0].sum() == 0 and splits["valid"].steps == 1  # a rest is a step
    assert splits["train"].lengths == [3]


@pytest.mark.parametrize("obj, match", [
    ({"train": [[[60]]], "valid": [[[60]]]}, "with the keys train, valid and test (found: train, valid)"),
    ([1, 2], "with the keys train, valid and test (found: a JSON list)"),
    ("{not json", "is not a JSON file"),
    ({"train": [[[60]]], "valid": [[[130]]], "test": [[[60]]]}, "valid piece 0, step 0: pitch 130 is not a MIDI pitch"),
    ({"train": [[[60]]], "valid": [[[60]]], "test": [[[60]], [[-3]]]}, "test piece 1, step 0: pitch -3"),
    ({"train": [[[60]]], "valid": [[[60.5]]], "test": [[[60]]]}, "pitch 60.5 is not a MIDI pitch"),
    ({"train": [[[60]], []], "valid": [[[60]]], "test": [[[60]]]}, "train piece 1 is empty"),
    ({"train": [], "valid": [[[60]]], "test": [[[60]]]}, "train must be a non-empty list of pieces"),
    ({"train": [[60]], "valid": [[[60]]], "test": [[[60]]]}, "a step must be a list of MIDI pitches"),
])  # fmt: skip
def test_bad_chorale_files_are_one_clear_line(tmp_path, obj, match):
    with pytest.raises(DataError, match=".*") as caught:
        read_chorales(write_json(tmp_path, obj))
    assert match in str(caught.value) and "\n" not in str(caught.value)


def test_collate_pads_pieces_of_different_lengths():
    rolls = [np.eye(KEYS, dtype=bool)[:2], np.eye(KEYS, dtype=bool)[:5]]
    frames, lengths = collate_rolls(rolls)
    assert frames.shape == (2, 5, KEYS) and lengths.tolist() == [2, 5]
    assert frames[0, 2:].sum() == 0 and torch.equal(frames[1], torch.eye(KEYS)[:5])


def test_prime_notes_are_frames_and_off_piano_pitches_are_refused():
    frames = parse_prime_notes("60,64,67;62")
    assert frames.shape == (2, KEYS) and list(np.flatnonzero(frames[0]) + LOWEST) == [60, 64, 67]
    with pytest.raises(ConfigError, match="pitch 20 is off the piano"):
        parse_prime_notes("60,20")
    with pytest.raises(ConfigError, match="MIDI numbers like 60,64,67"):
        parse_prime_notes("C,E,G")


# -- MIDI -----------------------------------------------------------------------------------------------


def test_midi_round_trip_through_mido(tmp_path):
    rng = np.random.default_rng(0)
    roll = rng.random((24, KEYS)) < 0.05
    roll[:4, 39] = True  # middle C held four frames: one note
    path = tmp_path / "roll.mid"
    path.write_bytes(midi_bytes(roll_to_notes(roll, beats_per_frame=0.25)))
    midi = mido.MidiFile(path)  # mido reads it back: a standard file
    assert midi.type == 0 and len(midi.tracks) == 1
    ons = [m for m in midi.tracks[0] if m.type == "note_on"]
    assert len(ons) == len(roll_to_notes(roll))
    assert midi.length == pytest.approx(24 * 0.25 * 0.5, abs=1e-6)  # 24 sixteenths at 120 bpm, last note to its end
    back = read_midi(path)
    assert np.array_equal(notes_to_roll(back, beats_per_frame=0.25, steps=24), roll)
    held = [n for n in back if n.pitch == 60 and n.start == 0]
    assert held == [Note(60, 0.0, 1.0, 80)]


def test_repeated_chords_of_the_roll_are_held_notes_and_a_gap_restrikes(tmp_path):
    roll = np.zeros((4, KEYS), dtype=bool)
    roll[[0, 1, 3], 39] = True
    notes = roll_to_notes(roll)
    assert notes == [Note(60, 0.0, 2.0), Note(60, 3.0, 4.0)]


def test_piano_roll_png_is_written(tmp_path):
    roll = np.zeros((16, KEYS), dtype=bool)
    roll[:, [39, 43, 46]] = True
    assert roll_png(roll, primed=1, title="C major")[:8] == b"\x89PNG\r\n\x1a\n"


# -- the models -----------------------------------------------------------------------------------------


def log_sigmoid(z):
    return -np.logaddexp(0.0, -z)


def test_sigmoid_nll_per_step_is_the_hand_computed_mean_over_every_step_of_the_split():
    """With U_b = 0 the keys' probabilities are sigma(b) whatever the past: NLL per step is then a sum of
    binary cross-entropies over the keys, averaged over every step of every piece (not per piece first)."""
    K = 4
    m = model(keys=K).double()
    b = np.array([-2.0, 0.5, 1.0, -0.3])
    with torch.no_grad():
        m.head.weight.zero_()
        m.head.bias.copy_(torch.from_numpy(b))
    rng = np.random.default_rng(1)
    rolls = [rng.random((2, K)) < 0.5, rng.random((7, K)) < 0.5, rng.random((4, K)) < 0.5]
    frames = np.concatenate(rolls).astype(float)  # every step of the split, (13, K)
    hand = -(frames * log_sigmoid(b) + (1 - frames) * log_sigmoid(-b)).sum(1).mean()
    scores = score_rolls(m, rolls, batch_size=2, device="cpu")
    assert scores["steps"] == 13 and scores["nll_per_step"] == pytest.approx(hand, rel=1e-9)
    per_piece = np.mean([-(r * log_sigmoid(b) + (1 - r) * log_sigmoid(-b)).sum(1).mean() for r in rolls])
    assert abs(per_piece - hand) > 1e-3  # the two averages differ here, so the test tells them apart
    # the predicted keys are those with sigma(b) > 1/2 in every frame
    guess = np.broadcast_to(b > 0, frames.shape)
    tp, fp, fn = (int(x.sum()) for x in (guess & (frames > 0), guess & (frames == 0), ~guess & (frames > 0)))
    assert {k: scores[k] for k in ("frame_accuracy", "precision", "recall")} == pytest.approx(frame_scores(tp, fp, fn))


def test_nade_log_prob_is_the_hand_computed_chain_rule():
    K = 3
    m = model(keys=K, output="nade").double()
    features = torch.randn(m.config.rnn.output_features, dtype=torch.float64)
    frame = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
    with torch.no_grad():
        b = m.head(features).numpy()
        c = m.nade_bias(features).numpy()
    W, V = m.nade_in.detach().numpy(), m.nade_out.detach().numpy()  # (H, K), (K, H)
    hand, a = 0.0, c.copy()
    for k in range(K):
        z = b[k] + V[k] @ (1 / (1 + np.exp(-a)))
        hand += log_sigmoid(z) if frame[k] else log_sigmoid(-z)
        a = a + W[:, k] * frame[k].item()
    assert m.log_prob(features, frame).item() == pytest.approx(hand, rel=1e-10)


@pytest.mark.parametrize("output", ["sigmoid", "nade"])
def test_each_output_is_a_distribution_over_all_2_to_the_k_frames(output):
    K = 5
    m = model(keys=K, output=output).double()
    with torch.no_grad():  # weights large enough that the keys depend on each other strongly
        for p in m.parameters():
            p.normal_(0, 1.0)
    every = torch.tensor(list(itertools.product([0.0, 1.0], repeat=K)), dtype=torch.float64)  # (32, K)
    features = torch.randn(3, m.config.rnn.output_features, dtype=torch.float64)
    for f in features:
        total = m.log_prob(f.expand(len(every), -1), every).exp().sum()
        assert total.item() == pytest.approx(1.0, abs=1e-12)


def test_nade_samples_follow_its_probabilities():
    K = 3
    m = model(keys=K, output="nade")
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 1.0)
    f = torch.randn(m.config.rnn.output_features)
    every = torch.tensor(list(itertools.product([0.0, 1.0], repeat=K)))
    exact = m.log_prob(f.expand(len(every), -1), every).exp()
    draws = m.sample_keys(f.expand(40000, -1), generator=torch.Generator().manual_seed(0))
    codes = (draws * torch.tensor([4.0, 2.0, 1.0])).sum(-1).long()  # frame (v0, v1, v2) -> its row of `every`
    empirical = torch.bincount(codes, minlength=8).float() / len(codes)
    assert torch.allclose(empirical, exact, atol=0.01)


@pytest.mark.parametrize("output", ["sigmoid", "nade"])
def test_padded_pieces_score_as_each_piece_alone(output):
    """Pieces of different lengths in one batch: each row's log-likelihoods are those of the piece run alone,
    and the steps after a piece's end are masked to 0 (so the loss averages over real steps only)."""
    m = model(output=output, cell="gru").double().eval()
    rng = np.random.default_rng(3)
    rolls = [rng.random((n, KEYS)) < 0.08 for n in (3, 9, 6)]
    frames, lengths = collate_rolls(rolls)
    batch = m.log_likelihood(frames.double(), lengths)  # (3, 9)
    for i, roll in enumerate(rolls):
        alone = m.log_likelihood(torch.from_numpy(roll).double().unsqueeze(0))[0]
        torch.testing.assert_close(batch[i, : len(roll)], alone, rtol=1e-12, atol=1e-12)
        assert torch.all(batch[i, len(roll) :] == 0)
    scores = score_rolls(m, rolls, batch_size=3, device="cpu")
    assert scores["nll_per_step"] == pytest.approx(-batch.sum().item() / 18, rel=1e-12)


def test_generate_feeds_frames_back_from_the_prime_and_is_seeded():
    m = model(output="nade")
    prime = torch.from_numpy(parse_prime_notes("60,64,67")).float()
    a = m.generate(10, prime, temperature=0.9, seed=3)
    assert a.shape == (11, KEYS) and torch.equal(a[0], prime[0])
    assert torch.equal(a, m.generate(10, prime, temperature=0.9, seed=3))
    assert torch.equal(m.generate(5, None, temperature=0), m.generate(5, None, temperature=0))
    # the frames are fed back: the model's own log-likelihood of what it wrote is a teacher-forced pass
    assert m.log_likelihood(a.unsqueeze(0)).shape == (1, 11)


@pytest.mark.parametrize("options", [{"cell": "gru", "reset": "before"}, {"cell": "rnn", "nonlinearity": "relu"},
                                     {"layer_norm": True, "zoneout": 0.1}, {"num_layers": 2, "skip_connections": True},
                                     {"proj_size": 4, "peephole": True}])  # fmt: skip
def test_any_recurrent_stack_and_a_spec_round_trip(options):
    m = model(output="nade", **options)
    rebuilt = build_model(json.loads(json.dumps(model_spec(m))))
    rebuilt.load_state_dict(m.state_dict())
    frames = (torch.rand(2, 6, KEYS) < 0.1).float()
    m.eval(), rebuilt.eval()
    assert torch.equal(m.log_likelihood(frames), rebuilt.log_likelihood(frames))


def test_model_configs_refuse_what_cannot_predict_the_next_frame():
    rnn = RecurrentConfig("lstm", KEYS, 8, batch_first=True)
    with pytest.raises(ConfigError, match="cannot be bidirectional"):
        MusicModelConfig(rnn=RecurrentConfig("lstm", KEYS, 8, batch_first=True, bidirectional=True))
    with pytest.raises(ConfigError, match=r"rnn.input_size \(88\) must equal num_keys \(12\)"):
        MusicModelConfig(rnn=rnn, num_keys=12)
    with pytest.raises(ConfigError, match="output must be one of sigmoid, nade"):
        MusicModelConfig(rnn=rnn, output="rbm")
    with pytest.raises(ConfigError, match="batch_first"):
        MusicModelConfig(rnn=RecurrentConfig("lstm", KEYS, 8))


def test_frame_scores_by_hand():
    assert frame_scores(6, 2, 4) == {"frame_accuracy": 0.5, "precision": 0.75, "recall": 0.6}
    assert frame_scores(0, 0, 0) == {"frame_accuracy": 0.0, "precision": 0.0, "recall": 0.0}


# -- the task through the command line ------------------------------------------------------------------

SMALL = ["--hidden-size", "24", "--batch-size", "8", "--quiet", "--lr", "0.01", "--dropout", "0", "--zoneout", "0"]


def run_json(capsys, *argv) -> dict:
    assert main([str(a) for a in argv]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def trained(chorales, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "nade"
    assert main(["train", "music", "--data", str(chorales), "--out", str(run), "--max-steps", "120", "--output",
                 "nade", "--nade-hidden", "16", "--eval-every", "40", *SMALL]) == 0  # fmt: skip
    return run


def test_training_lowers_the_nll_and_eval_reports_the_split(trained, chorales, capsys):
    records = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    valid = [r["loss"] for r in records if r["split"] == "valid"]
    assert len(valid) >= 3 and valid[-1] < 0.5 * valid[0]
    result = run_json(capsys, "eval", trained, "--data", chorales, "--split", "test", "--json")
    assert result["task"] == "music" and result["split"] == "test"
    metrics = result["metrics"]
    assert set(metrics) >= {"nll_per_step", "frame_accuracy", "precision", "recall"}
    assert metrics["steps"] == sum(len(p) for p in make_pieces(12, 2))
    assert metrics["nll_per_step"] < 3.0 and metrics["frame_accuracy"] > 0.5  # triads on a scale are easy


def test_sample_writes_midi_starting_from_the_prime(trained, tmp_path, capsys):
    midi, png = tmp_path / "out.mid", tmp_path / "out.png"
    result = run_json(capsys, "sample", trained, "--prime-notes", "60,64,67", "--steps", "12", "--midi", midi,
                      "--roll", png, "--temperature", "0.5", "--seed", "1", "--json")  # fmt: skip
    assert result["frames"][0] == [60, 64, 67] and len(result["frames"]) == 13 and result["primed"] == 1
    notes = read_midi(midi)
    assert sorted(n.pitch for n in notes if n.start == 0) == [60, 64, 67]
    assert png.is_file()
    again = run_json(capsys, "sample", trained, "--prime-notes", "60,64,67", "--steps", "12", "--temperature", "0.5",
                     "--seed", "1", "--json")  # fmt: skip
    assert again["frames"] == result["frames"]
    # the model learnt the data: what it writes is made of the training triads
    chords = {tuple(c) for c in CHORDS}
    assert sum(tuple(f) in chords for f in result["frames"][1:]) >= 9


@pytest.mark.parametrize("argv, match", [
    (["train", "music", "--max-steps", "1"], "needs --data"),
    (["sample", "RUN", "--abc"], "--abc samples tunes from a character-level 'lm' run"),
    (["sample", "RUN", "--prime", "X:"], "primed with --prime-notes"),
    (["sample", "RUN", "--prime-notes", "60,200"], "pitch 200 is off the piano"),
    (["eval", "RUN", "--data", "MISSING.json"], "MISSING.json: no such file"),
])  # fmt: skip
def test_mistakes_are_one_line_and_status_2(trained, tmp_path, capsys, argv, match):
    argv = [str(trained) if a == "RUN" else str(tmp_path / a) if a.endswith(".json") else a for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnkit: error: ") and match in err and err.count("\n") == 1


def test_the_16th_note_file_of_a_folder_trains_and_its_midi_keeps_16th_note_time(tmp_path, capsys):
    """--resolution picks the file of a folder; the voice-separated format's -1 is silence; MIDI frames are
    a 16th note long (0.25 beats, 1/8 s at 120 bpm)."""
    folder = tmp_path / "jsb"
    folder.mkdir()
    quarter = {"train": [[[60, 64, 67]] * 4], "valid": [[[60]]], "test": [[[60]]]}
    voices = [[[67, 64, 60, 48]] * 4 + [[-1, -1, -1, 48]] * 4 for _ in range(6)]
    (folder / "jsb-chorales-quarter.json").write_text(json.dumps(quarter))
    (folder / "Jsb16thSeparated.json").write_text(json.dumps({"train": voices, "valid": voices[:2],
                                                              "test": voices[:2]}))  # fmt: skip
    run = tmp_path / "run"
    assert main(["train", "music", "--data", str(folder), "--resolution", "16th", "--out", str(run), "--max-steps",
                 "40", "--hidden-size", "8", "--lr", "0.03", "--dropout", "0", "--quiet"]) == 0  # fmt: skip
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["data"].endswith("Jsb16thSeparated.json") and config["data"]["resolution"] == "16th"
    assert config["defaults"]["preset"] == "16th, any budget" and config["defaults"]["chosen"]["cell"] == "lstm"
    capsys.readouterr()
    tested = run_json(capsys, "eval", run, "--json")  # the run's own file, the test split by default
    assert tested["split"] == "test" and tested["metrics"]["steps"] == 16
    midi = tmp_path / "out.mid"
    run_json(capsys, "sample", run, "--prime-notes", "48,60,64,67", "--steps", "7", "--temperature", "0",
             "--midi", midi, "--json")  # fmt: skip
    notes = read_midi(midi)
    assert all((n.end * 4) % 1 == 0 and (n.start * 4) % 1 == 0 for n in notes)
    assert max(n.end for n in notes) <= 8 * 0.25 and min(n.end for n in notes if n.start == 0) >= 0.25
    assert mido.MidiFile(midi).length <= 8 * 0.125 + 1e-9


def test_a_bad_chorale_file_is_refused_before_a_run_is_made(tmp_path, capsys):
    bad = write_json(tmp_path, {"train": [[[60]]], "test": [[[60]]]})
    assert main(["train", "music", "--data", str(bad), "--out", str(tmp_path / "run"), "--max-steps", "1"]) == 2
    assert "with the keys train, valid and test" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


# -- ABC tunes ------------------------------------------------------------------------------------------

SCALE = "X: 1\nT:Scale\nM:4/4\nL:1/4\nK:C\nCDEF|GABc|cBAG|FEDC|]\n"
PICKUP = "X: 2\nT:Pickup\nM:3/4\nL:1/4\nK:G\nD|GAB|c2B|A2:|\n"
LONG_BAR = "X: 3\nT:Long\nM:3/4\nL:1/4\nK:D\nDEF|GABc|def|d3|]\n"


def test_split_tunes_and_complete_tunes():
    text = f"junk before\n{SCALE}\n\n{PICKUP}\n\nX: 4\nT:cut"
    assert split_tunes(text) == [SCALE, PICKUP, "X: 4\nT:cut\n"]
    assert complete_tunes(text) == ([SCALE, PICKUP], 1)
    assert complete_tunes(SCALE + "\n\n") == ([SCALE], 0)


def test_check_tune_parses_and_checks_bars_against_the_metre():
    scale, pickup, long_bar = check_tune(SCALE), check_tune(PICKUP), check_tune(LONG_BAR)
    assert scale.parses and scale.consistent and scale.bars == 4 and scale.notes == 16
    assert pickup.parses and pickup.consistent  # a short bar at the start is a pickup
    assert long_bar.parses and not long_bar.consistent  # four crotchets in a 3/4 bar
    assert not check_tune("X: 5\nM:6/8\nK:G\nabc|d2e|zzz[[[|\n").parses  # a chord bracket never closed
    missing = check_tune("X: 6\nT:no key\nM:6/8\nabc|\n")
    assert not missing.parses and missing.error == "no K: field"
    report = tune_report([SCALE, PICKUP, LONG_BAR, "X: 7\nM:4/4\nK:C\n"])
    assert (report["tunes"], report["parse"], report["consistent"]) == (4, 3, 2)
    assert report["parse_share"] == 0.75 and report["consistent_share"] == 0.5


def test_abc_sample_report_puts_the_tunes_that_parse_into_one_midi_file():
    text = f"{SCALE}\n\nX: 9\nM:4/4\nK:C\nab[[[|\n\n{PICKUP}\n\nX: 10\n"
    report = abc_sample_report(text, midi=True, reference=[SCALE, PICKUP])
    assert report["generated"]["tunes"] == 3 and report["generated"]["parse"] == 2 and report["cut_off"] == 1
    assert report["reference"]["parse_share"] == 1.0 and report["midi_tunes"] == 2
    notes = read_midi(data=report["midi"])
    pitches = [n.pitch for n in notes]
    assert pitches[:8] == [60, 62, 64, 65, 67, 69, 71, 72]  # the scale, then after a gap the pickup tune
    # the pickup tune ends on ':|' (back to the start): its 7 notes are played twice, as a listener hears it
    assert pitches[16:] == [62, 67, 69, 71, 72, 71, 69] * 2
    assert notes[16].start == notes[15].end + 4.0  # gap_beats of silence between the tunes


def test_a_tune_whose_repeats_do_not_pair_up_is_played_once_and_ties_hold():
    text = "X: 1\nM:2/4\nL:1/4\nK:C\n|:CD|E-E|\n\n"  # '|:' never closed: music21 cannot expand it
    report = abc_sample_report(text, midi=True)
    assert report["midi_tunes"] == 1
    assert read_midi(data=report["midi"]) == [Note(60, 0.0, 1.0, 90), Note(62, 1.0, 2.0, 90), Note(64, 2.0, 4.0, 90)]
    with pytest.raises(DataError, match="none of the 1 complete generated tunes parses: no MIDI file written"):
        abc_sample_report("X: 1\nM:2/4\nK:C\nab[[[|\n\n", midi=True)


def test_read_abc_skips_files_without_tunes_and_says_which(tmp_path):
    (tmp_path / "a.abc").write_text(SCALE + "\n" + PICKUP)
    (tmp_path / "b.abc").write_text("no tunes here\n")
    (tmp_path / "c.abc").write_bytes(b"\xff\xfe\x00")
    found = read_abc(tmp_path)
    assert found.tunes == [SCALE, PICKUP] and found.files == 3
    assert [(p.split("/")[-1], why) for p, why in found.skipped] == [("b.abc", "no tune (no line starting X:)"),
                                                                     ("c.abc", "not UTF-8 text")]  # fmt: skip
    with pytest.raises(DataError, match="no ABC tune"):
        read_abc(tmp_path / "b.abc")


def test_sample_abc_from_a_char_lm_run(tmp_path, capsys):
    tunes = [f"X: {i}\nT:Tune {i}\nM:4/4\nL:1/4\nK:C\n" + "|".join(random.Random(i).choice(["CDEF", "GABc", "cBAG",
             "FEDC"]) for _ in range(4)) + "|]\n" for i in range(60)]  # fmt: skip
    data = tmp_path / "abc"
    data.mkdir()
    (data / "tunes.txt").write_text("\n\n".join(tunes))
    (data / "readme.txt").write_text("Sixty tunes of four bars.\n")  # no tune in it: skipped, and said so
    run = tmp_path / "lm"
    assert main(["train", "lm", "--data", str(data), "--out", str(run), "--max-steps", "150", "--hidden-size", "64",
                 "--embedding-size", "16", "--batch-size", "16", "--seq-len", "50", "--num-layers", "1", "--lr",
                 "0.01", "--quiet"]) == 0  # fmt: skip
    capsys.readouterr()
    out = tmp_path / "gen.mid"
    result = run_json(capsys, "sample", run, "--abc", "--tunes", "3", "--midi", out, "--temperature", "0.5",
                      "--seed", "0", "--reference-tunes", "5", "--json")  # fmt: skip
    metrics = result["metrics"]
    assert metrics["reference_parse_share"] == 1.0 and metrics["tunes"] == 3
    assert metrics["parse_share"] >= 2 / 3  # a few seconds of training already writes tunes that parse
    assert out.is_file() and read_midi(out)
    assert result["notes"] == ["1 of 2 training files held no ABC tune and were skipped: readme.txt"]
    assert metrics["temperature"] == 0.5
    plain = run_json(capsys, "sample", run, "--abc", "--tunes", "1", "--seed", "0", "--reference-tunes", "0", "--json")
    assert plain["metrics"]["temperature"] == ABC_TEMPERATURE  # --abc's own default when none is given
    assert main(["sample", str(run), "--midi", str(out)]) == 2
    assert "--midi with an lm run needs --abc" in capsys.readouterr().err


def test_a_tune_music21_cannot_write_as_midi_is_left_out_not_fatal(monkeypatch):
    import music21

    real = music21.midi.translate.music21ObjectToMidiFile
    calls = []

    def fails_once(score, *args, **kwargs):  # music21 raises its own errors on some generated tunes
        calls.append(score)
        if len(calls) == 1:
            raise music21.sites.SitesException("an entry for this object is not stored in this Sites object")
        return real(score, *args, **kwargs)

    monkeypatch.setattr(music21.midi.translate, "music21ObjectToMidiFile", fails_once)
    report = abc_sample_report(f"{SCALE}\n\n{PICKUP}\n\n", midi=True)
    assert report["generated"]["parse"] == 2 and report["midi_tunes"] == 1  # the first tune left out
    assert [n.pitch for n in read_midi(data=report["midi"])][:5] == [62, 67, 69, 71, 72]
