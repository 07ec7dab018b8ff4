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

import pandas as pd

from pipeline import tracking
from pipeline.analysis import effect, figures
from pipeline.analysis.difference_figures import effect_by_epoch_figure
from pipeline.analysis.paired import (
    CURVES,
    SUMMARY_METRICS,
    SeedResult,
    at_epoch,
    comparison_table,
    curve_arrays,
    open_comparisons,
    seed_differences,
    seed_result,
    study_answer,
    study_design,
    summary_table,
)
from pipeline.analysis.reports import study_report_html, study_report_markdown
from pipeline.analysis.sequential import SequentialDesign
from pipeline.config.entry_points import TrainConfig
from pipeline.config.study import StudyConfig
from pipeline.config.validation import fields_with_role
from pipeline.data.datasets import Dataset, load_dataset, seed_datasets
from pipeline.engines.base import Member
from pipeline.engines.memory import check_study_fits
from pipeline.experiments.train import train_members
from pipeline.tracking import store

TITLE = "Does dropout help?"


def study_key(config: StudyConfig) -> str:
    """Identifies a study by its params: the same params find the same parent run (all but how
    it runs: the storage, which workers of one grid may reach by different URLs, or how many
    runs train together, unless seeds=auto makes that the batch of seeds between looks)."""
    execution = set(fields_with_role(StudyConfig, "execution"))
    if config.adaptive:  # replicas seeds a batch: the looks of the sequential design
        execution.discard("replicas")
    params = {key: value for key, value in config.to_params().items() if key not in execution}
    return hashlib.sha256(repr(sorted(params.items())).encode()).hexdigest()[:16]


def finished_result(name: str, seed: int, children: list, tags: dict) -> SeedResult | None:
    """The FINISHED run with these tags among a parent's `children`, if a previous attempt
    left one."""
    for run in children:
        if run.info.status == "FINISHED" and tags.items() <= run.data.tags.items():
            history = {key: tracking.metric_history(run.info.run_id, key) for key in CURVES}
            checkpoints = tracking.metric_by_step(run.info.run_id, "test_accuracy")
            print(f"{name} seed {seed}: reusing finished run {run.info.run_id}")
            return seed_result(name, seed, run.data.metrics, history, checkpoints)
    return None


def run_configs(
    configs: dict[str, TrainConfig],
    datasets: dict[int, Dataset],
    parent_run_id: str,
    tags: dict[str, str],
    config_tag: str = "study_config",
    seed_tag: str = "study_seed",
    replicas: int = 1,
    checkpoints: tuple[int, ...] = (),
) -> list[SeedResult]:
    """Every config on every seed (the keys of `datasets`, each seed's split shared by every
    config) as a child run of the parent, tagged `tags` plus its name and seed; FINISHED ones
    are reused, the others trained by their engine, `replicas` of one shape at a time, scoring the
    test set at the `checkpoints` epochs. Children that a killed process left RUNNING end
    FAILED first."""
    tracking.end_dead_children(parent_run_id)
    children = tracking.child_runs(parent_run_id, tags)  # one query, not one per config x seed
    results, pending = [], []
    for seed, dataset in datasets.items():
        for name, config in configs.items():
            child_tags = {**tags, config_tag: name, seed_tag: str(seed)}
            result = finished_result(name, seed, children, child_tags)
            if result is not None:
                results.append(result)
            else:
                seeded = dataclasses.replace(config, seed=seed)
                scored = tuple(epoch for epoch in checkpoints if epoch < config.epochs)
                pending.append((name, Member(seeded, dataset, child_tags, scored)))
    trained = train_members([member for _, member in pending], parent_run_id, replicas)
    for (name, member), run in zip(pending, trained, strict=True):
        scored = dict(zip(member.score_epochs, run.history.get("test_accuracy", []), strict=True))
        scored[member.config.epochs] = run.test_metrics["test_accuracy"]  # logged at that step
        results.append(seed_result(name, member.config.seed, run.test_metrics, run.history, scored))
    return results


