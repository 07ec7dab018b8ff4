"""Optuna search over dropout rates: one MLflow parent run per study, one child run per trial
(per trial seed).

A worker asks Optuna for a batch of trials at a time (`replicas // trial_seeds`, see
`batch_size`) and trains them together, one population (see `tune_batches`), each trial's
members running the train code path (same per-epoch logging) as child runs. Every epoch each
trial reports its mean `val_accuracy` to the pruner; a pruned trial's children end KILLED and
tagged `pruned` while the others train on. The study lives in Optuna storage (a journal file
beside the local tracking store by default), so running the same `study_name` again resumes
it: finished trials are kept, a trial whose process died is marked FAIL and retried, and the
study stops at exactly `n_trials` finished trials.

Several workers can run one study on an RDB storage (see `workers`), each its own batches; the
last worker to finish logs the study's results (see `tune_results`) and registers the best
model.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from pipeline import tracking
from pipeline.config.entry_points import TrainConfig, format_param
from pipeline.config.params import CHAMPION_ALIAS
from pipeline.config.tune import TuneConfig
from pipeline.data.datasets import Dataset, load_dataset, seed_datasets
from pipeline.engines.base import Member
from pipeline.engines.memory import check_fits
from pipeline.experiments.coordination import ParentRun, shared_study
from pipeline.experiments.tune_batches import train_trials
from pipeline.experiments.tune_results import (
    best_rates,
    compare_on_fresh_seeds,
    describe_final,
    epochs_spent,
    fresh_seeds,
    log_study_results,
    search_seeds,
)
from pipeline.experiments.workers import count_finished

LEARNING_RATE_RANGE = (1e-4, 1e-2)


class NoTrialFinished(RuntimeError):
    """Every trial of the study failed (e.g. diverged): there is no result."""


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """TPE seeded with `seed + trial number` for each trial. Trial numbers are unique within a
    study, so parallel workers never draw the same random samples and a resumed study does not
    replay old ones, while one process with the same seed gives the same trials. Each trial
    keeps its own sampler until it ends: a batch's trials are all asked before any samples its
    params, and each still draws what it would draw alone."""

    def __init__(self, seed: int):
        self.seed = seed
        self.samplers: dict[int, optuna.samplers.TPESampler] = {}

    def _sampler(self, trial) -> optuna.samplers.TPESampler:
        if trial.number not in self.samplers:
            self.samplers[trial.number] = optuna.samplers.TPESampler(seed=self.seed + trial.number)
        return self.samplers[trial.number]

    def before_trial(self, study, trial):
        self._sampler(trial).before_trial(study, trial)

    def infer_relative_search_space(self, study, trial):
        return self._sampler(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._sampler(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._sampler(trial).sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values):
        self._sampler(trial).after_trial(study, trial, state, values)
        self.samplers.pop(trial.number, None)


def create_pruner(config: TuneConfig) -> optuna.pruners.BasePruner:
    if config.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=config.pruner_startup_trials)
    if config.pruner == "percentile":
        return optuna.pruners.PercentilePruner(
            config.pruner_percentile, n_startup_trials=config.pruner_startup_trials
        )
    if config.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=config.epochs)
    if config.pruner == "successive_halving":  # rungs at epochs 1, 3, 9, ...: keeps the top third
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


def suggest_train_config(trial: optuna.Trial, config: TuneConfig) -> TrainConfig:
    """The search space: one rate per hidden layer in [0, max_rate], optionally the learning
    rate; every other param passes through."""
    rates = tuple(
        trial.suggest_float(f"dropout_rate_{layer}", 0.0, config.max_rate, step=config.rate_step)
        for layer in range(len(config.hidden_units))
    )
    learning_rate = (
        trial.suggest_float("learning_rate", *LEARNING_RATE_RANGE, log=True)
        if config.search_learning_rate
        else config.learning_rate
    )
    return config.train_config(dropout_rates=rates, learning_rate=learning_rate)


def trial_members(
    trial: optuna.Trial, config: TuneConfig, datasets: dict[int, Dataset]
) -> list[Member]:
    """The trial's sampled config on each of its seeds, one member (child run) each, tagged
    with the trial's number and seed."""
    train_config = suggest_train_config(trial, config)
    print(f"trial {trial.number}: dropout_rates={format_param(train_config.dropout_rates)}")
    tags = {"entry_point": "tune", "trial_number": str(trial.number), "study": config.name}
    return [
        Member(
            dataclasses.replace(train_config, seed=seed), dataset, tags | {"trial_seed": str(seed)}
        )
        for seed, dataset in datasets.items()
    ]


