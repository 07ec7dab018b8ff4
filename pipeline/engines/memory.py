"""Whether runs trained together as a population fit in memory, estimated in one place: the
population engine refuses a fit that would not (ValueError), and the experiments refuse the
params that would ask for one with one line, before any run exists."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import jax
import psutil

from pipeline.config.entry_points import ModelDataConfig
from pipeline.config.study import StudyConfig
from pipeline.data.datasets import Dataset
from pipeline.engines.base import Member
from pipeline.engines.population_program import EVAL_CHUNK, Program, program_for

MEMORY_SHARE = 0.5  # of the memory available, at most this much for one population


@dataclass(frozen=True)
class Footprint:
    """Estimated bytes of a population of one program on one dataset's shape: per replica its
    weights, Adam moments, gradients and copies (6 times its parameters), its epoch's order on
    host and device, and its activations in a training step and an evaluation chunk; per
    distinct dataset its training and validation images and labels (the validation set twice:
    padded to chunks); shared, the test set."""

    per_replica: int
    per_dataset: int
    shared: int

    @classmethod
    def of(cls, program: Program, dataset: Dataset) -> Footprint:
        parameters = sum(fan_in * fan_out + fan_out for fan_in, fan_out in program.layers)
        units = program.layers[0][0] + sum(fan_out for _, fan_out in program.layers)
        per_replica = 4 * (
            6 * parameters
            + 2 * program.steps * program.batch_size
            + 4 * program.batch_size * units
            + 2 * EVAL_CHUNK * units
        )
        per_dataset = dataset.x_train.nbytes + 2 * dataset.x_val.nbytes
        per_dataset += 4 * (len(dataset.y_train) + 2 * len(dataset.y_val))
        return cls(per_replica, per_dataset, 2 * dataset.x_test.nbytes + 8 * len(dataset.y_test))


@dataclass(frozen=True)
class Budget:
    """The bytes a population may use on `devices`: MEMORY_SHARE of what each device has
    available where devices report their memory (GPUs: the replicas are split across them,
    the data is on each), else of the host's (every device's copies in one memory)."""

    devices: int
    per_device: bool
    available: int
    where: str

    @classmethod
    def of(cls, devices: Sequence[jax.Device]) -> Budget:
        stats = devices[0].memory_stats() or {}
        if "bytes_limit" in stats:
            available = stats["bytes_limit"] - stats.get("bytes_in_use", 0)
            where = f"each of {len(devices)} {devices[0].device_kind}"
            return cls(len(devices), True, available, where)
        return cls(len(devices), False, psutil.virtual_memory().available, "this host")

    def need(self, footprint: Footprint, replicas: int, datasets: int) -> int:
        """Bytes that `replicas` replicas on `datasets` distinct datasets take where it counts."""
        data = datasets * footprint.per_dataset + footprint.shared
        if self.per_device:
            return math.ceil(replicas / self.devices) * footprint.per_replica + data
        return replicas * footprint.per_replica + self.devices * data

    def fits(self, footprint: Footprint, replicas: int, datasets: int) -> bool:
        return self.need(footprint, replicas, datasets) <= MEMORY_SHARE * self.available

    def most(self, footprint: Footprint, datasets_per_replica: float) -> int:
        """The most replicas that fit, each bringing `datasets_per_replica` datasets (0 if
        none does)."""
        low, high = 0, 1
        while self.fits(footprint, high, math.ceil(high * datasets_per_replica)):
            low, high = high, 2 * high
        while high - low > 1:
            middle = (low + high) // 2
            fits = self.fits(footprint, middle, math.ceil(middle * datasets_per_replica))
            low, high = (middle, high) if fits else (low, middle)
        return low

    def shortfall(self, footprint: Footprint, replicas: int, datasets: int) -> str:
        """What `replicas` replicas would need and what there is, in words."""
        need = self.need(footprint, replicas, datasets)
        return (
            f"{replicas} replicas ({datasets} datasets) need about {need / 2**20:.0f} MiB "
            f"({footprint.per_replica / 2**20:.1f} MiB per replica, "
            f"{footprint.per_dataset / 2**20:.1f} MiB per dataset); {self.where} has "
            f"{self.available / 2**20:.0f} MiB available, of which a population may use "
            f"{MEMORY_SHARE:.0%}"
        )


def check_fits(config: ModelDataConfig, dataset: Dataset, together: int, datasets: int, param: str):
    """Refuse (the config's one-line error on `param`, before any run exists) `together` runs
    of the config's shape trained as one population on `datasets` distinct datasets of
    `dataset`'s shape, where the population engine would refuse them. The keras engine trains
    one run at a time."""
    if config.engine == "keras":
        return
    no_dropout = (0.0,) * len(config.hidden_units)  # the estimate does not depend on the rates
    program = program_for([Member(config.train_config(dropout_rates=no_dropout), dataset)])
    budget, footprint = Budget.of(jax.devices()), Footprint.of(program, dataset)
    if not budget.fits(footprint, together, datasets):
        most = budget.most(footprint, datasets / together)
        shortfall = budget.shortfall(footprint, together, datasets)
        limit = f"at most about {most}" if most else "such that one run fits, and none does"
        must_be = f"{limit} on this machine ({shortfall})"
        raise config.invalid(param, must_be, str(getattr(config, param)))


def check_study_fits(config: StudyConfig, dataset: Dataset):
    """`check_fits` for a study or a grid's cell: `replicas` of its runs at most train together,
    a seed's configs beside each other on its split."""
    runs = len(config.named_configs) * config.most_seeds
    together = min(config.replicas, runs)
    datasets = math.ceil(together / len(config.named_configs))
    check_fits(config, dataset, together, datasets, "replicas")
