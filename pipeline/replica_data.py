"""The replica model's input: each replica's own examples in its own order, every epoch. Pure:
numpy and the backend's tensors, no tracking."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np


def epoch_orders(seeds: Sequence[int], n: int, epoch: int) -> np.ndarray:
    """(n, K): replica k's n training examples in the order its seed gives this epoch."""
    return np.stack([np.random.default_rng((seed, epoch)).permutation(n) for seed in seeds], axis=1)


def replica_arrays(images: Sequence[np.ndarray], labels: Sequence[np.ndarray]) -> tuple:
    """The replicas' training sets as x (K, n, ...) and y (K, n): TensorFlow constants made
    once (not copied every epoch), numpy arrays for JAX."""
    arrays = (np.stack(images), np.stack(labels))
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tuple(tf.constant(array) for array in arrays)
    return arrays


def _gathered(x_all, y_all, orders: np.ndarray, batch_size: int):
    """TensorFlow's input: batches of `orders` rows, each replica's examples gathered from its
    own arrays in the graph; no autotuning (see `pipeline.train.batches`)."""
    import tensorflow as tf

    def gather(indices):  # (batch, K) -> x (batch, K, ...), y (batch, K)
        columns = tf.transpose(indices)
        x = tf.gather(x_all, columns, axis=1, batch_dims=1)
        y = tf.gather(y_all, columns, axis=1, batch_dims=1)
        return tf.experimental.numpy.moveaxis(x, 0, 1), tf.transpose(y)

    options = tf.data.Options()
    options.autotune.enabled = False
    order = tf.data.Dataset.from_tensor_slices(orders).batch(batch_size)
    return order.map(gather).prefetch(1).with_options(options)


def training_data(arrays: tuple, orders: np.ndarray, batch_size: int) -> dict:
    """`fit`'s training data for one epoch of `orders` (from `epoch_orders`)."""
    if keras.backend.backend() == "tensorflow":
        return {"x": _gathered(*arrays, orders, batch_size), "shuffle": False}
    replica = np.arange(orders.shape[1])
    x, y = (array[replica, orders] for array in arrays)
    return {"x": x, "y": y, "batch_size": batch_size, "shuffle": False}
