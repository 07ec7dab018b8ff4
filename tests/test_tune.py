"""Optuna studies on real digits data: parent/child runs, pruning, resume after kill -9."""

import io
import logging
import os
import signal
import socket
import subprocess

import mlflow
import numpy as np
import optuna
import pandas as pd
import psutil
import pytest
from helpers import assert_rejected, pipeline_command, running_runs

from pipeline import tracking
from pipeline.config.tune import PRUNERS, TuneConfig
from pipeline.experiments.tune import create_pruner, suggest_train_config, tune
from pipeline.experiments.workers import SurplusTrial, is_alive, is_surplus, quiet_optuna, worker_id
from pipeline.tracking import store

TINY = dict(dataset="digits", epochs=3, n_trials=6, pruner_startup_trials=1, seed=0)
PLOTS = {"optimization_history", "parallel_coordinate", "slice", "param_importances"}


def study_runs(client, study_name: str):
    experiment = client.get_experiment_by_name("dropout-mlp-digits")
    runs = client.search_runs([experiment.experiment_id], f"tags.study = '{study_name}'")
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    children = [run for run in runs if "mlflow.parentRunId" in run.data.tags]
    return parents, children


@pytest.fixture(scope="module")
def tiny_study():
    config = TuneConfig(**TINY, study_name="tiny", final_seeds=2)
    return config, tune(config)


def test_one_parent_and_one_child_per_trial(tiny_study, client):
    _, study = tiny_study
    parents, children = study_runs(client, "tiny")
    [parent] = parents
    assert parent.info.status == "FINISHED" and parent.info.run_name == "tiny"
    assert {run.data.tags["mlflow.parentRunId"] for run in children} == {parent.info.run_id}
    trial_runs = [run for run in children if "trial_number" in run.data.tags]
    assert sorted(int(run.data.tags["trial_number"]) for run in trial_runs) == list(range(6))
    assert len(study.trials) == 6
    assert parent.data.params["n_trials"] == "6"


def test_children_log_what_train_logs_per_epoch(tiny_study, client):
    _, study = tiny_study
    _, children = study_runs(client, "tiny")
    for run in children:
        if "trial_number" not in run.data.tags:
            continue
        trial = study.trials[int(run.data.tags["trial_number"])]
        epochs = len(trial.intermediate_values)
        for name in ("loss", "val_loss", "val_accuracy", "generalization_gap", "epoch_seconds"):
            steps = [m.step for m in client.get_metric_history(run.info.run_id, name)]
            assert sorted(steps) == list(range(1, epochs + 1)), (name, trial.number)
        assert tracking.metric_history(run.info.run_id, "val_accuracy") == [
            trial.intermediate_values[step] for step in sorted(trial.intermediate_values)
        ]
        assert run.data.params["dropout_rates"] == ",".join(
            f"{trial.params[f'dropout_rate_{layer}']:g}" for layer in range(3)
        )


def test_pruned_trials_end_killed_and_tagged(tiny_study, client):
    _, study = tiny_study
    _, children = study_runs(client, "tiny")
    pruned = [t.number for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, "the median pruner with one startup trial prunes on this seed"
    for run in children:
        if run.data.tags.get("trial_number") in {str(number) for number in pruned}:
            assert run.info.status == "KILLED"
            assert run.data.tags["pruned"] == "true"
            assert run.data.tags["trial_state"] == "PRUNED"
            assert "test_accuracy" not in run.data.metrics
        elif "trial_number" in run.data.tags:
            assert run.info.status == "FINISHED"
            assert run.data.tags["trial_state"] == "COMPLETE"


def test_parent_holds_results_plots_and_fresh_seed_comparison(tiny_study, client):
    _, study = tiny_study
    [parent], children = study_runs(client, "tiny")
    metrics = parent.data.metrics
    assert metrics["best_val_accuracy"] == pytest.approx(study.best_value)
    assert metrics["n_finished_trials"] == 6
    assert metrics["n_pruned_trials"] >= 1
    assert metrics["epochs_saved_by_pruning"] == 6 * 3 - metrics["epochs_trained"] > 0
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"trials.csv", "final_summary.csv", "final_comparison.csv", "summary.md"} <= artifacts
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert {f"plots/{name}.png" for name in PLOTS} <= plots
    trials_csv = mlflow.artifacts.load_text(f"runs:/{parent.info.run_id}/trials.csv")
    assert len(trials_csv.strip().splitlines()) == 7 and "params_dropout_rate_0" in trials_csv
    for name in ("tuned", "no_dropout", "notebook_dropout"):
        low = metrics[f"final_{name}_test_accuracy_ci95_low"]
        assert low <= metrics[f"final_{name}_test_accuracy_mean"]
        seeds = [r.data.tags["seed"] for r in children if r.data.tags.get("final_config") == name]
        assert sorted(seeds) == ["1", "2"]  # fresh seeds, not the search's seed 0
    assert "Best val_accuracy" in parent.data.tags["mlflow.note.content"]


