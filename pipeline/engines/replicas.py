"""Train runs of one shape together, as one replica model (`pipeline.models.replica_mlp`).

Each member is still a complete train run: a child run created by id with the params, datasets,
per-epoch metrics (logged by run id while the group trains), test metrics, report, confusion
matrix, learning curves and a standard single Keras model that a train run logs, tagged with its
replica group. A member whose loss becomes NaN fails alone; its neighbours train on.
"""

from __future__ import annotations

import dataclasses
import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import keras
import numpy as np
import psutil

from pipeline import lifecycle, tracking
from pipeline.analysis import figures
from pipeline.config.entry_points import TrainConfig
from pipeline.config.validation import Config
from pipeline.data.datasets import Dataset
from pipeline.engines.replica_data import (
    epoch_orders,
    replica_arrays,
    training_data,
    validation_data,
)
from pipeline.experiments.train import (
    PREDICT_BATCH_SIZE,
    TrainingDiverged,
    TrainResult,
    config_model,
    log_dataset,
    log_test_results,
    steps_per_execution,
    train,
)
from pipeline.models.replica_mlp import (
    build_replica_model,
    copy_replica_weights,
    set_replica_weights,
)

# What members of one group must share: the shape of the one model they train as.
SHAPE = (
    "dataset",
    "data_dir",
    "hidden_units",
    "epochs",
    "batch_size",
    "validation_split",
    "train_size",
    "max_norm",
    "recipe",
    "backend",
)
# A train run's per-epoch metric: the replica model's vector metric that holds it.
KERAS_NAMES = {
    "loss": "xent",
    "accuracy": "accuracy",
    "val_loss": "val_xent",
    "val_accuracy": "val_accuracy",
}
GroupHook = Callable[[int, list[dict[str, float]]], None]  # epoch, each live member's metrics


@dataclass
class Member:
    """One run of a group: its config, data (its seed's split) and tags."""

    config: TrainConfig
    dataset: Dataset
    tags: dict[str, str] = field(default_factory=dict)
    run_id: str = ""
    history: dict[str, list[float]] = field(default_factory=dict)
    failure: str = ""


