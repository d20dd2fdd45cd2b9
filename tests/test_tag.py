"""Sequence labelling: the CoNLL reader and its errors, the tagger head, and the tag task through the
command line (training with softmax and CRF, binary names, eval, predict, resume)."""

import json
import random

import pytest
import torch

from rnnkit import checkpoint
from rnnkit.cli import main
from rnnkit.data.conll import casing, read_conll, split_words
from rnnkit.errors import DataError
from rnnkit.layers import RecurrentConfig
from rnnkit.models import CharFeatures, CharFeaturesConfig, SequenceTagger, SequenceTaggerConfig
from rnnkit.train import Trainer

SMALL = ["--hidden-size", "24", "--embedding-size", "16", "--char-embedding-size", "8", "--char-hidden-size", "8",
         "--batch-size", "16", "--quiet"]  # fmt: skip
FIRST = ["John", "Mary", "Peter", "Anna", "Karl", "Olga", "Ivan", "Lena", "Sven", "Ines"]
LAST = ["Smith", "Brown", "Meyer", "Novak", "Ivanov", "Rossi"]
CITIES = [["Paris"], ["New", "York"], ["Berlin"], ["Rio", "de", "Janeiro"], ["Oslo"]]
ORGS = [["Acme", "Corp"], ["United", "Nations"], ["Reuters"]]


def conll(path, sentences: int, seed: int):
    """A CoNLL-2003-like file in IOB1: 'WORD POS CHUNK TAG', people who visit places or join organisations."""
    rng = random.Random(seed)
    lines = ["-DOCSTART- -X- -X- O", ""]
    for _ in range(sentences):
        words = [(w, "I-PER") for w in [rng.choice(FIRST)] + ([rng.choice(LAST)] if rng.random() < 0.6 else [])]
        if rng.random() < 0.5:
            words += [(rng.choice(["visited", "left", "saw"]), "O")] + [(w, "I-LOC") for w in rng.choice(CITIES)]
        else:
            words += [("joined", "O"), ("the", "O")] + [(w, "I-ORG") for w in rng.choice(ORGS)]
        if rng.random() < 0.3:
            words += [("with", "O")] + [(w, "I-PER") for w in [rng.choice(FIRST)]]
        lines += [f"{w} NN I-NP {t}" for w, t in words + [(".", "O")]] + [""]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("conll")
    return conll(root / "train.txt", 240, 0), conll(root / "valid.txt", 60, 1)


def run_json(capsys, *argv) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


# -- the reader -----------------------------------------------------------------------------------


def test_reader_skips_docstart_and_keeps_sentence_positions(files):
    sentences = read_conll(files[0])
    assert len(sentences) == 240 and sentences[0].line == 3 and sentences[0].where(1) == f"{files[0]}:4"
    assert sentences[0].tags[0] == "I-PER"


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "text, match",
    [
        ("EU NNP I-NP I-ORG\nrejects VBZ I-VP O\nGerman JJ I-MISC\n", "x.txt:3: expected 4 columns"),
        ("EU NNP I-NP I-ORG\nrejects VBZ I-VP X-ORG\n", "x.txt:2: unknown tag 'X-ORG' for the IOB1 scheme"),
        ("EU NNP I-NP I-ORG\n\nrejects VBZ I-VP E-ORG\n", "x.txt:3: unknown tag 'E-ORG'"),
        ("EU\n", "x.txt:1: a CoNLL line needs at least 2 columns"),
        ("-DOCSTART- -X- -X- O\n\n", "holds no sentences"),
    ],
)
def test_bad_conll_lines_are_one_clear_line_through_the_cli(tmp_path, capsys, text, match):
    path = write(tmp_path / "x.txt", text)
    code = main(["train", "tag", "--train", str(path), "--out", str(tmp_path / "run"), "--max-steps", "1", *SMALL])
    err = capsys.readouterr().err
    assert code == 2 and match in err, err
    assert err.startswith("rnnkit: error: ") and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_word_features():
    words = ["1996", "1996-08-22", "the", "EU", "German", "iPhone5", "iPhone"]
    assert [casing(w) for w in words] == [1, 2, 3, 4, 5, 6, 7]
    assert split_words("Mr. Smith met U.S. officials in New-York, didn't he?") == [
        "Mr", ".", "Smith", "met", "U.S.", "officials", "in", "New-York", ",", "didn't", "he", "?"]  # fmt: skip


