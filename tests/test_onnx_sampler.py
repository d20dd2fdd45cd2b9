"""rnnkit_onnx: sampling from exported language models with numpy + onnxruntime, no torch imported.

The sampler's tokens are ``rnnkit sample``'s: the same text when greedy, and the same tokens when it is fed
the Exp(1) draws that PyTorch's generator makes; its own draws are numpy's PCG64 (so, for the same seed,
random samples differ from PyTorch's, by design: see rnnkit_onnx.sampler).
"""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import rnnkit
from rnnkit.cli import main
from rnnkit.data.tokenizers import CharTokenizer, WordTokenizer
from rnnkit.decoding import sample_logits as torch_sample_logits
from rnnkit.layers import RecurrentConfig
from rnnkit.models import LanguageModel, LanguageModelConfig, save_model
from rnnkit.tasks.lm import encode_prime

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed: pip install 'rnnkit[export]'")
pytest.importorskip("onnx", reason="onnx is not installed: pip install 'rnnkit[export]'")

import rnnkit_onnx  # noqa: E402
from rnnkit.apps.export import export_run  # noqa: E402
from rnnkit_onnx import sampler  # noqa: E402
from rnnkit_onnx.__main__ import main as onnx_main  # noqa: E402

TEXT = "the cat sat on the mat.\nThe dog, the cat and the rat ran!\n"
CELLS = {
    "lstm everything": dict(cell="lstm", layer_norm=True, peephole=True, proj_size=3, zoneout=0.2,
                            recurrent_dropout=0.3),
    "gru before": dict(cell="gru", reset="before", layer_norm=True),
    "rnn skip": dict(cell="rnn", skip_connections=True),
}


def make_run(folder, tokenizer, seed=0, **options):
    torch.manual_seed(seed)
    rnn = RecurrentConfig(input_size=6, hidden_size=8, num_layers=2, batch_first=True, **options)
    model = LanguageModel(LanguageModelConfig(len(tokenizer), 6, rnn)).eval()
    with torch.no_grad():
        model.head.weight.mul_(20.0)  # peaked distributions: greedy and top-p choices are far from ties
    save_model(folder / "run", model, config={"task": "lm"}, vocab=tokenizer.to_json())
    export_run(folder / "run", folder / "lm.onnx")
    return model, folder / "run", folder / "lm.onnx"


@pytest.fixture(scope="module")
def char_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("char"), CharTokenizer.build([TEXT]), **CELLS["lstm everything"])


@pytest.fixture(scope="module")
def word_run(tmp_path_factory):
    tokenizer = WordTokenizer.build(TEXT.splitlines(), split="punct", lowercase=True)
    return make_run(tmp_path_factory.mktemp("word"), tokenizer, seed=1, cell="gru")


def cli_output(argv, capsys):
    assert main(argv) == 0
    return capsys.readouterr().out


def test_the_sampler_never_imports_torch(char_run):
    _, run, onnx_path = char_run
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['rnnkit_onnx', {str(onnx_path)!r}, '--vocab', {str(run / 'vocab.json')!r}, '--length', '30',"
        " '--seed', '3', '--prime', 'the ']\n"
        "try:\n    runpy.run_module('rnnkit_onnx', run_name='__main__')\nexcept SystemExit as stop:\n"
        "    assert stop.code == 0, stop.code\n"
        "print('torch' in sys.modules, 'rnnkit' in sys.modules)\n"
    )  # python -m rnnkit_onnx, with a look at what it imported
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    text, imported = result.stdout.rsplit("\n", 2)[:2]
    assert imported == "False False"
    assert text.startswith("the ") and len(text) == len("the ") + 30


@pytest.mark.parametrize("which", ["char", "word"])
def test_greedy_samples_are_rnnkit_sample_s_text(which, char_run, word_run, capsys):
    _, run, onnx_path = char_run if which == "char" else word_run
    prime = "the cat" if which == "char" else "The dog"
    for extra in ([], ["--num-samples", "3"]):
        options = ["--temperature", "0", "--length", "60", "--prime", prime, *extra]
        expected = cli_output(["sample", str(run), *options], capsys)
        got = cli_output(["sample", "--onnx", str(onnx_path), "--vocab", str(run / "vocab.json"), *options], capsys)
        assert got == expected and len(expected) > 60


def torch_draws(seed):
    """The Exp(1) draws rnnkit.generate makes from torch.Generator(seed), one (N, V) array per step."""
    generator = torch.Generator().manual_seed(seed)
    return lambda shape: torch.empty(shape).exponential_(1.0, generator=generator).numpy()


@pytest.mark.parametrize("name", list(CELLS))
def test_fed_pytorch_s_draws_the_sampler_picks_rnnkit_generate_s_tokens(name, tmp_path):
    model, _, onnx_path = make_run(tmp_path, CharTokenizer.build([TEXT]), **CELLS[name])
    exported = rnnkit_onnx.LanguageModel(onnx_path)
    for sampling in ({}, {"temperature": 0.7, "top_k": 4}, {"temperature": 1.3, "top_p": 0.8}):
        expected = rnnkit.generate(model.embedding, model.rnn, model.head, 50, prime=[3, 1, 4], num_samples=4, seed=11,
                                   **sampling)  # fmt: skip
        got = rnnkit_onnx.generate(exported, 50, prime=[3, 1, 4], num_samples=4, draws=torch_draws(11), **sampling)
        assert np.array_equal(np.stack(list(got), axis=1), expected.numpy()), sampling


