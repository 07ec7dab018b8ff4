"""The tracking store: opening it once, and where a local one keeps its companions.

A local store is a SQLite file (`sqlite:///mlflow.db`, MLflow's default, in the working
directory) or a file store (`file:` URI or a path: the `mlruns` folder). Beside it live
- the artifacts of the experiments the pipeline creates, in `mlruns/<experiment name>` next to
  a SQLite file (MLflow's default is `./mlruns` of whichever folder first created the experiment;
  a file store keeps them inside itself),
- the default Optuna journal, named after the store (`mlflow.db.optuna.journal`), so
  two stores in one folder never share a study,
- a lock file (`mlflow.db.lock`) under which one process at a time creates the store.
A remote store (`http://…`, `postgresql://…`) has none of these; its journal goes to the
working directory, named after the server.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import mlflow

from pipeline.config.validation import ParameterError
from pipeline.secrets import redact

JOURNAL_SUFFIX = ".optuna.journal"


def _store_errors() -> tuple[type[Exception], ...]:
    """What opening a store raises when it cannot: SQLAlchemy's errors too where it is
    installed (mlflow-skinny, which has file stores and servers only, comes without it)."""
    try:
        from sqlalchemy.exc import SQLAlchemyError
    except ImportError:
        return (OSError, mlflow.exceptions.MlflowException)
    return (OSError, mlflow.exceptions.MlflowException, SQLAlchemyError)


def local_store_path(uri: str) -> Path | None:
    """The SQLite file or file-store folder of a local tracking URI; None for remote stores."""
    if uri.startswith("sqlite:///"):
        return Path(urllib.parse.urlparse(uri).path.removeprefix("/")).resolve()
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(parsed.path).resolve()
    return None


def is_sqlite(uri: str) -> bool:
    return uri.startswith("sqlite:///")


def journal_path(uri: str) -> Path:
    """The default Optuna journal of the studies tracked in this store."""
    path = local_store_path(uri)
    if path is not None:
        return path.with_name(path.name + JOURNAL_SUFFIX)
    parsed = urllib.parse.urlparse(uri)
    server = parsed.netloc.rpartition("@")[2] + parsed.path  # never the userinfo
    return Path.cwd() / (re.sub(r"[^\w.-]+", "_", server).strip("_") + JOURNAL_SUFFIX)


def tracking_uri() -> str:
    """The current tracking URI, password redacted: for messages."""
    return redact(mlflow.get_tracking_uri())


def default_journal() -> Path:
    """The Optuna journal of the studies tracked in the current store."""
    return journal_path(mlflow.get_tracking_uri())


def artifact_location(uri: str, experiment: str) -> str | None:
    """Where a new experiment's artifacts go: beside a SQLite store; None: MLflow's choice."""
    if not is_sqlite(uri):
        return None
    return (local_store_path(uri).parent / "mlruns" / experiment).as_uri()


def experiment_id(name: str) -> str:
    """The id of the experiment `name`, created (artifacts beside a local SQLite store) if new."""
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    location = artifact_location(mlflow.get_tracking_uri(), name)
    try:
        return client.create_experiment(name, artifact_location=location)
    except mlflow.exceptions.MlflowException:  # created meanwhile by a parallel worker?
        experiment = client.get_experiment_by_name(name)
        if experiment is None:  # no: the store refused it (a full disk)
            raise
        return experiment.experiment_id


@contextlib.contextmanager
def creation_lock(uri: str) -> Iterator[None]:
    """Holds an exclusive lock beside a local store while it is created or checked, so that
    processes starting together do not run MLflow's schema creation twice (OSError when the
    folder is not writable)."""
    path = local_store_path(uri)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)  # as MLflow makes a new store's folders
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def exclusive() -> contextlib.AbstractContextManager:
    """The lock beside a local store (a remote store has none): one process at a time checks
    and claims what several might claim at once, such as a study's parent run."""
    return creation_lock(mlflow.get_tracking_uri())


def open_store():
    """Before anything runs: a tracking URI without a password, a local store created (or
    checked) once under the lock, so that processes starting together on a new store all
    finish, and an MLFLOW_EXPERIMENT_ID that exists. ParameterError (one line) otherwise."""
    uri = mlflow.get_tracking_uri()
    if redact(uri) != uri:
        raise ParameterError(
            f"MLFLOW_TRACKING_URI must not hold a password (got {redact(uri)!r}): set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD instead."
        )
    # its "Creating initial MLflow database tables..." lines: a new store is no news; and its
    # traceback of a database error that it raises next: the error itself says it once
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    try:
        with creation_lock(uri):
            client = mlflow.MlflowClient()  # creates a local store's tables, once
            client.search_experiments(max_results=1)  # a server: reachable, credentials valid
    except _store_errors() as error:
        hint = (
            "run in a writable folder or set MLFLOW_TRACKING_URI"
            if local_store_path(uri)
            else "check the server, MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
        )
        raise ParameterError(
            f"Cannot open the tracking store {uri!r} ({str(error).splitlines()[0]}): {hint}."
        ) from None
    experiment_id = os.environ.get("MLFLOW_EXPERIMENT_ID")
    if experiment_id:
        try:
            active = client.get_experiment(experiment_id).lifecycle_stage == "active"
        except mlflow.exceptions.MlflowException:
            active = False
        if not active:
            raise ParameterError(
                f"MLFLOW_EXPERIMENT_ID must be the id of an active experiment in {uri}. "
                f"Got {experiment_id!r} instead."
            )
