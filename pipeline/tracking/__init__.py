"""Everything that talks to MLflow (but opening the store: `store`). The rest of the package
calls these functions: runs and their logs here, models in `tracking.models`, searches for runs
in `tracking.search`.

The tracking store is MLflow's own choice: `MLFLOW_TRACKING_URI`, else `sqlite:///mlflow.db` in
the working directory (`store.open_store` creates a local one once). Under `mlflow run` the run
already exists (`MLFLOW_RUN_ID`) and holds the params `mlflow run` logged; we log into it. Every
param, tag, description and text artifact passes through `secrets.redact`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from collections.abc import Iterator

import mlflow  # its keras flavor (mlflow.keras), with Keras, loads at first use
from mlflow.entities import Metric, Param, RunTag

from pipeline import lifecycle
from pipeline.secrets import redact, redact_values
from pipeline.tracking import store
from pipeline.tracking.artifacts import log_dataset_splits, log_figure, log_files, log_text
from pipeline.tracking.models import (
    NotFound,
    load_keras_model,
    log_keras_model,
    register_model,
    run_params_and_tags,
)
from pipeline.tracking.search import child_runs, find_run, metric_by_step, metric_history

__all__ = [  # what the rest of the package calls, besides the functions defined here
    "NotFound",
    "child_runs",
    "find_run",
    "load_keras_model",
    "log_dataset_splits",
    "log_figure",
    "log_files",
    "log_keras_model",
    "log_text",
    "metric_by_step",
    "metric_history",
    "register_model",
    "run_params_and_tags",
]

FAILURE_TAG = "failure_reason"
KILLED_BY_TAG = "killed_by"  # the signal that ended a KILLED run: SIGINT (Ctrl-C) or SIGTERM
WORKER_TAG = "worker"  # host:pid of the process that runs (or ran) the run
SYSTEM_METRICS_SECONDS = 1  # `make train` takes a few seconds: still a curve; ~1% of a core
MAX_METRICS_PER_BATCH, MAX_PARAMS_PER_BATCH = 1000, 100  # log_batch's limits per call


def experiment_name(dataset: str) -> str:
    """The default experiment of a dataset's runs (train, tune, study, evaluate)."""
    return f"dropout-mlp-{dataset}"


def run_exists(run_id: str) -> bool:
    """Whether this tracking store holds the run (a study's parent, a model's), not deleted."""
    try:
        return mlflow.MlflowClient().get_run(run_id).info.lifecycle_stage == "active"
    except mlflow.exceptions.MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return False  # no such run, or no run id at all
        raise


