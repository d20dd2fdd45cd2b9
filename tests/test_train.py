"""The Trainer's budgets and its refusals, on a toy task whose work costs seconds of a fake clock.

The trainer reads time through ``time.perf_counter`` only; here that is a :class:`Clock` that moves when
the toy task trains or scores, by the seconds a step or a validation unit is said to cost. So a "100 MB
corpus under --time-budget 30" (issue 27) runs in a moment, the same way every time, and the budget's
arithmetic is checked exactly, without timing anything.
"""

import io
import json
import math
import re
import types

import pytest
import torch
import torch.nn.functional as F

import rnnkit.train
from rnnkit import checkpoint
from rnnkit.errors import ConfigError, TrainingError
from rnnkit.layers import RecurrentConfig
from rnnkit.models import load_model
from rnnkit.models.lm import LanguageModel, LanguageModelConfig
from rnnkit.progress import ProgressDisplay
from rnnkit.train import EVAL_SHARE, MARKS, Diverged, TrainConfig, Trainer

V = 5  # toy vocabulary


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def perf_counter(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(rnnkit.train, "time", types.SimpleNamespace(perf_counter=clock.perf_counter))
    return clock


class Toy:
    """Next-token prediction on a fixed random stream. A step costs ``step_seconds``; scoring costs
    ``unit_seconds`` per validation unit, of which there are ``units`` (scored on the same 4 x 9 tokens,
    whatever their number: only their cost differs). ``losses`` (optional) replaces the scores' losses,
    one per evaluation; ``before_scoring(model, n)`` runs before the n-th evaluation (1-based)."""

    monitor = ("loss", "min")

    def __init__(self, clock, *, batches=10, step_seconds=0.05, units=1000, unit_seconds=1e-4, probe=10,
                 losses=None, before_scoring=None):  # fmt: skip
        generator = torch.Generator().manual_seed(0)
        self.data = torch.randint(0, V, (batches, 4, 9), generator=generator)
        self.valid = torch.randint(0, V, (4, 9), generator=generator)
        self.clock, self.step_seconds, self.units, self.unit_seconds, self.probe = (
            clock, step_seconds, units, unit_seconds, probe)  # fmt: skip
        self.losses, self.before_scoring = list(losses or []), before_scoring
        self.scored: list[int] = []  # units of each evaluation (the limit's probe included)

    def train_batches(self, epoch, start):
        return list(self.data[start:])

    def loss(self, model, batch):
        self.clock.now += self.step_seconds
        logits, _ = model(batch[:, :-1])
        return F.cross_entropy(logits.reshape(-1, V), batch[:, 1:].reshape(-1)), batch[:, 1:].numel()

    def evaluate(self, model, limit=None):
        units = self.units if limit is None else min(limit, self.units)
        if units != self.probe and self.before_scoring is not None:
            self.before_scoring(model, len([u for u in self.scored if u != self.probe]) + 1)
        self.clock.now += units * self.unit_seconds
        self.scored.append(units)
        logits, _ = model(self.valid[:, :-1])
        loss = float(F.cross_entropy(logits.reshape(-1, V), self.valid[:, 1:].reshape(-1)))
        if units != self.probe and self.losses:
            loss = self.losses.pop(0)
        return {"loss": loss, "tokens": units}

    def eval_size(self):
        return self.units, "tokens", self.probe

    @property
    def uniform_loss(self):
        return math.log(V)

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def toy_model() -> LanguageModel:
    torch.manual_seed(0)
    rnn = RecurrentConfig(cell="gru", input_size=4, hidden_size=6, batch_first=True)
    return LanguageModel(LanguageModelConfig(vocab_size=V, embedding_size=4, rnn=rnn))


def trainer(task, run_dir, **config) -> Trainer:
    return Trainer(toy_model(), task, TrainConfig(**config), run_dir, run_config={"task": "lm"})


def valid_records(run_dir):
    return [r for r in checkpoint.read_metrics(run_dir) if r["split"] == "valid"]


# -- the budget covers everything -----------------------------------------------------------------


def test_a_large_validation_split_is_bounded_and_the_run_ends_inside_its_budget(clock, tmp_path):
    """Issue 27: 125 s to score the whole validation split under a 30 s budget. Every evaluation scores
    the same bounded subset (~EVAL_SHARE of the budget, said in a note), the first comes by a tenth of the
    budget, and the run, its final evaluation and save included, ends within 5% of the budget."""
    task = Toy(clock, batches=1000, units=125_000, unit_seconds=1e-3, probe=100)  # an epoch: 50 s
    t = trainer(task, tmp_path / "run", time_budget=30.0, lr=1e-2)
    start = clock.now
    summary = t.fit()
    t.close()
    assert summary["stopped"] == "time_budget"
    assert 30.0 * 0.95 <= clock.now - start <= 30.0 * 1.05
    records = valid_records(tmp_path / "run")
    (limit,) = {r["tokens"] for r in records}
    assert abs(limit - EVAL_SHARE * 30.0 / 1e-3) <= 1  # 600 tokens, 0.6 s, of 125,000
    assert len(records) == len(MARKS) + 1  # at 10, 25, 50, 75% of the budget, and the last model
    assert task.scored.count(100) == 1  # one probe fixed the limit, for the whole run
    assert any(f"the same {limit:,} of the 125,000 validation tokens" in n for n in summary["notes"])
    assert records[0]["elapsed"] <= MARKS[0] * 30.0 + task.step_seconds + 1e-6
    assert records[-1]["step"] == summary["steps"]  # the last model was scored


def test_without_a_budget_every_evaluation_scores_everything(clock, tmp_path):
    task = Toy(clock, units=125_000, unit_seconds=1e-3, probe=100)
    t = trainer(task, tmp_path / "run", max_steps=12, eval_every=5)
    t.fit()
    t.close()
    assert task.scored == [125_000] * 3  # steps 5, 10 and the last one, 12; no probe
    assert [r["step"] for r in valid_records(tmp_path / "run")] == [5, 10, 12]


def test_a_budget_too_small_for_one_evaluation_trains_what_it_can_and_evaluates_once(clock, tmp_path):
    """Issue 17: ``--time-budget 1`` trains what it can, evaluates once, and says so (here with what the run
    took: 0.5 s before training, a 0.4 s step, a 0.5 s evaluation). The evaluation is the probe that fixed
    the limit: the validation units are scored once in all, not twice."""
    task = Toy(clock, step_seconds=0.4, units=1000, unit_seconds=0.05, probe=10)
    # as on the command line, the budget counts from the process's start: 0.5 s before training began
    t = Trainer(toy_model(), task, TrainConfig(time_budget=1.0), tmp_path / "run", run_config={"task": "lm"},
                started=clock.now - 0.5)  # fmt: skip
    summary = t.fit()
    t.close()
    assert summary["stopped"] == "time_budget" and summary["steps"] == 1
    assert [r["step"] for r in valid_records(tmp_path / "run")] == [1] and task.scored == [10]
    assert summary["notes"][-1] == ("the time budget of 1 s left room for 1 training step and one evaluation, at the "
                                    "end; the run took 1.4 s: starting, reading the data and one evaluation need more")
    load_model(tmp_path / "run")


def test_a_short_budget_that_fits_a_few_steps_says_nothing_about_them(clock, tmp_path):
    task = Toy(clock, step_seconds=0.05, units=1000, unit_seconds=1e-3, probe=10)
    t = trainer(task, tmp_path / "run", time_budget=1.0)
    summary = t.fit()
    t.close()
    assert summary["steps"] > 5 and len(valid_records(tmp_path / "run")) > 1
    assert not any("left room for" in n for n in summary["notes"])


@pytest.mark.parametrize("budget", [0, 0.0, -1.0, float("inf"), float("nan")])
def test_a_budget_that_is_not_a_positive_number_is_refused(budget):
    with pytest.raises(ConfigError, match=r"^time_budget must be a number > 0, got "):
        TrainConfig(time_budget=budget)


def test_the_progress_bar_has_a_total_and_an_eta_under_a_time_budget(clock, tmp_path, monkeypatch):
    """The bar runs to 100% of whichever limit ends the run (here the time budget), with elapsed<remaining."""
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    task = Toy(clock, step_seconds=0.5)
    t = trainer(task, tmp_path / "run", time_budget=20.0)
    show = ProgressDisplay(t, task, quiet=False)
    t.callback = show
    seen = []
    original = show.__call__

    def spy(event, record):
        original(event, record)
        if event == "step":
            seen.append((show.bar.total, show.bar.n))

    t.callback = spy
    t.fit()
    t.close()
    show.close()
    assert {total for total, _ in seen} == {100}
    fractions = [n for _, n in seen]
    assert fractions == sorted(fractions) and fractions[0] < 10 and fractions[-1] > 85
    last = err.getvalue().replace("\r", "\n").strip().splitlines()[-1]
    assert "%|" in last and "<" in last.split("|")[-1], last  # 12%|███  | 00:00<00:01, step ...


# -- nothing lost: divergence and what is not finite ----------------------------------------------


def test_a_diverging_validation_loss_stops_the_run_and_keeps_the_best(clock, tmp_path):
    """Losses 1.0, 0.8, then 3.0: far above the best (2 x 0.8 + 1) and the uniform guess (log 5 + 1)."""
    task = Toy(clock, losses=[1.0, 0.8, 3.0])
    t = trainer(task, tmp_path / "run", max_steps=50, eval_every=2)
    with pytest.raises(Diverged) as error:
        t.fit()
    t.close()
    assert str(error.value) == (
        f"training diverged at step 6: the validation loss 3 is far above 1.609, the loss of a uniform guess; "
        f"stopped. {tmp_path / 'run'} keeps the checkpoint of step 4 and the best weights (step 4); "
        "--allow-divergence goes on regardless"
    )
    assert checkpoint.load_training_state(tmp_path / "run")["progress"]["step"] == 4
    assert checkpoint.weights_step(tmp_path / "run") == 4
    summary = json.loads((tmp_path / "run" / checkpoint.SUMMARY).read_text())
    assert summary["stopped"] == "diverged" and summary["best"]["step"] == 4
    assert valid_records(tmp_path / "run")[-1]["diverged"].startswith("the validation loss 3 is far above")


def test_allow_divergence_goes_on_and_says_so(clock, tmp_path):
    task = Toy(clock, losses=[1.0, 0.8, 3.0, 0.7])
    t = trainer(task, tmp_path / "run", max_steps=8, eval_every=2, allow_divergence=True)
    summary = t.fit()
    t.close()
    assert summary["stopped"] == "max_steps" and summary["steps"] == 8
    assert "training diverged at step 6 (the validation loss 3 is far above 1.609, the loss of a uniform guess); " \
        "going on (--allow-divergence)" in summary["notes"]  # fmt: skip
    assert summary["best"]["step"] == 8 and checkpoint.weights_step(tmp_path / "run") == 8


def blow_up(at: int, scale: float):
    """Before the ``at``-th evaluation, multiply every weight by ``scale``: an update that overflowed."""

    def before_scoring(model, n):
        if n == at:
            with torch.no_grad():
                for p in model.parameters():
                    p.mul_(scale)

    return before_scoring


def test_huge_weights_at_an_evaluation_step_stop_the_run_and_the_last_good_checkpoint_resumes(clock, tmp_path):
    """Issue 27: with --eval-every 1 a step made the weights 5.8e37 and the validation loss NaN; that state
    was saved and called the last good checkpoint. Now the run stops before saving it, names the step on
    disk, and that checkpoint resumes to finite losses."""
    run = tmp_path / "run"
    task = Toy(clock, before_scoring=blow_up(4, 1e37))
    t = trainer(task, run, max_steps=50, eval_every=1)
    with pytest.raises(Diverged) as error:
        t.fit()
    t.close()
    best = t.progress.best_step
    why = r"the validation loss (is nan|is inf|\S+ is far above 1\.609, the loss of a uniform guess)"
    assert re.fullmatch(rf"training diverged at step 4: {why}; stopped\. {re.escape(str(run))} keeps the checkpoint "
                        rf"of step 3 and the best weights \(step {best}\); --allow-divergence goes on regardless",
                        str(error.value))  # fmt: skip
    state = checkpoint.load_training_state(run)
    assert state["progress"]["step"] == 3 and checkpoint.non_finite(state) is None
    assert max(float(v.abs().max()) for v in state["model"].values()) < 100
    load_model(run)
    again = Trainer(toy_model(), Toy(clock), TrainConfig(max_steps=6, eval_every=1), run, run_config={"task": "lm"})
    again.load_training_state(state)
    summary = again.fit()
    again.close()
    assert summary["steps"] == 6 and all(math.isfinite(r["loss"]) for r in valid_records(run))


def test_weights_that_are_not_finite_are_never_saved(clock, tmp_path):
    """Even where divergence is allowed to go on, a state holding infinity is refused: the run stops with
    one line naming the part and the step on disk, and the files of that step stay as they were."""
    run = tmp_path / "run"
    task = Toy(clock, before_scoring=blow_up(3, float("inf")))
    t = trainer(task, run, max_steps=50, eval_every=1, allow_divergence=True)
    with pytest.raises(TrainingError) as error:
        t.fit()
    t.close()
    message = str(error.value)
    assert message.startswith("at step 3 the training state holds non-finite values (model.") and "not saved" in message
    assert message.endswith(f"{run} keeps the checkpoint of step 2 and the best weights (step {t.progress.best_step})")
    assert checkpoint.weights_step(run) == t.progress.best_step < 3
    assert checkpoint.load_training_state(run)["progress"]["step"] == 2
    assert checkpoint.non_finite(load_model(run).state_dict()) is None


# -- Polyak averaging (--average) -----------------------------------------------------------------


def test_average_scores_and_keeps_the_moving_average_of_the_weights(clock, tmp_path):
    """With ``average=d`` the kept weights are a_1 = w_1, a_k = d a_(k-1) + (1 - d) w_k over the weights
    w_k after each step, and the evaluation scores them, not the weights as trained."""
    run, decay = tmp_path / "run", 0.7
    t = trainer(Toy(clock, batches=6), run, max_steps=6, average=decay)
    trained = []
    t.callback = lambda event, record: event == "step" and trained.append(
        {k: v.detach().clone() for k, v in t.model.state_dict().items()})
    t.fit()
    t.close()
    average = trained[0]
    for weights in trained[1:]:
        average = {k: decay * average[k] + (1 - decay) * weights[k] for k in average}
    kept = load_model(run).state_dict()
    assert all(torch.allclose(kept[k], average[k], atol=1e-6) for k in average)
    assert not all(torch.allclose(kept[k], trained[-1][k]) for k in average)  # not the last weights
    task = Toy(clock, batches=6)  # the same validation tokens
    with torch.no_grad():
        expected = task.evaluate(load_model(run).eval())["loss"]
    assert valid_records(run)[-1]["loss"] == pytest.approx(expected, rel=1e-5)


def test_an_averaged_run_resumes_to_the_same_average(clock, tmp_path):
    """The average is part of the training state: 3 steps, then 3 more after resuming, keep the same
    weights as 6 steps in one go."""
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    t = trainer(Toy(clock, batches=6), whole, max_steps=6, average=0.8, eval_every=3)
    t.fit()
    t.close()
    first = trainer(Toy(clock, batches=6), parts, max_steps=3, average=0.8, eval_every=3)
    first.fit()
    first.close()
    again = trainer(Toy(clock, batches=6), parts, max_steps=6, average=0.8, eval_every=3)
    again.load_training_state(checkpoint.load_training_state(parts))
    again.fit()
    again.close()
    one, two = load_model(whole).state_dict(), load_model(parts).state_dict()
    assert all(torch.equal(one[k], two[k]) for k in one)


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5, float("nan")])
def test_an_average_outside_0_1_is_refused(decay):
    with pytest.raises(ConfigError, match="average must be a number in \\(0, 1\\)"):
        TrainConfig(max_steps=1, average=decay)
