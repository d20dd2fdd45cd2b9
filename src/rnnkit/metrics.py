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
