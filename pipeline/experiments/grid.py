"""Where does dropout help? The study run in every cell of a grid over train params.

A cell is one combination of the grid's levels (`train_size=1000;epochs=100`); in it the
study's configs train on the study's seeds, paired by seed, as child runs of a nested parent run
per cell (the study code: its runner, tables and report), under one top parent run that gets the
regime map (`pipeline.analysis.regime_map`). Each cell is a trial of an Optuna study whose
GridSampler walks the cells, in the `storage` param's storage (like tune's): several workers
with the same params share the cells, and the last one to end logs the map. Running the same
params again reuses the parent, the cells' runs and every FINISHED child.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import optuna
from optuna.trial import TrialState

from pipeline import tracking
from pipeline.analysis import regime_map
from pipeline.config.entry_points import GRID, ParameterError, StudyConfig
from pipeline.config.factors import cell_label, cells, level_text
from pipeline.data.datasets import load_dataset, seed_datasets
from pipeline.engines.memory import check_fits
from pipeline.experiments.coordination import ParentRun, shared_study
from pipeline.experiments.study import SeedResult, log_results, run_configs, study_key
from pipeline.experiments.train import TrainingDiverged
from pipeline.experiments.workers import claim_grid_point

DIVERGED_ATTR = "diverged"  # a cell's trial whose training diverged: the reason


class CellsDiverged(TrainingDiverged):
    """Cells of the grid diverged: their runs FAILED, the map marks them; exit code 3."""

    exit_code = 3


def cell_config(config: StudyConfig, cell: dict) -> StudyConfig:
    """The plain study of one cell: the grid's params with the cell's levels."""
    name = f"{config.name} [{cell_label(cell)}]"
    return dataclasses.replace(config, grid="", storage="", study_name=name, **cell)


def check_data(config: StudyConfig, grid_cells: list[dict]):
    """Loads each distinct split of the cells once: a bad data_dir, or a train_size the data
    cannot give, exits 2 before any run exists, naming `grid` when a grid level is to blame."""
    splits = {}
    for cell in grid_cells:
        study = cell_config(config, cell)
        splits.setdefault((study.validation_split, study.train_size), (study, cell))
    for study, cell in splits.values():
        try:
            dataset = load_dataset(study)
        except ParameterError as error:
            if error.name not in cell:
                raise
            must_be = f"a grid whose {error.name} levels are each {error.must_be}"
            raise config.invalid("grid", must_be, config.grid) from None
        check_fits(config.replicas, len(config.named_configs) * config.seeds, dataset, config)


def cost(config: StudyConfig, grid_cells: list[dict]) -> str:
    runs = len(config.named_configs) * config.seeds
    epochs = runs * sum(cell_config(config, cell).epochs for cell in grid_cells)
    return (
        f"grid: {len(grid_cells)} cells x {len(config.named_configs)} configs x {config.seeds} "
        f"seeds = {runs * len(grid_cells)} runs, {epochs:,} epochs"
    )


def run_cell(
    config: StudyConfig, cell: dict, parent_run_id: str, trial_number: int | None = None
) -> list[SeedResult]:
    """The cell's study as a nested parent under the grid's (reopened when an earlier attempt
    made it), its FINISHED children reused; logs the cell's own study report into it."""
    study = cell_config(config, cell)
    configs = {name: study.train_config(dropout_rates=rates) for name, rates in study.named_configs}
    seeds = range(study.seed, study.seed + study.seeds)
    datasets = seed_datasets(study, seeds)
    tags = {"entry_point": "study", "study": config.name, "grid_cell": cell_label(cell)}
    earlier = tracking.child_runs(parent_run_id, tags)
    trial = {} if trial_number is None else {"trial_number": str(trial_number)}
    with tracking.run(
        cell_label(cell),
        tracking.experiment_name(config.dataset),
        {**tags, **trial},
        parent_run_id,
        resume_run_id=earlier[0].info.run_id if earlier else None,
    ) as cell_run_id:
        tracking.log_params(study.to_params())
        results = run_configs(configs, datasets, cell_run_id, tags, replicas=config.replicas)
        log_results(study, configs, results)
    return results


def mean_difference(results: list[SeedResult], reference: str, candidate: str) -> float:
    accuracy = {(r.config, r.seed): r.metrics["test_accuracy"] for r in results}
    seeds = {r.seed for r in results}
    return float(np.mean([accuracy[candidate, s] - accuracy[reference, s] for s in seeds]))


