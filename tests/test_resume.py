"""Resuming a study finds what it started: its params, its parent run in this tracking store,
its runs under any name (quotes, blanks, unicode), and a result (not exit 0 with none)."""

import subprocess

import mlflow
import pytest
from helpers import assert_rejected, pipeline_command, running_runs

from pipeline import cli
from pipeline.tracking import store

TUNE = ["tune", "--dataset", "digits", "--epochs", "1", "--n-trials", "1", "--final-seeds", "0"]
NAMES = ["c'd", 'say "hi", it\'s ünï ✓', "A' and tags.entry_point = 'study"]


@pytest.fixture
def fresh_store(tmp_path, monkeypatch):
    """An empty local store of this test's own, in tmp_path."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return tmp_path


def top_level_runs(name: str) -> list:
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    return [
        run
        for run in runs
        if run.info.run_name == name and "mlflow.parentRunId" not in run.data.tags
    ]


def test_a_journal_whose_parent_run_is_gone_stops_with_one_line(fresh_store, client):
    """Before: `rm -rf mlruns mlflow.db` and a rerun crashed on every try with
    `MlflowException: Run with id=… not found`."""
    assert cli.main([*TUNE, "--study-name", "orphaned"]) == 0
    journal = fresh_store / "mlflow.db.optuna.journal"
    assert journal == store.default_journal() and journal.is_file()
    (fresh_store / "mlflow.db").unlink()
    result = subprocess.run(  # a new process: this one keeps the deleted database open
        pipeline_command(*TUNE, "--study-name", "orphaned"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    line = result.stderr.strip().splitlines()[-1]
    assert "belongs to another tracking store: its parent run" in line and str(journal) in line
    assert running_runs(mlflow.MlflowClient()) == []


def test_two_stores_in_one_folder_keep_separate_journals(fresh_store, monkeypatch):
    for name in ("a.db", "b.db"):
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{fresh_store / name}")
        assert cli.main([*TUNE, "--study-name", "shared name"]) == 0
        [parent] = top_level_runs("shared name")
        assert parent.info.status == "FINISHED"
        assert (fresh_store / f"{name}.optuna.journal").is_file()


def test_resuming_with_other_search_params_names_them(fresh_store, capsys, client):
    """Before: `--epochs 4 --hidden-units 10,10` resumed a 3-layer study of 2 epochs, mixing
    both architectures, and `tuned` took two rates of a 3-layer trial."""
    assert cli.main([*TUNE, "--study-name", "mixed"]) == 0
    argv = [*TUNE, "--study-name", "mixed", "--epochs", "2", "--hidden-units", "10,10"]
    assert_rejected(argv, "was created with hidden_units='100,50,25', epochs='1'", capsys, client)
    assert cli.main([*TUNE, "--study-name", "mixed", "--n-trials", "2", "--timeout", "60"]) == 0


@pytest.mark.parametrize("name", NAMES)
def test_names_with_quotes_blanks_and_unicode_find_their_runs(name, fresh_store, client):
    """Before: `c'd` failed with `Invalid clause(s) in filter string` and the last name changed
    the query, so that every rerun trained everything again under a new parent."""
    study = ["study", "--dataset", "digits", "--epochs", "1", "--seeds", "2", "--study-name", name]
    tune = [*TUNE, "--final-seeds", "1", "--study-name", name]
    for argv in (study, tune):
        assert cli.main(argv) == 0
        before = mlflow.search_runs(search_all_experiments=True, output_format="list")
        assert cli.main(argv) == 0  # reuses the parent and every finished child
        after = mlflow.search_runs(search_all_experiments=True, output_format="list")
        assert len(after) == len(before)
    parents = top_level_runs(name)
    assert sorted(run.data.tags["entry_point"] for run in parents) == ["study", "tune"]
    assert all(run.info.status == "FINISHED" for run in parents)


def test_a_tune_whose_every_trial_diverged_fails(fresh_store, capsys, client):
    """Before: exit 0 with 0 finished trials."""
    argv = [*TUNE, "--n-trials", "2", "--recipe", "notebook", "--learning-rate", "1e10"]
    assert cli.main([*argv, "--study-name", "diverged"]) == 1
    assert "no trial of the study 'diverged' finished" in capsys.readouterr().err
    [parent] = top_level_runs("diverged")
    assert (
        parent.info.status == "FAILED" and "NoTrialFinished" in (parent.data.tags["failure_reason"])
    )
    assert running_runs(client) == []