# -- the model ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["lstm", "cnn"])
def test_char_features_ignore_padding(kind):
    torch.manual_seed(0)
    chars = CharFeatures(CharFeaturesConfig(kind, vocab_size=20, embedding_size=5, hidden_size=7)).eval()
    words = torch.randint(2, 20, (3, 6))
    lengths = torch.tensor([6, 2, 4])
    batched = chars(words, lengths)
    assert batched.shape == (3, 14 if kind == "lstm" else 7)
    for b, n in enumerate(lengths.tolist()):
        assert torch.allclose(batched[b], chars(words[b : b + 1, :n], torch.tensor([n]))[0], atol=1e-6)


@pytest.mark.parametrize("crf", [False, True])
def test_tagger_rows_do_not_depend_on_padding(crf):
    torch.manual_seed(0)
    tags = ["O", "B-PER", "I-PER"]
    chars = CharFeaturesConfig("lstm", vocab_size=12, embedding_size=4, hidden_size=3)
    rnn = RecurrentConfig("lstm", 10 + 6 + 2, 8, batch_first=True, bidirectional=True)
    model = SequenceTagger(SequenceTaggerConfig(30, 10, tags, rnn, chars=chars, casing_size=2, crf=crf)).eval()
    lengths = torch.tensor([4, 2])
    words = torch.randint(2, 30, (2, 4))
    char_ids = torch.randint(2, 12, (2, 4, 5))
    char_lengths = torch.randint(1, 6, (2, 4))
    cases = torch.randint(1, 8, (2, 4))
    emissions = model(words, lengths, char_ids, char_lengths, cases)
    alone = model(words[1:, :2], lengths[1:], char_ids[1:, :2], char_lengths[1:, :2], cases[1:, :2])
    assert torch.allclose(emissions[1, :2], alone[0], atol=1e-6)
    paths = model.decode(emissions, lengths)
    assert [len(p) for p in paths] == [4, 2] and model.decode(alone, lengths[1:])[0] == paths[1]
    gold = torch.zeros(2, 4, dtype=torch.long)
    assert model.loss(emissions, gold, lengths).item() > 0


# -- the task through the command line ------------------------------------------------------------


def test_crf_tagger_learns_entities_and_eval_predict_print_json(files, tmp_path, capsys):
    train, valid = files
    out = tmp_path / "run"
    result = run_json(capsys, "train", "tag", "--train", str(train), "--valid", str(valid), "--crf", "--scheme",
                      "bioes", "--casing-size", "4", "--lowercase", "--epochs", "8", "--lr", "0.01", "--out", str(out),
                      "--json", *SMALL)  # fmt: skip
    valid_records = [r for r in checkpoint.read_metrics(out) if r["split"] == "valid"]
    assert valid_records[0]["f1"] < 0.9 <= result["metrics"]["f1"]
    vocab = json.loads((out / "vocab.json").read_text())
    assert vocab["tags"] == ["O", "B-LOC", "I-LOC", "E-LOC", "S-LOC", "B-ORG", "I-ORG", "E-ORG", "S-ORG",
                             "B-PER", "I-PER", "E-PER", "S-PER"]  # fmt: skip
    assert vocab["chars"][:2] == ["<pad>", "<unk>"] and vocab["words"]["lowercase"] is True

    scored = run_json(capsys, "eval", str(out), "--data", str(valid), "--json")
    assert scored["task"] == "tag" and scored["metrics"]["f1"] == pytest.approx(result["metrics"]["f1"])
    assert all(0.0 <= scored["metrics"][k] <= 1.0 for k in ("precision", "recall", "f1"))
    assert set(scored["per_type"]) == {"LOC", "ORG", "PER"}
    assert {"precision", "recall", "f1", "support"} <= set(scored["per_type"]["PER"])

    said = run_json(capsys, "predict", str(out), "--text", "Olga Rossi visited New York.", "--json")
    (p,) = said["predictions"]
    assert p["tokens"] == ["Olga", "Rossi", "visited", "New", "York", "."]
    assert p["tags"] == ["B-PER", "E-PER", "O", "B-LOC", "E-LOC", "O"]
    assert p["entities"] == [{"type": "PER", "start": 0, "end": 2, "text": "Olga Rossi"},
                             {"type": "LOC", "start": 3, "end": 5, "text": "New York"}]  # fmt: skip
    assert main(["predict", str(out), "--text", "Sven joined the United Nations"]) == 0
    assert "ORG: United Nations" in capsys.readouterr().out


