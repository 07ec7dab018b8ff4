"""`mlflow run . -e <entry point> --env-manager local` itself, as a user runs it."""

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import PROJECT_ROOT, running_runs

MLFLOW = str(Path(sys.executable).parent / "mlflow")


def mlflow_run(
    experiment: str, *params: str, entry_point="train", cwd=None
) -> subprocess.CompletedProcess:
    args = [
        MLFLOW,
        "run",
        str(PROJECT_ROOT),
        "-e",
        entry_point,
        "--env-manager",
        "local",
        "--experiment-name",
        experiment,
    ]
    for param in params:
        args += ["-P", param]
    return subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=cwd)


def test_mlflow_run_train_finishes_and_logs_into_the_run_it_created(client):
    result = mlflow_run("mlproject", "dataset=digits", "epochs=2", "dropout_rates=0,0,0")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "epoch 2/2" in result.stdout
    experiment = client.get_experiment_by_name("mlproject")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "digits-dropout-0,0,0-seed0"
    assert run.data.params["dropout_rates"] == "0,0,0"
    assert run.data.params["data_dir"] == "''"  # mlflow run logs values shell-quoted
    assert run.data.params["learning_rate"] == "0.001"
    assert len(client.get_metric_history(run.info.run_id, "val_accuracy")) == 2
    assert "test_accuracy" in run.data.metrics


def test_mlflow_run_with_bad_input_fails_the_run(client):
    result = mlflow_run("mlproject-bad", "dataset=digits", "dropout_rates=1.5,0,0")
    assert result.returncode != 0
    assert "The 'dropout_rates' parameter of train must be" in result.stderr
    experiment = client.get_experiment_by_name("mlproject-bad")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FAILED"
    assert running_runs(client) == []


def test_a_bad_param_through_mlflow_run_is_the_run_s_failure_reason(client):
    """Before: the run MLflow created ended FAILED without a failure_reason."""
    result = mlflow_run("mlproject-bad-study", "dataset=digits", "seeds=abc", entry_point="study")
    assert result.returncode != 0  # mlflow run's own exit code (1); the pipeline's was 2
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    experiment = client.get_experiment_by_name("mlproject-bad-study")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FAILED"
    assert run.data.tags["failure_reason"] == "ParameterError: " + line.removeprefix("error: ")
    assert "The 'seeds' parameter of study must be an int" in line


def test_mlflow_run_evaluate_reproduces_the_train_runs_test_metrics(client):
    experiment = client.get_experiment_by_name("mlproject")
    [trained] = client.search_runs([experiment.experiment_id], "tags.entry_point = 'train'")
    result = mlflow_run("mlproject", f"run_id={trained.info.run_id}", entry_point="evaluate")
    assert result.returncode == 0, result.stderr[-3000:]
    [evaluated] = client.search_runs([experiment.experiment_id], "tags.entry_point = 'evaluate'")
    assert evaluated.info.status == "FINISHED"
    assert evaluated.data.tags["source_run_id"] == trained.info.run_id
    for name in ("test_accuracy", "test_loss", "test_macro_f1"):
        assert evaluated.data.metrics[name] == pytest.approx(trained.data.metrics[name], abs=1e-6)


def test_the_readme_s_mlflow_run_from_another_folder_keeps_artifacts_beside_the_store(
    client, tracking_store, tmp_path
):
    """Before: `mlflow run --experiment-name <new>` created the experiment with MLflow's
    default location, `mlruns/` of the working directory, not beside the store."""
    name = "mlproject-elsewhere"
    created = subprocess.run(
        [sys.executable, "-m", "pipeline.create_experiment", name],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert created.returncode == 0, created.stderr[-3000:]
    result = mlflow_run(name, "dataset=digits", "epochs=1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    [run] = client.search_runs([client.get_experiment_by_name(name).experiment_id])
    assert run.info.artifact_uri.startswith((tracking_store / "mlruns" / name).as_uri())
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"learning_curves.png"}
    assert not (tmp_path / "mlruns").exists()
