"""Everything that talks to MLflow. The rest of the package calls these functions.

The tracking store is MLflow's own choice: `MLFLOW_TRACKING_URI`, else `sqlite:///mlflow.db` in
the working directory. Under `mlflow run` the run already exists (`MLFLOW_RUN_ID`) and holds
the params `mlflow run` logged; we log into it.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import shlex
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import matplotlib.pyplot as plt
import mlflow  # its keras flavor (mlflow.keras), with Keras, loads at first use
import numpy as np
from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.entities import Metric, Param
from mlflow.models import infer_signature

FAILURE_TAG = "failure_reason"
SYSTEM_METRICS_SECONDS = 2  # a 20-second run draws a 10-point curve; ~0.6% of one core


def experiment_name(dataset: str) -> str:
    """The default experiment of a dataset's runs (train, tune, study, evaluate)."""
    return f"dropout-mlp-{dataset}"


def _experiment_id(default_name: str) -> str | None:
    """Our default experiment, unless MLflow's usual env vars name one (`mlflow run
    --experiment-name` sets them too). Not `mlflow.set_experiment`: it exports the id to the env."""
    if os.environ.get("MLFLOW_EXPERIMENT_NAME") or os.environ.get("MLFLOW_EXPERIMENT_ID"):
        return None
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(default_name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(default_name)
    except mlflow.exceptions.MlflowException:  # created meanwhile by a parallel worker
        return client.get_experiment_by_name(default_name).experiment_id


@contextlib.contextmanager
def run(
    name: str,
    experiment: str,
    tags: dict[str, str] | None = None,
    parent_run_id: str | None = None,
    killed_on: tuple[type[BaseException], ...] = (KeyboardInterrupt,),
    resume_run_id: str | None = None,
) -> Iterator[str]:
    """Start (or, under `mlflow run`, continue) a run and always end it: FINISHED on success,
    KILLED on `killed_on` exceptions (Ctrl-C), FAILED otherwise, with a tag saying why.
    `resume_run_id` reopens an earlier run (a resumed study's parent, or under `parent_run_id`
    a grid cell's) instead. A top-level run logs MLflow's system metrics (CPU, memory, ...: the
    run page's "System metrics" tab)."""
    system_metrics = parent_run_id is None
    if system_metrics and "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL" not in os.environ:
        mlflow.set_system_metrics_sampling_interval(SYSTEM_METRICS_SECONDS)
        logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)  # its start/stop
    if resume_run_id:
        created_by_mlflow_run = os.environ.pop("MLFLOW_RUN_ID", None)
        if created_by_mlflow_run:
            mlflow.MlflowClient().set_tag(created_by_mlflow_run, "resumed_run_id", resume_run_id)
        active = mlflow.start_run(
            run_id=resume_run_id,
            nested=parent_run_id is not None,
            log_system_metrics=system_metrics,
        )
    else:
        experiment_id = None
        if parent_run_id is not None:
            experiment_id = mlflow.get_run(parent_run_id).info.experiment_id
        elif not os.environ.get("MLFLOW_RUN_ID"):
            experiment_id = _experiment_id(experiment)
        active = mlflow.start_run(
            experiment_id=experiment_id,
            run_name=name,
            parent_run_id=parent_run_id,
            nested=parent_run_id is not None,
            log_system_metrics=system_metrics,
        )
    mlflow.set_tags({"mlflow.runName": name, **(tags or {})})  # names `mlflow run`'s run too
    with _ending(killed_on):
        yield active.info.run_id


@contextlib.contextmanager
def _ending(killed_on: tuple[type[BaseException], ...]):
    """End the active run: FINISHED, or KILLED / FAILED with the reason as a tag."""
    try:
        yield
    except BaseException as error:
        status = "KILLED" if isinstance(error, killed_on) else "FAILED"
        mlflow.set_tag(FAILURE_TAG, f"{type(error).__name__}: {error}"[:5000])
        mlflow.end_run(status)
        raise
    mlflow.end_run("FINISHED")


