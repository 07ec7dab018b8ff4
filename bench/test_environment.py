"""`conda.yaml` is complete: `mlflow run . --env-manager uv` builds an isolated environment from
it (no conda needed) and trains in it. Slow (installs ~120 packages): `make bench`."""

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow


def test_mlflow_run_with_uv_builds_the_environment_from_conda_yaml(tmp_path):
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",  # uv from the venv, as after make install
        "MLFLOW_ENV_ROOT": str(tmp_path / "envs"),  # a fresh environment, not a cached one
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
    }
    command = [str(BIN / "mlflow"), "run", str(PROJECT_ROOT), "-e", "train"]
    command += ["--env-manager", "uv", "--experiment-name", "dropout-mlp-mnist_5k"]
    command += ["-P", "epochs=2"]
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800
    )
    assert result.returncode == 0, result.stderr[-3000:]
    python = next((tmp_path / "envs").glob("*/bin/python"))
    assert python.parent.parent != Path(sys.prefix)  # trained in the environment uv built
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("dropout-mlp-mnist_5k")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.project.env"] == "uv"
    assert run.data.metrics["test_accuracy"] > 0.8
