"""The encoder-decoder: shapes, attention, teacher forcing, decoding, and the seq2seq task through the CLI."""

import itertools
import json
import random

import pytest
import torch

from rnnkit import checkpoint
from rnnkit.cli import main
from rnnkit.data.algorithmic import Curriculum, GeneratorConfig, derive_seed, draw, make_generator
from rnnkit.data.pairs import encode_examples
from rnnkit.decoding import beam_search, greedy_decode, score_hypotheses
from rnnkit.errors import ConfigError
from rnnkit.layers import RecurrentConfig
from rnnkit.models import Seq2Seq, Seq2SeqConfig, build_model, load_model, model_spec
from rnnkit.tasks.seq2seq import Seq2SeqDataConfig, Seq2SeqTask, fixed_set
from rnnkit.train import Trainer

ATTENTIONS = ["none", "bahdanau", "luong", "luong-no-feeding"]


def make_model(attention="none", cell="lstm", bidirectional=False, vocab=7, E=6, H=10, layers=1, **options):
    """A small Seq2Seq; ``attention`` "luong-no-feeding" is Luong attention without input feeding."""
    D = 2 if bidirectional else 1
    feed = {"none": 0, "bahdanau": D * H, "luong": H, "luong-no-feeding": 0}[attention]
    if attention == "luong-no-feeding":
        attention, options = "luong", {**options, "input_feeding": False}
    config = Seq2SeqConfig(
        vocab, E, RecurrentConfig(cell, E, H, layers, batch_first=True, bidirectional=bidirectional),
        RecurrentConfig(cell, E + feed, H, layers, batch_first=True), attention=attention, **options,
    )  # fmt: skip
    return Seq2Seq(config).eval()


def batch(vocab=7, B=4, S=6, T=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    source = torch.randint(3, vocab, (B, S), generator=g)
    lengths = torch.tensor([S, 2, S - 1, 1][:B])
    target = torch.randint(3, vocab, (B, T), generator=g)
    return source, lengths, target


# -- the model ------------------------------------------------------------------------------------


@pytest.mark.parametrize("attention", ATTENTIONS)
@pytest.mark.parametrize("cell, bidirectional, layers", [("lstm", True, 2), ("gru", False, 1), ("rnn", True, 1)])
def test_teacher_forcing_equals_the_step_loop(attention, cell, bidirectional, layers):
    torch.manual_seed(0)
    model = make_model(attention, cell, bidirectional, layers=layers)
    source, lengths, target = batch()
    logits = model(source, lengths, target)
    assert logits.shape == (4, 5, 7)
    memory, carry = model.start(source, lengths)
    assert memory.values.shape == (4, 6, 10 * (2 if bidirectional else 1)) and memory.mask.sum(1).tolist() == [
        6, 2, 5, 1]  # fmt: skip
    steps = []
    for t in range(target.shape[1]):
        step_logits, carry = model.step(target[:, t], carry, memory)
        steps.append(step_logits)
    torch.testing.assert_close(torch.stack(steps, 1), logits)
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())  # every parameter takes part


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_padding_the_source_changes_nothing(attention):
    torch.manual_seed(1)
    model = make_model(attention, "gru", bidirectional=True)
    source, lengths, target = batch()
    padded = torch.cat([source, torch.zeros(4, 3, dtype=torch.long)], dim=1)
    torch.testing.assert_close(model(padded, lengths, target), model(source, lengths, target))
    alone = model(source[1:2, :2], None, target[1:2])  # the second example on its own, no padding at all
    torch.testing.assert_close(model(source, lengths, target)[1:2], alone)


def test_attention_weights_sum_to_one_over_the_real_source():
    torch.manual_seed(2)
    for attention in ("bahdanau", "luong"):
        model = make_model(attention)
        source, lengths, _ = batch()
        memory, carry = model.start(source, lengths)
        _, weights = model.attention(torch.randn(4, 10), memory)
        torch.testing.assert_close(weights.sum(-1), torch.ones(4))
        assert (weights[~memory.mask] == 0).all() and (weights[memory.mask] > 0).all()


def test_luong_attention_over_all_steps_at_once_equals_one_step_at_a_time():
    torch.manual_seed(2)
    model = make_model("luong", bidirectional=True)
    source, lengths, _ = batch()
    memory, _ = model.start(source, lengths)
    queries = torch.randn(4, 3, 10)
    context, weights = model.attention(queries, memory)
    assert context.shape == (4, 3, 20) and weights.shape == (4, 3, 6)
    for t in range(3):
        one_context, one_weights = model.attention(queries[:, t], memory)
        torch.testing.assert_close(context[:, t], one_context)
        torch.testing.assert_close(weights[:, t], one_weights)


