"""Everything that talks to MLflow (but opening the store: `store`). The rest of the package
calls these functions.

The tracking store is MLflow's own choice: `MLFLOW_TRACKING_URI`, else `sqlite:///mlflow.db` in
the working directory (`store.open_store` creates a local one once). Under `mlflow run` the run
already exists (`MLFLOW_RUN_ID`) and holds the params `mlflow run` logged; we log into it. Every
param, tag, description and text artifact passes through `secrets.redact`.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import re
import shlex
from collections.abc import Iterator

import matplotlib.pyplot as plt
import mlflow
import mlflow.keras
import numpy as np
from mlflow.data.code_dataset_source import CodeDatasetSource
from mlflow.models import infer_signature

from pipeline import lifecycle, store
from pipeline.secrets import redact

FAILURE_TAG = "failure_reason"
KILLED_BY_TAG = "killed_by"  # the signal that ended a KILLED run: SIGINT (Ctrl-C) or SIGTERM
WORKER_TAG = "worker"  # host:pid of the process that runs (or ran) the run
# MLflow's filter strings cannot escape a quote inside a value: only these enter a filter
FILTER_SAFE = re.compile(r"[\w.,:-]*", re.ASCII)
SYSTEM_METRICS_SECONDS = 2  # a 20-second run draws a 10-point curve; ~0.6% of one core


def experiment_name(dataset: str) -> str:
    """The default experiment of a dataset's runs (train, tune, study, evaluate)."""
    return f"dropout-mlp-{dataset}"


def run_exists(run_id: str) -> bool:
    """Whether this tracking store holds the run (a study's parent), not deleted."""
    try:
        return mlflow.MlflowClient().get_run(run_id).info.lifecycle_stage == "active"
    except mlflow.exceptions.MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return False
        raise