def test_fresh_seed_comparison_is_paired_by_seed_with_study_s_tests_and_verdicts(
    tiny_study, client
):
    [parent], children = study_runs(client, "tiny")
    text = mlflow.artifacts.load_text(f"runs:/{parent.info.run_id}/final_comparison.csv")
    comparisons = pd.read_csv(io.StringIO(text))
    assert set(zip(comparisons["candidate"], comparisons["reference"], strict=True)) == {
        ("notebook_dropout", "no_dropout"),
        ("tuned", "no_dropout"),
        ("tuned", "notebook_dropout"),
    }
    assert set(comparisons["verdict"]) <= {"better", "worse", "equivalent", "undecided"}
    accuracy = {
        (run.data.tags["final_config"], run.data.tags["seed"]): run.data.metrics["test_accuracy"]
        for run in children
        if "final_config" in run.data.tags
    }
    [row] = comparisons.query(
        "candidate == 'tuned' and reference == 'no_dropout' and metric == 'test_accuracy'"
    ).itertuples()
    paired = 100 * np.mean([accuracy["tuned", s] - accuracy["no_dropout", s] for s in "12"])
    assert row.seeds == 2 and row.mean_difference == pytest.approx(paired)  # points
    metrics = parent.data.metrics
    assert metrics["final_tuned_vs_no_dropout_test_accuracy_difference"] == pytest.approx(paired)
    assert metrics["final_tuned_vs_no_dropout_test_accuracy_p_value"] == pytest.approx(row.p_value)
    paragraphs = parent.data.tags["mlflow.note.content"].split("\n\n")
    [answer] = [p for p in paragraphs if p.startswith("Does **tuned**") and "**no_dropout**" in p]
    assert f"Verdict: **{row.verdict}**" in answer


def test_rerun_of_a_finished_study_trains_nothing_new(tiny_study, client):
    config, _ = tiny_study
    _, before = study_runs(client, "tiny")
    study = tune(config)
    parents, after = study_runs(client, "tiny")
    assert len(parents) == 1 and len(after) == len(before)
    assert len(study.trials) == 6


def test_kill_9_mid_trial_then_resume(client):
    args = pipeline_command(
        "tune",
        "--dataset",
        "digits",
        "--epochs",
        "30",
        "--n-trials",
        "3",
        "--pruner",
        "none",
        "--final-seeds",
        "0",
        "--study-name",
        "killed",
        "--replicas",
        "1",  # one trial at a time: trial 0 finishes before trial 1 is killed
    )
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    seen_trial_1 = False
    for line in process.stdout:
        seen_trial_1 = seen_trial_1 or line.startswith("trial 1:")
        if seen_trial_1 and line.startswith("epoch 2/"):
            break
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    [parent], children = study_runs(client, "killed")
    assert parent.info.status == "RUNNING"  # nothing could end it

    resumed = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "trial 1 was interrupted" in resumed.stdout

    study = optuna.load_study(study_name="killed", storage=tune_storage())
    states = [trial.state.name for trial in study.trials]
    assert states == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert study.trials[2].params == study.trials[1].params  # the killed trial, retried
    parents, children = study_runs(client, "killed")
    assert [p.info.run_id for p in parents] == [parent.info.run_id]
    assert parents[0].info.status == "FINISHED"
    by_trial = {}
    for run in children:
        by_trial.setdefault(run.data.tags["trial_number"], []).append(run.info.status)
    assert by_trial == {"0": ["FINISHED"], "1": ["FAILED"], "2": ["FINISHED"], "3": ["FINISHED"]}
    assert running_runs(client) == []


def tune_storage():
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(store.default_journal())))