def create_run(parent_run_id: str, name: str, tags: dict[str, str]) -> str:
    """A child run created by id and not made active, so that many can be logged at once."""
    client = mlflow.MlflowClient()
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    tags = {"mlflow.parentRunId": parent_run_id, **tags}
    return client.create_run(experiment_id, tags=tags, run_name=name).info.run_id


def log_params_to(run_id: str, params: dict[str, str]):
    mlflow.MlflowClient().log_batch(run_id, params=[Param(k, v) for k, v in params.items()])


def log_metrics_to(run_id: str, metrics: dict[str, float], step: int):
    timestamp = int(time.time() * 1000)
    batch = [Metric(key, value, timestamp, step) for key, value in metrics.items()]
    mlflow.MlflowClient().log_batch(run_id, metrics=batch)


def is_running(run_id: str) -> bool:
    return mlflow.MlflowClient().get_run(run_id).info.status == "RUNNING"


def end_run_by_id(run_id: str, status: str, reason: str):
    client = mlflow.MlflowClient()
    client.set_tag(run_id, FAILURE_TAG, reason[:5000])
    client.set_terminated(run_id, status)


@contextlib.contextmanager
def continued(run_id: str, killed_on=(KeyboardInterrupt,)) -> Iterator[str]:
    """Make a run created by `create_run` the active one (to log artifacts and its model) and
    end it as `run` does."""
    mlflow.start_run(run_id=run_id, nested=True)
    with _ending(killed_on):
        yield run_id


def log_params(params: dict[str, str]):
    """Log params not yet in the active run (`mlflow run` logs the user's own spelling first;
    logging the same key with another spelling would fail)."""
    run_id = mlflow.active_run().info.run_id
    existing = mlflow.get_run(run_id).data.params
    mlflow.log_params({key: value for key, value in params.items() if key not in existing})


def set_tags(tags: dict[str, str]):
    mlflow.set_tags(tags)


def log_metrics(metrics: dict[str, float], step: int | None = None):
    mlflow.log_metrics(metrics, step=step)


def log_dataset_split(
    x: np.ndarray, y: np.ndarray, name: str, source: str, digest: str, context: str
):
    source = CodeDatasetSource(tags={"source": source})  # a folder or a loader's name
    dataset = mlflow.data.from_numpy(x, targets=y, name=name, source=source, digest=digest)
    mlflow.log_input(dataset, context=context)


def log_figure(figure: plt.Figure, path: str):
    mlflow.log_figure(figure, path)
    plt.close(figure)


def log_text(text: str, path: str):
    mlflow.log_text(text, path)


def log_dict(data: dict, path: str):
    mlflow.log_dict(data, path)


def _pip_requirements() -> list[str]:
    """Given explicitly: MLflow would otherwise infer them in a slow subprocess."""
    packages = ("tensorflow-cpu", "keras", "numpy")
    return [f"{name}=={importlib.metadata.version(name)}" for name in packages]


def log_keras_model(model, x_example: np.ndarray, probabilities: np.ndarray):
    """The keras flavor with a signature; the input example goes beside it as a serving payload
    (`input_example=` crashes in mlflow.keras 3.17, mlflow/mlflow#16183)."""
    signature = infer_signature(x_example, probabilities)
    mlflow.keras.log_model(
        model, name="model", signature=signature, pip_requirements=_pip_requirements()
    )
    mlflow.log_dict({"inputs": x_example.tolist()}, "model_input_example.json")


def register_model(run_id: str | None, name: str, alias: str, model_uri: str = "") -> int:
    """Register the run's model (or `model_uri`) as a version of `name` and point `alias` at it,
    so `models:/<name>@<alias>` loads it. Returns the version; a run already under the alias
    keeps its version (a re-run registers nothing new)."""
    client = mlflow.MlflowClient()
    with contextlib.suppress(mlflow.exceptions.MlflowException):  # no such model or alias yet
        current = client.get_model_version_by_alias(name, alias)
        if run_id is not None and current.run_id == run_id:
            return int(current.version)
    version = int(mlflow.register_model(model_uri or f"runs:/{run_id}/model", name).version)
    client.set_registered_model_alias(name, alias, version)
    return version


