"""Slow acceptance checks (full 10-epoch runs): `make bench`, or `pytest -m slow bench/`."""

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="Debian's dataset-fashion-mnist absent"),
]


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return mlflow.MlflowClient()


@pytest.mark.parametrize("dropout_rates", ["0,0,0", "0.5,0.25,0"])
def test_fashion_mnist_train_reaches_85_percent(store, dropout_rates):
    command = [
        str(Path(sys.executable).parent / "mlflow"),
        "run",
        str(PROJECT_ROOT),
        "-e",
        "train",
        "--env-manager",
        "local",
        "-P",
        "dataset=fashion_mnist",
        "-P",
        f"dropout_rates={dropout_rates}",
        "--experiment-name",
        "acceptance",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    [run] = store.search_runs([store.get_experiment_by_name("acceptance").experiment_id])
    assert run.info.status == "FINISHED"
    assert len(store.get_metric_history(run.info.run_id, "val_accuracy")) == 10
    print(dropout_rates, run.data.metrics["test_accuracy"])
    assert run.data.metrics["test_accuracy"] >= 0.85