def objective(
    trial: optuna.Trial,
    config: StudyConfig,
    grid_cells: dict[str, dict],
    done: dict[str, list[SeedResult]],
    parent_run_id: str,
) -> float:
    """One cell: the grid point the sampler picked, unless another trial has it. Its value is
    the first candidate's mean test-accuracy difference to the reference. A cell whose training
    diverged fails its trial, the reason kept: training it again would diverge again."""
    space = search_space(config)
    label = trial_label(
        config, {name: trial.suggest_categorical(name, space[name]) for name in space}
    )
    claim_grid_point(trial)
    print(f"cell {label} (trial {trial.number})", flush=True)
    try:
        done[label] = run_cell(config, grid_cells[label], parent_run_id, trial.number)
    except TrainingDiverged as error:
        trial.set_user_attr(DIVERGED_ATTR, str(error))
        raise
    reference, candidate = (name for name, _ in config.named_configs[:2])
    return mean_difference(done[label], reference, candidate)


def search_space(config: StudyConfig) -> dict[str, list[str]]:
    """The grid as Optuna's GridSampler takes it: each factor's levels, spelled."""
    return {name: list(map(level_text, levels)) for name, levels in GRID.factors(config.grid)}


def trial_label(config: StudyConfig, params: dict[str, str]) -> str:
    """The cell of a trial's params, labelled as `cell_label` does."""
    return ";".join(f"{name}={params[name]}" for name in search_space(config))


def diverged_cells(config: StudyConfig, cell_trials: optuna.Study) -> dict[str, str]:
    """The cells whose training diverged, by label, with the reason."""
    failed = cell_trials.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    return {
        trial_label(config, trial.params): trial.user_attrs[DIVERGED_ATTR]
        for trial in failed
        if DIVERGED_ATTR in trial.user_attrs
    }


def log_map(
    config: StudyConfig, cell_results: list[tuple[dict, list[SeedResult]]], diverged: list[dict]
) -> str:
    """The regime map, its figure and report, into the active (top) run; returns the words.
    The diverged cells are marked in it; with no other cell there is no map: CellsDiverged."""
    if not cell_results:
        raise CellsDiverged(f"every cell of the grid diverged ({len(diverged)}): no map")
    factors = GRID.factors(config.grid)
    names = [name for name, _ in config.named_configs]
    table = regime_map.regime_table(
        factors, cell_results, names, config.alpha, config.seed, diverged
    )
    text = "\n\n".join(regime_map.map_findings(config, factors, table))
    title = (
        f"{config.name}: test accuracy, candidate - reference (points)\n"
        f"mean [95% CI] and Holm-corrected verdict over {config.seeds} paired seeds"
    )
    figure = regime_map.regime_figure(table, factors, title)
    tracking.log_text(table.to_csv(index=False), "regime_map.csv")
    tracking.log_text(regime_map.map_report_markdown(text, table), "report.md")
    tracking.log_text(regime_map.map_report_html(text, table, figure), "report.html")
    tracking.log_figure(figure, "regime_map.png")
    tracking.set_description(text)
    return text


def cells_to_run(
    config: StudyConfig, cell_trials: optuna.Study, sampler: optuna.samplers.GridSampler
) -> int:
    """How many cells are neither complete nor diverged: none when the sampler has no cell left
    to visit (a failed trial's cell is completed at the end) and no retry waits."""
    complete = cell_trials.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    settled = {trial_label(config, trial.params) for trial in complete}
    settled |= set(diverged_cells(config, cell_trials))
    retries = cell_trials.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    if retries or not sampler.is_exhausted(cell_trials):
        return len(cells(GRID.factors(config.grid))) - len(settled)
    return 0


def grid_study(config: StudyConfig) -> str:
    """Run (or continue, or join as one more worker) the grid; returns the map in plain words,
    or "" when other workers still run cells (the last one logs the map)."""
    grid_cells = {cell_label(cell): cell for cell in cells(GRID.factors(config.grid))}
    check_data(config, list(grid_cells.values()))
    print(cost(config, list(grid_cells.values())), flush=True)
    sampler = optuna.samplers.GridSampler(search_space(config), seed=config.seed)
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
        cell_trials, parent_run_id = shared.study, shared.parent_run_id
        done: dict[str, list[SeedResult]] = {}
        if not shared.run_trials(
            lambda trial: objective(trial, config, grid_cells, done, parent_run_id),
            cells_to_run(config, cell_trials, sampler),
        ):
            return ""
        # cells done elsewhere, or left short by a failed trial: reused, or completed here
        diverged = diverged_cells(config, cell_trials)
        cell_results = [
            (cell, done.get(label) or run_cell(config, cell, parent_run_id))
            for label, cell in grid_cells.items()
            if label not in diverged
        ]
        text = log_map(config, cell_results, [grid_cells[label] for label in diverged])
    print(text)
    if diverged:
        raise CellsDiverged(
            f"{len(diverged)} of {len(grid_cells)} cells diverged ({', '.join(diverged)}): "
            "their runs are FAILED with the reason, the map marks them"
        )
    return text
