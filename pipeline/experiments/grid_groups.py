"""A grid's training groups: the cells that differ only in `epochs` share runs trained once, to
the largest epochs level, scored at every level's epoch; a group's runs, its cells' reports,
and what the grid costs and needs before it starts."""

from __future__ import annotations

import dataclasses

from pipeline import tracking
from pipeline.analysis import effect
from pipeline.analysis.paired import at_epoch
from pipeline.analysis.sequential import SequentialDesign
from pipeline.config.entry_points import ParameterError
from pipeline.config.factors import Factors, cell_label, cells
from pipeline.config.study import StudyConfig
from pipeline.data.datasets import load_dataset
from pipeline.engines.memory import check_study_fits
from pipeline.experiments.study import SeedResult, log_results, train_until_decided

# a group's runs and its cells' results at each epochs level
GroupResults = tuple[list[SeedResult], list[tuple[dict, list[SeedResult]]]]


def cell_config(config: StudyConfig, cell: dict) -> StudyConfig:
    """The plain study of one cell: the grid's params with the cell's levels."""
    name = f"{config.name} [{cell_label(cell)}]"
    return dataclasses.replace(config, grid="", storage="", refine=False, study_name=name, **cell)


def epochs_levels(config: StudyConfig, factors: Factors) -> list[int]:
    """The epochs levels of the grid, ascending; the epochs param when it is no factor."""
    return sorted(dict(factors).get("epochs", [config.epochs]))


def training_groups(config: StudyConfig, factors: Factors) -> dict[str, dict]:
    """The grid's training groups by label: the levels of every factor but epochs, whose cells
    share runs trained to the largest epochs level (labelled `train_size=1000;epochs<=100`, or
    like its one cell when epochs is no factor)."""
    others = [(name, levels) for name, levels in factors if name != "epochs"]
    longest = f"epochs<={epochs_levels(config, factors)[-1]}" if "epochs" in dict(factors) else ""
    return {";".join(filter(None, [cell_label(group), longest])): group for group in cells(others)}


def group_cells(config: StudyConfig, factors: Factors, group: dict) -> list[dict]:
    """The cells a training group serves, one per epochs level, in the grid's factor order."""
    return [
        {name: epochs if name == "epochs" else group[name] for name, _ in factors}
        for epochs in epochs_levels(config, factors)
        if "epochs" in dict(factors) or epochs == config.epochs
    ]


def check_data(config: StudyConfig, grid_cells: list[dict]):
    """Loads each distinct split of the cells once: a bad data_dir, or a train_size the data
    cannot give (named as the grid's when a grid level asks for it), exits 2 before any run
    exists."""
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
        check_study_fits(config, dataset)


def cost(config: StudyConfig, factors: Factors) -> str:
    """What the grid trains at most, in one line."""
    groups = training_groups(config, factors)
    runs = len(config.named_configs) * config.most_seeds
    epochs = runs * len(groups) * epochs_levels(config, factors)[-1]
    upto = "up to " if config.adaptive else ""
    return (
        f"grid: {len(cells(factors))} cells in {len(groups)} trainings x "
        f"{len(config.named_configs)} configs x {upto}{config.most_seeds} seeds = {upto}"
        f"{runs * len(groups)} runs, {epochs:,} epochs"
    )


def run_group(
    config: StudyConfig,
    factors: Factors,
    label: str,
    parent_run_id: str,
    design: SequentialDesign,
    trial_number: int | None = None,
) -> GroupResults:
    """A training group as a nested parent under the grid's (reopened when an earlier attempt
    made it), its FINISHED children reused, trained until each of its cells is decided; logs
    each cell's own study report into it (under `epochs=<n>/` when it serves several)."""
    group = training_groups(config, factors)[label]
    grid_cells = group_cells(config, factors, group)
    levels = tuple(cell_config(config, cell).epochs for cell in grid_cells)
    longest = cell_config(config, {**group, "epochs": levels[-1]})
    tags = {"entry_point": "study", "study": config.name, "grid_cell": label}
    earlier = tracking.child_runs(parent_run_id, tags)
    trial = {} if trial_number is None else {"trial_number": str(trial_number)}
    every = config.refine and "epochs" in dict(factors)  # a refined level needs no retraining
    with tracking.run(
        label,
        tracking.experiment_name(config.dataset),
        {**tags, **trial},
        parent_run_id,
        resume_run_id=earlier[0].info.run_id if earlier else None,
    ) as group_run_id:
        tracking.log_params(longest.to_params())
        checkpoints = effect.checkpoint_epochs(levels[-1], levels, every)
        results = train_until_decided(longest, levels, group_run_id, tags, design, checkpoints)
        configs = {name: longest.train_config(dropout_rates=r) for name, r in config.named_configs}
        cell_results, texts = [], []
        for cell, epochs in zip(grid_cells, levels, strict=True):
            served = [at_epoch(result, epochs) for result in results]
            folder = f"epochs={epochs}" if len(levels) > 1 else ""
            texts.append(log_results(cell_config(config, cell), configs, served, design, folder))
            cell_results.append((cell, served))
        tracking.set_description("\n\n".join(texts))
    return results, cell_results
