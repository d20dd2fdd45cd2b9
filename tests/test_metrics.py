"""Metrics: entity scores as the conlleval script prints them (the expected figures below are what
conlleval 2004-01-26 prints for these files), classification metrics, tag scheme conversions."""

import pytest

from rnnkit.data.conll import bio_to_bioes, bioes_to_bio, convert, iob1_to_bio, names_only
from rnnkit.metrics import (
    accuracy,
    bits_per_char,
    classification_report,
    confusion_matrix,
    entities,
    entity_scores,
    macro_f1,
    perplexity,
)


def test_iob1_entities_as_conlleval_reads_them():
    # IOB1: I-X after O starts an entity; B-X only separates two adjacent entities of one type
    assert entities(["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "O", "I-ORG"]) == [
        ("PER", 0, 1), ("LOC", 3, 3), ("LOC", 4, 4), ("ORG", 6, 6)]  # fmt: skip
    assert entities(["B-PER", "I-LOC"]) == [("PER", 0, 0), ("LOC", 1, 1)]  # a type change starts a new one
    assert entities(["O", "I-MISC", "I-MISC"]) == [("MISC", 1, 2)]
    assert entities(["S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC"]) == [("PER", 0, 0), ("LOC", 1, 3), ("LOC", 4, 4)]


def test_scores_agree_with_conlleval_on_a_file_with_no_correct_entity():
    # conlleval: processed 7 tokens with 4 phrases; found: 3 phrases; correct: 0; accuracy 57.14%
    gold = [["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "O", "I-ORG"]]
    pred = [["I-PER", "O", "O", "I-LOC", "I-LOC", "O", "I-MISC"]]
    s = entity_scores(gold, pred)
    assert (s["entities"], s["predicted"], s["correct"]) == (4, 3, 0)
    assert s["precision"] == s["recall"] == s["f1"] == 0.0
    assert s["accuracy"] == pytest.approx(4 / 7)
    assert s["per_type"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2, "predicted": 1}
    assert s["per_type"]["MISC"]["support"] == 0 and s["per_type"]["ORG"]["predicted"] == 0


def test_scores_agree_with_conlleval_over_several_sentences():
    # conlleval: 12 tokens with 6 phrases; found: 6 phrases; correct: 4; accuracy 58.33%;
    # precision 66.67%, recall 66.67%; LOC P 100 R 50 F 66.67; MISC 100; ORG 0 (found 2); PER 100
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG", "I-ORG", "I-ORG"], ["B-MISC", "O"], ["I-PER", "I-LOC"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["O", "B-ORG", "I-ORG", "O"], ["I-MISC", "O"], ["B-PER", "B-LOC"]]
    s = entity_scores(gold, pred)
    assert (s["entities"], s["predicted"], s["correct"]) == (6, 6, 4)
    assert s["precision"] == pytest.approx(4 / 6) and s["recall"] == pytest.approx(4 / 6)
    assert s["f1"] == pytest.approx(4 / 6) and s["accuracy"] == pytest.approx(7 / 12)
    loc = s["per_type"]["LOC"]
    assert (loc["precision"], loc["recall"], loc["f1"]) == pytest.approx((1.0, 0.5, 2 / 3))
    assert s["per_type"]["ORG"]["predicted"] == 2 and s["per_type"]["ORG"]["f1"] == 0.0
    assert s["per_type"]["PER"]["f1"] == s["per_type"]["MISC"]["f1"] == 1.0


def test_entity_scores_reject_misaligned_input():
    with pytest.raises(ValueError, match="sentence 0"):
        entity_scores([["O", "O"]], [["O"]])


def test_scheme_conversions():
    iob1 = ["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-LOC", "I-ORG"]
    bio = ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC", "B-ORG"]
    bioes = ["B-PER", "E-PER", "O", "S-LOC", "B-LOC", "E-LOC", "S-ORG"]
    assert iob1_to_bio(iob1) == bio
    assert bio_to_bioes(bio) == bioes
    assert bioes_to_bio(bioes) == bio
    assert convert(iob1, "iob1", "bioes") == bioes
    assert convert(bioes, "bioes", "io") == ["I-PER", "I-PER", "O", "I-LOC", "I-LOC", "I-LOC", "I-ORG"]
    assert names_only(bio) == ["I-PER", "I-PER", "O", "O", "O", "O", "O"]
    # every scheme names the same entities
    assert entities(iob1) == entities(bio) == entities(bioes)


def test_classification_metrics():
    gold = [0, 0, 0, 1, 1, 2]
    pred = [0, 0, 1, 1, 2, 2]
    assert accuracy(gold, pred) == pytest.approx(4 / 6)
    matrix = confusion_matrix(gold, pred, 3)
    assert matrix == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    # F1: class 0: P 1, R 2/3 -> 0.8; class 1: P 1/2, R 1/2 -> 0.5; class 2: P 1/2, R 1 -> 2/3
    assert macro_f1(matrix) == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    report = classification_report(gold, pred, ["a", "b", "c"])
    assert report["per_class"]["a"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    # a class absent from both gold and predictions does not drag the macro mean down
    assert macro_f1(confusion_matrix([0, 1], [0, 1], 3)) == 1.0


def test_language_model_units():
    assert bits_per_char(1.0) == pytest.approx(1.4426950408889634)
    assert perplexity(0.0) == 1.0 and perplexity(1e9) < float("inf")


# -- forecast metrics, against values worked out by hand ----------------------------------------------

Y, F = [1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 1.0, 8.0]  # errors 1, 0, 2, 4


def test_forecast_point_errors_by_hand():
    from rnnkit.metrics import mae, mape, rmse, smape

    assert mae(Y, F) == pytest.approx(7 / 4)
    assert rmse(Y, F) == pytest.approx((21 / 4) ** 0.5)
    # M4 sMAPE: 200/h * sum |e| / (|y| + |f|) = 200/4 * (1/3 + 0 + 2/4 + 4/12)
    assert smape(Y, F) == pytest.approx(50 * (1 / 3 + 0.5 + 1 / 3))
    assert mape(Y, F) == pytest.approx(25 * (1 + 0 + 2 / 3 + 1))
    assert smape([0.0, 2.0], [0.0, 2.0]) == 0.0  # 0/0 is a perfect step, not NaN
    assert smape([1.0], [-1.0]) == pytest.approx(200.0)  # the upper bound


def test_mase_is_scaled_by_the_in_sample_seasonal_naive_error():
    from rnnkit.metrics import mase

    history = [1.0, 3.0, 2.0, 6.0, 4.0, 8.0]
    # m = 2: |2-1|, |6-3|, |4-2|, |8-6| -> scale 2; MAE 1.75
    assert mase(Y, F, history, season=2) == pytest.approx(1.75 / 2)
    # m = 1 (naive): |3-1|, |2-3|, |6-2|, |4-6|, |8-4| -> scale 13/5
    assert mase(Y, F, history) == pytest.approx(1.75 / (13 / 5))
    # a gap in the history drops the pairs it is in: m = 2 keeps |2-1|, |8-6| -> scale 1.5
    assert mase(Y, F, [1.0, 3.0, 2.0, float("nan"), 4.0, 8.0], season=2) == pytest.approx(1.75 / 1.5)
    with pytest.raises(ValueError, match="longer than the season"):
        mase(Y, F, history, season=6)
    with pytest.raises(ValueError, match="scale 0"):
        mase(Y, F, [5.0, 7.0, 5.0, 7.0], season=2)


def test_coverage_counts_points_inside_their_interval():
    from rnnkit.metrics import coverage

    lower, upper = [0.0, 2.5, 3.0, 5.0], [2.0, 3.0, 3.0, 6.0]
    assert coverage(Y, lower, upper) == 0.5  # 1 in, 2 below, 3 on both ends (inside), 4 below
    assert coverage(Y, lower, upper, mask=[True, False, True, False]) == 1.0
    with pytest.raises(ValueError, match="lower bound lies above"):
        coverage(Y, upper, lower)


def test_forecast_metrics_mask_gaps_and_refuse_bad_input():
    from rnnkit.metrics import mae, mape, rmse

    nan = float("nan")
    assert mae([1.0, nan, 3.0], [2.0, 0.0, 5.0], mask=[True, False, True]) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="NaN or inf"):
        rmse([1.0, nan], [1.0, 1.0])
    with pytest.raises(ValueError, match="differ in shape"):
        mae([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="holds 0"):
        mape([0.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="no points"):
        mae([1.0], [1.0], mask=[False])
