"""Models in MLflow: logging a Keras model with its signature, the registry, loading."""

from __future__ import annotations

import contextlib
import importlib.metadata
import shlex

import mlflow
import numpy as np
from mlflow.models import infer_signature


def _pip_requirements() -> list[str]:
    """Given explicitly (MLflow would otherwise infer them in a slow subprocess): Keras, numpy
    and the backend that loads the model, as installed."""
    import keras

    backend = {"tensorflow": ("tensorflow-cpu", "tensorflow"), "jax": ("jax",)}
    requirements = []
    for name in ("keras", "numpy", *backend[keras.backend.backend()]):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            requirements.append(f"{name}=={importlib.metadata.version(name)}")
    return requirements


def log_keras_model(model, x_example: np.ndarray, probabilities: np.ndarray):
    """The keras flavor with the signature of an example's inputs and outputs (its
    `input_example=` crashes in mlflow.keras 3.17, mlflow/mlflow#16183: the caller logs the
    example beside it as a serving payload)."""
    signature = infer_signature(x_example, probabilities)
    mlflow.keras.log_model(
        model, name="model", signature=signature, pip_requirements=_pip_requirements()
    )


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