def check_fits(replicas: int, dataset: Dataset, config: Config, param: str = "replicas"):
    """Refuse (the config's one-line error, naming `param`) more replicas than half the
    available memory holds: each needs its training and validation images about four times over
    (the epoch's order, the stacked input, the framework's copy and slack)."""
    need = 4 * (dataset.x_train.nbytes + dataset.x_val.nbytes)
    available = psutil.virtual_memory().available
    most = max(1, int(available / 2 // need))
    if replicas > most:
        raise config.invalid(
            param,
            f"at most {most} on this machine (each replica needs about {need / 2**20:.0f} MiB; "
            f"{available / 2**30:.1f} GiB are available)",
            str(replicas),
        )


def shape_key(config: TrainConfig) -> tuple:
    return tuple(getattr(config, name) for name in SHAPE)


def groups(members: Sequence[Member], size: int) -> list[list[Member]]:
    """Members of the same shape in groups of at most `size`, in their order."""
    by_shape: dict[tuple, list[Member]] = {}
    for member in members:
        by_shape.setdefault(shape_key(member.config), []).append(member)
    return [
        same[start : start + size]
        for same in by_shape.values()
        for start in range(0, len(same), size)
    ]


def build(members: Sequence[Member]) -> keras.Model:
    """The replica model, each replica starting from the weights `build_model` gives its seed."""
    first = members[0]
    config, dataset = first.config, first.dataset
    args = (dataset.x_train.shape[1:], len(dataset.class_names), config.hidden_units)
    model = build_replica_model(
        *args,
        dropout_rates=[member.config.dropout_rates for member in members],
        seeds=[member.config.seed for member in members],
        learning_rates=[member.config.learning_rate for member in members],
        recipe=config.recipe,
        steps_per_execution=steps_per_execution(len(dataset.x_train), config.batch_size),
        max_norm=config.max_norm,
    )
    for replica, member in enumerate(members):
        keras.utils.set_random_seed(member.config.seed)
        set_replica_weights(model, replica, config_model(member.config, member.dataset))
    return model


def _fail(member: Member, reason: str):
    member.failure = reason
    tracking.end_run_by_id(member.run_id, "FAILED", f"TrainingDiverged: {reason}")


def _log_epoch(members: Sequence[Member], history: dict, epoch: int, seconds: float) -> list:
    """Log each live member's epoch by run id; fail those whose loss is not finite."""
    logged = []
    for replica, member in enumerate(members):
        if member.failure:
            continue
        metrics = {
            name: float(np.asarray(history[key][-1])[replica]) for name, key in KERAS_NAMES.items()
        }
        metrics["generalization_gap"] = metrics["val_loss"] - metrics["loss"]
        metrics["epoch_seconds"] = seconds / len(members)  # the group's time, shared
        if not math.isfinite(metrics["loss"]):
            _fail(member, f"loss became {metrics['loss']} at epoch {epoch}")
            continue
        for name, value in metrics.items():
            member.history.setdefault(name, []).append(value)
        tracking.log_metrics_to(member.run_id, metrics, step=epoch)
        logged.append(metrics)
    return logged


def _fit(model: keras.Model, members: Sequence[Member], hooks: Sequence[GroupHook]):
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
    seeds, examples = [member.config.seed for member in members], len(members[0].dataset.x_train)
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        orders = epoch_orders(seeds, examples, epoch)
        history = model.fit(
            **training_data(arrays, orders, config.batch_size),
            validation_data=validation,
            validation_batch_size=PREDICT_BATCH_SIZE,
            verbose=0,
        ).history
        logged = _log_epoch(members, history, epoch, time.perf_counter() - started)
        if not logged:
            return
        accuracies = " ".join(f"{metrics['val_accuracy']:.4f}" for metrics in logged)
        print(f"epoch {epoch}/{config.epochs}  {len(logged)} runs  val_accuracy {accuracies}")
        for hook in hooks:
            hook(epoch, logged)
        lifecycle.raise_pending()  # a signal during the epoch stops training here


def _single_models(members: Sequence[Member]) -> dict:
    """One standard single Keras model per distinct config of the group (`build_model`), its
    optimizer built as a loaded model expects: each member's weights go into its config's model
    in turn, so predict and evaluate trace once per config, not once per member."""
    models, singles = {}, {}
    for member in members:
        key = dataclasses.replace(member.config, seed=0)
        if key not in models:
            models[key] = config_model(member.config, member.dataset)
            models[key].optimizer.build(models[key].trainable_variables)
        singles[id(member)] = models[key]
    return singles


def _finish(model: keras.Model, replica: int, member: Member, single: keras.Model) -> TrainResult:
    """Log what a train run logs after training, into the member's run, and end it."""
    config, dataset = member.config, member.dataset
    with tracking.continued(member.run_id):
        log_dataset(dataset)
        tracking.log_figure(
            figures.learning_curves_figure(member.history, config.run_name),
            "learning_curves.png",
        )
        copy_replica_weights(model, replica, single)
        test_metrics = log_test_results(single, dataset, config.run_name)
    return TrainResult(member.run_id, member.history, test_metrics)


def train_group(
    members: Sequence[Member],
    parent_run_id: str,
    epoch_hooks: Sequence[GroupHook] = (),
    killed_on: tuple[type[BaseException], ...] = (KeyboardInterrupt,),
) -> list[TrainResult]:
    """Train the members (one shape) as one model; return the results of those that did not
    diverge, and raise TrainingDiverged after the others have finished if any did."""
    if len({shape_key(member.config) for member in members}) != 1:
        raise ValueError("members of a replica group must share " + ", ".join(SHAPE))
    group = uuid.uuid4().hex[:12]
    for member in members:
        tags = {"entry_point": "train", "recipe": member.config.recipe, **member.tags}
        tags |= {"dataset": member.config.dataset, "data_sha256": member.dataset.sha256}
        tags |= {"mlflow.runName": member.config.run_name, "replica_group": group}
        member.run_id = tracking.create_run(parent_run_id, member.config.run_name, tags)
        tracking.log_params_to(member.run_id, member.config.to_params())
    try:
        keras.backend.clear_session()
        model = build(members)
        _fit(model, members, epoch_hooks)
        singles = _single_models(members)
        results = [
            _finish(model, replica, member, singles[id(member)])
            for replica, member in enumerate(members)
            if not member.failure
        ]
    except BaseException as error:
        for member in members:
            if not member.failure and tracking.is_running(member.run_id):
                tracking.end_run_after(member.run_id, error, killed_on)
        raise
    diverged = [member for member in members if member.failure]
    if diverged:
        reasons = "; ".join(dict.fromkeys(member.failure for member in diverged))  # each once
        raise TrainingDiverged(f"{len(diverged)} of {len(members)} runs: {reasons}")
    return results


def train_members(
    members: Sequence[Member], parent_run_id: str, replicas: int
) -> list[TrainResult]:
    """Each member as a child run, `replicas` of one shape at a time as one model (1: `train`,
    one model at a time); results in the members' order."""
    if replicas == 1:
        return [train(m.config, m.dataset, parent_run_id, tags=m.tags) for m in members]
    results = {}
    for group in groups(members, replicas):
        results.update(zip(map(id, group), train_group(group, parent_run_id), strict=True))
    return [results[id(member)] for member in members]
