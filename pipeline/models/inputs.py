"""A Keras model's input on arrays: TensorFlow datasets with that backend, the arrays with JAX;
and predicting with a model. Pure: no tracking."""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras
import numpy as np

if TYPE_CHECKING:
    import tensorflow as tf

PREDICT_BATCH_SIZE = 1024


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


def in_order(x: np.ndarray, y: np.ndarray | None = None) -> tuple:
    """The data of `predict` and `evaluate` (and `fit`'s `validation_data`), in order: `batches`
    with TensorFlow, the arrays with JAX (pass `batch_size=PREDICT_BATCH_SIZE` for them)."""
    if keras.backend.backend() == "tensorflow":
        return (batches(x, y),)
    return (x,) if y is None else (x, y)


def predict(model: keras.Model, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Class probabilities of images `x` and the model's loss against labels `y`; the input is
    built once for both."""
    data = in_order(x.astype("float32"), y)  # predict takes the images of its first item
    probabilities = model.predict(data[0], batch_size=PREDICT_BATCH_SIZE, verbose=0)
    loss, _ = model.evaluate(*data, batch_size=PREDICT_BATCH_SIZE, verbose=0)
    return probabilities, float(loss)
