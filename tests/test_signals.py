"""Every stop leaves a clean store: SIGTERM (schedulers, `docker stop`, `systemctl stop`) ends
train and tune runs KILLED like Ctrl-C, a rerun clears the old reason, and a study fails the
children a killed (kill -9) process left RUNNING."""

import signal
import subprocess

import optuna
from helpers import pipeline_command, running_runs

from pipeline import store
from pipeline.config import StudyConfig, TuneConfig
from pipeline.study import study
from pipeline.tune import tune


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        pipeline_command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def signal_at_epoch(process: subprocess.Popen, signum: int, epoch: int = 2) -> tuple[int, str]:
    """Send the signal once the process printed `epoch <epoch>/`; its exit code and stderr."""
    for line in process.stdout:
        if line.startswith(f"epoch {epoch}/"):
            break
    process.send_signal(signum)
    returncode = process.wait(timeout=120)
    return returncode, process.stderr.read()


def runs_tagged(client, key: str, value: str) -> tuple:
    experiment = client.get_experiment_by_name("dropout-mlp-digits")
    runs = client.search_runs([experiment.experiment_id], f"tags.{key} = '{value}'")
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    return parents, [run for run in runs if run not in parents]


def test_sigterm_ends_a_train_run_killed_with_exit_code_143(client):
    process = start("train", "--dataset", "digits", "--epochs", "500", "--seed", "143")
    returncode, stderr = signal_at_epoch(process, signal.SIGTERM)
    assert returncode == 143 and stderr.strip().splitlines()[-1] == "interrupted by SIGTERM"
    [run], _ = runs_tagged(client, "mlflow.runName", "digits-dropout-0.5,0.25,0-seed143")
    assert run.info.status == "KILLED"
    assert run.data.tags["killed_by"] == "SIGTERM"
    assert run.data.tags["failure_reason"] == "Terminated: received SIGTERM"
    assert running_runs(client) == []


def test_sigterm_ends_tune_parent_and_child_killed_and_a_rerun_clears_the_reason(client):
    args = ["--dataset", "digits", "--epochs", "40", "--n-trials", "1", "--pruner", "none"]
    args += ["--final-seeds", "0", "--study-name", "terminated"]
    returncode, _ = signal_at_epoch(start("tune", *args), signal.SIGTERM)
    assert returncode == 143
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
    _, orphans = runs_tagged(client, "study", "killed study")  # the 4 runs of a replica group
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
