"""Metrics and reports of predictions, computed from arrays: no model, no tracking."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn import metrics


def tied_top_fraction(probabilities: np.ndarray) -> float:
    """Share of rows whose highest score is reached by more than one class.

    Such rows are decided by argmax's first-index rule, not by the model (the notebook's sigmoid
    outputs saturated at 1.0, so ties went to classes 0 and 1)."""
    top = probabilities.max(axis=1, keepdims=True)
    return float(np.mean((probabilities == top).sum(axis=1) > 1))


def score_predictions(y_true: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """`test_*` metrics of predicted class probabilities (prediction = argmax)."""
    y_pred = probabilities.argmax(axis=1)
    labels = np.arange(probabilities.shape[1])
    per_class_f1 = metrics.f1_score(y_true, y_pred, labels=labels, average=None, zero_division=0)
    result = {
        "test_accuracy": metrics.accuracy_score(y_true, y_pred),
        "test_macro_f1": metrics.f1_score(y_true, y_pred, average="macro", zero_division=0),
        "test_weighted_f1": metrics.f1_score(y_true, y_pred, average="weighted", zero_division=0),
        "test_tied_top_fraction": tied_top_fraction(probabilities),
    }
    result.update({f"test_f1_class_{k}": f1 for k, f1 in zip(labels, per_class_f1, strict=False)})
    return {name: float(value) for name, value in result.items()}


def classification_report(
    y_true: np.ndarray, y_pred: np.ndarray, class_names: tuple[str, ...]
) -> tuple[str, dict]:
    """sklearn's report as text and as a dict (for json)."""
    kwargs = dict(labels=np.arange(len(class_names)), target_names=class_names, zero_division=0)
    text = metrics.classification_report(y_true, y_pred, digits=4, **kwargs)
    as_dict = metrics.classification_report(y_true, y_pred, output_dict=True, **kwargs)
    return text, as_dict


def confusion_matrix_table(
    y_true: np.ndarray, y_pred: np.ndarray, class_names: tuple[str, ...]
) -> pd.DataFrame:
    """Counts; rows are true classes, columns predicted classes."""
    counts = metrics.confusion_matrix(y_true, y_pred, labels=np.arange(len(class_names)))
    index = pd.Index(class_names, name="true")
    return pd.DataFrame(counts, index=index, columns=pd.Index(class_names, name="predicted"))


def calibration_bins(y_true: np.ndarray, probabilities: np.ndarray, bins: int = 15) -> pd.DataFrame:
    """Top-label calibration: per equal-width bin of the top score, the example count, the mean
    top score (confidence) and the accuracy of the argmax prediction."""
    confidence = probabilities.max(axis=1).astype(float)
    correct = (probabilities.argmax(axis=1) == y_true).astype(float)
    index = np.clip((confidence * bins).astype(int), 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):  # empty bins: NaN
        mean_confidence = np.bincount(index, weights=confidence, minlength=bins) / count
        accuracy = np.bincount(index, weights=correct, minlength=bins) / count
    edges = np.linspace(0, 1, bins + 1)
    return pd.DataFrame(
        {
            "bin_low": edges[:-1],
            "bin_high": edges[1:],
            "count": count,
            "confidence": mean_confidence,
            "accuracy": accuracy,
        }
    )


def expected_calibration_error(table: pd.DataFrame) -> float:
    """Count-weighted mean |accuracy - confidence| over the bins of `calibration_bins`."""
    gaps = (table["accuracy"] - table["confidence"]).abs().fillna(0)
    return float((table["count"] * gaps).sum() / table["count"].sum())


def most_confident_errors(y_true: np.ndarray, probabilities: np.ndarray, count: int) -> np.ndarray:
    """Indices of up to `count` misclassified examples, highest top score first."""
    wrong = np.flatnonzero(probabilities.argmax(axis=1) != y_true)
    order = np.argsort(-probabilities[wrong].max(axis=1), kind="stable")
    return wrong[order[:count]]