def test_the_encoder_state_starts_the_decoder():
    torch.manual_seed(3)
    plain = make_model("none", "gru")
    assert plain.bridge_h is None
    source, lengths, _ = batch()
    _, final = plain.encoder(plain.source_embedding(source), lengths=lengths)
    torch.testing.assert_close(plain.start(source, lengths)[1].state, final)
    bridged = make_model("none", "lstm", bidirectional=True, layers=2)
    h, c = bridged.start(source, lengths)[1].state
    assert h.shape == c.shape == (2, 4, 10) and bridged.bridge_h.in_features == 20
    assert (h.abs() < 1).all()


def test_scheduled_sampling_feeds_the_models_own_tokens():
    torch.manual_seed(4)
    model = make_model("none")
    source, lengths, target = batch()
    forced = model(source, lengths, target)
    torch.testing.assert_close(model(source, lengths, target, sampling_prob=0.0), forced)
    other = target.clone()
    other[:, 1:] = 3  # with p = 1 the true tokens after the first are never read
    a = model(source, lengths, target, sampling_prob=1.0, generator=torch.Generator().manual_seed(0))
    b = model(source, lengths, other, sampling_prob=1.0, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, forced)
    torch.testing.assert_close(a[:, 0], forced[:, 0])  # the first step always reads go


def test_config_round_trip_and_errors():
    torch.manual_seed(5)
    model = make_model("bahdanau", "lstm", True, attention_size=7, dropout=0.1)
    rebuilt = build_model(json.loads(json.dumps(model_spec(model))))
    rebuilt.load_state_dict(model.state_dict())
    source, lengths, target = batch()
    torch.testing.assert_close(rebuilt.eval()(source, lengths, target), model(source, lengths, target))
    config = model.get_config()
    with pytest.raises(ConfigError, match="unknown key 'heads'"):
        Seq2Seq.from_config({**config, "heads": 2})
    with pytest.raises(ConfigError, match="attention must be one of none, bahdanau, luong"):
        Seq2Seq.from_config({**config, "attention": "dot"})
    with pytest.raises(ConfigError, match=r"decoder.input_size \(26\) must be embedding_size \+ 10"):
        Seq2Seq.from_config({**config, "attention": "luong"})
    with pytest.raises(ConfigError, match=r"\(--no-input-feeding\) needs attention 'luong'"):
        Seq2Seq.from_config({**config, "input_feeding": False})
    with pytest.raises(ConfigError, match="same cell and number of layers"):
        Seq2Seq.from_config({**config, "decoder": {**config["decoder"], "cell": "gru"}})


@pytest.mark.parametrize(
    "attention, feeding, bidirectional, proj, expected",
    [("none", True, True, 0, 6), ("bahdanau", True, True, 0, 6 + 2 * 10), ("bahdanau", True, True, 4, 6 + 2 * 4),
     ("luong", True, False, 0, 6 + 10), ("luong", True, True, 4, 6 + 4), ("luong", False, True, 4, 6)],
)  # fmt: skip
def test_sized_config_works_out_the_decoder_input(attention, feeding, bidirectional, proj, expected):
    """The decoder reads the embedding plus Bahdanau's context (D * H_out) or Luong's h~ (the decoder's H_out)."""
    encoder = RecurrentConfig("lstm", 6, 10, 1, batch_first=True, bidirectional=bidirectional, proj_size=proj)
    decoder = RecurrentConfig("lstm", 999, 10, 1, batch_first=True, proj_size=proj)  # input_size is replaced
    config = Seq2SeqConfig.sized(vocab_size=7, embedding_size=6, encoder=encoder, decoder=decoder,
                                 attention=attention, input_feeding=feeding)  # fmt: skip
    assert config.decoder.input_size == expected
    source, lengths, target = batch()
    assert Seq2Seq(config)(source, lengths, target).shape == (4, 5, 7)


# -- decoding -------------------------------------------------------------------------------------


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_beam_of_one_is_greedy_and_wider_beams_score_at_least_as_well(attention):
    source, lengths, _ = batch(vocab=6)
    for seed in range(4):
        torch.manual_seed(seed)
        model = make_model(attention, vocab=6)
        with torch.no_grad():
            model.head.weight.mul_(4)  # peaked distributions, as a trained model has
            model.head.bias[model.end_id] -= 2.0  # so that most outputs are not empty
        greedy = greedy_decode(model, source, lengths, max_length=8)
        one = beam_search(model, source, lengths, beam_size=1, max_length=8)
        wide = beam_search(model, source, lengths, beam_size=5, max_length=8)
        assert one.tokens == greedy.tokens and one.finished == greedy.finished
        torch.testing.assert_close(one.scores, greedy.scores)
        assert (wide.scores >= greedy.scores - 1e-5).all()
        for hyps in (greedy, wide):  # the reported scores are the hypotheses' log-probabilities
            torch.testing.assert_close(score_hypotheses(model, source, lengths, hyps.tokens, hyps.finished),
                                       hyps.scores)  # fmt: skip
            assert all(model.end_id not in t for t in hyps.tokens)


