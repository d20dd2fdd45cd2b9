"""The corpus system end to end at a tiny size, its command line, and the label-conditioned generator."""

import json
import random

import pytest
import torch

from rnnkit.apps.corpora import CorporaConfig, run
from rnnkit.cli import main
from rnnkit.errors import ConfigError
from rnnkit.layers import RecurrentConfig
from rnnkit.models import ConditionalGenerator, ConditionalGeneratorConfig, build_model, model_spec

STYLES = {
    "psalms": ("and the lord said unto them thou shalt not fear for i am with thee".split(), 18),
    "drama": ("ROMEO: what light through yonder window breaks my lady JULIET: o romeo wherefore art".split(), 6),
    "detective": ("holmes said that watson had observed the clue upon the mantelpiece quite singular".split(), 11),
}


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    """Three small corpora in distinct styles, one .txt file each."""
    rng = random.Random(0)
    root = tmp_path_factory.mktemp("corpora")
    for name, (words, n) in STYLES.items():
        lines = [" ".join(rng.choice(words) for _ in range(n)) + "." for _ in range(400)]
        (root / f"{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def tiny(corpora, out, **changes) -> CorporaConfig:
    fields = dict(data=str(corpora), out=str(out), window=20, passages=4, classifier_embedding=16,
                  classifier_hidden=16, generator_embedding=8, generator_hidden=32, generator_seq_len=30,
                  generator_batch=16, max_steps=30, eval_every=15, eval_tokens=2000)  # fmt: skip
    return CorporaConfig(**{**fields, **changes})


def test_the_system_runs_end_to_end_and_reruns_without_training(corpora, tmp_path):
    out = tmp_path / "out"
    events = []
    report = run(tiny(corpora, out), "cpu", callback=lambda event, record: events.append((event, record.get("stage"))))
    assert {p.name for p in out.iterdir()} >= {"classifier", "generators", "conditional", "data", "passages.jsonl",
                                               "report.json", "report.md", "corpora.json"}  # fmt: skip
    assert sorted(p.name for p in (out / "generators").iterdir()) == ["detective", "drama", "psalms"]
    assert ("start", "conditional") in events and ("start", "generator drama") in events
    labels = ["detective", "drama", "psalms"]
    assert report["labels"] == labels and report["task"] == "corpora"
    m = report["metrics"]
    assert m["classifier_accuracy"] > 0.6  # distinct vocabularies: learnt within 30 steps
    for kind in ("per_corpus", "conditional"):
        p = report["passages"][kind]
        assert p["passages"] == 12 and len(p["confusion_matrix"]) == 3
        assert [sum(row) for row in p["confusion_matrix"]] == [4, 4, 4]
        assert p["own_corpus_share"] == pytest.approx(sum(p["confusion_matrix"][i][i] for i in range(3)) / 12)
    passages = [json.loads(line) for line in (out / "passages.jsonl").read_text().splitlines()]
    assert len(passages) == 24 and all(p["predicted"] in labels for p in passages)
    assert all(len(p["tokens"].split()) <= 20 for p in passages)
    assert "assigned to their own corpus" in (out / "report.md").read_text()
    # the generators are ordinary lm runs
    assert json.loads((out / "generators" / "drama" / "config.json").read_text())["task"] == "lm"

    events.clear()
    again = run(tiny(corpora, out, max_steps=60), "cpu", callback=lambda e, r: events.append((e, r.get("stage"))))
    assert [e for e, _ in events if e != "generate"] == ["skip"] * 5
    assert again["metrics"] == report["metrics"]
    with pytest.raises(ConfigError, match="other settings"):
        run(tiny(corpora, out, window=10), "cpu")


def test_command_line(corpora, tmp_path, capsys):
    argv = ["corpora", "--data", str(corpora), "--out", str(tmp_path / "o"), "--passages", "2", "--window", "10",
            "--max-steps", "2", "--classifier-hidden", "8", "--classifier-embedding", "8", "--generator-hidden", "8",
            "--generator-batch", "4", "--device", "cpu"]  # fmt: skip
    assert main([*argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["task"] == "corpora"
    assert set(result["metrics"]) == {"classifier_accuracy", "per_corpus_generators_own_share",
                                      "conditional_generator_own_share"}  # fmt: skip
    single = tmp_path / "single"
    single.mkdir()
    (single / "only.txt").write_text("one corpus is not enough\n", encoding="utf-8")
    assert main(["corpora", "--data", str(single), "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "holds 1 class file (only)" in err and err.count("\n") == 1
    assert main([*argv[:-2], "--passages", "0"]) == 2
    assert "--passages must be >= 1" in capsys.readouterr().err


def test_conditional_generator_starts_from_its_label():
    torch.manual_seed(0)
    rnn = RecurrentConfig("lstm", 6, 10, num_layers=2, batch_first=True)
    model = ConditionalGenerator(ConditionalGeneratorConfig(12, 6, 3, rnn, label_size=4))
    h, c = model.initial_state(torch.tensor([0, 1, 1]))
    assert h.shape == c.shape == (2, 3, 10)
    assert torch.equal(h[:, 1], h[:, 2]) and not torch.allclose(h[:, 0], h[:, 1])
    tokens = torch.randint(0, 12, (1, 5)).expand(3, 5)
    logits, _ = model(tokens, torch.tensor([0, 1, 1]))
    assert logits.shape == (3, 5, 12) and torch.allclose(logits[1], logits[2])
    assert not torch.allclose(logits[0], logits[1])  # the same text, another label
    first = model.generate(torch.tensor([0, 2]), 7, prime=[1], seed=5)
    assert first.shape == (2, 7) and torch.equal(first, model.generate(torch.tensor([0, 2]), 7, prime=[1], seed=5))
    copy = build_model(model_spec(model))
    copy.load_state_dict(model.state_dict())
    assert torch.equal(copy.generate(torch.tensor([0, 2]), 7, prime=[1], seed=5), first)
    with pytest.raises(ConfigError, match="unidirectional"):
        ConditionalGeneratorConfig(12, 6, 3, RecurrentConfig("gru", 6, 10, batch_first=True, bidirectional=True))


def test_a_time_budget_bounds_the_generators_not_their_epochs(corpora, tmp_path):
    budgeted = tiny(corpora, tmp_path, max_steps=None, time_budget=100.0)
    generator = budgeted.train_config("generator", lr=1e-3, epochs=budgeted.generator_epochs, share=0.125)
    assert generator.epochs is None and generator.time_budget == pytest.approx(12.5)
    classifier = budgeted.train_config("classifier", lr=1e-3, epochs=budgeted.classifier_epochs, share=0.2)
    assert classifier.epochs == budgeted.classifier_epochs and classifier.time_budget == pytest.approx(20.0)
    unbudgeted = tiny(corpora, tmp_path, max_steps=None)
    assert unbudgeted.train_config("generator", lr=1e-3, epochs=2, share=0.125).epochs == 2
