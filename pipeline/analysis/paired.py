"""A study's paired results as tables and words: each config's summary over seeds, every pair of
configs compared by seed, and the answer in plain words. From seed results: no training, no
tracking."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipeline.analysis import significance
from pipeline.analysis.equivalence import UNDECIDED, Verdict
from pipeline.analysis.sequential import CONTINUE, SequentialDesign
from pipeline.config.entry_points import TrainConfig, format_param
from pipeline.config.study import StudyConfig

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
    """One run's summary metrics and per-epoch history, and its test accuracy at the
    checkpoint epochs it scored (`checkpoints`: epoch -> accuracy)."""

    config: str
    seed: int
    metrics: dict[str, float]
    history: dict[str, list[float]]
    checkpoints: dict[int, float] = field(default_factory=dict)


def seed_result(
    name: str, seed: int, metrics: dict, history: dict, checkpoints: dict | None = None
) -> SeedResult:
    val_accuracy = history["val_accuracy"]
    summary = {key: metrics[key] for key in SUMMARY_METRICS if key in metrics}
    summary["final_generalization_gap"] = history["generalization_gap"][-1]
    summary["best_epoch"] = float(np.argmax(val_accuracy) + 1)
    return SeedResult(name, seed, summary, history, dict(checkpoints or {}))


def at_epoch(result: SeedResult, epoch: int) -> SeedResult:
    """What a run of `epoch` epochs gives, from a run trained at least that long: its history
    cut there and its test accuracy at that checkpoint (the other test metrics only at the
    run's last epoch)."""
    if epoch == len(result.history["val_accuracy"]):
        return result
    history = {key: result.history[key][:epoch] for key in CURVES}
    metrics = {"test_accuracy": result.checkpoints[epoch]}
    checkpoints = {e: value for e, value in result.checkpoints.items() if e <= epoch}
    return seed_result(result.config, result.seed, metrics, history, checkpoints)


def summary_table(configs: dict[str, TrainConfig], results: list[SeedResult]) -> pd.DataFrame:
    """Per config: mean, std and 95% t-interval of each summary metric over seeds (NaN std and
    interval for one seed; NaN throughout for a metric the runs lack, see at_epoch)."""
    rows = []
    for name, config in configs.items():
        rates = config.dropout_rates
        row = {"config": name, "dropout_rates": format_param(rates)}
        row["mean_rate"] = float(np.mean(rates))
        for metric in SUMMARY_METRICS:
            values = [r.metrics.get(metric, np.nan) for r in results if r.config == name]
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


COMPARISON_COLUMNS = (
    "candidate",
    "reference",
    "metric",
    "seeds",
    "mean_difference",
    "ci95_low",
    "ci95_high",
    "equivalence_low",
    "equivalence_high",
    "p_value",
    "p_equivalence",
    "probability_of_improvement",
    "improvement_low",
    "improvement_high",
    "seeds_for_power",
    "margin",
    "verdict",
)
POINTS = 100.0  # differences are in test-accuracy points: accuracy x 100


def study_design(config: StudyConfig, family_size: int = 1) -> SequentialDesign:
    """The verdict rule of a study: with seeds=auto looks every `replicas` seeds up to
    max_seeds; else a single look at `seeds` (the fixed-size verdict at alpha / family_size)."""
    batch, most = (config.replicas, config.max_seeds) if config.adaptive else (config.seeds,) * 2
    return SequentialDesign(config.alpha, config.margin, batch, most, family_size=family_size)


def seed_differences(
    names: Sequence[str], results: list[SeedResult], metric: str
) -> dict[tuple[str, str, str], np.ndarray]:
    """Per pair of configs (the later one the candidate), the candidate-minus-reference
    differences of `metric` in points, one per seed in seed order; a config's seeds must be its
    reference's."""
    values = {
        name: {r.seed: r.metrics[metric] for r in results if r.config == name} for name in names
    }
    differences = {}
    for reference, candidate in itertools.combinations(names, 2):
        seeds = sorted(values[reference])
        if sorted(values[candidate]) != seeds:
            raise ValueError(f"{candidate} and {reference} were not trained on the same seeds")
        differences[candidate, reference, metric] = POINTS * np.array(
            [values[candidate][seed] - values[reference][seed] for seed in seeds]
        )
    return differences


def comparison_row(key: tuple[str, str, str], decision: Verdict) -> dict:
    """One row of COMPARISON_COLUMNS from a pair's Verdict (or a sequential Decision)."""
    candidate, reference, metric = key
    return {
        "candidate": candidate,
        "reference": reference,
        "metric": metric,
        "seeds": decision.n,
        "mean_difference": decision.mean,
        "ci95_low": decision.ci_low,
        "ci95_high": decision.ci_high,
        "equivalence_low": decision.equivalence_low,
        "equivalence_high": decision.equivalence_high,
        "p_value": decision.p_value,
        "p_equivalence": decision.p_equivalence,
        "probability_of_improvement": decision.probability_of_improvement,
        "improvement_low": decision.improvement_low,
        "improvement_high": decision.improvement_high,
        "seeds_for_power": decision.seeds_for_power,
        "margin": decision.margin,
        "verdict": decision.verdict,
    }


def comparison_table(
    names: Sequence[str], results: list[SeedResult], design: SequentialDesign
) -> pd.DataFrame:
    """Every pair of configs (the later one against the earlier) and compared metric that every
    result has, paired by seed, judged by `design` (study_design): differences and intervals in
    points, the verdict and the statistics of the look it rests on (`seeds` of them)."""
    rows = []
    for metric in COMPARED_METRICS:
        if all(metric in result.metrics for result in results):
            for key, differences in seed_differences(names, results, metric).items():
                rows.append(comparison_row(key, design.decide(differences)))
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))