def test_softmax_tagger_with_char_cnn_and_binary_names(files, tmp_path, capsys):
    train, valid = files
    out = tmp_path / "names"
    result = run_json(capsys, "train", "tag", "--train", str(train), "--valid", str(valid), "--binary-names",
                      "--char-features", "cnn", "--epochs", "4", "--lr", "0.01", "--out", str(out), "--json",
                      *SMALL)  # fmt: skip
    assert json.loads((out / "vocab.json").read_text())["tags"] == ["O", "I-PER"]
    assert result["metrics"]["f1"] > 0.8 and result["metrics"]["accuracy"] > 0.9
    scored = run_json(capsys, "eval", str(out), "--data", str(valid), "--json")
    assert set(scored["per_type"]) <= {"PER"}


def test_eval_refuses_a_tag_type_the_model_does_not_know(files, tmp_path, capsys):
    out = tmp_path / "run"
    main(["train", "tag", "--train", str(files[0]), "--out", str(out), "--max-steps", "1", "--char-features", "none",
          "--scheme", "bio", *SMALL])  # fmt: skip
    text = "Reuters NNP I-NP I-ORG\nsaid VBD I-VP O\n\nin IN I-PP O\nMay NNP I-NP I-DATE\n"
    other = write(tmp_path / "other.txt", text)
    capsys.readouterr()
    assert main(["eval", str(out), "--data", str(other)]) == 2
    assert "other.txt:5: tag 'B-DATE' is not one of the model's tags" in capsys.readouterr().err


def test_resume_after_interruption_continues_exactly(files, tmp_path, monkeypatch):
    args = ["train", "tag", "--train", str(files[0]), "--valid", str(files[1]), "--crf", "--eval-every", "5",
            "--unk-replace", "0.5", *SMALL]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "straight"), "--max-steps", "12"]) == 0
    original = Trainer.log

    def interrupt(self, record):
        original(self, record)
        if record["split"] == "train" and record["step"] >= 6 and not getattr(self, "_interrupted", False):
            self._interrupted = True
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "log", interrupt)
    assert main([*args, "--out", str(tmp_path / "resumed"), "--max-steps", "12", "--log-every", "3"]) == 130
    monkeypatch.setattr(Trainer, "log", original)
    assert main(["train", "tag", "--resume", str(tmp_path / "resumed"), "--max-steps", "12", "--quiet"]) == 0
    a = checkpoint.load_training_state(tmp_path / "straight")["model"]
    b = checkpoint.load_training_state(tmp_path / "resumed")["model"]
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_missing_train_option_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "tag", "--out", str(tmp_path / "r")]) == 2
    assert "needs --train FILE" in capsys.readouterr().err
    with pytest.raises(DataError, match="no such file"):
        read_conll(tmp_path / "nowhere.conll")
