"""tune's trials trained in batches, one population per batch (real digits data): a pruned trial
stops while the others of its batch complete; an interrupted search resumes to exactly
n_trials; trials trained together learn what they learn one at a time; a diverged seed fails its
trial alone; the keras engine trains one trial at a time."""

import dataclasses
import time

import numpy as np
import optuna
import pytest
from helpers import running_runs

from pipeline import tracking
from pipeline.config.entry_points import TrainConfig
from pipeline.config.tune import TuneConfig
from pipeline.data.datasets import load_dataset
from pipeline.engines.base import Member
from pipeline.experiments import tune_batches
from pipeline.experiments.tune import batch_size, tune

SMALL = dict(dataset="digits", epochs=2, n_trials=4, pruner="none", final_seeds=0, seed=0)


def trial_runs(study: optuna.Study) -> dict[int, list]:
    """The study's child runs by trial number."""
    runs = tracking.child_runs(study.user_attrs["mlflow_parent_run_id"])
    by_trial = {}
    for run in runs:
        by_trial.setdefault(int(run.data.tags["trial_number"]), []).append(run)
    return by_trial


def states(study: optuna.Study) -> list[str]:
    return [trial.state.name for trial in study.trials]


@pytest.fixture(scope="module")
def pruned_batch():
    """The median pruner's one startup trial alone, then the other five as one population."""
    config = TuneConfig(
        dataset="digits", epochs=3, n_trials=6, pruner_startup_trials=1, seed=0, final_seeds=0,
        study_name="pruned batch",
    )  # fmt: skip
    return tune(config)


def test_a_batch_is_one_population_whose_pruned_trial_stops_while_others_complete(
    pruned_batch, client
):
    by_trial = trial_runs(pruned_batch)
    [first] = by_trial.pop(0)
    assert "replica_group" not in first.data.tags  # trained alone: the pruner's startup trial
    assert len({run.data.tags["replica_group"] for [run] in by_trial.values()}) == 1
    trials = {trial.number: trial for trial in pruned_batch.trials}
    pruned = [number for number in by_trial if trials[number].state.name == "PRUNED"]
    complete = [number for number in by_trial if trials[number].state.name == "COMPLETE"]
    assert pruned and complete, states(pruned_batch)
    for number in pruned:
        [run] = by_trial[number]
        assert run.info.status == "KILLED"
        assert run.data.tags["pruned"] == "true" and run.data.tags["trial_state"] == "PRUNED"
        assert run.data.tags["failure_reason"].startswith("TrialPruned: pruned after epoch")
        assert "test_accuracy" not in run.data.metrics
        steps = len(trials[number].intermediate_values)
        assert len(tracking.metric_history(run.info.run_id, "val_accuracy")) == steps < 3
    for number in complete:
        [run] = by_trial[number]
        assert run.info.status == "FINISHED" and run.data.tags["trial_state"] == "COMPLETE"
        curve = tracking.metric_history(run.info.run_id, "val_accuracy")
        assert trials[number].value == pytest.approx(max(curve)) and len(curve) == 3
    assert running_runs(client) == []


def test_batches_hold_replicas_over_trial_seeds_trials_after_the_pruner_s_startup():
    study = optuna.create_study(direction="maximize")
    config = TuneConfig(replicas=10, trial_seeds=3, pruner_startup_trials=2)
    assert batch_size(config, study) == 2  # the startup trials first
    for _ in range(2):
        study.tell(study.ask(), 0.5)
    assert batch_size(config, study) == 3
    assert batch_size(TuneConfig(replicas=2, trial_seeds=3, pruner="none"), study) == 1
    assert batch_size(TuneConfig(replicas=10, engine="keras", pruner="none"), study) == 1


def curves(study: optuna.Study) -> dict[int, tuple[dict, list[float]]]:
    """Each trial's params and reported val_accuracy per epoch."""
    return {
        trial.number: (
            trial.params,
            [trial.intermediate_values[step] for step in sorted(trial.intermediate_values)],
        )
        for trial in study.trials
    }


# Trials trained together are rows of one population, alone rows of a population of one: XLA
# may round a row's matmuls differently in the last bit (tests/test_population.py), which could
# flip a validation image. Measured on this CPU: identical curves (difference 0); the tolerance
# is one of digits' 135 validation images.
VAL_TOLERANCE = 1 / 135


def test_trials_trained_together_learn_what_they_learn_one_at_a_time():
    config = dict(SMALL, epochs=3)
    together = tune(TuneConfig(**config, replicas=4, study_name="together"))
    alone = tune(TuneConfig(**config, replicas=1, study_name="alone"))
    assert len({run.data.tags["replica_group"] for [run] in trial_runs(together).values()}) == 1
    assert all("replica_group" not in run.data.tags for [run] in trial_runs(alone).values())
    together_curves, alone_curves = curves(together), curves(alone)
    assert sorted(together_curves) == sorted(alone_curves) == [0, 1, 2, 3]
    differences = []
    for number, (params, curve) in together_curves.items():
        assert params == alone_curves[number][0]
        differences += list(np.abs(np.subtract(curve, alone_curves[number][1])))
    print(f"largest val_accuracy difference, together vs alone: {max(differences):.2g}")
    assert max(differences) <= VAL_TOLERANCE
    assert together.best_value == pytest.approx(alone.best_value, abs=VAL_TOLERANCE)


