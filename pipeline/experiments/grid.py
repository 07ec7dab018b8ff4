"""Where does dropout help? The study run in every cell of a grid over train params.

A cell is one combination of the grid's levels (`train_size=1000;epochs=100`); in it the
study's configs train on the study's seeds, paired by seed. Cells that differ only in `epochs`
share their runs: a training group trains them once, to the largest epochs level, scoring the
test set at every level's epoch (a run's first k epochs are what a k-epoch run computes), as
child runs of one nested parent per group that holds each of its cells' study report. The top
parent run gets the regime map (`pipeline.analysis.regime_map`) and the effect along training.
With seeds=auto each group trains batches of seeds until each of its cells is decided (a
decided cell keeps the verdict of its stopping look while its siblings go on). Each group is a
trial of an Optuna study whose GridSampler walks the groups, in the `storage` param's storage
(like tune's): several workers with the same params share the groups, and the last one to end
logs the map. With `refine` that worker then adds levels where a verdict flips
(`pipeline.analysis.refine`). Running the same params again reuses the parent, the groups'
runs and every FINISHED child.
"""

from __future__ import annotations

import numpy as np
import optuna
from optuna.trial import TrialState

from pipeline import tracking
from pipeline.analysis import effect, refine, regime_map
from pipeline.analysis.difference_figures import effect_by_epoch_figure
from pipeline.analysis.paired import study_design
from pipeline.analysis.sequential import SequentialDesign
from pipeline.config.entry_points import GRID
from pipeline.config.factors import Factors, cells, level_text
from pipeline.config.study import StudyConfig
from pipeline.experiments.coordination import ParentRun, shared_study
from pipeline.experiments.grid_groups import (
    GroupResults,
    check_data,
    cost,
    group_cells,
    run_group,
    training_groups,
)
from pipeline.experiments.study import (
    SeedResult,
    log_effect,
    study_key,
)
from pipeline.experiments.train import TrainingDiverged
from pipeline.experiments.workers import claim_grid_point

DIVERGED_ATTR = "diverged"  # a group's trial whose training diverged: the reason
GROUP_PARAM = "group"  # the Optuna param whose levels are the training groups


class CellsDiverged(TrainingDiverged):
    """Cells of the grid diverged: their runs FAILED, the map marks them; exit code 3."""

    exit_code = 3


def mean_difference(results: list[SeedResult], reference: str, candidate: str) -> float:
    accuracy = {(r.config, r.seed): r.metrics["test_accuracy"] for r in results}
    seeds = {r.seed for r in results}
    return float(np.mean([accuracy[candidate, s] - accuracy[reference, s] for s in seeds]))


def objective(
    trial: optuna.Trial,
    config: StudyConfig,
    done: dict[str, GroupResults],
    parent_run_id: str,
    design: SequentialDesign,
) -> float:
    """One training group: the one the sampler picked, unless another trial has it. Its value
    is the first candidate's mean test-accuracy difference to the reference at its longest
    training. A group whose training diverged fails its trial, the reason kept: training it
    again would diverge again."""
    factors = GRID.factors(config.grid)
    label = trial.suggest_categorical(GROUP_PARAM, list(training_groups(config, factors)))
    claim_grid_point(trial)
    print(f"training group {label} (trial {trial.number})", flush=True)
    try:
        done[label] = run_group(config, factors, label, parent_run_id, design, trial.number)
    except TrainingDiverged as error:
        trial.set_user_attr(DIVERGED_ATTR, str(error))
        raise
    reference, candidate = (name for name, _ in config.named_configs[:2])
    return mean_difference(done[label][0], reference, candidate)


def diverged_groups(group_trials: optuna.Study) -> dict[str, str]:
    """The training groups whose training diverged, by label, with the reason."""
    failed = group_trials.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    return {
        trial.params[GROUP_PARAM]: trial.user_attrs[DIVERGED_ATTR]
        for trial in failed
        if DIVERGED_ATTR in trial.user_attrs
    }


def groups_to_run(
    groups: dict[str, dict], group_trials: optuna.Study, sampler: optuna.samplers.GridSampler
) -> int:
    """How many groups are neither complete nor diverged: none when the sampler has no group
    left to visit (a failed trial's group is completed at the end) and no retry waits."""
    complete = group_trials.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    settled = {trial.params[GROUP_PARAM] for trial in complete} | set(diverged_groups(group_trials))
    retries = group_trials.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    if retries or not sampler.is_exhausted(group_trials):
        return len(groups) - len(settled)
    return 0


def effect_groups(
    config: StudyConfig, factors: Factors, done: dict[str, GroupResults]
) -> dict[str, tuple]:
    """Each group's candidates' differences by checkpoint epoch, named `<candidate> -
    <reference>, <levels>`, for the effect along training."""
    names = [name for name, _ in config.named_configs]
    groups = {}
    for label, group in training_groups(config, factors).items():
        if label not in done:  # diverged
            continue
        words = ", ".join(
            f"{name} {regime_map.display(name, level_text(level))}" for name, level in group.items()
        )
        differences = effect.epoch_differences(names, done[label][0])
        for (candidate, reference), curves in differences.items():
            groups[", ".join(filter(None, [f"{candidate} - {reference}", words]))] = curves
    return groups