def test_search_space_covers_each_layer_and_optionally_the_learning_rate():
    config = TuneConfig(dataset="digits", max_rate=0.5, rate_step=0.1, search_learning_rate=True)
    trial = optuna.trial.FixedTrial(
        {"dropout_rate_0": 0.3, "dropout_rate_1": 0.0, "dropout_rate_2": 0.5, "learning_rate": 3e-3}
    )
    train_config = suggest_train_config(trial, config)
    assert train_config.dropout_rates == (0.3, 0.0, 0.5)
    assert train_config.learning_rate == 3e-3
    assert train_config.dataset == "digits" and train_config.epochs == config.epochs


def test_a_dead_process_on_this_host_is_not_alive():
    finished = subprocess.Popen(["true"])
    finished.wait()
    assert is_alive(worker_id()) and os.getpid() == int(worker_id().rpartition(":")[2])
    assert not is_alive(f"{socket.gethostname()}:{finished.pid}")
    assert is_alive(f"another-host:{finished.pid}")  # cannot tell: assumed alive


def test_of_two_trials_started_together_only_the_first_runs_the_last_trial():
    study = optuna.create_study(direction="maximize")
    study.tell(study.ask(), 0.5)
    first, second = study.ask(), study.ask()
    assert not is_surplus(study, first.number, n_trials=2)
    assert is_surplus(study, second.number, n_trials=2)  # 1 finished + the first running
    assert not is_surplus(study, second.number, n_trials=3)


def epochs_before_stop(pruner: str, epochs: int = 9, trials: int = 30) -> list[int]:
    """Epochs each trial ran under the pruner, on learning curves of random quality."""
    study = optuna.create_study(
        direction="maximize", pruner=create_pruner(TuneConfig(pruner=pruner, epochs=epochs))
    )
    quality = iter(np.random.default_rng(0).uniform(size=trials))

    def objective(trial):
        final = next(quality)
        for epoch in range(1, epochs + 1):
            trial.report(final * epoch / epochs, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return final

    study.optimize(objective, n_trials=trials)
    return [len(trial.intermediate_values) for trial in study.trials]


@pytest.mark.parametrize("pruner", PRUNERS)
def test_each_pruner_stops_trials_that_fall_behind(pruner):
    spent = epochs_before_stop(pruner)
    if pruner == "none":
        assert set(spent) == {9}
    else:
        assert min(spent) < 9 and max(spent) == 9
    if pruner == "successive_halving":  # stops only at its rungs (epochs 1 and 3), keeps a third
        assert set(spent) <= {1, 3, 9}
        assert sum(spent) <= 0.5 * 9 * len(spent)
    if pruner == "percentile":  # keeps the top quarter, the median pruner the top half
        assert spent.count(9) < epochs_before_stop("median").count(9)


def test_too_many_trial_seeds_for_the_memory_name_trial_seeds(monkeypatch, capsys, client):
    """Before: the memory check named 'replicas', which the user left at its default."""
    memory = psutil.virtual_memory()._replace(available=64 * 2**20)  # ~80 replicas of digits
    monkeypatch.setattr(psutil, "virtual_memory", lambda: memory)
    argv = ["tune", "--dataset", "digits", "--trial-seeds", "500"]
    assert_rejected(argv, "The 'trial_seeds' parameter of tune must be at most ", capsys, client)


def test_a_batch_of_trials_too_large_for_the_memory_names_replicas(monkeypatch, capsys, client):
    """A batch of `replicas // trial_seeds` trials trains as one population (on the trial
    seeds' data): the memory check counts all of them."""
    memory = psutil.virtual_memory()._replace(available=64 * 2**20)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: memory)
    argv = ["tune", "--dataset", "digits", "--trial-seeds", "2", "--replicas", "100000"]
    assert_rejected(argv, "The 'replicas' parameter of tune must be at most ", capsys, client)


def test_a_trial_that_raises_what_optuna_catches_is_one_warning_line():
    """Before: Optuna logged each surplus or diverged trial with its full traceback, and a
    second line saying it had no value."""
    quiet_optuna()
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(logging.Formatter().format(record))
    logging.getLogger("optuna").addHandler(handler)

    def surplus(trial):
        raise SurplusTrial("2 trials are finished or running in other workers")

    try:
        optuna.create_study().optimize(surplus, n_trials=1, catch=(SurplusTrial,))
    finally:
        logging.getLogger("optuna").removeHandler(handler)
    [line] = lines
    assert "SurplusTrial('2 trials are finished" in line and "Traceback" not in line
