"""Every stop leaves a clean store: SIGTERM (schedulers, `docker stop`, `systemctl stop`) ends
train and tune runs KILLED like Ctrl-C, a rerun clears the old reason, a study fails the
children a killed (kill -9) process left RUNNING, and any later command fails a killed train
run. Inside a run, the interrupt waits for a safe point (the epoch's end), never surfacing
inside TensorFlow or a storage write."""

import dataclasses
import os
import signal

import optuna
import pytest
from helpers import running_runs, signal_at_epoch, start

from pipeline import cli, lifecycle, tracking
from pipeline.config.entry_points import TrainConfig
from pipeline.config.study import StudyConfig
from pipeline.config.tune import TuneConfig
from pipeline.data.datasets import load_dataset
from pipeline.engines.base import Member
from pipeline.engines.population import PopulationEngine
from pipeline.experiments.study import study
from pipeline.experiments.train import Supervision, train, train_group, train_members
from pipeline.experiments.tune import tune
from pipeline.tracking import store


@pytest.fixture
def handled_signals():
    """The CLI's signal handlers in this process, pytest's restored afterwards."""
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    lifecycle.handle_signals()
    yield
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def runs_tagged(client, key: str, value: str) -> tuple:
    experiment = client.get_experiment_by_name("dropout-mlp-digits")
    runs = client.search_runs([experiment.experiment_id], f"tags.{key} = '{value}'")
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    return parents, [run for run in runs if run not in parents]


def test_sigterm_ends_a_train_run_killed_with_exit_code_143(client):
    process = start("train", "--dataset", "digits", "--epochs", "500", "--seed", "143")
    returncode, stderr = signal_at_epoch(process, signal.SIGTERM)
    assert returncode == 143, stderr[-5000:]
    assert stderr.strip().splitlines()[-1] == "interrupted by SIGTERM"
    [run], _ = runs_tagged(client, "mlflow.runName", "digits-dropout-0.5,0.25,0-seed143")
    assert run.info.status == "KILLED"
    assert run.data.tags["killed_by"] == "SIGTERM"
    assert run.data.tags["failure_reason"] == "Terminated: received SIGTERM"
    assert running_runs(client) == []


def test_sigterm_ends_tune_parent_and_child_killed_and_a_rerun_clears_the_reason(client):
    args = ["--dataset", "digits", "--epochs", "40", "--n-trials", "1", "--pruner", "none"]
    args += ["--final-seeds", "0", "--study-name", "terminated"]
    returncode, stderr = signal_at_epoch(start("tune", *args), signal.SIGTERM)
    assert returncode == 143, stderr[-5000:]
    [parent], [child] = runs_tagged(client, "study", "terminated")
    for run in (parent, child):
        assert run.info.status == "KILLED" and run.data.tags["killed_by"] == "SIGTERM"
    assert running_runs(client) == []
    journal = optuna.storages.journal.JournalFileBackend(str(store.default_journal()))
    trials = optuna.load_study(
        study_name="terminated", storage=optuna.storages.JournalStorage(journal)
    ).trials
    assert [trial.state.name for trial in trials] == ["FAIL"]

    tune(TuneConfig(dataset="digits", epochs=40, n_trials=1, pruner="none", final_seeds=0,
                    study_name="terminated"))  # fmt: skip
    [resumed], children = runs_tagged(client, "study", "terminated")
    assert resumed.info.run_id == parent.info.run_id and resumed.info.status == "FINISHED"
    assert "failure_reason" not in resumed.data.tags and "killed_by" not in resumed.data.tags
    assert sorted(run.info.status for run in children) == ["FINISHED", "KILLED"]


def test_study_fails_the_children_a_killed_process_left_running(client):
    config = StudyConfig(dataset="digits", epochs=30, seeds=2, study_name="killed study")
    process = start("study", "--dataset", "digits", "--epochs", "30", "--seeds", "2",
                    "--study-name", "killed study")  # fmt: skip
    signal_at_epoch(process, signal.SIGKILL)
    _, orphans = runs_tagged(client, "study", "killed study")  # the 4 runs of a population
    assert orphans and all(run.info.status == "RUNNING" for run in orphans)  # nothing ended them

    study(config)
    [parent], children = runs_tagged(client, "study", "killed study")
    assert parent.info.status == "FINISHED"
    statuses = {run.info.run_id: run.info.status for run in children}
    assert [statuses.pop(run.info.run_id) for run in orphans] == ["FAILED"] * len(orphans)
    assert sorted(statuses.values()) == ["FINISHED"] * 4
    orphan_ids = {run.info.run_id for run in orphans}
    for failed in (run for run in children if run.info.run_id in orphan_ids):
        assert "process died" in failed.data.tags["failure_reason"]
    assert running_runs(client) == []


