"""A study's paired results as tables and words: each config's summary over seeds, every pair of
configs compared by seed, and the answer in plain words. From seed results: no training, no
tracking."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.analysis import significance
from pipeline.config.entry_points import StudyConfig, TrainConfig, format_param

CURVES = ("loss", "val_loss", "accuracy", "val_accuracy", "generalization_gap")
SUMMARY_METRICS = (
    "test_accuracy",
    "test_macro_f1",
    "final_generalization_gap",
    "best_epoch",
    "test_tied_top_fraction",
)
COMPARED_METRICS = ("test_accuracy", "test_macro_f1")


@dataclass
class SeedResult:
    config: str
    seed: int
    metrics: dict[str, float]
    history: dict[str, list[float]]


def seed_result(name: str, seed: int, metrics: dict, history: dict) -> SeedResult:
    val_accuracy = history["val_accuracy"]
    summary = {key: metrics[key] for key in SUMMARY_METRICS if key in metrics}
    summary["final_generalization_gap"] = history["generalization_gap"][-1]
    summary["best_epoch"] = float(np.argmax(val_accuracy) + 1)
    return SeedResult(name, seed, summary, history)


def summary_table(configs: dict[str, TrainConfig], results: list[SeedResult]) -> pd.DataFrame:
    """Per config: mean, std and 95% t-interval of each summary metric over seeds (NaN std and
    interval for one seed)."""
    rows = []
    for name, config in configs.items():
        rates = config.dropout_rates
        row = {"config": name, "dropout_rates": format_param(rates)}
        row["mean_rate"] = float(np.mean(rates))
        for metric in SUMMARY_METRICS:
            values = [result.metrics[metric] for result in results if result.config == name]
            mean, low, high = significance.mean_confidence_interval(values)
            row.update(
                {
                    f"{metric}_mean": mean,
                    f"{metric}_std": float(np.std(values, ddof=1)) if len(values) > 1 else np.nan,
                    f"{metric}_ci95_low": low,
                    f"{metric}_ci95_high": high,
                }
            )
        rows.append(row)
    return pd.DataFrame(rows)


def comparison_table(
    names: Sequence[str], results: list[SeedResult], alpha: float, seed: int
) -> pd.DataFrame:
    """Every pair of configs (the later one against the earlier), paired by seed; `seed` seeds
    the bootstrap."""
    by_config = {
        name: sorted((r for r in results if r.config == name), key=lambda r: r.seed)
        for name in names
    }
    rows = []
    for reference, candidate in itertools.combinations(by_config, 2):
        for metric in COMPARED_METRICS:
            comparison = significance.paired_comparison(
                [r.metrics[metric] for r in by_config[reference]],
                [r.metrics[metric] for r in by_config[candidate]],
                alpha=alpha,
                seed=seed,
            )
            rows.append(
                {"candidate": candidate, "reference": reference, "metric": metric, **comparison}
            )
    return pd.DataFrame(rows)


def curve_arrays(names: Sequence[str], results: list[SeedResult]) -> dict:
    return {
        name: {
            key: np.array([r.history[key] for r in results if r.config == name]) for key in CURVES
        }
        for name in names
    }


def pair_findings(summary: pd.DataFrame, comparisons: pd.DataFrame) -> list[str]:
    """The tables in plain words: one paragraph per compared pair on test accuracy, with its
    verdict, then the tied top scores per config."""
    rates = dict(zip(summary["config"], summary["dropout_rates"], strict=True))
    accuracy = dict(zip(summary["config"], summary["test_accuracy_mean"], strict=True))
    ties = dict(zip(summary["config"], summary["test_tied_top_fraction_mean"], strict=True))
    paragraphs = []
    for row in comparisons[comparisons["metric"] == "test_accuracy"].itertuples():
        candidate, reference = row.candidate, row.reference
        paragraphs.append(
            f"Does **{candidate}** ({rates[candidate]}) beat **{reference}** "
            f"({rates[reference]})? Mean test accuracy {accuracy[candidate]:.4f} vs "
            f"{accuracy[reference]:.4f}; paired difference {row.mean_difference:+.4f} "
            f"(95% CI t [{row.t_ci95_low:+.4f}, {row.t_ci95_high:+.4f}], bootstrap "
            f"[{row.bootstrap_ci95_low:+.4f}, {row.bootstrap_ci95_high:+.4f}]), paired t-test "
            f"p = {row.t_test_p_value:.3g}, Wilcoxon p = {row.wilcoxon_p_value:.3g}, "
            f"Cohen's d_z = {row.cohens_dz:.2f}. Verdict: **{row.verdict}**."
        )
    paragraphs.append(
        "Tied top scores (test images whose highest score is shared, decided by argmax's "
        "first-index rule): "
        + ", ".join(f"{name} {100 * share:.1f}%" for name, share in ties.items())
        + "."
    )
    pairs = int(comparisons["n_pairs"].iloc[0])
    if pairs <= 5:
        paragraphs.append(
            f"With {pairs} pairs the exact Wilcoxon test cannot go below "
            f"p = {2 / 2**pairs:.4g}; the verdict uses the paired t-test."
        )
    return paragraphs


def study_answer(config: StudyConfig, summary: pd.DataFrame, comparisons: pd.DataFrame) -> str:
    """The study's result in plain words, under a line saying what was compared."""
    heading = (
        f"**Study `{config.name}`**: {config.dataset}, {config.recipe} recipe, {config.epochs} "
        f"epochs, batch {config.batch_size}, {config.seeds} paired seeds "
        f"({config.seed}…{config.seed + config.seeds - 1}), alpha {config.alpha}."
    )
    return "\n\n".join([heading, *pair_findings(summary, comparisons)])
