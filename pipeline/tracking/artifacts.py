"""Artifacts and dataset inputs of the active run: figures, texts (redacted), dicts, splits."""

from __future__ import annotations

import matplotlib.pyplot as plt
import mlflow
import numpy as np
from mlflow.data.code_dataset_source import CodeDatasetSource

from pipeline.secrets import redact


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