def test_a_train_killed_with_kill_9_ends_failed_at_the_next_command(handled_signals, client):
    """Before: no rerun finds a train run, so a kill -9 left it RUNNING forever."""
    signal_at_epoch(start("train", "--dataset", "digits", "--epochs", "500", "--seed", "9"),
                    signal.SIGKILL)  # fmt: skip
    [killed], _ = runs_tagged(client, "mlflow.runName", "digits-dropout-0.5,0.25,0-seed9")
    assert killed.info.status == "RUNNING"
    assert cli.main(["train", "--dataset", "digits", "--epochs", "1", "--seed", "10"]) == 0
    killed = client.get_run(killed.info.run_id)
    assert killed.info.status == "FAILED"
    assert "worker process died" in killed.data.tags["failure_reason"]
    assert running_runs(client) == []


def test_an_interrupt_inside_a_deferred_block_waits_for_its_end(handled_signals):
    steps = []
    with pytest.raises(lifecycle.Terminated), lifecycle.deferred_interrupts():
        os.kill(os.getpid(), signal.SIGTERM)
        steps.append("after the signal")
        with lifecycle.deferred_interrupts():  # an inner block's end is not the safe point
            steps.append("inner block")
        steps.append("after the inner block")
    assert steps == ["after the signal", "inner block", "after the inner block"]
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C: outside a block, at once
        os.kill(os.getpid(), signal.SIGINT)
        steps.append("never")
    assert steps[-1] != "never"


def test_a_signal_mid_epoch_lets_the_epoch_finish_then_ends_the_run_killed(handled_signals, client):
    def signal_during_epoch_1(epoch: int, metrics: dict):
        if epoch == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # as if it arrived during the hook's writes
            metrics["after_signal"] = True

    config = TrainConfig(dataset="digits", epochs=5, seed=17)  # a run name no other test uses
    logged = {}
    with pytest.raises(lifecycle.Terminated):
        hooks = [signal_during_epoch_1, lambda e, m: logged.update({e: m})]
        train(config, supervision=Supervision(hooks))
    assert list(logged) == [1] and logged[1]["after_signal"]  # both hooks ran to their end
    [run] = client.search_runs(
        [client.get_experiment_by_name("dropout-mlp-digits").experiment_id],
        "tags.mlflow.runName = 'digits-dropout-0.5,0.25,0-seed17'",
    )
    assert run.info.status == "KILLED" and run.data.tags["killed_by"] == "SIGTERM"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")] == [1]
    assert running_runs(client) == []


def test_a_signal_ends_every_run_of_a_group_killed_after_its_epoch(handled_signals, client):
    config = TrainConfig(dataset="digits", epochs=5, engine="population")
    configs = [dataclasses.replace(config, seed=seed) for seed in (21, 22)]
    group = [Member(config, load_dataset(config)) for config in configs]

    def signal_at_epoch_1(epoch: int, logged: list):
        os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(lifecycle.Terminated), tracking.run("signalled", "signals") as parent_run_id:
        train_group(group, parent_run_id, PopulationEngine(), Supervision([signal_at_epoch_1]))
    for run in [client.get_run(member.run_id) for member in group]:
        assert run.info.status == "KILLED" and run.data.tags["killed_by"] == "SIGTERM"
        assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1]
    assert running_runs(client) == []


def test_a_signal_while_a_group_finishes_in_the_background(handled_signals, client):
    """train_members finishes a group in a thread while the next trains: a signal in the second
    group's first epoch ends that group KILLED, the first still FINISHED, nothing RUNNING."""
    config = TrainConfig(dataset="digits", epochs=3, engine="population")
    dataset = load_dataset(config)
    members = [Member(dataclasses.replace(config, seed=seed), dataset) for seed in (31, 32, 33)]
    calls = []

    def signal_in_the_second_group(epoch: int, live: dict):
        calls.append(epoch)
        if len(calls) == 4:  # the first group's 3 epochs, then the second group's first
            os.kill(os.getpid(), signal.SIGTERM)

    supervision = Supervision([signal_in_the_second_group])
    with pytest.raises(lifecycle.Terminated), tracking.run("signalled", "signals") as parent_run_id:
        train_members(members, parent_run_id, 2, supervision)
    statuses = [client.get_run(member.run_id).info.status for member in members]
    assert statuses == ["FINISHED", "FINISHED", "KILLED"]
    assert client.get_run(members[0].run_id).data.metrics["test_accuracy"] > 0.5
    assert running_runs(client) == []
