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

import numpy as np
import pandas as pd

from pipeline import tracking
from pipeline.analysis import figures
from pipeline.analysis.paired import (
    COMPARED_METRICS,
    CURVES,
    SUMMARY_METRICS,
    SeedResult,
    comparison_table,
    curve_arrays,
    seed_result,
    study_answer,
    summary_table,
)
from pipeline.analysis.reports import study_report_html, study_report_markdown
from pipeline.config.entry_points import StudyConfig, TrainConfig
from pipeline.config.validation import fields_with_role
from pipeline.data.datasets import Dataset, load_dataset, seed_datasets
from pipeline.engines.base import Member
from pipeline.engines.memory import check_fits
from pipeline.experiments.train import train_members
from pipeline.tracking import store

TITLE = "Does dropout help?"


def study_key(config: StudyConfig) -> str:
    """Identifies a study by its params: the same params find the same parent run (all but how
    it runs: the storage, which workers of one grid may reach by different URLs, or how many
    runs train together)."""
    execution = fields_with_role(StudyConfig, "execution")
    params = {key: value for key, value in config.to_params().items() if key not in execution}
    return hashlib.sha256(repr(sorted(params.items())).encode()).hexdigest()[:16]


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


def seed_differences(names: list[str], results: list[SeedResult]) -> dict:
    """Per compared pair (the later config against the earlier) and metric, each seed's
    candidate - reference difference in points, keyed (candidate, reference, metric)."""
    metrics = {(r.config, r.seed): r.metrics for r in results}
    seeds = sorted({r.seed for r in results})
    return {
        (candidate, reference, metric): 100
        * np.array([metrics[candidate, s][metric] - metrics[reference, s][metric] for s in seeds])
        for reference, candidate in itertools.combinations(names, 2)
        for metric in COMPARED_METRICS
    }


def report_comparisons(comparisons: pd.DataFrame) -> pd.DataFrame:
    """The comparisons as the report reads them (points, seeds, the four verdict words): the
    table as it is once it has those columns, else today's columns renamed and scaled."""
    if "seeds" in comparisons:
        return comparisons
    return comparisons.assign(
        seeds=comparisons["n_pairs"],
        mean_difference=100 * comparisons["mean_difference"],
        ci95_low=100 * comparisons["t_ci95_low"],
        ci95_high=100 * comparisons["t_ci95_high"],
        p_value=comparisons["t_test_p_value"],
        verdict=comparisons["verdict"].replace("no detectable difference", "undecided"),
    )


def log_results(
    config: StudyConfig, configs: dict[str, TrainConfig], results: list[SeedResult]
) -> str:
    summary = summary_table(configs, results)
    comparisons = comparison_table(list(configs), results, config.alpha, config.seed)
    text = study_answer(config, summary, comparisons)
    curves_figure = figures.learning_curve_bands_figure(
        curve_arrays(list(configs), results), f"{config.name}: mean ± std over {config.seeds} seeds"
    )
    shown = report_comparisons(comparisons)
    differences = seed_differences(list(configs), results)
    tracking.log_text(
        study_report_html(TITLE, text, summary, shown, differences, curves_figure), "report.html"
    )
    tracking.log_figure(curves_figure, "learning_curves.png")
    if len(configs) >= 3:
        tracking.log_figure(figures.dose_response_figure(summary), "dose_response.png")
    tracking.log_text(summary.to_csv(index=False), "summary.csv")
    tracking.log_text(summary.to_markdown(index=False, floatfmt=".4f"), "summary.md")
    tracking.log_text(comparisons.to_csv(index=False), "comparisons.csv")
    tracking.log_text(study_report_markdown(TITLE, text, summary, shown), "report.md")
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
    runs = len(config.named_configs) * config.seeds
    check_fits(config.replicas, runs, load_dataset(config), config)
    datasets = seed_datasets(config, seeds)
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
