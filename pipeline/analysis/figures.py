"""The figures runs log, drawn from arrays and tables: no model, no tracking. (The CLI's
`runtime.setup` picks matplotlib's non-interactive Agg backend.)"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import ConfusionMatrixDisplay

from pipeline.analysis.scoring import expected_calibration_error, most_confident_errors


def confusion_matrix_figure(table: pd.DataFrame, title: str = "") -> plt.Figure:
    """Counts and row-normalized (recall per class) side by side."""
    counts = table.to_numpy()
    normalized = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    # Fixed margins: a layout engine would measure every cell's text in an extra draw (~0.2 s).
    figure = Figure(figsize=(13, 6.5))  # not pyplot's: a run's figures may be drawn in a thread
    axes = figure.subplots(1, 2)
    figure.subplots_adjust(left=0.1, right=0.99, bottom=0.2, top=0.88, wspace=0.3)
    for axis, values, name, fmt in (
        (axes[0], counts, "counts", "d"),
        (axes[1], normalized, "row-normalized", ".2f"),
    ):
        display = ConfusionMatrixDisplay(values, display_labels=list(table.index))
        display.plot(ax=axis, values_format=fmt, colorbar=False, cmap="Blues", xticks_rotation=45)
        axis.set_title(name)
    figure.suptitle(title or "Confusion matrix (test set)")
    return figure


def learning_curves_figure(history: dict[str, list[float]], title: str = "") -> plt.Figure:
    """Loss and accuracy per epoch, train vs validation."""
    figure = Figure(figsize=(11, 4))  # not pyplot's, as above
    axes = figure.subplots(1, 2)
    figure.subplots_adjust(left=0.07, right=0.98, bottom=0.13, top=0.88, wspace=0.25)  # see above
    epochs = np.arange(1, len(history["loss"]) + 1)
    for axis, metric in zip(axes, ("loss", "accuracy"), strict=False):
        axis.plot(epochs, history[metric], marker="o", label="train")
        axis.plot(epochs, history[f"val_{metric}"], marker="o", label="validation")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.suptitle(title or "Learning curves")
    return figure


def learning_curve_bands_figure(
    curves: dict[str, dict[str, np.ndarray]], title: str = ""
) -> plt.Figure:
    """Per config, the mean over seeds of each per-epoch metric with a ±1 std band;
    `curves[config][metric]` is a seeds x epochs array. Train dashed, validation solid."""
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5), layout="constrained")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, (config, per_metric) in enumerate(curves.items()):
        color = colors[index % len(colors)]
        for axis, metric in zip(axes, ("loss", "accuracy"), strict=True):
            for key, style, split in ((metric, "--", "train"), (f"val_{metric}", "-", "val")):
                values = per_metric[key]
                mean, std = values.mean(axis=0), values.std(axis=0)
                epochs = np.arange(1, values.shape[1] + 1)
                axis.plot(epochs, mean, style, color=color, label=f"{config} {split}")
                axis.fill_between(epochs, mean - std, mean + std, color=color, alpha=0.15)
    for axis, metric in zip(axes, ("loss", "accuracy"), strict=True):
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
    axes[1].legend(fontsize="small", ncols=2)
    figure.suptitle(title or "Learning curves: mean ± std over seeds")
    return figure


def dose_response_figure(table: pd.DataFrame, title: str = "") -> plt.Figure:
    """Test accuracy (mean and 95% CI) and final generalization gap against the mean dropout
    rate of each config; `table` has columns mean_rate, test_accuracy_mean/_ci95_low/_ci95_high,
    final_generalization_gap_mean."""
    table = table.sort_values("mean_rate")
    figure, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    error = [
        table["test_accuracy_mean"] - table["test_accuracy_ci95_low"],
        table["test_accuracy_ci95_high"] - table["test_accuracy_mean"],
    ]
    axes[0].errorbar(table["mean_rate"], table["test_accuracy_mean"], yerr=error, marker="o")
    axes[0].set_ylabel("test accuracy (mean, 95% CI)")
    axes[1].plot(table["mean_rate"], table["final_generalization_gap_mean"], marker="o")
    axes[1].set_ylabel("final generalization gap (val_loss - loss)")
    for axis in axes:
        axis.set_xlabel("mean dropout rate over hidden layers")
        axis.grid(alpha=0.3)
        for rate, name in zip(table["mean_rate"], table["config"], strict=True):
            axis.annotate(name, (rate, axis.get_ylim()[0]), fontsize="small", rotation=90)
    figure.suptitle(title or "Dose-response")
    return figure


def reliability_diagram_figure(table: pd.DataFrame, title: str = "") -> plt.Figure:
    """Accuracy against confidence per bin (a calibrated model lies on the diagonal), and how
    many examples each bin holds."""
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(5.5, 6.5), height_ratios=(3, 1), sharex=True, layout="constrained"
    )
    centers = (table["bin_low"] + table["bin_high"]) / 2
    width = table["bin_high"] - table["bin_low"]
    top.bar(centers, table["accuracy"].fillna(0), width=width, edgecolor="black", label="accuracy")
    top.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    top.set_ylabel("accuracy of the top class")
    top.set_ylim(0, 1)
    top.legend(loc="upper left")
    top.set_title(f"ECE {expected_calibration_error(table):.4f}")
    bottom.bar(centers, table["count"], width=width, edgecolor="black", color="gray")
    bottom.set_yscale("log")
    bottom.set_xlabel("confidence (top score)")
    bottom.set_ylabel("examples")
    figure.suptitle(title or "Reliability diagram (test set)")
    return figure


def misclassified_figure(
    images: np.ndarray,
    y_true: np.ndarray,
    probabilities: np.ndarray,
    class_names: tuple[str, ...],
    count: int = 25,
    title: str = "",
) -> plt.Figure:
    """A grid of the most confidently misclassified images: true class, predicted class, score."""
    indices = most_confident_errors(y_true, probabilities, count)
    columns = max(1, min(5, len(indices)))
    rows = max(1, -(-len(indices) // columns))
    figure, axes = plt.subplots(
        rows, columns, figsize=(2.2 * columns, 2.5 * rows), squeeze=False, layout="constrained"
    )
    for axis in axes.flat:
        axis.axis("off")
    for axis, index in zip(axes.flat, indices, strict=False):
        predicted = probabilities[index].argmax()
        axis.imshow(images[index], cmap="gray_r")
        axis.set_title(
            f"true {class_names[y_true[index]]}\npred {class_names[predicted]} "
            f"{probabilities[index, predicted]:.2f}",
            fontsize="small",
        )
    if len(indices) == 0:
        axes[0, 0].text(0.5, 0.5, "no misclassified examples", ha="center", va="center")
    figure.suptitle(title or "Most confidently misclassified test examples")
    return figure


def confusion_matrix_comparison_figure(
    candidate: pd.DataFrame, reference: pd.DataFrame, names: tuple[str, str], title: str = ""
) -> plt.Figure:
    """Both models' confusion-matrix counts and their difference (candidate - reference): on the
    diagonal, red means the candidate gets more right; off it, blue means it errs less."""
    figure, axes = plt.subplots(1, 3, figsize=(21, 6.5), layout="constrained")
    labels = list(candidate.index)
    for axis, table, name in ((axes[0], candidate, names[0]), (axes[1], reference, names[1])):
        display = ConfusionMatrixDisplay(table.to_numpy(), display_labels=labels)
        display.plot(ax=axis, values_format="d", colorbar=False, cmap="Blues", xticks_rotation=45)
        axis.set_title(name)
    difference = candidate.to_numpy() - reference.to_numpy()
    limit = max(1, np.abs(difference).max())
    display = ConfusionMatrixDisplay(difference, display_labels=labels)
    display.plot(
        ax=axes[2],
        values_format="d",
        colorbar=False,
        cmap="RdBu_r",
        xticks_rotation=45,
        im_kw={"vmin": -limit, "vmax": limit},
        text_kw={"color": "black"},
    )
    axes[2].set_title(f"difference: {names[0]} - {names[1]}")
    figure.suptitle(title or "Confusion matrices (test set)")
    return figure