def log_map(
    config: StudyConfig,
    factors: Factors,
    done: dict[str, GroupResults],
    design: SequentialDesign,
    diverged: list[dict],
) -> str:
    """The regime map, its figure, the effect along training and the report, into the active
    (top) run; returns the words. The `diverged` cells are marked in it; with no other cell
    there is no map: CellsDiverged."""
    names = [name for name, _ in config.named_configs]
    cell_results = [cell for label in done for cell in done[label][1]]
    if not cell_results:
        raise CellsDiverged(f"every cell of the grid diverged ({len(diverged)}): no map")
    table = regime_map.regime_table(factors, cell_results, names, design, diverged)
    paragraphs = regime_map.map_findings(config, factors, table, design)
    effect_table, crossings = effect.effect_tables(
        effect_groups(config, factors, done), config.seed
    )
    paragraphs.append(log_effect(effect_table, crossings, config.margin))
    text = "\n\n".join(paragraphs)
    title = (
        f"{config.name}: test accuracy, candidate - reference (points)\n"
        "mean [CI], verdict (seeds it rests on)"
    )
    figure = regime_map.regime_figure(table, factors, title)
    tracking.log_text(table.to_csv(index=False), "regime_map.csv")
    tracking.log_text(regime_map.map_report_markdown(text, table), "report.md")
    effect_figure = effect_by_epoch_figure(effect_table, config.margin, crossings)
    page = regime_map.map_report_html(text, table, figure, effect_figure)
    tracking.log_text(page, "report.html")
    tracking.log_figure(figure, "regime_map.png")
    tracking.set_description(text)
    return text


def refined(
    config: StudyConfig,
    factors: Factors,
    done: dict[str, GroupResults],
    parent_run_id: str,
    design: SequentialDesign,
    diverged: dict[str, str],
) -> Factors:
    """With `refine`: the grid's factors once no verdict flips between neighbouring levels
    more than a factor 2 apart, each added level's groups run into `done` (a diverged group is
    not trained again)."""
    names = [name for name, _ in config.named_configs]
    while config.refine:
        cell_results = [c for label in done for c in done[label][1]]
        table = regime_map.regime_table(factors, cell_results, names, design)
        added = refine.added_levels(factors, table)
        if not added:
            break
        print(f"refining the grid: adding {added}", flush=True)
        factors = refine.with_levels(factors, added)
        for label in training_groups(config, factors):
            if label not in diverged and (label not in done or "epochs" in added):
                done[label] = run_group(config, factors, label, parent_run_id, design)
    return factors


def grid_study(config: StudyConfig) -> str:
    """Run (or continue, or join as one more worker) the grid; returns the map in plain words,
    or "" when other workers still run groups (the last one logs the map). Raises
    CellsDiverged (exit code 3) after the map when cells diverged."""
    factors = GRID.factors(config.grid)
    groups = training_groups(config, factors)
    check_data(config, cells(factors))
    print(cost(config, factors), flush=True)
    candidates = len(config.named_configs) - 1
    design = study_design(config, family_size=len(cells(factors)) * candidates)
    sampler = optuna.samplers.GridSampler({GROUP_PARAM: list(groups)}, seed=config.seed)
    key = study_key(config)
    experiment = tracking.experiment_name(config.dataset)
    tags = {"entry_point": "study", "study": config.name, "study_key": key}
    parent = ParentRun(
        config.name,
        experiment,
        {**tags, "recipe": config.recipe},
        config.to_params(),
        earlier=tracking.find_run(experiment, tags),  # the parent of the same params, if any
    )
    name, pruner = f"{config.name}-{key}", optuna.pruners.NopPruner()
    with shared_study(config.storage, name, sampler, pruner, parent) as shared:
        group_trials, parent_run_id = shared.study, shared.parent_run_id
        done: dict[str, GroupResults] = {}
        if not shared.run_trials(
            lambda trial: objective(trial, config, done, parent_run_id, design),
            groups_to_run(groups, group_trials, sampler),
        ):
            return ""
        # groups done elsewhere, or left short by a failed trial: reused, or completed here
        diverged = diverged_groups(group_trials)
        for label in groups:
            if label not in done and label not in diverged:
                done[label] = run_group(config, factors, label, parent_run_id, design)
        factors = refined(config, factors, done, parent_run_id, design, diverged)
        diverged_cells = [
            cell for label in diverged for cell in group_cells(config, factors, groups[label])
        ]
        text = log_map(config, factors, done, design, diverged_cells)
    print(text)
    if diverged:
        raise CellsDiverged(
            f"{len(diverged)} of {len(groups)} training groups diverged "
            f"({', '.join(diverged)}): their runs are FAILED with the reason, the map marks them"
        )
    return text
