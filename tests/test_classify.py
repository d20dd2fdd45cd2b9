"""Sequence classification: readers and their errors, the classifier head, and the classify task
through the command line (training, eval, predict, resume)."""

import json
import random

import numpy as np
import pytest
import torch

from rnnkit import checkpoint
from rnnkit.cli import main
from rnnkit.data.labelled import Labelled, load_labelled, windows
from rnnkit.data.sst import parse_tree
from rnnkit.data.tokenizers import WordTokenizer
from rnnkit.errors import DataError
from rnnkit.layers import RecurrentConfig
from rnnkit.models import SequenceClassifier, SequenceClassifierConfig, load_model
from rnnkit.tasks.classify import class_weights, drop_words, split_examples
from rnnkit.train import Trainer

SMALL = ["--hidden-size", "24", "--embedding-size", "16", "--batch-size", "16", "--quiet"]
TOPICS = {
    "sea": "wave ship sail salt tide harbour anchor storm".split(),
    "farm": "cow wheat barn plough field hay tractor goat".split(),
    "city": "street tram tower office traffic shop crowd neon".split(),
}
COMMON = "the a and of to in it was is".split()


def sentence(rng: random.Random, topic: str, n: int) -> str:
    return " ".join(rng.choice(TOPICS[topic]) if rng.random() < 0.35 else rng.choice(COMMON) for _ in range(n))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Class folders: one file per topic, lines mixing topic words with common words."""
    rng = random.Random(0)
    root = tmp_path_factory.mktemp("topics")
    for split, lines in (("train", 60), ("valid", 15)):
        (root / split).mkdir()
        for topic in TOPICS:
            text = "\n".join(sentence(rng, topic, 10) for _ in range(lines)) + "\n"
            (root / split / f"{topic}.txt").write_text(text, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def lines_file(tmp_path_factory):
    """Labelled lines, 'LABEL text', with an unbalanced label mix."""
    rng = random.Random(1)
    path = tmp_path_factory.mktemp("lines") / "labelled.txt"
    rows = [(t := rng.choice(["sea", "sea", "farm", "city"])) + " " + sentence(rng, t, rng.randint(3, 12))
            for _ in range(300)]  # fmt: skip
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def run_json(capsys, *argv) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


# -- readers --------------------------------------------------------------------------------------


def test_class_folder_is_cut_into_windows_with_line_ends(folders):
    tokenizer = WordTokenizer.build(["the sea ship"] * 3)
    data = load_labelled(folders / "train", tokenizer, window=20)
    assert data.labels == ["city", "farm", "sea"]
    # 60 lines of 10 words + <eos> = 660 tokens per class = 33 windows of 20
    assert len(data) == 3 * 33 and all(len(s) == 20 for s in data.sequences)
    assert np.bincount(data.targets).tolist() == [33, 33, 33]
    assert sum(int((s == tokenizer.eos).sum()) for s in data.sequences[:33]) == 60
    assert [len(w) for w in windows(np.arange(7), 3)] == [3, 3] and [len(w) for w in windows(np.arange(2), 3)] == [2]


def test_labelled_lines_keep_numeric_label_order(tmp_path):
    path = tmp_path / "l.txt"
    path.write_text("10 good film\n2 bad film\n\n0 awful\n", encoding="utf-8")
    data = load_labelled(path, WordTokenizer.build(["good bad film"]))
    assert data.labels == ["0", "2", "10"] and data.targets.tolist() == [2, 1, 0]


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda d: write(d / "one" / "only.txt", "some text\n").parent, "holds 1 class file (only)"),
        (lambda d: (write(d / "f" / "a.txt", "x y\n"), write(d / "f" / "b.txt", ""))[0].parent, "b.txt is empty"),
        (lambda d: (write(d / "g" / "a.txt", "x y\n"), write(d / "g" / "b.txt", " \n\n"))[0].parent,
         "b.txt holds no tokens"),
        (lambda d: write(d / "l.txt", "1 fine\n0\n"), "l.txt:2: a labelled line needs a label, a space and text"),
        (lambda d: write(d / "s.txt", "1 fine\n1 also fine\n"), "every line has the label '1'"),
        (lambda d: d / "missing", "no such file or folder"),
    ],
)  # fmt: skip
def test_bad_training_data_is_one_clear_line(tmp_path, capsys, make, match):
    code = main(["train", "classify", "--train", str(make(tmp_path)), "--out", str(tmp_path / "run"),
                 "--max-steps", "1", *SMALL])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and match in err, err
    assert err.startswith("rnnkit: error: ") and err.count("\n") == 1
    assert not (tmp_path / "run" / "config.json").exists()


def test_validation_classes_must_be_known(folders, tmp_path, capsys):
    write(tmp_path / "v" / "sea.txt", "wave ship\n")
    write(tmp_path / "v" / "desert.txt", "sand dune\n")
    code = main(["train", "classify", "--train", str(folders / "train"), "--valid", str(tmp_path / "v"),
                 "--out", str(tmp_path / "run"), "--max-steps", "1", *SMALL])  # fmt: skip
    assert code == 2 and "desert.txt: class 'desert' is not one of the model's classes" in capsys.readouterr().err


# -- the model ------------------------------------------------------------------------------------


@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
@pytest.mark.parametrize("cell, bidirectional", [("lstm", False), ("gru", True), ("lstm", True)])
def test_pooling_ignores_padding(pooling, cell, bidirectional):
    torch.manual_seed(0)
    rnn = RecurrentConfig(cell, 8, 12, num_layers=2, batch_first=True, bidirectional=bidirectional)
    model = SequenceClassifier(SequenceClassifierConfig(30, 8, 3, rnn, pooling=pooling)).eval()
    lengths = torch.tensor([5, 2, 7])
    tokens = torch.randint(1, 30, (3, 7))
    batched = model(tokens, lengths)
    for b, n in enumerate(lengths.tolist()):
        alone = model(tokens[b : b + 1, :n], torch.tensor([n]))
        assert torch.allclose(batched[b], alone[0], atol=1e-5), (b, pooling)
    junk = tokens.clone()
    junk[1, 2:] = 29  # change only the padding of row 1
    assert torch.allclose(model(junk, lengths), batched, atol=1e-6)


def test_last_pooling_reads_each_direction_at_its_end():
    torch.manual_seed(0)
    rnn = RecurrentConfig("gru", 4, 6, batch_first=True, bidirectional=True)
    model = SequenceClassifier(SequenceClassifierConfig(10, 4, 2, rnn, pooling="last")).eval()
    tokens, lengths = torch.randint(0, 10, (2, 5)), torch.tensor([5, 3])
    out, _ = model.rnn(model.embedding(tokens), lengths=lengths)
    expected = torch.stack([torch.cat([out[b, n - 1, :6], out[b, 0, 6:]]) for b, n in enumerate(lengths.tolist())])
    assert torch.allclose(model.head(expected), model(tokens, lengths), atol=1e-6)


def test_class_weights_and_split():
    weights = class_weights(np.array([0, 0, 0, 1]), 2)
    assert weights.tolist() == pytest.approx([4 / 6, 2.0])
    examples = Labelled([np.array([i]) for i in range(20)], np.arange(20) % 2, ["a", "b"])
    train, valid = split_examples(examples, 0.25, seed=3)
    again, _ = split_examples(examples, 0.25, seed=3)
    assert len(valid) == 5 and len(train) == 15
    assert sorted(int(s[0]) for s in train.sequences + valid.sequences) == list(range(20))
    assert [int(s[0]) for s in train.sequences] == [int(s[0]) for s in again.sequences]


# -- the task through the command line ------------------------------------------------------------


def test_training_raises_accuracy_and_eval_predict_print_json(folders, tmp_path, capsys):
    out = tmp_path / "run"
    result = run_json(capsys, "train", "classify", "--train", str(folders / "train"), "--valid",
                      str(folders / "valid"), "--window", "10", "--out", str(out), "--epochs", "6", "--lr", "0.01",
                      "--cell", "lstm", "--dropout", "0.2", "--batch-size", "32", "--bidirectional",
                      "--pooling", "mean", "--json", *SMALL)  # fmt: skip
    valid = [r for r in checkpoint.read_metrics(out) if r["split"] == "valid"]
    assert valid[0]["accuracy"] < 0.8 and result["metrics"]["accuracy"] >= 0.9
    assert result["task"] == "classify" and {"accuracy", "macro_f1", "loss"} <= set(result["metrics"])
    vocab = json.loads((out / "vocab.json").read_text())
    assert vocab["labels"] == ["city", "farm", "sea"] and vocab["tokenizer"]["level"] == "word"

    scored = run_json(capsys, "eval", str(out), "--data", str(folders / "valid"), "--json")
    assert scored["task"] == "classify"
    assert scored["metrics"]["accuracy"] == pytest.approx(result["metrics"]["accuracy"])
    matrix = scored["confusion_matrix"]
    assert len(matrix) == 3 and sum(map(sum, matrix)) == scored["metrics"]["examples"]
    assert set(scored["per_class"]) == {"city", "farm", "sea"}

    said = run_json(capsys, "predict", str(out), "--text", "the ship and the tide in the harbour storm", "--json")
    (prediction,) = said["predictions"]
    assert prediction["label"] == "sea" and sum(prediction["probabilities"].values()) == pytest.approx(1.0)
    texts = write(tmp_path / "in.txt", "cow and hay in the barn\n\nneon tram traffic\n")
    said = run_json(capsys, "predict", str(out), "--file", str(texts), "--json")
    assert [p["label"] for p in said["predictions"]] == ["farm", "city"]
    assert main(["predict", str(out), "--text", "goat field"]) == 0
    assert capsys.readouterr().out.startswith("farm\t")


def test_labelled_lines_at_char_level_with_a_seeded_split(lines_file, tmp_path, capsys):
    args = ["train", "classify", "--train", str(lines_file), "--level", "char", "--max-steps", "3",
            "--class-weights", "balanced", "--cell", "gru", "--pooling", "max", "--json", *SMALL]  # fmt: skip
    first = run_json(capsys, *args, "--out", str(tmp_path / "a"))
    second = run_json(capsys, *args, "--out", str(tmp_path / "b"))
    assert first["metrics"]["examples"] == 30  # 10% of 300 held out
    assert first["metrics"]["loss"] == second["metrics"]["loss"]  # same seed, same split and weights
    scored = run_json(capsys, "eval", str(tmp_path / "a"), "--data", str(lines_file), "--json")
    assert scored["metrics"]["examples"] == 300 and scored["labels"] == ["city", "farm", "sea"]
    bad = write(tmp_path / "bad.txt", "sea wave\ndesert sand dune\n")
    assert main(["eval", str(tmp_path / "a"), "--data", str(bad)]) == 2
    assert "bad.txt:2: label 'desert' is not one of the model's labels" in capsys.readouterr().err


def test_word_dropout_reads_only_real_words_as_unknown():
    torch.manual_seed(0)
    tokens = torch.randint(2, 50, (400, 30))
    lengths = torch.randint(1, 31, (400,))
    dropped = drop_words(tokens, lengths, 0.25, unk=1)
    real = torch.arange(30) < lengths.unsqueeze(1)
    assert torch.equal(dropped[~real], tokens[~real])  # padding untouched
    changed = dropped != tokens
    assert torch.all(dropped[changed] == 1)
    assert abs(changed[real].float().mean().item() - 0.25) < 0.02  # the rate asked for, among real words only
    assert torch.equal(drop_words(tokens, lengths, 0.0, unk=1), tokens)


def test_word_dropout_trains_at_word_level_and_is_refused_at_char_level(lines_file, tmp_path, capsys):
    args = ["train", "classify", "--train", str(lines_file), "--max-steps", "3", "--json", *SMALL]
    plain = run_json(capsys, *args, "--out", str(tmp_path / "plain"))
    dropped = run_json(capsys, *args, "--word-dropout", "0.5", "--out", str(tmp_path / "dropped"))
    assert checkpoint.load_config(tmp_path / "dropped")["data"]["word_dropout"] == 0.5
    assert dropped["metrics"]["loss"] != plain["metrics"]["loss"]  # the training batches read other words
    assert main([*args, "--level", "char", "--word-dropout", "0.1", "--out", str(tmp_path / "char")]) == 2
    err = capsys.readouterr().err
    assert "--word-dropout needs --level word" in err and "Traceback" not in err
    assert not (tmp_path / "char").exists()


def test_resume_after_interruption_continues_exactly(folders, tmp_path, capsys, monkeypatch):
    args = ["train", "classify", "--train", str(folders / "train"), "--window", "10", "--eval-every", "5",
            "--dropout", "0.3", "--num-layers", "2", "--bidirectional", *SMALL]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "straight"), "--max-steps", "16"]) == 0
    original = Trainer.log

    def interrupt(self, record):
        original(self, record)
        if record["split"] == "train" and record["step"] >= 8 and not getattr(self, "_interrupted", False):
            self._interrupted = True
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "log", interrupt)
    assert main([*args, "--out", str(tmp_path / "resumed"), "--max-steps", "16", "--log-every", "4"]) == 130
    monkeypatch.setattr(Trainer, "log", original)
    assert main(["train", "classify", "--resume", str(tmp_path / "resumed"), "--max-steps", "16", "--quiet"]) == 0
    a = checkpoint.load_training_state(tmp_path / "straight")["model"]
    b = checkpoint.load_training_state(tmp_path / "resumed")["model"]
    for name in a:
        assert torch.equal(a[name], b[name]), name
    load_model(tmp_path / "resumed")


def test_unknown_words_and_characters_do_not_stop_predict(folders, tmp_path, capsys):
    out = tmp_path / "run"
    main(["train", "classify", "--train", str(folders / "train"), "--window", "10", "--out", str(out),
          "--max-steps", "2", *SMALL])  # fmt: skip
    capsys.readouterr()
    said = run_json(capsys, "predict", str(out), "--text", "zebra ∑ quokka", "--json")
    assert said["predictions"][0]["label"] in TOPICS
    assert main(["predict", str(out), "--text", "  "]) == 2
    with pytest.raises(DataError):
        load_labelled(tmp_path / "nowhere.txt", WordTokenizer.build(["a"]))


def test_sentiment_trees_give_every_labelled_phrase(tmp_path):
    from rnnkit.data.sst import labelled_phrases, parse_tree

    tree = "(3 (2 It) (4 (2 's) (3 (2 a) (3 -LRB-lovely-RRB-) (2 Film))))"
    nodes = parse_tree(tree)
    assert nodes[0] == (3, ["it", "'s", "a", "-lrb-lovely-rrb-", "film"]) and len(nodes) == 8
    path = write(tmp_path / "trees.txt", tree + "\n(1 (1 dull) (2 film))\n")
    assert list(labelled_phrases(path, phrases=False)) == [("3", "it 's a -lrb-lovely-rrb- film"), ("1", "dull film")]
    binary = list(labelled_phrases(path, binary=True))
    assert ("1", "it 's a -lrb-lovely-rrb- film") in binary and ("0", "dull") in binary
    assert all(label in ("0", "1") for label, _ in binary) and ("2", "film") not in binary
    assert len(binary) == len(set(binary))  # each phrase once
    with pytest.raises(DataError, match="trees.txt:1: unbalanced"):
        list(labelled_phrases(write(path, "(3 (2 It)\n")))


def sentiment_tree(rng: random.Random, label: int, name: str) -> str:
    """A right-branching labelled tree: ``label``'s word (4/3 positive, 0/1 negative) among neutral ones
    and the tree's own ``name``; every span that holds the sentiment word carries the root's label, the others 2."""
    cue = {0: "awful", 1: "dull", 3: "nice", 4: "great"}.get(label)
    words = [rng.choice(COMMON) for _ in range(rng.randint(1, 5))] + [name]
    if cue:
        words[rng.randrange(len(words))] = cue.capitalize()  # the tree's case: the reader lowercases

    def span(k: int) -> str:
        leaf = f"({label if words[k].lower() == cue else 2} {words[k]})"
        if k == len(words) - 1:
            return leaf
        return f"({label if cue in (w.lower() for w in words[k:]) else 2} {leaf} {span(k + 1)})"

    return span(0)


@pytest.fixture(scope="module")
def trees_file(tmp_path_factory):
    rng = random.Random(2)
    path = tmp_path_factory.mktemp("trees") / "train.txt"
    path.write_text("\n".join(sentiment_tree(rng, rng.choice([0, 1, 2, 3, 4]), f"n{i}") for i in range(200)) + "\n",
                    encoding="utf-8")  # fmt: skip
    return path


def test_tree_files_give_phrases_to_train_on_and_sentences_to_score(trees_file, tmp_path):
    from rnnkit.data.labelled import layout_of

    assert layout_of(trees_file) == "trees" and layout_of(write(tmp_path / "l.txt", "1 (a) b\n")) == "lines"
    roots = [parse_tree(line)[0][0] for line in trees_file.read_text().splitlines()]
    tokenizer = WordTokenizer.build([" ".join(COMMON + ["awful", "dull", "nice", "great"])])  # names are <unk>
    binary = load_labelled(trees_file, tokenizer)
    assert len(binary) == sum(r != 2 for r in roots) and binary.labels == ["0", "1"]  # SST-2: neutral dropped
    assert binary.targets.tolist() == [int(r > 2) for r in roots if r != 2]
    fine = load_labelled(trees_file, tokenizer, tree_labels="fine")
    assert fine.labels == ["0", "1", "2", "3", "4"] and fine.targets.tolist() == roots
    phrases = load_labelled(trees_file, tokenizer, phrases=True)
    assert len(phrases) > len(binary)
    assert {tuple(tokenizer.encode_line("great", eos=False))} <= {tuple(s) for s in phrases.sequences}
    assert len(load_labelled(trees_file, tokenizer, tree_labels="fine", trees={0, 5})) == 2
    bad = write(tmp_path / "bad.txt", "(3 (2 It) (3 nice))\n(3 (2 It) (3 nice)\n")
    with pytest.raises(DataError, match="bad.txt:2: unbalanced parentheses"):
        load_labelled(bad, tokenizer)


def test_classifier_trains_on_tree_phrases_and_scores_held_out_sentences(trees_file, tmp_path, capsys):
    from rnnkit.tasks.classify import ClassifyDataConfig, ClassifyTask

    task = ClassifyTask.build(ClassifyDataConfig(train=str(trees_file), layout="trees", lowercase=True), "cpu")
    # each tree holds its own word n0, n1, ...
    names = {i for i, token in enumerate(task.tokenizer.tokens) if token[:1] == "n" and token[1:].isdigit()}
    held = {i for s in task.valid.sequences for i in s.tolist()} & names
    trained = {i for s in task.train.sequences for i in s.tolist()} & names
    assert task.valid.labels == ["0", "1"] and held and trained and not held & trained  # whole trees held out

    out = tmp_path / "run"
    result = run_json(capsys, "train", "classify", "--train", str(trees_file), "--out", str(out), "--epochs", "8",
                      "--lr", "0.01", "--json", *SMALL)  # fmt: skip
    valid = [r for r in checkpoint.read_metrics(out) if r["split"] == "valid"]
    assert result["metrics"]["examples"] == len(task.valid) and result["metrics"]["accuracy"] >= 0.9
    assert valid[0]["accuracy"] < result["metrics"]["accuracy"]
    assert json.loads((out / "config.json").read_text())["defaults"]["why"] == "SST-2 treebank phrases"
    # the same sentences as labelled lines (Kim 2014's stsa.* layout) score the same
    trees = [parse_tree(line) for line in trees_file.read_text().splitlines()]
    sentences = [tree[0] for tree in trees if tree[0][0] != 2]
    lines = write(tmp_path / "stsa.txt", "".join(f"{int(label > 2)} {' '.join(words)}\n" for label, words in sentences))
    on_trees = run_json(capsys, "eval", str(out), "--data", str(trees_file), "--json")["metrics"]
    on_lines = run_json(capsys, "eval", str(out), "--data", str(lines), "--json")["metrics"]
    assert on_trees["examples"] == on_lines["examples"] and on_trees["loss"] == pytest.approx(on_lines["loss"])
    texts = write(tmp_path / "in.txt", "It was GREAT\nit was Awful\n")
    said = run_json(capsys, "predict", str(out), "--file", str(texts), "--json")
    assert [p["label"] for p in said["predictions"]] == ["1", "0"]  # lowercased, as the trees are
    with pytest.raises(SystemExit, match="2"):
        main(["train", "classify", "--train", str(trees_file), "--tree-labels", "sst9", "--out", str(tmp_path / "x")])
    assert "invalid choice: 'sst9'" in capsys.readouterr().err
