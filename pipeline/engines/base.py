"""The seam between experiments and training engines.

An engine trains members — train runs of one shape, each with its config, its seed's data and
its own randomness — and returns each member's final weights as plain arrays in
`build_model`'s order (kernel, bias of each Dense layer), which `load_weights` puts into a
standard Keras model. After every epoch it calls `on_epoch(epoch, metrics)` with the metrics
of each member still training (`loss`, `accuracy`, `val_loss`, `val_accuracy`, `epoch_seconds`
and, at the epochs in `score_epochs`, `test_loss` and `test_accuracy`); the callback may stop a
member by setting its `stopped` reason (diverged, pruned): the engine trains it no further and
returns None for it. Engines never log: experiments log through `tracking.TrainRun`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from pipeline.config.entry_points import TrainConfig
from pipeline.data.datasets import Dataset
from pipeline.models.spec import ModelSpec

Weights = list[np.ndarray]
EpochMetrics = dict[str, float]
OnEpoch = Callable[[int, dict[int, EpochMetrics]], None]  # epoch, {member index: metrics}
EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass(eq=False)
class Member:
    """One train run for an engine: its config, its seed's data, its run's tags, the epochs at
    which to score the test set, why it stopped early (empty while it trains) and its run."""

    config: TrainConfig
    dataset: Dataset
    tags: dict[str, str] = field(default_factory=dict)
    score_epochs: tuple[int, ...] = ()
    stopped: str = ""
    run_id: str = ""  # the run that logs it, once the experiment has created it

    @property
    def spec(self) -> ModelSpec:
        return model_spec(self.config, self.dataset)


def model_spec(config: TrainConfig, dataset: Dataset) -> ModelSpec:
    """The config's model for the dataset's images and classes."""
    return ModelSpec(
        input_shape=dataset.x_train.shape[1:],
        num_classes=len(dataset.class_names),
        hidden_units=config.hidden_units,
        dropout_rates=config.dropout_rates,
        recipe=config.recipe,
        max_norm=config.max_norm,
    )


class Engine(Protocol):
    """Trains members; `name` and `device` tag their runs (engines draw different random
    streams; a device, e.g. "cpu x2" or "NVIDIA H200", says where they trained)."""

    name: str
    device: str

    def fit(self, members: Sequence[Member], on_epoch: OnEpoch) -> list[Weights | None]: ...