def test_a_search_stopped_by_its_timeout_after_a_batch_resumes_to_exactly_n_trials(
    monkeypatch, client
):
    report = tune_batches.report

    def slow(entry, epoch, value):  # the first batch outlasts the timeout, whatever the load
        time.sleep(0.5)
        report(entry, epoch, value)

    monkeypatch.setattr(tune_batches, "report", slow)
    config = TuneConfig(**SMALL, replicas=2, timeout=1, study_name="timed out")
    assert states(tune(config)) == ["COMPLETE", "COMPLETE"]  # no batch starts after 1 s
    monkeypatch.setattr(tune_batches, "report", report)
    resumed = tune(dataclasses.replace(config, timeout=0))
    assert states(resumed) == ["COMPLETE"] * 4
    assert [len(runs) for runs in trial_runs(resumed).values()] == [1] * 4
    parent = client.get_run(resumed.user_attrs["mlflow_parent_run_id"])
    assert parent.info.status == "FINISHED" and parent.data.metrics["n_finished_trials"] == 4


def test_ctrl_c_in_a_batch_kills_its_runs_fails_its_trials_and_a_resume_ends_at_n_trials(
    monkeypatch, client
):
    report = tune_batches.report

    def interrupted(entry, epoch, value):
        if entry.trial.number >= 2 and epoch == 2:  # the second batch, at its second epoch
            raise KeyboardInterrupt
        report(entry, epoch, value)

    monkeypatch.setattr(tune_batches, "report", interrupted)
    config = TuneConfig(**SMALL, replicas=2, study_name="interrupted")
    with pytest.raises(KeyboardInterrupt):
        tune(config)
    monkeypatch.setattr(tune_batches, "report", report)
    journal_study = optuna.load_study(study_name="interrupted", storage=tracking_journal())
    assert states(journal_study) == ["COMPLETE", "COMPLETE", "FAIL", "FAIL"]
    for number in (2, 3):
        [run] = trial_runs(journal_study)[number]
        assert run.info.status == "KILLED" and run.data.tags["killed_by"] == "SIGINT"
    parent = client.get_run(journal_study.user_attrs["mlflow_parent_run_id"])
    assert parent.info.status == "KILLED"
    assert running_runs(client) == []

    resumed = tune(config)
    assert states(resumed) == ["COMPLETE", "COMPLETE", "FAIL", "FAIL", "COMPLETE", "COMPLETE"]
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"
    assert running_runs(client) == []


def tracking_journal():
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from pipeline.tracking import store

    return JournalStorage(JournalFileBackend(str(store.default_journal())))


def test_a_trial_whose_seed_diverges_fails_and_stops_its_other_seeds_alone(client):
    def member(trial: optuna.Trial, seed: int, learning_rate: float = 1e-3) -> Member:
        config = TrainConfig(
            dataset="digits", epochs=2, seed=seed, learning_rate=learning_rate,
            engine="population", run_figures=False,
        )  # fmt: skip
        return Member(config, load_dataset(config), {"trial_number": str(trial.number)})

    study = optuna.create_study(direction="maximize")
    diverging, other = study.ask(), study.ask()
    members = {
        diverging: [member(diverging, 0), member(diverging, 1, 1e30)],
        other: [member(other, 0)],
    }
    with tracking.run("diverging batch", "dropout-mlp-digits") as parent_run_id:
        tune_batches.train_trials(members, parent_run_id)
    assert states(study) == ["FAIL", "COMPLETE"]
    runs = {run.info.run_id: run for run in tracking.child_runs(parent_run_id)}
    sibling, diverged = (runs[m.run_id] for m in members[diverging])
    assert (
        diverged.info.status == "FAILED" and "loss became" in diverged.data.tags["failure_reason"]
    )
    assert sibling.info.status == "FAILED"
    assert "another seed of its trial diverged" in sibling.data.tags["failure_reason"]
    assert len(tracking.metric_history(sibling.info.run_id, "val_accuracy")) == 1  # stopped early
    [kept] = members[other]
    assert runs[kept.run_id].info.status == "FINISHED"
    assert study.trials[1].value == max(tracking.metric_history(kept.run_id, "val_accuracy"))
    assert running_runs(client) == []


def test_the_keras_engine_trains_one_trial_at_a_time_each_epoch_reported_once(recwarn):
    config = TuneConfig(
        **dict(SMALL, n_trials=2), engine="keras", trial_seeds=2, study_name="keras"
    )
    study = tune(config)
    assert states(study) == ["COMPLETE", "COMPLETE"]
    for number, runs in trial_runs(study).items():
        assert sorted(run.data.tags["trial_seed"] for run in runs) == ["0", "1"]
        assert all("replica_group" not in run.data.tags for run in runs)  # one run per call
        curves = [tracking.metric_history(run.info.run_id, "val_accuracy") for run in runs]
        assert study.trials[number].value == pytest.approx(np.mean(curves, axis=0).max())
    assert not [w for w in recwarn if "is already reported" in str(w.message)]
