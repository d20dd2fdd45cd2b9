r"""Metrics: classification (accuracy, confusion matrix, per-class and macro F1), entity-level scores
that agree with the CoNLL shared tasks' ``conlleval`` script, and language-model units.

For a class c with tp true positives, fp false positives and fn false negatives:
:math:`P = tp / (tp + fp)`, :math:`R = tp / (tp + fn)`, :math:`F_1 = 2PR / (P + R)` (0 when undefined).
Macro F1 is the unweighted mean of :math:`F_1` over the classes that occur in the gold labels or the
predictions (as scikit-learn's ``f1_score(average="macro")``).

Entities (chunks) are found in a tag sequence exactly as ``conlleval`` (Tjong Kim Sang, 2000-2004)
finds them, so IOB1 (CoNLL-2003's own tags), BIO and IO tags score as the official script scores them;
BIOES tags are read with ``S-`` = a one-word entity and ``E-`` = the last word of one. An entity counts
as correct when the prediction has one of the same type over exactly the same words.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import numpy as np


def accuracy(gold: Sequence, predicted: Sequence) -> float:
    """Fraction of positions where ``predicted`` equals ``gold``."""
    if len(gold) != len(predicted):
        raise ValueError(f"gold and predicted differ in length: {len(gold)} and {len(predicted)}")
    if not gold:
        return 0.0
    return sum(1 for g, p in zip(gold, predicted) if g == p) / len(gold)


def confusion_matrix(gold: Sequence[int], predicted: Sequence[int], num_classes: int) -> list[list[int]]:
    """``m[i][j]`` = how many examples of gold class i were predicted as class j."""
    matrix = [[0] * num_classes for _ in range(num_classes)]
    for g, p in zip(gold, predicted):
        matrix[int(g)][int(p)] += 1
    return matrix


def prf(tp: int, found_predicted: int, found_gold: int) -> dict:
    """Precision, recall and F1 from counts; 0 where a denominator is 0 (as conlleval prints them)."""
    precision = tp / found_predicted if found_predicted else 0.0
    recall = tp / found_gold if found_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def per_class_scores(matrix: list[list[int]], labels: Sequence[str]) -> dict:
    """``{label: {"precision", "recall", "f1", "support"}}`` from a confusion matrix."""
    scores = {}
    for c, label in enumerate(labels):
        tp = matrix[c][c]
        gold = sum(matrix[c])
        predicted = sum(row[c] for row in matrix)
        scores[label] = {**prf(tp, predicted, gold), "support": gold}
    return scores


def macro_f1(matrix: list[list[int]]) -> float:
    """Mean F1 over the classes present in the gold labels or the predictions."""
    f1s = []
    for c in range(len(matrix)):
        gold, predicted = sum(matrix[c]), sum(row[c] for row in matrix)
        if gold or predicted:
            f1s.append(prf(matrix[c][c], predicted, gold)["f1"])
    return sum(f1s) / len(f1s) if f1s else 0.0


def classification_report(gold: Sequence[int], predicted: Sequence[int], labels: Sequence[str]) -> dict:
    """Accuracy, macro F1, the confusion matrix (rows: gold, columns: predicted) and per-class scores."""
    matrix = confusion_matrix(gold, predicted, len(labels))
    return {
        "accuracy": accuracy(list(gold), list(predicted)),
        "macro_f1": macro_f1(matrix),
        "confusion_matrix": matrix,
        "per_class": per_class_scores(matrix, labels),
    }


# -- entities, as conlleval finds them ------------------------------------------------------------


def _split(tag: str) -> tuple[str, str]:
    if tag == "O" or "-" not in tag:
        return tag, ""
    prefix, _, kind = tag.partition("-")
    return prefix, kind


def _ends(prev: str, tag: str, prev_kind: str, kind: str) -> bool:
    """conlleval's endOfChunk, with BIOES's S (a chunk of one word) added: did a chunk end before ``tag``?"""
    if prev in ("E", "S"):
        return True
    if prev in ("B", "I") and tag in ("B", "S", "O"):
        return True
    return prev != "O" and prev_kind != kind


def _starts(prev: str, tag: str, prev_kind: str, kind: str) -> bool:
    """conlleval's startOfChunk, with S added: does a chunk start at ``tag``?"""
    if tag in ("B", "S"):
        return True
    if prev in ("O", "E", "S") and tag in ("I", "E"):
        return True
    return tag != "O" and prev_kind != kind


