"""Metric functions on crafted arrays with known answers."""

import numpy as np
import pytest
from sklearn import metrics as sk
from sklearn.metrics import f1_score

from pipeline.analysis.scoring import (
    calibration_bins,
    classification_report,
    confusion_matrix_table,
    expected_calibration_error,
    most_confident_errors,
    score_predictions,
    tied_top_fraction,
)

pytestmark = pytest.mark.fast  # make test-fast


def test_tied_top_fraction_counts_rows_whose_maximum_is_shared():
    probabilities = np.array(
        [
            [1.0, 1.0, 0.2],  # saturated sigmoid: tie at the top
            [0.1, 0.8, 0.1],  # tie below the top does not count
            [0.3, 0.3, 0.3],  # all tied
            [0.0, 0.2, 0.9],
        ],
        dtype=np.float32,
    )
    assert tied_top_fraction(probabilities) == 0.5


def test_score_predictions_matches_sklearn():
    y_true = np.array([0, 0, 1, 1, 2, 2])
    probabilities = np.eye(3)[[0, 1, 1, 1, 2, 0]]
    metrics = score_predictions(y_true, probabilities)
    y_pred = probabilities.argmax(axis=1)
    assert metrics["test_accuracy"] == pytest.approx(4 / 6)
    assert metrics["test_macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert metrics["test_f1_class_1"] == pytest.approx(0.8)
    assert metrics["test_tied_top_fraction"] == 0.0
    assert set(metrics) == {
        "test_accuracy",
        "test_macro_f1",
        "test_weighted_f1",
        "test_tied_top_fraction",
        "test_f1_class_0",
        "test_f1_class_1",
        "test_f1_class_2",
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scores_report_and_confusion_matrix_equal_sklearns(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 4, 300)
    y_true[y_true == 3] = 0  # class 3 never occurs in the labels
    probabilities = rng.random((300, 5))  # and class 4 never in the labels: both in macro avg
    probabilities[rng.random(300) < 0.6, 4] = 0  # ... and rarely predicted
    y_pred = probabilities.argmax(axis=1)
    names = ("zero", "one", "two", "three", "a-long-class-name")
    text, report = classification_report(y_true, y_pred, names)
    kwargs = dict(labels=np.arange(5), target_names=names, zero_division=0)
    assert text == sk.classification_report(y_true, y_pred, digits=4, **kwargs)
    expected = sk.classification_report(y_true, y_pred, output_dict=True, **kwargs)
    assert list(report) == list(expected)
    for name, entry in report.items():
        assert entry == pytest.approx(expected[name]), name
    scores = score_predictions(y_true, probabilities)
    assert scores["test_accuracy"] == pytest.approx(sk.accuracy_score(y_true, y_pred))
    for average in ("macro", "weighted"):
        f1 = f1_score(y_true, y_pred, average=average, zero_division=0)
        assert scores[f"test_{average}_f1"] == pytest.approx(f1)
    per_class = f1_score(y_true, y_pred, labels=np.arange(5), average=None, zero_division=0)
    assert [scores[f"test_f1_class_{k}"] for k in range(5)] == pytest.approx(per_class)
    table = confusion_matrix_table(y_true, y_pred, names)
    assert np.array_equal(table.to_numpy(), sk.confusion_matrix(y_true, y_pred, labels=range(5)))


def test_report_and_confusion_matrix_use_class_names():
    y_true, y_pred = np.array([0, 1, 1]), np.array([0, 1, 0])
    text, report = classification_report(y_true, y_pred, ("cat", "dog"))
    assert "cat" in text and report["dog"]["recall"] == 0.5
    table = confusion_matrix_table(y_true, y_pred, ("cat", "dog"))
    assert table.loc["dog", "cat"] == 1 and table.to_numpy().sum() == 3


def test_expected_calibration_error_of_known_cases():
    y_true = np.array([0, 0, 0, 1])
    calibrated = np.array([[0.75, 0.25]] * 4)  # confidence 0.75, three of four right
    table = calibration_bins(y_true, calibrated, bins=10)
    assert table["count"].sum() == 4
    assert expected_calibration_error(table) == pytest.approx(0.0)
    overconfident = np.array([[0.0, 1.0]] * 3 + [[1.0, 0.0]])  # sure, and always wrong
    assert expected_calibration_error(calibration_bins(y_true, overconfident)) == 1.0


def test_most_confident_errors_come_first_and_exclude_right_answers():
    y_true = np.array([0, 1, 0, 1])
    probabilities = np.array([[0.6, 0.4], [0.9, 0.1], [0.2, 0.8], [0.1, 0.9]])
    assert most_confident_errors(y_true, probabilities, count=5).tolist() == [1, 2]
    assert most_confident_errors(y_true, probabilities, count=1).tolist() == [1]