def test_an_exhaustive_beam_finds_the_most_probable_output():
    torch.manual_seed(6)
    model = make_model("luong", "gru", vocab=5)
    with torch.no_grad():
        model.head.bias[model.end_id] -= 3.0
    source, lengths, _ = batch(vocab=5)
    T, V = 3, 5
    candidates = []  # every output of at most T steps: ended by end, or cut at T
    for n in range(1, T + 1):
        for seq in itertools.product(range(V), repeat=n):
            if model.end_id in seq[:-1] or (n < T and seq[-1] != model.end_id):
                continue
            done = seq[-1] == model.end_id
            candidates.append((list(seq[:-1]) if done else list(seq), done))
    beam = beam_search(model, source, lengths, beam_size=V**T, max_length=T)
    for i in range(4):
        scores = score_hypotheses(model, source[i : i + 1].expand(len(candidates), -1),
                                  lengths[i : i + 1].expand(len(candidates)),
                                  [c[0] for c in candidates], [c[1] for c in candidates])  # fmt: skip
        best = int(scores.argmax())
        assert (beam.tokens[i], beam.finished[i]) == candidates[best]
        assert beam.scores[i].item() == pytest.approx(scores[best].item(), abs=1e-5)
    assert any(len(t) > 0 for t in beam.tokens)


def test_decoding_stops_at_max_length_and_batches_like_single_examples():
    torch.manual_seed(7)
    model = make_model("bahdanau", vocab=6)
    with torch.no_grad():
        model.head.bias[model.end_id] = -50.0  # never ends
    source, lengths, _ = batch(vocab=6)
    for decode in (lambda *a: greedy_decode(*a, max_length=4), lambda *a: beam_search(*a, beam_size=3, max_length=4)):
        out = decode(model, source, lengths)
        assert out.finished == [False] * 4 and [len(t) for t in out.tokens] == [4] * 4
        for i in range(4):
            alone = decode(model, source[i : i + 1, : int(lengths[i])], None)
            assert alone.tokens[0] == out.tokens[i]
    with pytest.raises(ValueError, match="beam_size must be an integer >= 1"):
        beam_search(model, source, lengths, beam_size=0, max_length=3)


# -- the task's training batches ------------------------------------------------------------------


def execute_task(pool: int) -> Seq2SeqTask:
    data = Seq2SeqDataConfig(GeneratorConfig("execute", length=2, nesting=2), curriculum="mix", batch_size=16,
                             epoch_size=10, bucket_pool=pool, valid_size=20)  # fmt: skip
    return Seq2SeqTask(data, torch.device("cpu"))


def sources(batch) -> list[list[int]]:
    source, lengths = batch[0], batch[1]
    return [source[i, : int(lengths[i])].tolist() for i in range(len(lengths))]


def test_a_pool_of_one_is_the_batch_drawn_from_its_own_seed():
    task = execute_task(pool=1)
    rng = random.Random(derive_seed(0, "train", 3, 7))
    drawn = draw(task.generator, rng, "train", Curriculum("mix", (2, 2)).draw, 16)
    assert sources(task.training_batch(3, 7)) == [s for s, _ in encode_examples(task.vocab, drawn)]


def test_pooled_batches_group_similar_lengths_and_do_not_depend_on_the_order_asked():
    task = execute_task(pool=4)
    pooled = [sources(task.training_batch(0, i)) for i in range(4)]
    assert all(len(b) == 16 for b in pooled)
    spans = sorted((min(map(len, b)), max(map(len, b))) for b in pooled)
    assert all(high <= low for (_, high), (low, _) in itertools.pairwise(spans))  # sorted, then cut
    # the same examples as one draw of the pool's size from its first batch's seed, only regrouped
    rng = random.Random(derive_seed(0, "train", 0, 0))
    drawn = draw(task.generator, rng, "train", Curriculum("mix", (2, 2)).draw, 64)
    assert sorted(itertools.chain(*pooled)) == sorted(s for s, _ in encode_examples(task.vocab, drawn))
    # a resumed run asks for batch 2 first and gets the same batch; the last pool holds what remains (2)
    assert sources(execute_task(pool=4).training_batch(0, 2)) == pooled[2]
    assert [len(task.training_batch(0, i)[1]) for i in (8, 9)] == [16, 16]
    assert sources(task.training_batch(0, 8)) != sources(execute_task(pool=1).training_batch(0, 8))
    padded_steps = {p: sum(int(execute_task(p).training_batch(0, i)[1].max()) for i in range(8)) for p in (1, 4)}
    assert padded_steps[4] < padded_steps[1]  # the encoder's steps over 8 batches


