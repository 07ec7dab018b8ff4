"""Does dropout help? Every config trained on the same seeds, then compared pairwise.

Each config x seed is a train run (the train code path) nested under one parent study run.
Configs share seeds, and so the validation split and initial randomness of each seed: the
comparison is paired. Re-running the same study reuses its parent and its FINISHED children.
The runner and the tables take named train configs, so tune's fresh-seed comparison uses them too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline import tracking
from pipeline.analysis import figures, significance
from pipeline.analysis.reports import report_html, report_markdown
from pipeline.config.entry_points import StudyConfig, TrainConfig, format_param
from pipeline.data.datasets import Dataset, seed_datasets
from pipeline.engines.replicas import Member, check_fits, train_members
from pipeline.tracking import store

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


def study_key(config: StudyConfig) -> str:
    """Identifies a study by its params: the same params find the same parent run (all but the
    storage, which workers of one grid may reach by different URLs)."""
    params = {key: value for key, value in config.to_params().items() if key != "storage"}
    return hashlib.sha256(repr(sorted(params.items())).encode()).hexdigest()[:16]


def seed_result(name: str, seed: int, metrics: dict, history: dict) -> SeedResult:
    val_accuracy = history["val_accuracy"]
    summary = {key: metrics[key] for key in SUMMARY_METRICS if key in metrics}
    summary["final_generalization_gap"] = history["generalization_gap"][-1]
    summary["best_epoch"] = float(np.argmax(val_accuracy) + 1)
    return SeedResult(name, seed, summary, history)


def finished_result(name: str, seed: int, parent_run_id: str, tags: dict) -> SeedResult | None:
    """The FINISHED child run with these tags that a previous attempt left, if any."""
    for run in tracking.child_runs(parent_run_id, tags):
        if run.info.status == "FINISHED":
            history = {key: tracking.metric_history(run.info.run_id, key) for key in CURVES}
            print(f"{name} seed {seed}: reusing finished run {run.info.run_id}")
            return seed_result(name, seed, run.data.metrics, history)
    return None


def run_configs(
    configs: dict[str, TrainConfig],
    datasets: dict[int, Dataset],
    parent_run_id: str,
    tags: dict[str, str],
    config_tag: str = "study_config",
    seed_tag: str = "study_seed",
    replicas: int = 1,
) -> list[SeedResult]:
    """Every config on every seed (the keys of `datasets`, each seed's split shared by every
    config) as a child run of the parent, tagged `tags` plus its name and seed; FINISHED ones
    are reused, the others trained `replicas` at a time as one model (1: `train`). Children that
    a killed process left RUNNING end FAILED first."""
    tracking.end_dead_children(parent_run_id)
    results, pending = [], []
    for seed, dataset in datasets.items():
        for name, config in configs.items():
            child_tags = {**tags, config_tag: name, seed_tag: str(seed)}
            result = finished_result(name, seed, parent_run_id, child_tags)
            if result is not None:
                results.append(result)
            else:
                seeded = dataclasses.replace(config, seed=seed)
                pending.append((name, Member(seeded, dataset, child_tags)))
    trained = train_members([member for _, member in pending], parent_run_id, replicas)
    for (name, member), run in zip(pending, trained, strict=True):
        results.append(seed_result(name, member.config.seed, run.test_metrics, run.history))
    return results


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


def findings(summary: pd.DataFrame, comparisons: pd.DataFrame) -> list[str]:
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


def answer(config: StudyConfig, summary: pd.DataFrame, comparisons: pd.DataFrame) -> str:
    """The study's result in plain words, under a line saying what was compared."""
    heading = (
        f"**Study `{config.name}`**: {config.dataset}, {config.recipe} recipe, {config.epochs} "
        f"epochs, batch {config.batch_size}, {config.seeds} paired seeds "
        f"({config.seed}…{config.seed + config.seeds - 1}), alpha {config.alpha}."
    )
    return "\n\n".join([heading, *findings(summary, comparisons)])


def log_table_metrics(summary: pd.DataFrame, comparisons: pd.DataFrame, prefix: str = ""):
    """Per config the mean and CI of each summary metric, per pair the paired difference and
    p-value: metrics of the active run, named `<prefix><config>_…`."""
    for row in summary.itertuples():
        tracking.log_metrics(
            {
                f"{prefix}{row.config}_{metric}_{stat}": getattr(row, f"{metric}_{stat}")
                for metric in SUMMARY_METRICS
                for stat in ("mean", "ci95_low", "ci95_high")
            }
        )
    for row in comparisons.itertuples():
        key = f"{prefix}{row.candidate}_vs_{row.reference}_{row.metric}"
        tracking.log_metrics(
            {f"{key}_difference": row.mean_difference, f"{key}_p_value": row.t_test_p_value}
        )


def log_results(
    config: StudyConfig, configs: dict[str, TrainConfig], results: list[SeedResult]
) -> str:
    summary = summary_table(configs, results)
    comparisons = comparison_table(list(configs), results, config.alpha, config.seed)
    text = answer(config, summary, comparisons)
    curves_figure = figures.learning_curve_bands_figure(
        curve_arrays(list(configs), results), f"{config.name}: mean ± std over {config.seeds} seeds"
    )
    tracking.log_text(report_html(text, summary, comparisons, curves_figure), "report.html")
    tracking.log_figure(curves_figure, "learning_curves.png")
    if len(configs) >= 3:
        tracking.log_figure(figures.dose_response_figure(summary), "dose_response.png")
    tracking.log_text(summary.to_csv(index=False), "summary.csv")
    tracking.log_text(summary.to_markdown(index=False, floatfmt=".4f"), "summary.md")
    tracking.log_text(comparisons.to_csv(index=False), "comparisons.csv")
    tracking.log_text(report_markdown(text, summary, comparisons), "report.md")
    log_table_metrics(summary, comparisons)
    tracking.set_description(text)
    return text


def unowned_parent(config: StudyConfig, experiment: str, tags: dict[str, str]) -> str | None:
    """The parent run an earlier attempt of these params left, to resume; a ParameterError when
    a live process still runs it (two such processes would train every child twice)."""
    earlier = tracking.find_run(experiment, tags)
    worker = earlier and tracking.live_worker(earlier)
    if worker:
        raise config.invalid(
            "study_name",
            f"a study no other process is running; worker {worker} is running it (wait for it "
            "to end, or stop it)",
            config.name,
        )
    return earlier


def study(config: StudyConfig) -> str:
    """Run (or continue) the study; returns the plain-words answer."""
    experiment = tracking.experiment_name(config.dataset)
    tags = {"entry_point": "study", "study": config.name, "study_key": study_key(config)}
    seeds = range(config.seed, config.seed + config.seeds)
    # a train_size the data cannot give: exit 2 naming study's param, before any run exists
    datasets = seed_datasets(config, seeds)
    check_fits(config.replicas, datasets[config.seed], config)
    configs = {
        name: config.train_config(dropout_rates=rates) for name, rates in config.named_configs
    }
    with contextlib.ExitStack() as parent:
        with store.exclusive():  # of two identical studies starting together, one goes on
            earlier = unowned_parent(config, experiment, tags)
            parent_run_id = parent.enter_context(
                tracking.run(
                    config.name,
                    experiment,
                    {**tags, "recipe": config.recipe},
                    resume_run_id=earlier,
                )
            )
        tracking.log_params(config.to_params())
        child_tags = {"entry_point": "study", "study": config.name}
        results = run_configs(
            configs, datasets, parent_run_id, child_tags, replicas=config.replicas
        )
        text = log_results(config, configs, results)
    print(text)
    return text