def _experiment_id(default_name: str) -> str | None:
    """Our default experiment, unless MLflow's usual env vars name one (`mlflow run
    --experiment-name` sets them too). Not `mlflow.set_experiment`: it exports the id to the env."""
    if os.environ.get("MLFLOW_EXPERIMENT_NAME") or os.environ.get("MLFLOW_EXPERIMENT_ID"):
        return None
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(default_name)
    if experiment is not None:
        return experiment.experiment_id
    location = store.artifact_location(mlflow.get_tracking_uri(), default_name)
    try:
        return client.create_experiment(default_name, artifact_location=location)
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
    KILLED on `killed_on` exceptions (Ctrl-C, SIGTERM: tagged `killed_by`), FAILED otherwise,
    with a tag saying why. `resume_run_id` reopens an earlier run (a resumed study's parent)
    instead, without the reason its last attempt ended. A top-level run logs MLflow's system
    metrics (CPU, memory, ...: the run page's "System metrics" tab)."""
    system_metrics = parent_run_id is None
    if system_metrics and "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL" not in os.environ:
        mlflow.set_system_metrics_sampling_interval(SYSTEM_METRICS_SECONDS)
        logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)  # its start/stop
    if resume_run_id:
        created_by_mlflow_run = os.environ.pop("MLFLOW_RUN_ID", None)
        if created_by_mlflow_run:
            mlflow.MlflowClient().set_tag(created_by_mlflow_run, "resumed_run_id", resume_run_id)
        active = mlflow.start_run(run_id=resume_run_id, log_system_metrics=system_metrics)
        old_tags = active.data.tags
        for key in (FAILURE_TAG, KILLED_BY_TAG):
            if key in old_tags:
                mlflow.MlflowClient().delete_tag(resume_run_id, key)
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
    # names `mlflow run`'s run too; `worker` tells a later process whether this one died
    set_tags({"mlflow.runName": name, WORKER_TAG: lifecycle.worker_id(), **(tags or {})})
    try:
        yield active.info.run_id
    except BaseException as error:
        status = "KILLED" if isinstance(error, killed_on) else "FAILED"
        ending = {FAILURE_TAG: redact(f"{type(error).__name__}: {error}")[:5000]}
        if isinstance(error, KeyboardInterrupt):
            ending[KILLED_BY_TAG] = lifecycle.signal_name(error)
        set_tags(ending)
        mlflow.end_run(status)
        raise
    mlflow.end_run("FINISHED")


def log_params(params: dict[str, str]):
    """Log params not yet in the active run (`mlflow run` logs the user's own spelling first;
    logging the same key with another spelling would fail)."""
    run_id = mlflow.active_run().info.run_id
    existing = mlflow.get_run(run_id).data.params
    mlflow.log_params({key: redact(value) for key, value in params.items() if key not in existing})


def set_tags(tags: dict[str, str]):
    mlflow.set_tags({key: redact(value) for key, value in tags.items()})


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
    mlflow.log_text(redact(text), path)


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


def active_run_id() -> str:
    return mlflow.active_run().info.run_id


def set_description(text: str):
    """The run's description in the MLflow UI."""
    set_tags({"mlflow.note.content": text})


def tag_run(run_id: str, tags: dict[str, str]):
    client = mlflow.MlflowClient()
    for key, value in tags.items():
        client.set_tag(run_id, key, redact(value))


def end_stale_run(run_id: str, reason: str):
    """Mark a run left RUNNING by a killed process as FAILED, with the reason."""
    client = mlflow.MlflowClient()
    if client.get_run(run_id).info.status == "RUNNING":
        client.set_tag(run_id, FAILURE_TAG, redact(reason))
        client.set_terminated(run_id, "FAILED")


def end_dead_children(parent_run_id: str):
    """Children left RUNNING by a process of this host that died (kill -9): FAILED."""
    for run in child_runs(parent_run_id):
        if run.info.status == "RUNNING" and not lifecycle.is_alive(
            run.data.tags.get(WORKER_TAG, "")
        ):
            end_stale_run(run.info.run_id, "its process died (killed) before the run ended")


def _search(experiment_ids: list[str], tags: dict[str, str]) -> list:
    """Runs with these tag values, oldest first. MLflow's filter parser strips a value's quotes
    and nothing else, so a quote inside a value cannot be escaped: only values of a safe
    alphabet (ids, numbers, our own names) enter the filter; user text such as a study name
    with quotes, blanks or unicode is compared here, on the runs the filter found."""
    safe = {key: value for key, value in tags.items() if FILTER_SAFE.fullmatch(value)}
    clauses = [f"tags.{key} = '{value}'" for key, value in safe.items()]
    runs = mlflow.search_runs(
        experiment_ids, " and ".join(clauses), order_by=["start_time ASC"], output_format="list"
    )
    return [run for run in runs if all(run.data.tags.get(k) == v for k, v in tags.items())]


def child_runs(parent_run_id: str, tags: dict[str, str] | None = None) -> list:
    """Runs nested under a parent, optionally with the given tag values, oldest first."""
    experiment_id = mlflow.get_run(parent_run_id).info.experiment_id
    return _search([experiment_id], {"mlflow.parentRunId": parent_run_id, **(tags or {})})


def find_run(default_experiment: str, tags: dict[str, str]) -> str | None:
    """The oldest top-level run with these tag values in the experiment runs go to, if any."""
    experiment_id = os.environ.get("MLFLOW_EXPERIMENT_ID")
    if not experiment_id:
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or default_experiment
        experiment = mlflow.MlflowClient().get_experiment_by_name(name)
        if experiment is None:
            return None
        experiment_id = experiment.experiment_id
    runs = _search([experiment_id], tags)
    top_level = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    return top_level[0].info.run_id if top_level else None


def metric_history(run_id: str, key: str) -> list[float]:
    history = mlflow.MlflowClient().get_metric_history(run_id, key)
    return [metric.value for metric in sorted(history, key=lambda metric: metric.step)]
