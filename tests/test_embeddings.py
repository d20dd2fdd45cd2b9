"""Pretrained word vectors: the GloVe / word2vec text reader, copying rows into an embedding, and
``--embeddings`` / ``--freeze-embeddings`` for classify, tag and the word-level language model."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from rnnkit.cli import main
from rnnkit.data.embeddings import read_word_vectors
from rnnkit.errors import ConfigError, DataError
from rnnkit.models.common import load_pretrained

DIM = 6
WORDS = ["good", "bad", "film", "plot", "great", "awful", "movie", "the", "a", "was"]


def write_vectors(path, words, dim=DIM, header=False, seed=0):
    """A GloVe-style file (or word2vec text format with ``header``); returns {word: vector}."""
    rng = np.random.default_rng(seed)
    table = {w: rng.normal(size=dim).astype(np.float32) for w in words}
    lines = [f"{len(words)} {dim}"] if header else []
    lines += [w + " " + " ".join(f"{x:.6f}" for x in v) for w, v in table.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {w: np.array([float(f"{x:.6f}") for x in v], dtype=np.float32) for w, v in table.items()}


# -- the reader ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("header", [False, True], ids=["glove", "word2vec"])
def test_reader_reads_both_text_formats(tmp_path, header):
    path = tmp_path / "vectors.txt"
    table = write_vectors(path, WORDS, header=header)
    vectors = read_word_vectors(path)
    assert vectors.dim == DIM and list(vectors.words) == WORDS
    np.testing.assert_array_equal(vectors.vectors, np.stack([table[w] for w in WORDS]))


def test_reader_keeps_only_the_words_asked_for_and_the_first_of_a_repeated_word(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("the 1 2\nNew York 3 4\nthe 9 9\nParis 5 6\n", encoding="utf-8")
    vectors = read_word_vectors(path)
    assert vectors.words == ("the", "New York", "the", "Paris")
    assert vectors.lookup("the") == (0, False)
    assert vectors.lookup("new york") == (1, True)  # by its lowercase form
    assert vectors.lookup("paris") == (3, True) and vectors.lookup("Rome") == (None, False)
    kept = read_word_vectors(path, keep=lambda w: w.lower() == "paris")
    assert kept.words == ("Paris",) and kept.vectors.tolist() == [[5.0, 6.0]] and kept.dim == 2


@pytest.mark.parametrize(
    "text, match",
    [
        ("the 1 2 3\ncat 1 2\n", r"v.txt:2: expected a word and 3 numbers, got 3 fields"),
        ("the 1 2\ncat 1 x\n", r"v.txt:2: the vector of 'cat' has a value that is not a number"),
        ("the 1 2\ncat 1 nan\n", r"v.txt:2: the vector of 'cat' has a value that is not finite"),
        ("the\n", r"v.txt:1: expected a word and its vector"),
        ("\n\n", r"v.txt has no word vectors"),
    ],
)
def test_reader_names_the_bad_line(tmp_path, text, match):
    path = tmp_path / "v.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=match):
        read_word_vectors(path)


def test_reader_refuses_an_empty_or_binary_file(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="is empty"):
        read_word_vectors(empty)
    binary = tmp_path / "vectors.bin"
    binary.write_bytes(b"3 2\nthe \x00\x00\x80\x3f\x00\x00")
    with pytest.raises(DataError, match="binary.*word2vec saved with binary=False"):
        read_word_vectors(binary)


# -- copying rows -------------------------------------------------------------------------------------


def test_load_pretrained_copies_exact_then_lowercase_matches_and_leaves_the_rest(tmp_path):
    path = tmp_path / "v.txt"
    table = write_vectors(path, ["the", "paris", "Rome", "rome"])
    vectors = read_word_vectors(path)
    vocab = ["<eos>", "<unk>", "the", "Paris", "Rome", "Oslo"]
    embedding = nn.Embedding(len(vocab), DIM)
    before = embedding.weight.detach().clone()
    counts = load_pretrained(embedding, vectors, vocab)
    assert counts == {"words": 6, "exact": 2, "lowercase": 1, "missing": 3}
    w = embedding.weight.detach()
    np.testing.assert_array_equal(w[2].numpy(), table["the"])
    np.testing.assert_array_equal(w[3].numpy(), table["paris"])  # "Paris" found as "paris"
    np.testing.assert_array_equal(w[4].numpy(), table["Rome"])  # the exact match wins over "rome"
    for i in (0, 1, 5):
        assert torch.equal(w[i], before[i])


def test_load_pretrained_refuses_a_size_mismatch(tmp_path):
    path = tmp_path / "v.txt"
    write_vectors(path, ["the"])
    with pytest.raises(ConfigError, match=r"the embedding size \(4\) must equal the vectors' \(6\)"):
        load_pretrained(nn.Embedding(2, 4), read_word_vectors(path), ["the", "cat"])


# -- through the command line ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Labelled sentiment lines, a CoNLL file, and a vector file covering most of their words."""
    root = tmp_path_factory.mktemp("embeddings")
    rng = np.random.default_rng(1)
    lines = []
    for _ in range(120):
        label = rng.choice(["pos", "neg"])
        word = rng.choice(["good", "great"] if label == "pos" else ["bad", "awful"])
        lines.append(f"{label} the {rng.choice(['film', 'movie', 'Plot'])} was {word}")
    (root / "train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    sentences = []
    for _ in range(60):
        name = rng.choice(["Anna", "Bob", "Carl"])
        sentences.append(f"{name} B-PER\nsaw O\nthe O\nfilm O\n")
    (root / "ner.txt").write_text("\n".join(sentences), encoding="utf-8")
    table = write_vectors(root / "vectors.txt", [*WORDS, "anna", "bob", "saw"])
    return root, table


def run_json(capsys, *argv) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def embedding_rows(run, prefix="embedding.weight"):
    return load_file(str(run / "model.safetensors"))[prefix]


def test_classify_takes_the_files_size_copies_rows_and_freezes_them(data, tmp_path, capsys):
    root, table = data
    out = tmp_path / "frozen"
    result = run_json(capsys, "train", "classify", "--train", str(root / "train.txt"), "--embeddings",
                      str(root / "vectors.txt"), "--freeze-embeddings", "--hidden-size", "8", "--max-steps", "6",
                      "--out", str(out), "--json", "--quiet")  # fmt: skip
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["config"]["embedding_size"] == DIM  # the default size gives way to the file's
    record = config["embeddings"]
    assert record["freeze"] is True and record["dim"] == DIM
    vocab = json.loads((out / "vocab.json").read_text())["tokenizer"]["tokens"]
    # every word but <eos>, <unk> is in the file: "Plot" by its lowercase form
    assert record["missing"] == 2 and record["lowercase"] == 1 and record["exact"] == len(vocab) - 3
    rows = embedding_rows(out)
    for i, word in enumerate(vocab):
        if word.lower() in table:
            np.testing.assert_allclose(rows[i].numpy(), table[word.lower()], rtol=0, atol=0)
    assert result["summary"]["steps"] == 6

    moving = tmp_path / "trained"
    main(["train", "classify", "--train", str(root / "train.txt"), "--embeddings", str(root / "vectors.txt"),
          "--hidden-size", "8", "--max-steps", "6", "--lr", "0.05", "--out", str(moving), "--quiet"])  # fmt: skip
    film = vocab.index("film")
    assert not np.allclose(embedding_rows(moving)[film].numpy(), table["film"]), "without --freeze-embeddings it trains"


def test_tagger_copies_the_word_rows_and_keeps_them_frozen(data, tmp_path, capsys):
    root, table = data
    out = tmp_path / "tag"
    assert main(["train", "tag", "--train", str(root / "ner.txt"), "--embeddings", str(root / "vectors.txt"),
                 "--freeze-embeddings", "--no-lowercase", "--hidden-size", "8", "--char-features", "none",
                 "--max-steps", "4",
                 "--out", str(out), "--quiet"]) == 0  # fmt: skip
    words = json.loads((out / "vocab.json").read_text())["words"]["tokens"]
    # the words: <eos>, <unk>, Anna, Bob, Carl, saw, the, film; all but <eos>, <unk> and Carl are in the file
    note = "note: --embeddings: 5 of 8 words copied from"
    assert note in capsys.readouterr().err
    rows = embedding_rows(out)
    for name in ("Anna", "Bob", "saw", "film"):
        np.testing.assert_array_equal(rows[words.index(name)].numpy(), table[name.lower()])


def test_word_lm_freezes_the_embedding_across_resume(data, tmp_path, capsys):
    root, table = data
    text = tmp_path / "text.txt"
    text.write_text(" ".join(line.split(" ", 1)[1] for line in (root / "train.txt").read_text().splitlines()) + "\n")
    out = tmp_path / "lm"
    common = ["--level", "word", "--hidden-size", "8", "--num-layers", "1", "--batch-size", "4", "--seq-len", "8",
              "--quiet"]  # fmt: skip
    main(["train", "lm", "--data", str(text), "--embeddings", str(root / "vectors.txt"), "--freeze-embeddings",
          "--max-steps", "3", "--out", str(out), *common])  # fmt: skip
    first = embedding_rows(out)
    assert main(["train", "lm", "--resume", str(out), "--max-steps", "6", "--quiet"]) == 0
    assert json.loads((out / "summary.json").read_text())["steps"] == 6
    assert torch.equal(embedding_rows(out), first)
    words = json.loads((out / "vocab.json").read_text())["tokens"]
    np.testing.assert_array_equal(first[words.index("movie")].numpy(), table["movie"])
    head = load_file(str(out / "model.safetensors"))["head.weight"]
    assert head.abs().sum() > 0  # the rest of the model is there and was trained


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--embedding-size", "50"], "--embedding-size 50 does not match the 6-dimensional vectors of"),
        (["--level", "char"], "--embeddings needs --level word"),
    ],
)
def test_bad_embedding_options_are_one_line(data, tmp_path, capsys, extra, match):
    root, _ = data
    code = main(["train", "classify", "--train", str(root / "train.txt"), "--embeddings", str(root / "vectors.txt"),
                 "--max-steps", "1", "--out", str(tmp_path / "x"), "--quiet", *extra])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and match in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()


def test_freezing_without_vectors_and_a_file_without_the_vocabulary_are_refused(data, tmp_path, capsys):
    root, _ = data
    base = ["train", "classify", "--train", str(root / "train.txt"), "--max-steps", "1", "--quiet"]
    assert main([*base, "--freeze-embeddings", "--out", str(tmp_path / "a")]) == 2
    assert "--freeze-embeddings needs --embeddings FILE" in capsys.readouterr().err
    other = tmp_path / "other.txt"
    write_vectors(other, ["zebra", "yak"])
    assert main([*base, "--embeddings", str(other), "--out", str(tmp_path / "b")]) == 2
    assert "has no vector for any of the" in capsys.readouterr().err
