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

from dataclasses import dataclass, field

import numpy as np
import optuna
import pandas as pd
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


@dataclass
class GridRun:
    """One worker's part of a grid inside its parent run: the config and factors (refinement
    adds levels), the design of the verdicts, and the training groups trained here so far or
    known to have diverged."""

    config: StudyConfig
    factors: Factors
    design: SequentialDesign
    parent_run_id: str
    done: dict[str, GroupResults] = field(default_factory=dict)
    diverged: dict[str, str] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.config.named_configs]

    def train(self, label: str, trial_number: int | None = None):
        """Train (or reuse) a training group's runs and log its cells' reports."""
        self.done[label] = run_group(
            self.config, self.factors, label, self.parent_run_id, self.design, trial_number
        )

    def objective(self, trial: optuna.Trial) -> float:
        """One training group: the one the sampler picked, unless another trial has it. Its
        value is the first candidate's mean test-accuracy difference to the reference at its
        longest training. A group whose training diverged fails its trial, the reason kept:
        training it again would diverge again."""
        groups = list(training_groups(self.config, self.factors))
        label = trial.suggest_categorical(GROUP_PARAM, groups)
        claim_grid_point(trial)
        print(f"training group {label} (trial {trial.number})", flush=True)
        try:
            self.train(label, trial.number)
        except TrainingDiverged as error:
            trial.set_user_attr(DIVERGED_ATTR, str(error))
            raise
        reference, candidate = self.names[:2]
        return mean_difference(self.done[label][0], reference, candidate)

    def complete(self):
        """The groups done elsewhere, or left short by a failed trial: reused, or trained."""
        for label in training_groups(self.config, self.factors):
            if label not in self.done and label not in self.diverged:
                self.train(label)

    def table(self, diverged: list[dict] = ()) -> pd.DataFrame:
        """The regime table of the groups done (and the `diverged` cells, marked)."""
        cell_results = [cell for label in self.done for cell in self.done[label][1]]
        if not cell_results:
            raise CellsDiverged(f"every cell of the grid diverged ({len(diverged)}): no map")
        return regime_map.regime_table(
            self.factors, cell_results, self.names, self.design, diverged
        )

    def refine(self):
        """With `refine`: add levels until no verdict flips between neighbouring levels more
        than a factor 2 apart, each added level's groups trained (a diverged group is not
        trained again)."""
        while self.config.refine:
            added = refine.added_levels(self.factors, self.table())
            if not added:
                return
            print(f"refining the grid: adding {added}", flush=True)
            self.factors = refine.with_levels(self.factors, added)
            for label in training_groups(self.config, self.factors):
                if label not in self.diverged and (label not in self.done or "epochs" in added):
                    self.train(label)

    def effect_groups(self) -> dict[str, tuple]:
        """Each group's candidates' differences by checkpoint epoch, named `<candidate> -
        <reference>, <levels>`, for the effect along training."""
        groups = {}
        for label, group in training_groups(self.config, self.factors).items():
            if label not in self.done:  # diverged
                continue
            words = ", ".join(
                f"{name} {regime_map.display(name, level_text(level))}"
                for name, level in group.items()
            )
            differences = effect.epoch_differences(self.names, self.done[label][0])
            for (candidate, reference), curves in differences.items():
                groups[", ".join(filter(None, [f"{candidate} - {reference}", words]))] = curves
        return groups

    def diverged_cells(self) -> list[dict]:
        groups = training_groups(self.config, self.factors)
        return [
            cell
            for label in self.diverged
            for cell in group_cells(self.config, self.factors, groups[label])
        ]

    def log_map(self) -> str:
        """The regime map, its figure, the effect along training and the report, into the
        active (top) run; returns the words. Diverged cells are marked in it; with no other
        cell there is no map: CellsDiverged."""
        config = self.config
        table = self.table(self.diverged_cells())
        paragraphs = regime_map.map_findings(config, self.factors, table, self.design)
        effect_table, crossings = effect.effect_tables(self.effect_groups(), config.seed)
        paragraphs.append(log_effect(effect_table, crossings, config.margin))
        text = "\n\n".join(paragraphs)
        title = (
            f"{config.name}: test accuracy, candidate - reference (points)\n"
            "mean [CI], verdict (seeds it rests on)"
        )
        figure = regime_map.regime_figure(table, self.factors, title)
        tracking.log_text(table.to_csv(index=False), "regime_map.csv")
        tracking.log_text(regime_map.map_report_markdown(text, table), "report.md")
        effect_figure = effect_by_epoch_figure(effect_table, config.margin, crossings)
        page = regime_map.map_report_html(text, table, figure, effect_figure)
        tracking.log_text(page, "report.html")
        tracking.log_figure(figure, "regime_map.png")
        tracking.set_description(text)
        return text


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
        grid = GridRun(config, factors, design, shared.parent_run_id)
        if not shared.run_trials(grid.objective, groups_to_run(groups, shared.study, sampler)):
            return ""
        grid.diverged = diverged_groups(shared.study)
        grid.complete()
        grid.refine()
        text = grid.log_map()
    print(text)
    if grid.diverged:
        raise CellsDiverged(
            f"{len(grid.diverged)} of {len(groups)} training groups diverged "
            f"({', '.join(grid.diverged)}): their runs are FAILED with the reason, the map "
            "marks them"
        )
    return text