class NotFound(LookupError):
    """A run or model that the user named does not exist or cannot be loaded."""


def run_params_and_tags(run_id: str) -> tuple[str, dict[str, str], dict[str, str]]:
    """Name, params and tags of a run; params as the user gave them (`mlflow run` logs them
    shell-quoted, e.g. an empty data_dir as '')."""
    try:
        run = mlflow.MlflowClient().get_run(run_id)
    except mlflow.exceptions.MlflowException as error:
        raise NotFound(str(error).splitlines()[0]) from None
    params = {
        key: (shlex.split(value) or [""])[0] if value.startswith("'") else value
        for key, value in run.data.params.items()
    }
    return run.info.run_name, params, run.data.tags


def load_keras_model(model_uri: str):
    """The Keras model at `model_uri` and the id of the run that logged it (None if unknown)."""
    try:
        info = mlflow.models.get_model_info(model_uri)
        return mlflow.keras.load_model(model_uri), info.run_id
    except (mlflow.exceptions.MlflowException, OSError, ValueError) as error:
        raise NotFound(f"{type(error).__name__}: {str(error).splitlines()[0]}") from None


def run_url(run_id: str) -> str:
    """The run's page, relative to the MLflow UI's root (a link in a run description)."""
    experiment_id = mlflow.get_run(run_id).info.experiment_id
    return f"#/experiments/{experiment_id}/runs/{run_id}"


def set_description(text: str):
    """The run's description in the MLflow UI."""
    mlflow.set_tag("mlflow.note.content", text)


def tag_run(run_id: str, tags: dict[str, str]):
    client = mlflow.MlflowClient()
    for key, value in tags.items():
        client.set_tag(run_id, key, value)


def end_stale_run(run_id: str, reason: str):
    """Mark a run left RUNNING by a killed process as FAILED, with the reason."""
    client = mlflow.MlflowClient()
    if client.get_run(run_id).info.status == "RUNNING":
        client.set_tag(run_id, FAILURE_TAG, reason)
        client.set_terminated(run_id, "FAILED")


def child_runs(parent_run_id: str, tags: dict[str, str] | None = None) -> list:
    """Runs nested under a parent, optionally with the given tag values, oldest first."""
    experiment_id = mlflow.get_run(parent_run_id).info.experiment_id
    clauses = [f"tags.mlflow.parentRunId = '{parent_run_id}'"]
    clauses += [f"tags.{key} = '{value}'" for key, value in (tags or {}).items()]
    return mlflow.search_runs(
        [experiment_id], " and ".join(clauses), order_by=["start_time ASC"], output_format="list"
    )


def find_run(default_experiment: str, tags: dict[str, str]) -> str | None:
    """The oldest top-level run with these tag values in the experiment runs go to, if any."""
    client = mlflow.MlflowClient()
    experiment_id = os.environ.get("MLFLOW_EXPERIMENT_ID")
    if not experiment_id:
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or default_experiment
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            return None
        experiment_id = experiment.experiment_id
    query = " and ".join(f"tags.{key} = '{value}'" for key, value in tags.items())
    runs = client.search_runs([experiment_id], query, order_by=["start_time ASC"])
    top_level = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    return top_level[0].info.run_id if top_level else None


def metric_history(run_id: str, key: str) -> list[float]:
    history = mlflow.MlflowClient().get_metric_history(run_id, key)
    return [metric.value for metric in sorted(history, key=lambda metric: metric.step)]


def local_store_dir() -> Path:
    """The folder of a local tracking store (sqlite file or mlruns); else the working dir."""
    uri = mlflow.get_tracking_uri()
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).resolve().parent
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(parsed.path).resolve().parent
    return Path.cwd()
