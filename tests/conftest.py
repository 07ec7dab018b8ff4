"""Every test tracks into one throwaway SQLite store (never the user's mlflow.db), in a process
set up like the CLI's: TensorFlow backend, deterministic and quiet."""

import os
import sys
from pathlib import Path

import mlflow
import pytest
from helpers import PROJECT_ROOT

from pipeline import runtime

runtime.setup("tensorflow")  # before any test module imports Keras


@pytest.fixture(scope="session", autouse=True)
def tracking_store(tmp_path_factory):
    """Sets MLFLOW_TRACKING_URI for this process and every subprocess; the artifacts go beside
    the store (pipeline/tracking/store.py), here the working directory."""
    store = tmp_path_factory.mktemp("mlflow")
    previous_cwd = os.getcwd()
    os.chdir(store)
    for name in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
        os.environ.pop(name, None)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store / 'mlflow.db'}"
    # subprocesses run `python` from PATH (mlflow run does): make it this interpreter
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    # and import this checkout's pipeline, not another one installed in the environment
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")))
    )
    yield store
    os.chdir(previous_cwd)


@pytest.fixture(scope="session")
def postgres_cluster():
    """A throwaway PostgreSQL cluster on a loopback port (tests/servers.py), one per session."""
    from servers import PostgresCluster

    cluster = PostgresCluster()
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def client() -> mlflow.MlflowClient:
    return mlflow.MlflowClient()
