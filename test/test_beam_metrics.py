"""Top-k accuracy and DeepSense's distance-based accuracy."""
import numpy as np
import pytest

from mmtok_ros.beam.metrics import beam_scores, distance_based_accuracy, top_k_accuracy


def logits_ranking(*beams, n=64):
    """Logits whose ranking is ``beams`` (best first), one row."""
    row = np.zeros(n)
    for rank, b in enumerate(beams):
        row[b] = 10.0 - rank
    return row[None]


def test_top_k_counts_the_label_among_the_k_best():
    logits = logits_ranking(5, 6, 7, 8, 9)
    labels = np.array([7])
    assert top_k_accuracy(logits, labels, 1) == 0.0
    assert top_k_accuracy(logits, labels, 3) == 1.0


def test_dba_is_one_for_exact_and_zero_for_far_predictions():
    assert distance_based_accuracy(logits_ranking(10, 40, 50), np.array([10])) == 1.0
    assert distance_based_accuracy(logits_ranking(30, 40, 50), np.array([10])) == 0.0


def test_dba_gives_partial_credit_for_neighbouring_beams():
    # top-1 one beam off: Y1 = 0.8; the exact beam second: Y2 = Y3 = 1
    score = distance_based_accuracy(logits_ranking(11, 10, 50), np.array([10]))
    assert score == pytest.approx((0.8 + 1 + 1) / 3)


def test_beam_scores_reports_every_metric():
    s = beam_scores(logits_ranking(3, 4, 5, 6, 7), np.array([6]))
    assert s == pytest.approx({'n': 1, 'top1': 0.0, 'top3': 0.0, 'top5': 1.0,
                               'dba': (0.4 + 0.6 + 0.8) / 3})
