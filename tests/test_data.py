"""Text reading, tokenizers and LM token streams."""

import numpy as np
import pytest

from rnnkit.data.lm import TokenStreams, encode_file, load_corpus
from rnnkit.data.text import iter_lines, iter_text
from rnnkit.data.tokenizers import EOS, UNK, CharTokenizer, WordTokenizer, id_dtype, tokenizer_from_json
from rnnkit.errors import DataError


def test_char_tokenizer_round_trips_any_unicode():
    text = "naïve café — ☃ 😀\nΣίσυφος\n"
    tok = CharTokenizer.build([text])
    ids = tok.encode(text)
    assert ids.dtype == np.uint8 and len(ids) == len(text)
    assert tok.decode(ids) == text
    assert tokenizer_from_json(tok.to_json()).decode(ids) == text


def test_char_tokenizer_names_an_unknown_character():
    tok = CharTokenizer.build(["abc"])
    with pytest.raises(DataError, match=r"character 'z' \(U\+007A\) is not in the model's vocabulary"):
        tok.encode("abz", where="--prime")


def test_word_tokenizer_caps_vocabulary_and_marks_line_ends():
    lines = ["the cat sat", "the dog sat", "a bird"]
    tok = WordTokenizer.build(lines, max_size=5)
    assert tok.tokens[:2] == [EOS, UNK] and tok.tokens[2:] == ["the", "sat", "cat"]
    ids = tok.encode_lines(["the fish sat"])
    assert [tok.tokens[i] for i in ids] == ["the", UNK, "sat", EOS]
    assert tok.decode(ids) == "the <unk> sat\n"
    punct = WordTokenizer.build(["Hello, world!"], split="punct", lowercase=True)
    assert punct.words("Hello, world!") == ["hello", ",", "world", "!"]


def test_id_dtype_fits_the_vocabulary():
    assert id_dtype(256) == np.uint8 and id_dtype(257) == np.uint16 and id_dtype(70000) == np.int32


def test_text_is_streamed_in_chunks_and_lines_survive_chunk_boundaries(tmp_path):
    path = tmp_path / "big.txt"
    lines = [f"line {i} " + "é" * (i % 7) for i in range(2000)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    chunks = list(iter_text(path, chunk_bytes=1000))
    assert len(chunks) > 10 and "".join(chunks) == path.read_text(encoding="utf-8")
    assert list(iter_lines(path, chunk_bytes=777)) == lines


def test_folder_of_text_files(tmp_path):
    (tmp_path / "b.txt").write_text("second")
    (tmp_path / "a.txt").write_text("first\n")
    (tmp_path / "ignored.csv").write_text("x")
    assert "".join(iter_text(tmp_path)) == "first\nsecond\n"


def test_a_folder_of_abc_tunes_is_text(tmp_path):
    (tmp_path / "reels.abc").write_text("X:2\nT:Second\nK:D\nABcd|\n")
    (tmp_path / "jigs.abc").write_text("X:1\nT:First\nK:G\nGAB|\n")
    (tmp_path / "notes.md").write_text("not a tune")
    assert "".join(iter_text(tmp_path)) == "X:1\nT:First\nK:G\nGAB|\nX:2\nT:Second\nK:D\nABcd|\n"


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "is empty"),
        (b"abc\x00\x01\x02", "looks binary"),
        (b"caf\xe9 au lait", r"is not UTF-8 text \(invalid byte 0xe9 at offset 3\)"),
    ],
)
def test_unusable_files_are_named(tmp_path, content, match):
    path = tmp_path / "data.txt"
    path.write_bytes(content)
    with pytest.raises(DataError, match=match):
        load_corpus(path)


def test_missing_path_and_empty_folder(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        list(iter_text(tmp_path / "missing.txt"))
    with pytest.raises(DataError, match=r"folder with no .txt \(or .abc\) files"):
        list(iter_text(tmp_path))


def test_corpus_split_and_encoding_with_a_saved_tokenizer(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("abcdefghij" * 10)
    corpus = load_corpus(path, valid_fraction=0.2)
    assert len(corpus.train) == 80 and len(corpus.valid) == 21  # 100 chars + the closing newline
    again = encode_file(path, corpus.tokenizer)
    assert np.array_equal(np.concatenate([corpus.train, corpus.valid]), again)


def test_token_streams_continue_from_window_to_window():
    ids = np.arange(103, dtype=np.int32)
    streams = TokenStreams(ids, batch_size=4, seq_len=5)
    assert streams.rows.shape == (4, 25) and len(streams) == 5
    x0, y0 = streams.window(0)
    x1, _ = streams.window(1)
    assert x0.tolist()[1] == [25, 26, 27, 28, 29] and y0.tolist()[1] == [26, 27, 28, 29, 30]
    assert x1[:, 0].tolist() == (x0[:, -1] + 1).tolist()  # row b of window 1 continues row b of window 0
    last_x, last_y = streams.window(4)
    assert last_x.shape == (4, 4) and last_y[0, -1] == 24
    assert streams.num_targets == 4 * 24


def test_corpus_shorter_than_one_window():
    with pytest.raises(DataError, match=r"fewer than one window needs \(8 streams x 11 = 88\)"):
        TokenStreams(np.arange(50), batch_size=8, seq_len=10, name="the training text")


def test_gzipped_text_is_read_transparently(tmp_path):
    import gzip

    with gzip.open(tmp_path / "t.txt.gz", "wt", encoding="utf-8") as f:
        f.write("hello world\n" * 50)
    assert "".join(iter_text(tmp_path / "t.txt.gz")) == "hello world\n" * 50
    (tmp_path / "bad.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="bad.gz: cannot read"):
        list(iter_text(tmp_path / "bad.gz"))
