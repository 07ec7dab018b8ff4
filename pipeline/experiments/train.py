"""One training run: data -> model -> fit with per-epoch tracking -> test metrics and artifacts."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import keras
import numpy as np

from pipeline import lifecycle, tracking
from pipeline.analysis import figures, scoring
from pipeline.config.entry_points import TrainConfig
from pipeline.data.datasets import Dataset, load_dataset
from pipeline.engines.base import model_spec
from pipeline.models.mlp import STEPS_PER_EXECUTION, build_model

if TYPE_CHECKING:
    import tensorflow as tf

EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")
PREDICT_BATCH_SIZE = 1024

EpochHook = Callable[[int, dict[str, float]], None]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class TrainResult:
    run_id: str
    history: dict[str, list[float]] = field(default_factory=dict)
    test_metrics: dict[str, float] = field(default_factory=dict)


class EpochLogger(keras.callbacks.Callback):
    """Logs each epoch's metrics once, at step = epoch number (1-based), prints a progress line,
    stops on a non-finite loss, calls the hooks (e.g. Optuna's pruning report) and then raises
    the interrupt of a signal that arrived meanwhile."""

    def __init__(self, epochs: int, hooks: Sequence[EpochHook] = ()):
        super().__init__()
        self.epochs = epochs
        self.hooks = hooks
        self.history: dict[str, list[float]] = {}
        self.divergence = ""

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        step = epoch + 1
        metrics = {name: float(logs[name]) for name in EPOCH_METRICS}
        metrics["generalization_gap"] = metrics["val_loss"] - metrics["loss"]
        metrics["epoch_seconds"] = time.perf_counter() - self.started
        for name, value in metrics.items():
            self.history.setdefault(name, []).append(value)
        tracking.log_metrics(metrics, step=step)
        print(
            f"epoch {step}/{self.epochs}  loss {metrics['loss']:.4f}  "
            f"accuracy {metrics['accuracy']:.4f}  val_loss {metrics['val_loss']:.4f}  "
            f"val_accuracy {metrics['val_accuracy']:.4f}  {metrics['epoch_seconds']:.1f}s",
            flush=True,
        )
        if not math.isfinite(metrics["loss"]):
            self.divergence = f"loss became {metrics['loss']} at epoch {step}"
            self.model.stop_training = True
            return
        for hook in self.hooks:
            hook(step, metrics)
        lifecycle.raise_pending()  # a signal during the epoch stops training here


def log_dataset(dataset: Dataset, contexts=("train", "validation", "test")):
    """The splits as MLflow dataset inputs, each with a digest of its content; a train split
    cut to `train_size` is named with its size (`fashion_mnist-train-1000`)."""
    for context in contexts:
        x, y = dataset.splits[context]
        digest = dataset.digests[context]
        size = f"-{dataset.train_size}" if context == "train" and dataset.train_size else ""
        name = f"{dataset.name}-{context}{size}"
        tracking.log_dataset_split(x, y, name, dataset.source, digest, context)


def batches(
    x: np.ndarray,
    y: np.ndarray | None = None,
    batch_size: int = PREDICT_BATCH_SIZE,
    seed: int | None = None,
) -> tf.data.Dataset:
    """TensorFlow's input: batches of (x, y), or of (x,), in order or, given a seed, shuffled
    anew each epoch (the same orders for the same seed), each gathered by a batch of indices.
    No autotuning: its threads made dropping each epoch's iterator stall ~1 s at random epochs on
    2 cores. No parallel map: under op determinism TF 2.21 makes it sequential and logs an error
    line ("NodeDef mentions attribute use_unbounded_threadpool"), for Keras' array batches too,
    hence `in_order`."""
    import tensorflow as tf

    arrays = tuple(tf.constant(array) for array in (x, y) if array is not None)
    order = tf.data.Dataset.range(len(x))
    if seed is not None:
        order = order.shuffle(len(x), seed, reshuffle_each_iteration=True)
    gathered = order.batch(batch_size).map(
        lambda indices: tuple(tf.gather(array, indices) for array in arrays)
    )
    options = tf.data.Options()
    options.autotune.enabled = False
    return gathered.prefetch(1).with_options(options)


def training_data(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int) -> dict:
    """`fit`'s training data arguments: batches of `batch_size`, shuffled anew each epoch, by
    `batches` with TensorFlow, by Keras with JAX (from the seed `train` sets)."""
    if keras.backend.backend() == "tensorflow":
        return {"x": batches(x, y, batch_size, seed), "shuffle": False}
    return {"x": x, "y": y, "batch_size": batch_size, "shuffle": True}


def in_order(x: np.ndarray, y: np.ndarray | None = None) -> tuple:
    """The data of `predict` and `evaluate` (and `fit`'s `validation_data`), in order: `batches`
    with TensorFlow, the arrays with JAX (pass `batch_size=PREDICT_BATCH_SIZE` for them)."""
    if keras.backend.backend() == "tensorflow":
        return (batches(x, y),)
    return (x,) if y is None else (x, y)


def steps_per_execution(n_examples: int, batch_size: int) -> int:
    """TensorFlow runs a whole epoch per call (a graph while-loop: ~10% faster epochs than 32
    steps per call, the same numbers); JAX unrolls the steps of a call into one XLA program,
    so it keeps the model's 32."""
    if keras.backend.backend() == "tensorflow":
        return math.ceil(n_examples / batch_size)
    return STEPS_PER_EXECUTION


def config_model(
    config: TrainConfig, dataset: Dataset, steps: int = STEPS_PER_EXECUTION
) -> keras.Model:
    """The config's model for the dataset's images and classes (`build_model`)."""
    return build_model(model_spec(config, dataset), config.learning_rate, steps)


def predict_and_score(
    model: keras.Model, x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, dict[str, float]]:
    """Class probabilities of images `x` and the `test_*` metrics against labels `y`."""
    data = in_order(x.astype("float32"), y)  # predict takes the images of its first item
    probabilities = model.predict(data[0], batch_size=PREDICT_BATCH_SIZE, verbose=0)
    loss, _ = model.evaluate(*data, batch_size=PREDICT_BATCH_SIZE, verbose=0)
    return probabilities, {
        "test_loss": float(loss),
        **scoring.score_predictions(y, probabilities),
    }


def log_test_results(model: keras.Model, dataset: Dataset, title: str) -> dict[str, float]:
    probabilities, metrics = predict_and_score(model, dataset.x_test, dataset.y_test)
    tracking.log_metrics(metrics)
    log_classification_artifacts(dataset.y_test, probabilities, dataset.class_names, title)
    tracking.log_keras_model(model, dataset.x_test[:5].astype("float32"), probabilities[:5])
    return metrics


def log_classification_artifacts(
    y_true: np.ndarray, probabilities: np.ndarray, class_names: tuple[str, ...], title: str
):
    """The classification report (txt, json) and confusion matrix (csv, png) of the active run."""
    y_pred = probabilities.argmax(axis=1)
    text, report = scoring.classification_report(y_true, y_pred, class_names)
    tracking.log_text(text, "classification_report.txt")
    tracking.log_dict(report, "classification_report.json")
    table = scoring.confusion_matrix_table(y_true, y_pred, class_names)
    tracking.log_text(table.to_csv(), "confusion_matrix.csv")
    tracking.log_figure(
        figures.confusion_matrix_figure(table, f"Confusion matrix (test) - {title}"),
        "confusion_matrix.png",
    )


def train(
    config: TrainConfig,
    dataset: Dataset | None = None,
    parent_run_id: str | None = None,
    epoch_hooks: Sequence[EpochHook] = (),
    tags: dict[str, str] | None = None,
    killed_on: tuple[type[BaseException], ...] = (KeyboardInterrupt,),
) -> TrainResult:
    """Train one model as one MLflow run and return its history and test metrics."""
    if config.backend != keras.backend.backend():  # Keras fixes it at its first import
        raise config.invalid(
            "backend",
            f"the Keras backend this process imported ({keras.backend.backend()}); set "
            "KERAS_BACKEND before importing keras, or use the CLI",
            config.backend,
        )
    dataset = dataset or load_dataset(config)
    run_tags = {
        "entry_point": "train",
        "recipe": config.recipe,
        "dataset": config.dataset,
        "data_source": dataset.source,
        "data_sha256": dataset.sha256,
        **(tags or {}),
    }
    experiment = tracking.experiment_name(config.dataset)
    with tracking.run(config.run_name, experiment, run_tags, parent_run_id, killed_on) as run_id:
        tracking.log_params(config.to_params())
        log_dataset(dataset)
        keras.backend.clear_session()  # a fresh graph per run: no retracing across runs
        keras.utils.set_random_seed(config.seed)
        model = config_model(
            config, dataset, steps_per_execution(len(dataset.x_train), config.batch_size)
        )
        logger = EpochLogger(config.epochs, epoch_hooks)
        model.fit(
            **training_data(
                dataset.x_train.astype("float32"), dataset.y_train, config.batch_size, config.seed
            ),
            validation_data=in_order(dataset.x_val.astype("float32"), dataset.y_val),
            validation_batch_size=PREDICT_BATCH_SIZE,
            epochs=config.epochs,
            callbacks=[logger],
            verbose=0,
        )
        if logger.divergence:
            raise TrainingDiverged(logger.divergence)
        tracking.log_figure(
            figures.learning_curves_figure(logger.history, config.run_name),
            "learning_curves.png",
        )
        test_metrics = log_test_results(model, dataset, config.run_name)
    return TrainResult(run_id, logger.history, test_metrics)
