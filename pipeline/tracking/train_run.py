"""What a train run logs, in one place: every engine's runs are logged by a `TrainRun`.

A train run has four verbs: `begin` (params, tags), `epoch` (the epoch's metrics with the derived
ones, in one call: a lone run's each epoch, a group's runs with their other epochs every few
seconds, since their per-epoch calls would cost more than a population's epoch; a non-finite
loss is logged at once, then reported as the reason to stop), `finish` (the data splits as
MLflow datasets, learning curves, test metrics, classification report, confusion matrix and
the model with its signature) and `end` (status, `failure_reason`, `killed_by`). It logs by run
id, so one process can log many runs at once; `finish` logs into the active run, for the calls
MLflow only has in its fluent API (datasets, models).
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass, field

import numpy as np

from pipeline import tracking
from pipeline.analysis import figures, scoring
from pipeline.config.entry_points import TrainConfig
from pipeline.data.datasets import Dataset
from pipeline.models import forward
from pipeline.models.inputs import predict
from pipeline.models.mlp import build_model
from pipeline.models.spec import ModelSpec

KILLED_ON = (KeyboardInterrupt,)
GROUP_FLUSH_SECONDS = 5.0  # how often a group's runs log their epochs (a lone run: each epoch)


@dataclass
class TrainRun:
    """The tracking of one train run (`run_id`) of a config on a dataset."""

    run_id: str
    config: TrainConfig
    dataset: Dataset
    history: dict[str, list[float]] = field(default_factory=dict)
    test_metrics: dict[str, float] = field(default_factory=dict)
    flush_seconds: float = 0.0  # epochs are logged once this long since the last flush
    pending: dict[int, dict[str, float]] = field(default_factory=dict)  # step: metrics
    flushed_at: float = field(default_factory=time.monotonic)

    @classmethod
    def create(
        cls,
        parent_run_id: str,
        config: TrainConfig,
        dataset: Dataset,
        engine: str,
        device: str,
        tags: dict[str, str],
        **fields,
    ) -> TrainRun:
        """A new child run of the parent, begun as `begin` begins one (the same params and
        tags), but created with its tags and its params logged in one call."""
        run = cls("", config, dataset, **fields)
        run_tags = run.tags(engine, device, tags)
        run.run_id = tracking.create_run(parent_run_id, config.run_name, run_tags)
        tracking.log_params_to(run.run_id, config.to_params(), new_run=True)
        return run

    def begin(self, engine: str, device: str, tags: dict[str, str]):
        """The config's params (those `mlflow run` has not logged already) and the run's tags."""
        tracking.log_params_to(
            self.run_id, self.config.to_params(), self.tags(engine, device, tags)
        )

    def tags(self, engine: str, device: str, tags: dict[str, str]) -> dict[str, str]:
        """A train run's tags: entry point, recipe, dataset and where its data came from, the
        engine and its device, and `tags`."""
        return {
            "entry_point": "train",
            "recipe": self.config.recipe,
            "dataset": self.config.dataset,
            "data_source": self.dataset.source,
            "data_sha256": self.dataset.sha256,
            "engine": engine,
            "device": device,
            **tags,
        }

    def epoch(self, step: int, metrics: dict[str, float]) -> str:
        """Record an epoch's metrics with its generalization gap (val_loss - loss) at step =
        epoch, logged once `flush_seconds` have passed since the last flush (and by `flush`,
        `finish` and `end`); returns why the run must stop (its loss is not finite, logged at
        once), else ""."""
        metrics = {**metrics, "generalization_gap": metrics["val_loss"] - metrics["loss"]}
        for name, value in metrics.items():
            self.history.setdefault(name, []).append(value)
        self.pending[step] = metrics
        if not math.isfinite(metrics["loss"]):
            self.flush()
            return f"loss became {metrics['loss']} at epoch {step}"
        if time.monotonic() - self.flushed_at >= self.flush_seconds:
            self.flush()
        return ""

    def flush(self):
        """Log the epochs recorded since the last flush, in one call per 1,000 metrics."""
        if self.pending:
            tracking.log_metrics_to(self.run_id, self.pending)
            self.pending = {}
        self.flushed_at = time.monotonic()

    def finish(self, spec: ModelSpec, weights: list[np.ndarray]):
        """Everything a trained run logs after its last epoch, from its final weights (which
        `build_model(spec)` takes), into the run, which must be the active one."""
        config = self.config
        self.flush()
        log_dataset(self.dataset)
        if config.run_figures:
            tracking.log_figure(
                figures.learning_curves_figure(self.history, config.run_name),
                "learning_curves.png",
            )
        self.test_metrics = log_test_results(
            spec, weights, config, self.dataset, config.run_figures
        )

    def end(self, error: BaseException | None = None, killed_on=KILLED_ON):
        """FINISHED, or for `error` KILLED / FAILED with the reason (and the signal)."""
        self.flush()
        if error is None:
            tracking.end_run_by_id(self.run_id, "FINISHED")
        else:
            tracking.end_run_after(self.run_id, error, killed_on)


@functools.lru_cache(maxsize=8)
def logged_model(spec: ModelSpec, learning_rate: float):
    """One standard Keras model per spec and learning rate, its optimizer built as a loaded
    model expects: each run's weights go into it in turn to be logged (a fresh model per run
    costs more than logging it)."""
    model = build_model(spec, learning_rate)
    model.optimizer.build(model.trainable_variables)
    return model


def log_dataset(dataset: Dataset, contexts=("train", "validation", "test")):
    """The splits as MLflow dataset inputs of the active run, each with a digest of its content;
    a train split cut to `train_size` is named with its size (`fashion_mnist-train-1000`)."""
    splits = []
    for context in contexts:
        x, y = dataset.splits[context]
        size = f"-{dataset.train_size}" if context == "train" and dataset.train_size else ""
        name = f"{dataset.name}-{context}{size}"
        splits.append((x, y, name, dataset.source, dataset.digests[context], context))
    tracking.log_dataset_splits(splits)


def predict_and_score(model, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, dict]:
    """Class probabilities of images `x` by a Keras model and the `test_*` metrics against
    labels `y`."""
    probabilities, loss = predict(model, x, y)
    return probabilities, scores(y, probabilities, loss)


def scores(y: np.ndarray, probabilities: np.ndarray, loss: float) -> dict[str, float]:
    """The `test_*` metrics of class probabilities whose cross-entropy against labels `y` is
    `loss`."""
    return {"test_loss": loss, **scoring.score_predictions(y, probabilities)}


def log_test_results(
    spec: ModelSpec,
    weights: list[np.ndarray],
    config: TrainConfig,
    dataset: Dataset,
    figure: bool = True,
) -> dict[str, float]:
    """The test metrics (at the last epoch), report, confusion matrix (with its figure) and
    model of the active run. The test set is scored in NumPy from the weights (`forward`, equal
    to the Keras model's predictions within float32 rounding, tested): a Keras predict costs a
    run ~0.2 s."""
    probabilities, loss = forward.predict(spec, weights, dataset.x_test, dataset.y_test)
    metrics = scores(dataset.y_test, probabilities, loss)
    tracking.log_metrics(metrics, step=config.epochs)
    example = dataset.x_test[:5].astype("float32")  # a serving payload beside the model
    payload = {"model_input_example.json": {"inputs": example.tolist()}}
    classes, title = dataset.class_names, config.run_name
    log_classification_artifacts(dataset.y_test, probabilities, classes, title, figure, payload)
    model = logged_model(spec, config.learning_rate)
    model.set_weights(weights)
    tracking.log_keras_model(model, example, probabilities[:5])
    return metrics


def log_classification_artifacts(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    class_names: tuple[str, ...],
    title: str,
    figure: bool = True,
    files: dict[str, str | dict] | None = None,
):
    """The classification report (txt, json) and confusion matrix (csv, and png unless
    `figure` is false) of the active run, and `files` (path: text or dict) in the same call."""
    y_pred = probabilities.argmax(axis=1)
    text, report = scoring.classification_report(y_true, y_pred, class_names)
    table = scoring.confusion_matrix_table(y_true, y_pred, class_names)
    tracking.log_files(
        {
            "classification_report.txt": text,
            "classification_report.json": report,
            "confusion_matrix.csv": table.to_csv(),
            **(files or {}),
        }
    )
    if figure:
        tracking.log_figure(
            figures.confusion_matrix_figure(table, f"Confusion matrix (test) - {title}"),
            "confusion_matrix.png",
        )