# -- the task through the command line ------------------------------------------------------------

SMALL = ["--hidden-size", "48", "--embedding-size", "16", "--batch-size", "32", "--valid-size", "100",
         "--test-size", "100", "--quiet"]  # fmt: skip


def run_json(capsys, *argv) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def copy_run(tmp_path_factory):
    """A copy model of length 5 with attention, trained for a few seconds."""
    out = tmp_path_factory.mktemp("runs") / "copy"
    code = main(["train", "seq2seq", "--task", "copy", "--length", "5", "--attention", "luong", "--lr", "0.01",
                 "--epoch-size", "40", "--max-steps", "160", "--out", str(out), "--beam", "2", *SMALL])  # fmt: skip
    assert code == 0
    return out


def test_training_raises_accuracy_and_writes_a_complete_run(copy_run):
    assert sorted(p.name for p in copy_run.iterdir()) == [
        "config.json", "metrics.jsonl", "model.safetensors", "optimizer.pt", "summary.json", "vocab.json"]  # fmt: skip
    valid = [r for r in checkpoint.read_metrics(copy_run) if r["split"] == "valid"]
    assert [r["step"] for r in valid] == [40, 80, 120, 160]
    assert valid[0]["token_accuracy"] < 0.6 and valid[-1]["token_accuracy"] > 0.9
    assert valid[-1]["sequence_accuracy"] > 0.5 > valid[0]["sequence_accuracy"]


def test_eval_on_the_test_set_and_on_a_file(copy_run, tmp_path, capsys):
    result = run_json(capsys, "eval", str(copy_run), "--json")
    assert result["task"] == "seq2seq" and result["data"] == "test" and result["beam"] == 2
    metrics = result["metrics"]
    assert {"token_accuracy", "sequence_accuracy", "loss", "examples"} == set(metrics)
    assert metrics["examples"] == 100 and metrics["sequence_accuracy"] > 0.5
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("12345\t12345\n00000\t00000\n98765\t11111\n", encoding="utf-8")
    on_file = run_json(capsys, "eval", str(copy_run), "--data", str(pairs), "--json")["metrics"]
    assert on_file["examples"] == 3 and on_file["sequence_accuracy"] <= 2 / 3


def test_predict_and_tasks_show_print_the_documented_json(copy_run, capsys):
    result = run_json(capsys, "predict", str(copy_run), "--input", "31415", "--json")
    assert result["task"] == "seq2seq" and len(result["predictions"]) == 1
    prediction = result["predictions"][0]
    assert set(prediction) == {"input", "output", "log_prob", "finished"} and prediction["input"] == "31415"
    assert main(["predict", str(copy_run), "--input", "27182"]) == 0
    assert capsys.readouterr().out.strip().isdigit()
    shown = run_json(capsys, "tasks", "show", "execute", "--length", "2", "--nesting", "2", "--n", "3", "--seed",
                     "1", "--json")  # fmt: skip
    assert shown["task"] == "execute" and len(shown["examples"]) == 3
    assert all(set(e) == {"input", "target"} and e["target"].endswith(".") for e in shown["examples"])
    again = run_json(capsys, "tasks", "show", "execute", "--length", "2", "--nesting", "2", "--n", "3", "--seed",
                     "1", "--json")  # fmt: skip
    assert again == shown
    test = run_json(capsys, "tasks", "show", "copy", "--length", "5", "--split", "test", "--n", "4", "--json")
    used = fixed_set(make_generator(GeneratorConfig("copy", 5)), 0, "test", 100)  # what `rnnkit eval` scores
    assert test["examples"] == [{"input": e.input, "target": e.target} for e in used[:4]]
    listing = run_json(capsys, "tasks", "--json")["tasks"]
    seq2seq = next(t for t in listing if t["name"] == "seq2seq")
    assert {"--task", "--length", "--curriculum", "--attention", "--beam"} <= set(seq2seq["options"])
    assert main(["tasks"]) == 0 and "execute" in capsys.readouterr().out


