"""The `keras` engine: one `model.fit` per member, the notebook's path; the process's Keras
backend (TensorFlow or JAX) trains it."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import keras
import numpy as np

from pipeline.engines.base import EPOCH_METRICS, Member, OnEpoch, Weights
from pipeline.models.inputs import PREDICT_BATCH_SIZE, batches, in_order
from pipeline.models.mlp import STEPS_PER_EXECUTION, build_model


def training_data(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int) -> dict:
    """`fit`'s training data arguments: batches of `batch_size`, shuffled anew each epoch, by
    `batches` with TensorFlow, by Keras with JAX (from the seed the engine sets)."""
    if keras.backend.backend() == "tensorflow":
        return {"x": batches(x, y, batch_size, seed), "shuffle": False}
    return {"x": x, "y": y, "batch_size": batch_size, "shuffle": True}


def steps_per_execution(n_examples: int, batch_size: int) -> int:
    """TensorFlow runs a whole epoch per call (a graph while-loop: ~10% faster epochs than 32
    steps per call, the same numbers); JAX unrolls the steps of a call into one XLA program,
    so it keeps the model's 32."""
    if keras.backend.backend() == "tensorflow":
        return math.ceil(n_examples / batch_size)
    return STEPS_PER_EXECUTION


def seeded_model(member: Member, steps: int) -> keras.Model:
    """The member's model with the initial weights its seed gives, in a fresh Keras session."""
    keras.utils.set_random_seed(member.config.seed)
    return build_model(member.spec, member.config.learning_rate, steps)


class EpochReporter(keras.callbacks.Callback):
    """Passes each epoch's metrics (and the test set's at the member's score epochs) to the
    engine's callback, and stops training when the callback stops the member."""

    def __init__(self, member: Member, index: int, on_epoch: OnEpoch):
        super().__init__()
        self.member, self.index, self.on_epoch = member, index, on_epoch

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        step = epoch + 1
        metrics = {name: float(logs[name]) for name in EPOCH_METRICS}
        metrics["epoch_seconds"] = time.perf_counter() - self.started
        if step in self.member.score_epochs:
            dataset = self.member.dataset
            data = in_order(dataset.x_test.astype("float32"), dataset.y_test)
            loss, accuracy = self.model.evaluate(*data, batch_size=PREDICT_BATCH_SIZE, verbose=0)
            metrics |= {"test_loss": float(loss), "test_accuracy": float(accuracy)}
        self.on_epoch(step, {self.index: metrics})
        if self.member.stopped:
            self.model.stop_training = True


def keras_device() -> str:
    """The kind of device the Keras backend trains on: "cpu", or its GPU's name."""
    if keras.backend.backend() == "jax":
        import jax

        device = jax.devices()[0]
        return "cpu" if device.platform == "cpu" else device.device_kind
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return (
        tf.config.experimental.get_device_details(gpus[0]).get("device_name", "gpu")
        if gpus
        else "cpu"
    )


class KerasEngine:
    """Trains the members one after another, each as its own Keras model, on the process's
    Keras backend (its device is the backend's)."""

    name = "keras"

    @property
    def device(self) -> str:
        return keras_device()

    def fit(self, members: Sequence[Member], on_epoch: OnEpoch) -> list[Weights | None]:
        return [self._fit_one(member, index, on_epoch) for index, member in enumerate(members)]

    def _fit_one(self, member: Member, index: int, on_epoch: OnEpoch) -> Weights | None:
        config, dataset = member.config, member.dataset
        keras.backend.clear_session()  # a fresh graph per run: no retracing across runs
        x = dataset.x_train.astype("float32")
        model = seeded_model(member, steps_per_execution(len(x), config.batch_size))
        model.fit(
            **training_data(x, dataset.y_train, config.batch_size, config.seed),
            validation_data=in_order(dataset.x_val.astype("float32"), dataset.y_val),
            validation_batch_size=PREDICT_BATCH_SIZE,
            epochs=config.epochs,
            callbacks=[EpochReporter(member, index, on_epoch)],
            verbose=0,
        )
        return None if member.stopped else model.get_weights()