def entities(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """The entities of one sentence's tags as ``(type, first, last)`` word positions (inclusive)."""
    found = []
    prev, prev_kind, open_at = "O", "", None
    for t, tag in enumerate([*tags, "O"]):  # a final O closes the last entity, as a sentence break does
        prefix, kind = _split(tag)
        if open_at is not None and _ends(prev, prefix, prev_kind, kind):
            found.append((prev_kind, open_at, t - 1))
            open_at = None
        if t < len(tags) and _starts(prev, prefix, prev_kind, kind):
            open_at = t
        prev, prev_kind = prefix, kind
    return found


def entity_scores(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict:
    """Entity-level precision, recall and F1 over sentences of tags, as conlleval reports them.

    Returns ``{"precision", "recall", "f1", "accuracy" (per token), "entities" (gold count),
    "predicted", "correct", "per_type": {TYPE: {"precision", "recall", "f1", "support", "predicted"}}}``;
    the scores are fractions in [0, 1] (conlleval prints percentages).
    """
    if len(gold) != len(predicted):
        raise ValueError(f"gold has {len(gold)} sentences but predicted has {len(predicted)}")
    found_gold: Counter[str] = Counter()
    found_predicted: Counter[str] = Counter()
    correct: Counter[str] = Counter()
    tokens = right = 0
    for n, (g, p) in enumerate(zip(gold, predicted)):
        if len(g) != len(p):
            raise ValueError(f"sentence {n}: {len(g)} gold tags but {len(p)} predicted")
        tokens += len(g)
        right += sum(1 for a, b in zip(g, p) if a == b)
        gold_entities, predicted_entities = set(entities(g)), set(entities(p))
        found_gold.update(kind for kind, _, _ in gold_entities)
        found_predicted.update(kind for kind, _, _ in predicted_entities)
        correct.update(kind for kind, _, _ in gold_entities & predicted_entities)
    total = prf(sum(correct.values()), sum(found_predicted.values()), sum(found_gold.values()))
    per_type = {
        kind: {**prf(correct[kind], found_predicted[kind], found_gold[kind]), "support": found_gold[kind],
               "predicted": found_predicted[kind]}
        for kind in sorted(set(found_gold) | set(found_predicted))
    }  # fmt: skip
    return {
        **total,
        "accuracy": right / tokens if tokens else 0.0,
        "entities": sum(found_gold.values()),
        "predicted": sum(found_predicted.values()),
        "correct": sum(correct.values()),
        "per_type": per_type,
    }


# -- language models ------------------------------------------------------------------------------


def perplexity(nats_per_token: float) -> float:
    """:math:`\\exp` of the mean negative log-likelihood in nats (capped to stay finite)."""
    return math.exp(min(nats_per_token, 50.0))


def bits_per_char(nats_per_char: float) -> float:
    """Nats per character in bits: divide by :math:`\\ln 2`."""
    return nats_per_char / math.log(2)


# -- forecasts ------------------------------------------------------------------------------------
# Point-forecast errors over a horizon of h steps, y the truth and f the forecast, both of shape (h,)
# (or any equal shapes: every function averages over all elements). ``mask`` (same shape, true = scored)
# leaves out the steps whose truth is missing, as a forecasting task masks the target's gaps.


def _forecast_arrays(y_true, y_pred, mask=None) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays as float64, restricted to the masked-in points, checked finite and non-empty."""
    y = np.asarray(y_true, dtype=np.float64)
    f = np.asarray(y_pred, dtype=np.float64)
    if y.shape != f.shape:
        raise ValueError(f"y_true and y_pred differ in shape: {y.shape} and {f.shape}")
    if mask is not None:
        keep = np.asarray(mask, dtype=bool)
        if keep.shape != y.shape:
            raise ValueError(f"mask has shape {keep.shape}, y_true {y.shape}")
        y, f = y[keep], f[keep]
    if y.size == 0:
        raise ValueError("no points to score (empty input, or the mask leaves none)")
    if not (np.isfinite(y).all() and np.isfinite(f).all()):
        raise ValueError("y_true or y_pred holds NaN or inf where it is scored: mask the missing points")
    return y, f


def mae(y_true, y_pred, *, mask=None) -> float:
    r"""Mean absolute error :math:`\frac{1}{h}\sum_t |y_t - f_t|`."""
    y, f = _forecast_arrays(y_true, y_pred, mask)
    return float(np.mean(np.abs(y - f)))


def rmse(y_true, y_pred, *, mask=None) -> float:
    r"""Root mean squared error :math:`\sqrt{\frac{1}{h}\sum_t (y_t - f_t)^2}`."""
    y, f = _forecast_arrays(y_true, y_pred, mask)
    return float(np.sqrt(np.mean((y - f) ** 2)))


def smape(y_true, y_pred, *, mask=None) -> float:
    r"""Symmetric MAPE in percent, as the M4 competition defines it (Makridakis et al. 2020):
    :math:`\frac{200}{h}\sum_t \frac{|y_t - f_t|}{|y_t| + |f_t|}`, in [0, 200]. A step where both
    :math:`y_t` and :math:`f_t` are 0 is a perfect forecast and adds 0 (the M4 formula leaves 0/0 undefined).
    """
    y, f = _forecast_arrays(y_true, y_pred, mask)
    denominator = np.abs(y) + np.abs(f)
    terms = np.divide(np.abs(y - f), denominator, out=np.zeros_like(y), where=denominator > 0)
    return float(200.0 * np.mean(terms))


def mape(y_true, y_pred, *, mask=None) -> float:
    r"""Mean absolute percentage error in percent, :math:`\frac{100}{h}\sum_t |y_t - f_t| / |y_t|`
    (darts' and scikit-learn's MAPE times 100). Undefined where a true value is 0: that raises ValueError."""
    y, f = _forecast_arrays(y_true, y_pred, mask)
    if (y == 0).any():
        raise ValueError("mape is undefined: y_true holds 0 (use smape or mase)")
    return float(100.0 * np.mean(np.abs(y - f) / np.abs(y)))


def mase(y_true, y_pred, history, season: int = 1, *, mask=None) -> float:
    r"""Mean absolute scaled error (Hyndman & Koehler 2006): the forecast's MAE divided by the in-sample MAE
    of the seasonal naive forecast on the history :math:`x_1..x_n` the forecast was made from,

    .. math:: \mathrm{MASE} = \frac{\frac{1}{h}\sum_t |y_t - f_t|}{\frac{1}{n-m}\sum_{i=m+1}^{n} |x_i - x_{i-m}|}

    with season m (``season=1``: the naive, random-walk forecast, for series without a season). Below 1: the
    forecast beats the in-sample one-season-back guess. NaN in ``history`` (gaps) drops the pairs it is in.
    """
    y, f = _forecast_arrays(y_true, y_pred, mask)
    if int(season) != season or season < 1:
        raise ValueError(f"season must be a positive integer, got {season!r}")
    season = int(season)
    x = np.asarray(history, dtype=np.float64).reshape(-1)
    if x.size <= season:
        raise ValueError(f"mase needs a history longer than the season ({season}); it has {x.size} points")
    lagged = np.abs(x[season:] - x[:-season])
    lagged = lagged[np.isfinite(lagged)]
    if lagged.size == 0:
        raise ValueError(f"mase: no pair of observed history points {season} apart")
    scale = float(np.mean(lagged))
    if scale == 0.0:
        raise ValueError(f"mase is undefined: the history repeats itself every {season} steps (scale 0)")
    return float(np.mean(np.abs(y - f))) / scale


def coverage(y_true, lower, upper, *, mask=None) -> float:
    r"""Fraction of the true values inside their interval, :math:`\frac{1}{h}\sum_t [l_t \le y_t \le u_t]`
    (ends included); an 80% interval that is calibrated covers about 0.8."""
    y, lo = _forecast_arrays(y_true, lower, mask)
    _, hi = _forecast_arrays(y_true, upper, mask)
    if (lo > hi).any():
        raise ValueError("coverage: a lower bound lies above its upper bound")
    return float(np.mean((lo <= y) & (y <= hi)))


# -- polyphonic music: frame-level scores of predicted piano rolls --------------------------------


def frame_scores(tp: int, fp: int, fn: int) -> dict:
    r"""Bay et al. (2009)'s frame-level accuracy :math:`A = tp / (tp + fp + fn)`, with precision
    :math:`tp / (tp + fp)` and recall :math:`tp / (tp + fn)`; the counts are of (frame, key) pairs summed over
    every frame of a data set (a key predicted on that sounds is a tp). 0 where a denominator is 0."""
    return {"frame_accuracy": tp / (tp + fp + fn) if tp + fp + fn else 0.0,
            "precision": tp / (tp + fp) if tp + fp else 0.0, "recall": tp / (tp + fn) if tp + fn else 0.0}  # fmt: skip
