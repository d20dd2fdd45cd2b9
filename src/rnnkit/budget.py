"""A run's limits against its progress: when it stops, when it evaluates under a time budget, and how much
of the validation split each evaluation may score.

**Time budgets cover everything.** ``progress.elapsed`` counts from the moment the run's work began (the
command line passes its process's start), and a run stops taking steps when the next one, the final
evaluation, the last save and what the caller still has to do (its ``reserve``) would no longer fit:

    stop when  elapsed + step + eval + save + reserve >= time_budget

with moving estimates (:meth:`Budget.estimate`) of what a step, an evaluation (with its record) and a
save take; before the first evaluation it is guessed at 1.5 x ``EVAL_SHARE`` of the budget. Every
evaluation is bounded: the first one under a budget times a probe and fixes how many validation units
every evaluation of the run scores, so that one takes about ``EVAL_SHARE`` of the budget
(:meth:`Budget.eval_limit`). Evaluations come at ``MARKS`` of the budget besides the epoch ends and
``eval_every``, so the first is no later than a tenth of it.

This is arithmetic only: :class:`rnnkit.train.Trainer` reads the clock, scores the probe, and on several
processes makes rank 0's answers every rank's.
"""

from __future__ import annotations

from rnnkit.resume import Progress
from rnnkit.trainconfig import TrainConfig

EVAL_SHARE = 0.02  # under a time budget, the most one evaluation may take, as a share of the budget
MARKS = (0.1, 0.25, 0.5, 0.75)  # under a time budget, evaluate when these shares of it have passed


class Budget:
    """``config``'s limits (``max_steps``, ``epochs``, ``time_budget``) and the moving estimates of what a
    ``"step"``, an ``"eval"`` and a ``"save"`` take (``seconds``, not saved: a resumed run measures anew)."""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.seconds: dict[str, float] = {}

    def estimate(self, what: str, seconds: float) -> None:
        """Fold one measurement into the moving estimate of ``what`` (weight 0.3 on the newest)."""
        before = self.seconds.get(what)
        self.seconds[what] = seconds if before is None else 0.7 * before + 0.3 * seconds

    def fraction(self, p: Progress, epochs_done: float) -> float:
        """How far the run is towards whichever limit ends it first (``epochs_done`` counts the current
        epoch's share); may pass 1 at the end."""
        c = self.config
        fractions = []
        if c.max_steps:
            fractions.append(p.step / c.max_steps)
        if c.epochs:
            fractions.append(epochs_done / c.epochs)
        if c.time_budget:
            fractions.append(p.elapsed / c.time_budget)
        return max(fractions)

    def final_seconds(self, reserve: float) -> float:
        """What the end of the run needs: a last evaluation and save, and the caller's ``reserve``."""
        budget = self.config.time_budget or 0.0
        evaluation = self.seconds.get("eval", 1.5 * EVAL_SHARE * budget)
        return evaluation + self.seconds.get("save", 0.0) + reserve

    def time_up(self, p: Progress, reserve: float) -> bool:
        """Whether one more step would leave too little of the time budget for the end of the run."""
        budget = self.config.time_budget
        return budget is not None and p.elapsed + self.seconds.get("step", 0.0) + self.final_seconds(reserve) >= budget

    def mark_due(self, p: Progress) -> bool | None:
        """Whether the next of MARKS falls before the end of the next step; None when there is no mark left
        (or no time budget), which needs no clock to know."""
        budget = self.config.time_budget
        if budget is None or p.marks_done >= len(MARKS):
            return None
        return p.elapsed + self.seconds.get("step", 0.0) >= MARKS[p.marks_done] * budget

    def marks_passed(self, p: Progress) -> int:
        """How many of MARKS an evaluation now answers for (those before the end of the next step)."""
        budget = self.config.time_budget
        return p.marks_done if budget is None else sum(
            1 for m in MARKS if m * budget <= p.elapsed + self.seconds.get("step", 0.0))  # fmt: skip

    def eval_limit(self, size: int, probe: int, per_unit: float) -> int:
        """How many of ``size`` validation units an evaluation may score at ``per_unit`` seconds each (a
        probe of ``probe`` units measured it): all if they fit EVAL_SHARE of the budget, else as many as
        fit, and never fewer than the probe."""
        allowed = EVAL_SHARE * (self.config.time_budget or 0.0)
        if per_unit * size <= allowed:
            return size
        return max(probe, int(allowed / per_unit))
