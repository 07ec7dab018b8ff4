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
    """The replicas' distinct training sets one after another, x (D * n, ...) and y (D * n,)
    int32 (replicas of one seed share its split: stored once), and each replica's first row
    (K,): TensorFlow constants made once (not copied every epoch), numpy arrays for JAX."""
    distinct = {id(x): (x, y) for x, y in zip(images, labels, strict=True)}  # in first-seen order
    slot = {key: place for place, key in enumerate(distinct)}
    firsts = np.array([slot[id(x)] * len(x) for x in images], dtype=np.int32)
    arrays = (
        np.concatenate([x for x, _ in distinct.values()]),
        np.concatenate([y for _, y in distinct.values()]).astype(np.int32),
    )
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        arrays = tuple(tf.constant(array) for array in arrays)
    return (*arrays, firsts)


def _rows(orders: np.ndarray, firsts: np.ndarray) -> np.ndarray:
    """(n, K) orders as rows of the concatenated arrays: replica k's start at `firsts[k]`."""
    return orders + firsts


def _gathered(x_all, y_all, firsts: np.ndarray, orders: np.ndarray, batch_size: int):
    """TensorFlow's input: batches of `orders` rows, gathered from the constants in the graph;
    no autotuning (see `pipeline.experiments.train.batches`)."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    rows = tf.data.Dataset.from_tensor_slices(_rows(orders, firsts)).batch(batch_size)
    gathered = rows.map(  # cast here: in the model, grappler moves a uint8 transpose into
        # oneDNN, which logs an error line on CPUs without AVX-512
        lambda batch: (tf.cast(tf.gather(x_all, batch), "float32"), tf.gather(y_all, batch))
    )
    return gathered.prefetch(1).with_options(options)


def validation_data(images: Sequence[np.ndarray], labels: Sequence[np.ndarray], batch_size: int):
    """`fit`'s validation data: each replica's examples in order, as `replica_batches` gives
    them (with TensorFlow, cast in the input pipeline as well)."""
    orders = np.repeat(np.arange(len(images[0]), dtype=np.int32)[:, None], len(images), axis=1)
    data = replica_batches(replica_arrays(images, labels), orders, batch_size)
    return data["x"] if "y" not in data else (data["x"], data["y"])


def replica_batches(arrays: tuple, orders: np.ndarray, batch_size: int) -> dict:
    """`fit`'s training data for one epoch of `orders` (from `epoch_orders`)."""
    if keras.backend.backend() == "tensorflow":
        return {"x": _gathered(*arrays, orders, batch_size), "shuffle": False}
    *arrays, firsts = arrays
    x, y = (array[_rows(orders, firsts)] for array in arrays)
    return {"x": x, "y": y, "batch_size": batch_size, "shuffle": False}
