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
    """The replicas' training sets one after another, x (K * n, ...) and y (K * n,) int32:
    TensorFlow constants made once (not copied every epoch), numpy arrays for JAX."""
    arrays = (np.concatenate(images), np.concatenate(labels).astype(np.int32))
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tuple(tf.constant(array) for array in arrays)
    return arrays


def _rows(orders: np.ndarray) -> np.ndarray:
    """(n, K) orders as rows of the concatenated arrays: replica k's start at k * n."""
    return orders + np.arange(orders.shape[1], dtype=np.int32) * len(orders)


def _gathered(x_all, y_all, orders: np.ndarray, batch_size: int):
    """TensorFlow's input: batches of `orders` rows, gathered from the constants in the graph;
    no autotuning (see `pipeline.train.batches`)."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    rows = tf.data.Dataset.from_tensor_slices(_rows(orders)).batch(batch_size)
    gathered = rows.map(  # cast here: in the model, grappler moves a uint8 transpose into
        # oneDNN, which logs an error line on CPUs without AVX-512
        lambda batch: (tf.cast(tf.gather(x_all, batch), "float32"), tf.gather(y_all, batch))
    )
    return gathered.prefetch(1).with_options(options)


def training_data(arrays: tuple, orders: np.ndarray, batch_size: int) -> dict:
    """`fit`'s training data for one epoch of `orders` (from `epoch_orders`)."""
    if keras.backend.backend() == "tensorflow":
        return {"x": _gathered(*arrays, orders, batch_size), "shuffle": False}
    x, y = (array[_rows(orders)] for array in arrays)
    return {"x": x, "y": y, "batch_size": batch_size, "shuffle": False}
