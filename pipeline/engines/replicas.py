"""The `replicas` engine: members of one shape trained together as one Keras replica model
(`pipeline.models.replica_mlp`), each replica starting from the weights `build_model` gives
its seed, with its own data, order, dropout masks and learning rate. A member stopped by the
callback (diverged, pruned) trains on in the model but is no longer reported or returned.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import keras
import numpy as np

from pipeline.engines.base import Member, OnEpoch, Weights
from pipeline.engines.keras_engine import OnKerasBackend, seeded_model, steps_per_execution
from pipeline.engines.replica_data import (
    epoch_orders,
    replica_arrays,
    replica_batches,
    validation_data,
)
from pipeline.models.inputs import PREDICT_BATCH_SIZE
from pipeline.models.replica_mlp import (
    build_replica_model,
    replica_weights,
    set_replica_weights,
)

# A train run's per-epoch metric: the replica model's vector metric that holds it.
KERAS_NAMES = {
    "loss": "xent",
    "accuracy": "accuracy",
    "val_loss": "val_xent",
    "val_accuracy": "val_accuracy",
}


def build(members: Sequence[Member]) -> keras.Model:
    """The replica model, each replica starting from the weights `build_model` gives its seed."""
    first = members[0]
    model = build_replica_model(
        first.spec,
        dropout_rates=[member.config.dropout_rates for member in members],
        seeds=[member.config.seed for member in members],
        learning_rates=[member.config.learning_rate for member in members],
        steps_per_execution=steps_per_execution(
            len(first.dataset.x_train), first.config.batch_size
        ),
    )
    for replica, member in enumerate(members):
        set_replica_weights(model, replica, seeded_model(member).get_weights())
    return model


def _test_metrics(model: keras.Model, members: Sequence[Member]) -> list[dict[str, float]]:
    """Each replica's test loss and accuracy (every member scores the dataset's test set)."""
    data = validation_data(
        [member.dataset.x_test for member in members],
        [member.dataset.y_test for member in members],
        PREDICT_BATCH_SIZE,
    )
    arguments = data if isinstance(data, tuple) else (data,)  # (x, y) with JAX
    results = model.evaluate(*arguments, return_dict=True, verbose=0)
    losses, accuracies = np.asarray(results["xent"]), np.asarray(results["accuracy"])
    return [
        {"test_loss": float(loss), "test_accuracy": float(accuracy)}
        for loss, accuracy in zip(losses, accuracies, strict=True)
    ]


def _epoch_metrics(history: dict, members: Sequence[Member], seconds: float) -> dict:
    """Each live member's metrics of the epoch just trained, by member index."""
    return {
        replica: {
            **{
                name: float(np.asarray(history[key][-1])[replica])
                for name, key in KERAS_NAMES.items()
            },
            "epoch_seconds": seconds / len(members),  # the group's time, shared
        }
        for replica, member in enumerate(members)
        if not member.stopped
    }


class ReplicaEngine(OnKerasBackend):
    """Trains members of one shape as one Keras model with a replica axis."""

    name = "replicas"

    def fit(self, members: Sequence[Member], on_epoch: OnEpoch) -> list[Weights | None]:
        keras.backend.clear_session()
        model = build(members)
        config = members[0].config
        validation = validation_data(
            [member.dataset.x_val for member in members],
            [member.dataset.y_val for member in members],
            PREDICT_BATCH_SIZE,
        )
        arrays = replica_arrays(
            [member.dataset.x_train for member in members],
            [member.dataset.y_train for member in members],
        )
        seeds, examples = [m.config.seed for m in members], len(members[0].dataset.x_train)
        for epoch in range(1, config.epochs + 1):
            started = time.perf_counter()
            history = model.fit(
                **replica_batches(arrays, epoch_orders(seeds, examples, epoch), config.batch_size),
                validation_data=validation,
                validation_batch_size=PREDICT_BATCH_SIZE,
                verbose=0,
            ).history
            metrics = _epoch_metrics(history, members, time.perf_counter() - started)
            if any(epoch in m.score_epochs for m in members):
                tests = _test_metrics(model, members)
                for replica in metrics:
                    if epoch in members[replica].score_epochs:
                        metrics[replica] |= tests[replica]
            on_epoch(epoch, metrics)
            if all(member.stopped for member in members):
                break
        weights = replica_weights(model)
        return [None if member.stopped else weights[k] for k, member in enumerate(members)]
