"""Artifacts and dataset inputs of the active run: figures, texts (redacted), dicts, splits."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import mlflow
import numpy as np
from mlflow.data.code_dataset_source import CodeDatasetSource

from pipeline.secrets import redact


def log_dataset_splits(splits: list[tuple[np.ndarray, np.ndarray, str, str, str, str]]):
    """Each split (images, labels, name, source, digest, context) as a dataset input of the
    active run, in one call."""
    datasets, contexts = [], []
    for x, y, name, source, digest, context in splits:
        origin = CodeDatasetSource(tags={"source": source})  # a folder or a loader's name
        datasets.append(
            mlflow.data.from_numpy(x, targets=y, name=name, source=origin, digest=digest)
        )
        contexts.append(context)
    mlflow.log_inputs(datasets=datasets, contexts=contexts, tags_list=[None] * len(datasets))


def log_figure(figure: plt.Figure, path: str):
    mlflow.log_figure(figure, path)
    plt.close(figure)


def log_text(text: str, path: str):
    mlflow.log_text(redact(text), path)


def log_files(files: dict[str, str | dict]):
    """Texts (redacted) and dicts (as json, like `mlflow.log_dict`) by their paths in the run's
    artifacts, in one call: a train run's few small files cost a call each otherwise."""
    with tempfile.TemporaryDirectory() as folder:
        for path, content in files.items():
            text = (
                redact(content)
                if isinstance(content, str)
                else json.dumps(content, indent=2, default=str)
            )
            (Path(folder) / path).write_text(text)
        mlflow.log_artifacts(folder)