def most_trials_together(config: TuneConfig) -> int:
    """Trials trained as one population: `replicas // trial_seeds` (at least 1; 1 on the keras
    engine)."""
    return 1 if config.engine == "keras" else max(1, config.replicas // config.trial_seeds)


def batch_size(config: TuneConfig, study: optuna.Study) -> int:
    """Trials trained together (`most_trials_together`); while the median or percentile pruner
    waits for its startup trials to complete, at most the ones it still waits for, so that the
    trials after them can be pruned."""
    size = most_trials_together(config)
    if config.pruner in ("median", "percentile"):
        complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        if complete < config.pruner_startup_trials:
            size = min(size, config.pruner_startup_trials - complete)
    return size


def register_best_model(config: TuneConfig, study: optuna.Study, parent_run_id: str) -> int:
    """Register the best config's model as `register_as` with alias `champion`: the tuned run of
    the first fresh seed, or without fresh seeds the best trial's run. Returns the version."""
    if config.final_seeds:
        tags = {"final_config": "tuned", "seed": str(fresh_seeds(config)[0])}
    else:
        tags = {"trial_number": str(study.best_trial.number)}
    runs = tracking.child_runs(parent_run_id, tags)
    run_id = next(run.info.run_id for run in runs if run.info.status == "FINISHED")
    version = tracking.register_model(run_id, config.register_as, CHAMPION_ALIAS)
    tracking.set_tags({"registered_model": f"{config.register_as}/{version}"})
    print(f"registered run {run_id} as models:/{config.register_as}@{CHAMPION_ALIAS} (v{version})")
    return version


def summarize(
    study: optuna.Study, config: TuneConfig, final: tuple[pd.DataFrame, pd.DataFrame] | None
) -> str:
    """A few lines for the parent run's description and `summary.md`; `final`: the fresh-seed
    summary and comparisons."""
    spent = epochs_spent(study, config.epochs)
    lines = [
        f"**Optuna study `{config.name}`** on {config.dataset} ({config.recipe} recipe): "
        f"{spent['n_finished_trials']} finished trials, {spent['n_pruned_trials']} pruned, "
        f"{spent['epochs_saved_by_pruning']} of {spent['n_finished_trials'] * config.epochs} "
        "epochs saved by pruning.",
    ]
    if study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        rates = format_param(best_rates(study, len(config.hidden_units)))
        lines.append(
            f"Best val_accuracy {study.best_value:.4f} with dropout_rates {rates} "
            f"(trial {study.best_trial.number})."
        )
        per_seed = study.best_trial.user_attrs.get("seed_best_val_accuracy", [])
        if len(per_seed) > 1:
            lines.append(
                f"Over its {len(per_seed)} seeds the best trial's best val_accuracy was "
                f"{np.mean(per_seed):.4f} ± {np.std(per_seed, ddof=1):.4f} (sd; from "
                f"{min(per_seed):.4f} to {max(per_seed):.4f})."
            )
    if final is not None:
        lines.append("\n" + describe_final(*final, config.final_seeds))
    return "\n".join(lines)


def tune(config: TuneConfig) -> optuna.Study:
    """Run (or resume) the study named by the config; returns the Optuna study."""
    seeds, dataset = config.trial_seeds, load_dataset(config)  # one seed's data, checked first
    check_fits(config, dataset, seeds, seeds, "trial_seeds")  # one trial's seeds
    trials = most_trials_together(config)  # a batch's trials train on the same seeds' data
    check_fits(config, dataset, trials * seeds, seeds, "replicas")
    datasets = seed_datasets(config, search_seeds(config))
    sampler, pruner = TrialSeededSampler(config.seed), create_pruner(config)
    tags = {"entry_point": "tune", "study": config.name, "recipe": config.recipe}
    parent = ParentRun(
        config.name, tracking.experiment_name(config.dataset), tags, config.to_params()
    )
    intervals = (config.heartbeat_interval, config.grace_period)
    with shared_study(config.storage, config.name, sampler, pruner, parent, *intervals) as shared:
        study, parent_run_id = shared.study, shared.parent_run_id
        last = shared.run_batches(
            lambda trials: train_trials(
                {trial: trial_members(trial, config, datasets) for trial in trials},
                parent_run_id,
            ),
            config.n_trials,
            lambda: batch_size(config, study),
            timeout=config.timeout or None,
        )
        if not last:
            return study
        log_study_results(study, config)
        if not count_finished(study):
            raise NoTrialFinished(
                f"no trial of the study {config.name!r} finished: every one failed (see "
                "trials.csv and the child runs' failure_reason)"
            )
        final = None
        if config.final_seeds and study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            final = compare_on_fresh_seeds(config, study, parent_run_id)
        if config.register_as and study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            register_best_model(config, study, parent_run_id)
        summary = summarize(study, config, final)
        tracking.log_text(summary, "summary.md")
        tracking.set_description(summary)
    print(summary)
    return study