def test_sample_logits_is_the_rule_of_rnnkit_decoding():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 30, generator=g) * 3
    rules = ((1.0, None, None), (0.5, 5, None), (2.0, None, 0.6), (0.8, 7, 0.9), (1.0, 1, None))
    for temperature, top_k, top_p in rules:
        state = g.get_state()
        expected = torch_sample_logits(logits, temperature, top_k, top_p, generator=g)
        race = torch.empty(64, 30).exponential_(1.0, generator=torch.Generator().set_state(state))
        got = sampler.sample_logits(logits.numpy(), temperature, top_k, top_p, race.numpy())
        assert np.array_equal(got, expected.numpy()), (temperature, top_k, top_p)
    assert np.array_equal(sampler.sample_logits(logits.numpy(), 0.0), logits.argmax(-1).numpy())


def test_seeded_draws_are_numpy_pcg64_exponentials(char_run):
    _, run, onnx_path = char_run
    exported = rnnkit_onnx.LanguageModel(onnx_path)
    first = next(rnnkit_onnx.generate(exported, 1, prime=[2, 5], num_samples=3, seed=42))
    logits = exported.prime(np.array([[2, 5]] * 3))
    race = np.random.Generator(np.random.PCG64(42)).standard_exponential(logits.shape, dtype=np.float32)
    assert np.array_equal(first, (sampler.softmax(logits) / race).argmax(-1))
    again = [list(rnnkit_onnx.generate(exported, 40, seed=seed)) for seed in (7, 7, 8)]
    assert again[0] == again[1] and again[0] != again[2]


def test_the_vocabulary_encodes_and_decodes_as_rnnkit_s_tokenizers():
    lines = TEXT.splitlines()
    tokenizers = (CharTokenizer.build([TEXT]), WordTokenizer.build(lines, split="punct", lowercase=True),
                  WordTokenizer.build(lines, max_size=6))  # fmt: skip
    for tokenizer in tokenizers:
        vocab = sampler.Vocabulary(json.loads(json.dumps(tokenizer.to_json())))
        for prime in (None, "", "the cat", "The Dog, ran!\nsat zebra"):
            if prime and "z" in prime and tokenizer.level == "char":
                continue
            assert vocab.encode_prime(prime) == encode_prime(tokenizer, prime)
        ids = list(range(len(tokenizer))) * 2
        assert vocab.decode(ids) == tokenizer.decode(ids)


def test_viterbi_is_the_crf_s():
    from rnnkit.crf import CRF, allowed_transitions

    tags = ["O", "B-X", "I-X", "B-Y", "I-Y"]
    torch.manual_seed(0)
    crf = CRF(len(tags), allowed_transitions(tags, "bio"))
    with torch.no_grad():
        crf.transitions.normal_()
        crf.start.normal_()
        crf.end.normal_()
    emissions, lengths = torch.randn(6, 9, len(tags)), torch.tensor([9, 1, 4, 9, 2, 7])
    mask = torch.arange(9) < lengths.unsqueeze(1)
    scores = [t.detach().numpy() for t in crf.scores()]
    assert sampler.viterbi(emissions.numpy(), lengths.tolist(), *scores) == crf.decode(emissions, mask)


def sample_error(argv, capsys):
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1, err
    return err


def test_bad_sampler_input_is_one_line(char_run, word_run, capsys, tmp_path):
    _, run, onnx_path = char_run
    vocab = str(run / "vocab.json")
    assert "--vocab" in sample_error(["sample", "--onnx", str(onnx_path)], capsys)
    assert "takes a RUN" in sample_error(["sample", str(run), "--onnx", str(onnx_path), "--vocab", vocab], capsys)
    with pytest.raises(SystemExit) as stop:
        main(["sample"])
    assert stop.value.code == 2 and "required: RUN (or --onnx OUT.onnx)" in capsys.readouterr().err
    assert "not in the model's vocabulary" in sample_error(["sample", "--onnx", str(onnx_path), "--vocab", vocab,
                                                            "--prime", "xyz"], capsys)  # fmt: skip
    other = str(word_run[1] / "vocab.json")
    assert "not its vocab.json" in sample_error(["sample", "--onnx", str(onnx_path), "--vocab", other], capsys)
    assert "does not exist" in sample_error(["sample", "--onnx", str(tmp_path / "no.onnx"), "--vocab", vocab], capsys)
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    assert "onnxruntime can load" in sample_error(["sample", "--onnx", str(tmp_path / "bad.onnx"), "--vocab", vocab],
                                                  capsys)  # fmt: skip


def test_an_exported_forecaster_is_one_line_not_a_traceback(char_run, tmp_path, capsys):
    from rnnkit.models import Forecaster, ForecasterConfig

    rnn = RecurrentConfig("gru", input_size=4, hidden_size=5, batch_first=True)
    save_model(tmp_path / "run", Forecaster(ForecasterConfig(input_size=2, known_size=0, horizon=3, rnn=rnn)),
               config={"task": "forecast"})  # fmt: skip
    export_run(tmp_path / "run", tmp_path / "f.onnx")
    vocab = str(char_run[1] / "vocab.json")
    wanted = "is an exported forecast model, not a language model (rnnkit export of an lm run)"
    assert wanted in sample_error(["sample", "--onnx", str(tmp_path / "f.onnx"), "--vocab", vocab], capsys)
    assert onnx_main([str(tmp_path / "f.onnx"), "--vocab", vocab]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and wanted in err
    with pytest.raises(ValueError, match="is an exported forecast model, not an encoder-decoder"):
        sampler.greedy_decode(tmp_path / "f.onnx", np.zeros((1, 2)), np.ones(1), max_length=3)