def train_until_decided(
    config: StudyConfig,
    levels: tuple[int, ...],
    parent_run_id: str,
    tags: dict[str, str],
    design: SequentialDesign,
    checkpoints: tuple[int, ...],
) -> list[SeedResult]:
    """The study's configs trained to `config.epochs` on the seeds of the design's looks, a
    batch at a time, until the verdict of every candidate at every epoch of `levels` (the cells
    these runs serve) is decided or the last look is reached; returns every run's result."""
    configs = {name: config.train_config(dropout_rates=r) for name, r in config.named_configs}
    names, results, trained = list(configs), [], 0
    for size in design.looks:
        datasets = seed_datasets(config, range(config.seed + trained, config.seed + size))
        results += run_configs(
            configs,
            datasets,
            parent_run_id,
            tags,
            replicas=config.replicas,
            checkpoints=checkpoints,
        )
        trained = size
        cells = [[at_epoch(result, level) for result in results] for level in levels]
        still_open = open_comparisons(names, cells, design)
        if config.adaptive:
            print(f"{size} seeds: {still_open} verdicts still open", flush=True)
        if not still_open:
            break
    return results


def log_table_metrics(summary: pd.DataFrame, comparisons: pd.DataFrame, prefix: str = ""):
    """Per config the mean and CI of each summary metric, per pair the paired difference (in
    points), its p-values and probability of improvement: metrics of the active run, named
    `<prefix><config>_…`."""
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
            {
                f"{key}_difference": row.mean_difference,
                f"{key}_p_value": row.p_value,
                f"{key}_p_equivalence": row.p_equivalence,
                f"{key}_probability_of_improvement": row.probability_of_improvement,
            }
        )


def log_results(
    config: StudyConfig,
    configs: dict[str, TrainConfig],
    results: list[SeedResult],
    design: SequentialDesign,
    folder: str = "",
    effect: tuple[pd.DataFrame, pd.DataFrame] | None = None,
) -> str:
    """The study's tables, figures and report into the active run (under `folder`, with
    metrics prefixed by it, for one of several cells a run serves; `effect`: the effect along
    training and its crossings, shown on the page); returns the words."""
    summary = summary_table(configs, results)
    comparisons = comparison_table(list(configs), results, design)
    text = study_answer(config, summary, comparisons, design)
    seeds = len({result.seed for result in results})
    curves_figure = figures.learning_curve_bands_figure(
        curve_arrays(list(configs), results), f"{config.name}: mean ± std over {seeds} seeds"
    )
    differences = {
        key: values
        for metric in comparisons["metric"].unique()  # a served cell has no macro F1
        for key, values in seed_differences(list(configs), results, metric).items()
    }
    path = f"{folder}/" if folder else ""
    page = study_report_html(
        TITLE, text, summary, comparisons, differences, curves_figure, *(effect or ())
    )
    tracking.log_text(page, f"{path}report.html")
    tracking.log_figure(curves_figure, f"{path}learning_curves.png")
    if len(configs) >= 3:
        tracking.log_figure(figures.dose_response_figure(summary), f"{path}dose_response.png")
    tracking.log_text(summary.to_csv(index=False), f"{path}summary.csv")
    tracking.log_text(summary.to_markdown(index=False, floatfmt=".4f"), f"{path}summary.md")
    tracking.log_text(comparisons.to_csv(index=False), f"{path}comparisons.csv")
    report = study_report_markdown(TITLE, text, summary, comparisons)
    tracking.log_text(report, f"{path}report.md")
    log_table_metrics(summary, comparisons, prefix=folder.replace("=", "_") + "_" if folder else "")
    return text


def log_effect(table: pd.DataFrame, crossings: pd.DataFrame, margin: float) -> str:
    """The effect along training (analysis.effect.effect_tables) as effect_by_epoch.csv/.png and
    effect_crossings.csv of the active run; returns its words."""
    tracking.log_text(table.to_csv(index=False), "effect_by_epoch.csv")
    tracking.log_text(crossings.to_csv(index=False), "effect_crossings.csv")
    figure = effect_by_epoch_figure(table, margin, crossings)
    tracking.log_figure(figure, "effect_by_epoch.png")
    return effect.crossing_words(table, crossings)


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
    # a train_size the data cannot give: exit 2 naming study's param, before any run exists
    check_study_fits(config, load_dataset(config))
    configs = {
        name: config.train_config(dropout_rates=rates) for name, rates in config.named_configs
    }
    design = study_design(config, family_size=len(configs) - 1)
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
        checkpoints = effect.checkpoint_epochs(config.epochs)
        results = train_until_decided(
            config, (config.epochs,), parent_run_id, child_tags, design, checkpoints
        )
        groups = {
            f"{candidate} - {reference}": curves
            for (candidate, reference), curves in effect.epoch_differences(
                list(configs), results
            ).items()
        }
        table, crossings = effect.effect_tables(groups, config.seed)
        text = log_results(config, configs, results, design, effect=(table, crossings))
        text += "\n\n" + log_effect(table, crossings, config.margin)
        tracking.set_description(text)
    print(text)
    return text
