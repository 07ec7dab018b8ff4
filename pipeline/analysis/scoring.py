"""Metrics and reports of predictions, computed from arrays: no model, no tracking."""

from __future__ import annotations

import numpy as np
import pandas as pd


def tied_top_fraction(probabilities: np.ndarray) -> float:
    """Share of rows whose highest score is reached by more than one class.

    Such rows are decided by argmax's first-index rule, not by the model (the notebook's sigmoid
    outputs saturated at 1.0, so ties went to classes 0 and 1)."""
    top = probabilities.max(axis=1, keepdims=True)
    return float(np.mean((probabilities == top).sum(axis=1) > 1))


REPORT_HEADERS = ("precision", "recall", "f1-score", "support")


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray, classes: int) -> np.ndarray:
    """(classes, classes) counts, rows true classes, columns predicted ones: sklearn's
    `confusion_matrix` in one `bincount` (a train run's scores and reports all derive from it;
    sklearn's input checks cost a run ~30 ms)."""
    flat = y_true.astype(np.int64) * classes + y_pred.astype(np.int64)
    return np.bincount(flat, minlength=classes * classes).reshape(classes, classes)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (sklearn's zero_division=0)."""
    numerator, denominator = np.asarray(numerator, float), np.asarray(denominator, float)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def per_class_scores(counts: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support of each class of a confusion matrix, as sklearn's
    `precision_recall_fscore_support` gives them (F1 = 2 tp / (true + predicted))."""
    correct, predicted, support = np.diag(counts), counts.sum(axis=0), counts.sum(axis=1)
    return {
        "precision": _ratio(correct, predicted),
        "recall": _ratio(correct, support),
        "f1-score": _ratio(2 * correct, support + predicted),
        "support": support,
    }


def score_predictions(y_true: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """`test_*` metrics of predicted class probabilities (prediction = argmax); macro F1 over the
    classes that occur in the labels or predictions, as sklearn's `f1_score`."""
    classes = probabilities.shape[1]
    counts = confusion_counts(y_true, probabilities.argmax(axis=1), classes)
    per_class, occurring = per_class_scores(counts), (counts.sum(axis=0) + counts.sum(axis=1)) > 0
    f1, support = per_class["f1-score"], per_class["support"]
    result = {
        "test_accuracy": np.trace(counts) / counts.sum(),
        "test_macro_f1": f1[occurring].mean(),
        "test_weighted_f1": float(_ratio((f1 * support).sum(), support.sum())),
        "test_tied_top_fraction": tied_top_fraction(probabilities),
    }
    result.update({f"test_f1_class_{k}": f1[k] for k in range(classes)})
    return {name: float(value) for name, value in result.items()}


def classification_report(
    y_true: np.ndarray, y_pred: np.ndarray, class_names: tuple[str, ...]
) -> tuple[str, dict]:
    """sklearn's `classification_report` of every class (zero_division=0) as text (4 digits)
    and as a dict (for json), both from one confusion matrix."""
    counts = confusion_counts(y_true, y_pred, len(class_names))
    per_class = per_class_scores(counts)
    support = per_class["support"]
    total = int(support.sum())
    rows = {name: [per_class[h][k] for h in REPORT_HEADERS] for k, name in enumerate(class_names)}
    averages = {
        "macro avg": [per_class[h].mean() for h in REPORT_HEADERS[:3]] + [total],
        "weighted avg": [_ratio((per_class[h] * support).sum(), total) for h in REPORT_HEADERS[:3]]
        + [total],
    }
    accuracy = float(_ratio(np.trace(counts), total))
    as_dict = {name: _report_entry(row) for name, row in rows.items()}
    as_dict["accuracy"] = accuracy
    as_dict.update({name: _report_entry(row) for name, row in averages.items()})
    return _report_text(rows, accuracy, averages), as_dict


def _report_entry(values: list) -> dict[str, float]:
    return {header: float(value) for header, value in zip(REPORT_HEADERS, values, strict=True)}


def _report_text(rows: dict[str, list], accuracy: float, averages: dict[str, list]) -> str:
    """The report's table in sklearn's layout, 4 digits."""
    width = max(*(len(name) for name in rows), len("weighted avg"))
    row = "{:>{w}s} " + " {:>9.4f}" * 3 + " {:>9}\n"
    lines = [("{:>{w}s} " + " {:>9}" * 4 + "\n\n").format("", *REPORT_HEADERS, w=width)]
    lines += [
        row.format(name, *values[:3], int(values[3]), w=width) for name, values in rows.items()
    ]
    total = averages["macro avg"][3]
    lines.append(
        "\n{:>{w}s}  {:>9} {:>9} {:>9.4f} {:>9}\n".format(
            "accuracy", "", "", accuracy, total, w=width
        )
    )
    lines += [row.format(name, *values, w=width) for name, values in averages.items()]
    return "".join(lines)


def confusion_matrix_table(
    y_true: np.ndarray, y_pred: np.ndarray, class_names: tuple[str, ...]
) -> pd.DataFrame:
    """Counts; rows are true classes, columns predicted classes."""
    counts = confusion_counts(y_true, y_pred, len(class_names))
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
