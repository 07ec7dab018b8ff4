"""A batch of tune's trials trained together: every member of every trial (a child run per trial
seed) in one engine call per shape, one population on the population engine.

At each epoch each trial reports the mean `val_accuracy` of its seeds to Optuna's pruner. A
pruned trial's members stop (the engine trains them no further), their runs end KILLED, tagged
`pruned`, and the trial is told PRUNED while the others train on. A trial one of whose seeds
diverged is told FAIL and its other seeds stop too (their runs end FAILED). The trials still
training at the last epoch are told their value: the best epoch's mean `val_accuracy`. On
Ctrl-C or SIGTERM every run still training ends KILLED and the trials not yet told end FAIL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import optuna
from optuna.trial import TrialState

from pipeline import tracking
from pipeline.engines.base import Member
from pipeline.experiments.train import (
    EpochHook,
    Supervision,
    TrainingDiverged,
    TrainResult,
    engine_for,
    groups,
    train_group,
)
from pipeline.tracking.train_run import KILLED_ON

PRUNED_TAGS = {"pruned": "true", "trial_state": "PRUNED"}


@dataclass(eq=False)
class BatchTrial:
    """One trial of a batch: the Optuna trial, its members (one per trial seed), the state it
    was told (None while it trains) and the epochs it reported to the pruner."""

    trial: optuna.Trial
    members: list[Member]
    state: TrialState | None = None
    reported: set[int] = field(default_factory=set)

    def tag_runs(self, tags: dict[str, str]):
        for member in self.members:
            if member.run_id:  # a member the keras engine has not started has no run
                tracking.tag_run(member.run_id, tags)

    def tell(self, state: TrialState, value: float | None = None):
        self.trial.study.tell(self.trial, value, state=state)
        self.state = state

    def diverged(self) -> str:
        """Why a member of this trial stopped while the trial was still training, or ""."""
        return next((member.stopped for member in self.members if member.stopped), "")


def fail(entry: BatchTrial, reason: str):
    """A seed diverged: the trial is told FAIL and its other seeds stop (their runs FAILED)."""
    for member in entry.members:
        member.stopped = member.stopped or f"another seed of its trial diverged: {reason}"
    entry.tell(TrialState.FAIL)
    print(f"trial {entry.trial.number}: failed, {reason}")


def report(entry: BatchTrial, epoch: int, value: float):
    """The epoch's mean val_accuracy to the pruner; a pruned trial's members stop, its runs
    are tagged, and it is told PRUNED."""
    entry.trial.report(value, epoch)
    entry.reported.add(epoch)
    if not entry.trial.should_prune():
        return
    for member in entry.members:
        member.stopped = member.stopped or f"pruned after epoch {epoch}"
    entry.tag_runs(PRUNED_TAGS)
    entry.tell(TrialState.PRUNED)
    print(f"trial {entry.trial.number}: pruned after epoch {epoch}")


def owners(batch: Sequence[BatchTrial]) -> dict[int, BatchTrial]:
    """Each member's trial, by the member's id."""
    return {id(member): entry for entry in batch for member in entry.members}


def pruning_hook(batch: Sequence[BatchTrial], group: Sequence[Member]) -> EpochHook:
    """The epoch hook of one engine call: each trial still training reports the mean
    val_accuracy of its live members in `group` (an epoch once: the keras engine trains a
    trial's seeds one after another, and the first one's report stands), or fails if one of
    its seeds diverged."""
    owner = owners(batch)

    def on_epoch(epoch: int, live: dict[int, dict[str, float]]):
        for entry in batch:
            values = [
                metrics["val_accuracy"]
                for index, metrics in live.items()
                if owner[id(group[index])] is entry
            ]
            if entry.state is not None or not values:
                continue
            if entry.diverged():
                fail(entry, entry.diverged())
            elif epoch not in entry.reported:  # the keras engine trains seeds one by one
                report(entry, epoch, float(np.mean(values)))

    return on_epoch


def supervision(batch: Sequence[BatchTrial], group: Sequence[Member]) -> Supervision:
    """The pruning hook; a pruned trial's runs end KILLED (TrialPruned), those of a trial whose
    seed diverged FAILED."""
    owner = owners(batch)

    def stop_error(member: Member) -> BaseException:
        if owner[id(member)].state == TrialState.PRUNED:
            return optuna.TrialPruned(member.stopped)
        return TrainingDiverged(member.stopped)

    return Supervision([pruning_hook(batch, group)], (*KILLED_ON, optuna.TrialPruned), stop_error)


def complete(entry: BatchTrial, results: dict[int, TrainResult]):
    """A trial trained to the end: told the best epoch's val_accuracy averaged over its seeds
    at each epoch, with each seed's best as user attr `seed_best_val_accuracy`."""
    curves = np.array([results[id(member)].history["val_accuracy"] for member in entry.members])
    entry.trial.set_user_attr("seed_best_val_accuracy", curves.max(axis=1).tolist())
    value = float(curves.mean(axis=0).max())
    entry.tag_runs({"trial_state": "COMPLETE"})
    entry.tell(TrialState.COMPLETE, value)
    print(f"trial {entry.trial.number}: complete, best val_accuracy {value:.4f}")


def train_trials(trials: dict[optuna.Trial, list[Member]], parent_run_id: str):
    """Train the trials' members together as child runs of the parent (one engine call per
    shape; the keras engine one member at a time) and tell the study how each trial ended."""
    batch = [BatchTrial(trial, members) for trial, members in trials.items()]
    members = [member for entry in batch for member in entry.members]
    engine = engine_for(members[0].config.engine)
    results: dict[int, TrainResult] = {}
    try:
        for group in groups(members, 1 if engine.name == "keras" else len(members)):
            if all(member.stopped for member in group):  # its trial ended before it started
                continue
            trained = train_group(group, parent_run_id, engine, supervision(batch, group))
            results.update(zip(map(id, group), trained, strict=True))
            for entry in batch:  # e.g. every seed in the group diverged at once
                if entry.state is None and entry.diverged():
                    fail(entry, entry.diverged())
    except BaseException:
        for entry in batch:
            if entry.state is None:
                entry.tell(TrialState.FAIL)
        raise
    for entry in batch:
        if entry.state is None:
            complete(entry, results)