def _experiment_id(default_name: str) -> str | None:
    """Our default experiment, unless MLflow's usual env vars name one (`mlflow run
    --experiment-name` sets them too). Not `mlflow.set_experiment`: it exports the id to the env."""
    if os.environ.get("MLFLOW_EXPERIMENT_NAME") or os.environ.get("MLFLOW_EXPERIMENT_ID"):
        return None
    return store.experiment_id(default_name)


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
    with a tag saying why. `resume_run_id` reopens an earlier run (a resumed study's parent, or
    under `parent_run_id` a grid cell's) instead, without the reason its last attempt ended. A
    top-level run logs MLflow's system metrics (CPU, memory, ...: the "System metrics" tab).
    Inside, a signal's interrupt waits for a safe point (`lifecycle`)."""
    with lifecycle.deferred_interrupts():  # none between start_run and _ending either
        run_id = _start(name, experiment, tags, parent_run_id, resume_run_id)
        with _ending(killed_on):
            yield run_id


def _start(
    name: str,
    experiment: str,
    tags: dict[str, str] | None,
    parent_run_id: str | None,
    resume_run_id: str | None,
) -> str:
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
        for key in (FAILURE_TAG, KILLED_BY_TAG):
            if key in active.data.tags:
                mlflow.MlflowClient().delete_tag(resume_run_id, key)
    else:
        experiment_id = None
        if parent_run_id is not None:
            experiment_id = _experiment_of(parent_run_id)
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
    return active.info.run_id


@contextlib.contextmanager
def _ending(killed_on: tuple[type[BaseException], ...]):
    """End the active run: FINISHED, or KILLED / FAILED with the reason as a tag."""
    try:
        yield
        lifecycle.raise_pending()  # a signal during the body's last steps: KILLED too
    except BaseException as error:
        status, tags = _outcome(error, killed_on)
        set_tags(tags)
        mlflow.end_run(status)
        raise
    mlflow.end_run("FINISHED")


def _outcome(error: BaseException, killed_on: tuple[type[BaseException], ...]) -> tuple:
    """How an exception ends a run: KILLED or FAILED, and the tags saying why (and which
    signal)."""
    status = "KILLED" if isinstance(error, killed_on) else "FAILED"
    tags = {FAILURE_TAG: redact(f"{type(error).__name__}: {error}")[:5000]}
    if isinstance(error, KeyboardInterrupt):
        tags[KILLED_BY_TAG] = lifecycle.signal_name(error)
    return status, tags


def create_run(parent_run_id: str, name: str, tags: dict[str, str]) -> str:
    """A child run created by id and not made active, so that many can be logged at once."""
    client = mlflow.MlflowClient()
    experiment_id = _experiment_of(parent_run_id)
    tags = {"mlflow.parentRunId": parent_run_id, WORKER_TAG: lifecycle.worker_id(), **tags}
    return client.create_run(experiment_id, tags=redact_values(tags), run_name=name).info.run_id


@functools.lru_cache(maxsize=64)
def _experiment_of(run_id: str) -> str:
    return mlflow.MlflowClient().get_run(run_id).info.experiment_id


def log_params_to(
    run_id: str, params: dict[str, str], tags: dict[str, str] | None = None, new_run=False
):
    """Log params not yet in the run (`mlflow run` logs the user's own spelling first; logging
    the same key with another spelling would fail; a `new_run` has none), and `tags`, in one
    call where `log_batch` allows."""
    existing = {} if new_run else mlflow.MlflowClient().get_run(run_id).data.params
    params = redact_values({key: value for key, value in params.items() if key not in existing})
    batch = [Param(key, value) for key, value in params.items()]
    tag_batch = [RunTag(key, value) for key, value in redact_values(tags or {}).items()]
    for start in range(0, max(len(batch), len(tag_batch)), MAX_PARAMS_PER_BATCH):
        end = start + MAX_PARAMS_PER_BATCH
        mlflow.MlflowClient().log_batch(run_id, params=batch[start:end], tags=tag_batch[start:end])


def log_metrics_to(run_id: str, steps: dict[int, dict[str, float]]):
    """Log each step's metrics (`{step: {name: value}}`) in as few calls as `log_batch`
    allows (1,000 metrics a call)."""
    timestamp = int(time.time() * 1000)
    batch = [
        Metric(key, value, timestamp, step)
        for step, metrics in steps.items()
        for key, value in metrics.items()
    ]
    for start in range(0, len(batch), MAX_METRICS_PER_BATCH):
        mlflow.MlflowClient().log_batch(
            run_id, metrics=batch[start : start + MAX_METRICS_PER_BATCH]
        )


def is_running(run_id: str) -> bool:
    return mlflow.MlflowClient().get_run(run_id).info.status == "RUNNING"


def end_run_by_id(run_id: str, status: str, reason: str = ""):
    """End a run by id; a reason becomes its `failure_reason` tag."""
    client = mlflow.MlflowClient()
    if reason:
        client.set_tag(run_id, FAILURE_TAG, redact(reason)[:5000])
    client.set_terminated(run_id, status)


def end_run_after(run_id: str, error: BaseException, killed_on=(KeyboardInterrupt,)):
    """End a run created by `create_run` for an exception, as `run` ends the active one."""
    status, tags = _outcome(error, killed_on)
    tag_run(run_id, tags)
    mlflow.MlflowClient().set_terminated(run_id, status)


@contextlib.contextmanager
def continued(run_id: str, killed_on=(KeyboardInterrupt,)) -> Iterator[str]:
    """Make a run created by `create_run` the active one (to log artifacts and its model) and
    end it as `run` does."""
    with lifecycle.deferred_interrupts():
        mlflow.start_run(run_id=run_id, nested=True)
        with _ending(killed_on):
            yield run_id


def log_params(params: dict[str, str]):
    """Log params not yet in the active run (see `log_params_to`)."""
    log_params_to(mlflow.active_run().info.run_id, params)


def set_tags(tags: dict[str, str]):
    mlflow.set_tags(redact_values(tags))


def log_metrics(metrics: dict[str, float], step: int | None = None):
    mlflow.log_metrics(metrics, step=step)


def run_url(run_id: str) -> str:
    """The run's page, relative to the MLflow UI's root (a link in a run description)."""
    experiment_id = mlflow.get_run(run_id).info.experiment_id
    return f"#/experiments/{experiment_id}/runs/{run_id}"


def set_description(text: str):
    """The run's description in the MLflow UI."""
    set_tags({"mlflow.note.content": text})


def tag_run(run_id: str, tags: dict[str, str]):
    batch = [RunTag(key, value) for key, value in redact_values(tags).items()]
    mlflow.MlflowClient().log_batch(run_id, tags=batch)


def end_stale_run(run_id: str, reason: str):
    """Mark a run left RUNNING by a killed process as FAILED, with the reason."""
    if is_running(run_id):
        end_run_by_id(run_id, "FAILED", reason)


def live_worker(run_id: str) -> str | None:
    """The worker (host:pid) running a RUNNING run, unless its process is known to be gone."""
    run = mlflow.MlflowClient().get_run(run_id)
    worker = run.data.tags.get(WORKER_TAG, "")
    running = run.info.status == "RUNNING" and worker and lifecycle.is_alive(worker)
    return worker if running else None


def end_dead_runs(runs: list | None = None):
    """Runs left RUNNING by a process of this host that died (kill -9) end FAILED: `runs`, or
    every RUNNING run of the store (one search; the CLI does it once per command). A run of
    another host, or without a worker yet, is left alone: its process may live."""
    if runs is None:
        running = "attributes.status = 'RUNNING'"
        runs = mlflow.search_runs(
            search_all_experiments=True, filter_string=running, output_format="list"
        )
    for run in runs:
        if run.info.status == "RUNNING" and not lifecycle.is_alive(
            run.data.tags.get(WORKER_TAG, "")
        ):
            end_stale_run(run.info.run_id, "its worker process died (killed) before it ended")


def end_dead_children(parent_run_id: str):
    """Children left RUNNING by a process of this host that died (kill -9): FAILED."""
    end_dead_runs(child_runs(parent_run_id))