def open_comparisons(
    names: Sequence[str], cells: Sequence[list[SeedResult]], design: SequentialDesign
) -> int:
    """How many candidate-vs-reference test-accuracy verdicts of the cells (each its seed
    results) the design has not decided yet: more seeds are planned for them."""
    return sum(
        design.decide(differences).verdict == CONTINUE
        for results in cells
        for (_, reference, _), differences in seed_differences(
            names, results, "test_accuracy"
        ).items()
        if reference == names[0]
    )


def curve_arrays(names: Sequence[str], results: list[SeedResult]) -> dict:
    return {
        name: {
            key: np.array([r.history[key] for r in results if r.config == name]) for key in CURVES
        }
        for name in names
    }


def look_level(design: SequentialDesign, seeds: int) -> float:
    """The test level of the design's look at `seeds` seeds: its intervals are at 1 - level."""
    return design.levels[design.looks.index(seeds)]


def comparison_words(row, design: SequentialDesign) -> str:
    """A comparison row (test accuracy) in words: difference, probability of improvement, the
    tests and the verdict, with the seeds that would decide an undecided one."""
    confidence = 100 * (1 - look_level(design, row.seeds))
    words = (
        f"paired difference {row.mean_difference:+.2f} points ({confidence:.4g}% CI "
        f"[{row.ci95_low:+.2f}, {row.ci95_high:+.2f}]), probability of improvement "
        f"{row.probability_of_improvement:.2f} [{row.improvement_low:.2f}, "
        f"{row.improvement_high:.2f}], t-test p = {row.p_value:.3g}, equivalence within "
        f"±{row.margin:g} points p = {row.p_equivalence:.3g}, over {row.seeds} seeds. "
        f"Verdict: **{row.verdict}**"
    )
    if row.verdict == UNDECIDED and pd.notna(row.seeds_for_power):
        words += f" (a fixed-size study would need about {int(row.seeds_for_power)} seeds)"
    return words + "."


def pair_findings(
    summary: pd.DataFrame, comparisons: pd.DataFrame, design: SequentialDesign
) -> list[str]:
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
            f"{accuracy[reference]:.4f}; {comparison_words(row, design)}"
        )
    if not any(np.isnan(list(ties.values()))):
        paragraphs.append(
            "Tied top scores (test images whose highest score is shared, decided by argmax's "
            "first-index rule): "
            + ", ".join(f"{name} {100 * share:.1f}%" for name, share in ties.items())
            + "."
        )
    return paragraphs


def seeds_words(config: StudyConfig) -> str:
    """How many seeds a study trains, in words."""
    if config.adaptive:
        return (
            f"seeds in batches of {config.replicas} from {config.seed} until a verdict, at most "
            f"{config.max_seeds} (O'Brien-Fleming alpha spending)"
        )
    return f"{config.seeds} paired seeds ({config.seed}…{config.seed + config.seeds - 1})"


def study_answer(
    config: StudyConfig,
    summary: pd.DataFrame,
    comparisons: pd.DataFrame,
    design: SequentialDesign,
) -> str:
    """The study's result in plain words, under a line saying what was compared."""
    heading = (
        f"**Study `{config.name}`**: {config.dataset}, {config.recipe} recipe, {config.epochs} "
        f"epochs, batch {config.batch_size}, {seeds_words(config)}, alpha {config.alpha} over "
        f"{design.family_size} comparison(s) with the reference, equivalence margin "
        f"±{config.margin:g} points."
    )
    return "\n\n".join([heading, *pair_findings(summary, comparisons, design)])
