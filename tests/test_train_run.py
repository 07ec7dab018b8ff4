"""One train-run logger for every engine: the parity test (a run from each engine logs the same
tag, param, metric and artifact keys), and a diverging run logged the same way by each."""

import dataclasses

import mlflow
import pytest

from pipeline import tracking
from pipeline.config.entry_points import TrainConfig
from pipeline.data.datasets import load_dataset
from pipeline.engines.base import Member
from pipeline.experiments.train import engine_for, train_group

pytestmark = pytest.mark.fast  # make test-fast

ENGINES = ("keras", "population")
GROUP_ONLY_TAGS = {"replica_group"}  # runs trained together share one; a lone run has none
CONFIG = TrainConfig(dataset="digits", epochs=2, hidden_units=(16, 8), dropout_rates=(0.5, 0.0))


def artifact_paths(client: mlflow.MlflowClient, run_id: str, path: str = "") -> set[str]:
    """The run's artifact files, and its logged model's (MLflow 3 keeps those apart)."""
    paths = set()
    for item in client.list_artifacts(run_id, path):
        paths |= artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    model = mlflow.artifacts.list_artifacts(f"runs:/{run_id}/model") if not path else []
    return paths | {item.path for item in model if not item.is_dir}


def keys(client: mlflow.MlflowClient, run_id: str) -> dict[str, set[str]]:
    run = client.get_run(run_id)
    return {
        "tags": set(run.data.tags) - GROUP_ONLY_TAGS,
        "params": set(run.data.params),
        "metrics": set(run.data.metrics),
        "artifacts": artifact_paths(client, run_id),
        "inputs": {d.dataset.name for d in run.inputs.dataset_inputs},
    }


@pytest.fixture(scope="module")
def parent():
    with tracking.run("train-run parity", "train-run-tests") as run_id:
        pass  # the children are created and logged by id
    return run_id


def group(engine: str, *changes: dict) -> list[Member]:
    configs = [
        dataclasses.replace(CONFIG, engine=engine, seed=seed, **c) for seed, c in enumerate(changes)
    ]
    return [Member(config, load_dataset(config), {"case": engine}) for config in configs]


@pytest.fixture(scope="module")
def runs_by_engine(parent):
    return {name: train_group(group(name, {}, {}), parent, engine_for(name)) for name in ENGINES}


def test_every_engine_logs_the_same_keys(runs_by_engine, client):
    logged = {
        name: [keys(client, result.run_id) for result in results]
        for name, results in runs_by_engine.items()
    }
    reference = logged["keras"][0]
    assert {"engine", "data_source", "data_sha256", "worker"} <= reference["tags"]
    assert {"test_accuracy", "generalization_gap", "epoch_seconds"} <= reference["metrics"]
    assert "model/MLmodel" in reference["artifacts"]
    for name, runs in logged.items():
        for run in runs:
            assert run == reference, name
    for name, results in runs_by_engine.items():
        for result in results:
            assert client.get_run(result.run_id).data.tags["engine"] == name
            assert client.get_run(result.run_id).info.status == "FINISHED"


@pytest.mark.parametrize("engine", ENGINES)
def test_a_diverging_run_logs_its_last_epoch_and_fails_alone(engine, parent, client):
    members = group(engine, {"learning_rate": 1e30}, {})
    results = train_group(members, parent, engine_for(engine))
    assert results[0] is None and results[1] is not None
    diverged, healthy = (client.get_run(member.run_id) for member in members)
    assert diverged.info.status == "FAILED"
    assert diverged.data.tags["failure_reason"].startswith("TrainingDiverged: loss became")
    epochs = client.get_metric_history(diverged.info.run_id, "loss")
    assert [m.step for m in epochs][-1] == int(diverged.data.tags["failure_reason"].split()[-1])
    assert healthy.info.status == "FINISHED"


def test_without_run_figures_a_run_keeps_their_numbers(parent, client):
    [member] = group("keras", {"run_figures": False})
    [result] = train_group([member], parent, engine_for("keras"))
    logged = keys(client, result.run_id)["artifacts"]
    assert {"confusion_matrix.csv", "classification_report.json", "model/MLmodel"} <= logged
    assert not {path for path in logged if path.endswith(".png")}