@pytest.mark.parametrize("pool", ["1", "3"])  # 3: pools of 3 batches (and one of 2) with mid-pool evaluations
def test_resume_after_interruption_continues_exactly(tmp_path, capsys, monkeypatch, pool):
    args = ["train", "seq2seq", "--task", "add", "--length", "2", "--curriculum", "combined", "--advance-at", "0.3",
            "--eval-every", "3", "--epoch-size", "5", "--scheduled-sampling", "0.5", "--dropout", "0.2",
            "--attention", "bahdanau", "--hidden-size", "16", "--embedding-size", "8", "--batch-size", "8",
            "--valid-size", "30", "--bucket-pool", pool, "--quiet"]  # fmt: skip
    main([*args, "--out", str(tmp_path / "straight"), "--max-steps", "12"])
    original = Trainer.log

    def interrupt(self, record):
        original(self, record)
        if record["split"] == "train" and record["step"] >= 7 and not getattr(self, "_interrupted", False):
            self._interrupted = True
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "log", interrupt)
    assert main([*args, "--out", str(tmp_path / "resumed"), "--max-steps", "12", "--log-every", "7"]) == 130
    monkeypatch.setattr(Trainer, "log", original)
    assert checkpoint.load_training_state(tmp_path / "resumed")["progress"]["step"] == 7
    assert main(["train", "seq2seq", "--resume", str(tmp_path / "resumed"), "--max-steps", "12", "--quiet"]) == 0
    a = checkpoint.load_training_state(tmp_path / "straight")
    b = checkpoint.load_training_state(tmp_path / "resumed")
    assert a["task"] == b["task"] and a["task"]["curriculum"]["level"] != [1, 1]  # the curriculum moved on
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    valid = [r for r in checkpoint.read_metrics(tmp_path / "straight") if r["split"] == "valid"]
    assert "level_token_accuracy" in valid[0]


@pytest.mark.parametrize(
    "argv, match",
    [
        (lambda run, d: ["predict", str(run), "--input", "12a45"], "--input: character 'a' is not in the model's"),
        (lambda run, d: ["predict", str(run), "--input", "1234567"], "trained on inputs of at most 5"),
        (lambda run, d: ["predict", str(run), "--input", ""], "--input: the input is empty"),
        (lambda run, d: ["eval", str(run), "--data", write(d / "bad.tsv", "123\n")], "bad.tsv:1: expected input<TAB>"),
        (lambda run, d: ["eval", str(run), "--data", write(d / "x.tsv", "12\t1x\n")], "x.tsv:1: character 'x'"),
        (lambda run, d: ["train", "seq2seq", "--task", "reverse", "--out", str(d / "r")], "unknown task 'reverse'"),
        (lambda run, d: ["train", "seq2seq", "--nesting", "2", "--out", str(d / "r")], "--nesting applies to the"),
        (lambda run, d: ["train", "seq2seq", "--attention", "dot", "--out", str(d / "r")], "--attention must be one"),
        (lambda run, d: ["train", "seq2seq", "--curriculum", "x", "--out", str(d / "r")], "--curriculum must be one"),
        (
            lambda run, d: ["train", "seq2seq", "--attention", "bahdanau", "--no-input-feeding", "--out", str(d / "r")],
            "--no-input-feeding) needs attention 'luong'",
        ),  # fmt: skip
        (lambda run, d: ["tasks", "show", "reverse"], "unknown task 'reverse'; available: sort, copy, add, execute"),
        (lambda run, d: ["tasks", "show", "sort", "--split", "dev"], "--split must be one of train, valid, test"),
    ],
)
def test_bad_input_is_one_clear_line(copy_run, tmp_path, capsys, argv, match):
    assert main(argv(copy_run, tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnnkit: error: ") and err.count("\n") == 1 and match in err, err
    assert not (tmp_path / "r").exists()


def write(path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_the_best_weights_reload_and_decode_the_same(copy_run):
    model = load_model(copy_run, task="seq2seq")
    assert isinstance(model, Seq2Seq) and model.config.attention == "luong"
    source = torch.tensor([[3 + int(c) for c in "31415"]])
    out = greedy_decode(model.eval(), source, None, max_length=6)
    assert out.finished == [True] and len(out.tokens[0]) == 5


def test_eval_without_data_needs_a_task_with_a_test_set(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("to be or not to be, that is the question\n" * 40, encoding="utf-8")
    run = tmp_path / "lm"
    assert main(["train", "lm", "--data", str(text), "--out", str(run), "--max-steps", "1", "--hidden-size", "8",
                 "--embedding-size", "4", "--batch-size", "2", "--seq-len", "10", "--quiet"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["eval", str(run)]) == 2
    assert "is a 'lm' run: rnnkit eval needs --data FILE" in capsys.readouterr().err
