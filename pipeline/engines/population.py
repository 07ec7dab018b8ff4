"""`engine=population`: members of one shape trained together as a population in plain JAX.

Each replica is the notebook MLP with its own seed (initial weights, shuffle orders, dropout
masks), its own split of the data, its own dropout rates and learning rate; an epoch of the
whole population is one compiled program (`population_program.train_epoch`: a `lax.scan` over
the steps, vmapped over the replicas), split across every device JAX sees. It is plain JAX, not
Keras: this process's Keras backend is TensorFlow, whose variables Keras' stateless API cannot
trace inside `jax.lax.scan`. Replicas stopped by the epoch callback are dropped from the
population once half of it is stopped (the rest train on in a smaller compiled program);
until then they are computed and ignored.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from pipeline import runtime
from pipeline.config.validation import fields_with_role, role_key
from pipeline.engines.base import Member, OnEpoch, Weights
from pipeline.engines.memory import Budget, Footprint
from pipeline.engines.population_program import (
    Program,
    evaluate,
    init_params,
    program_for,
    train_epoch,
)


def epoch_orders(seeds: Sequence[int], n: int, epoch: int) -> np.ndarray:
    """(n, K): replica k's n training examples in the order its seed gives this epoch (a
    function of seed and epoch only)."""
    return np.stack([np.random.default_rng((seed, epoch)).permutation(n) for seed in seeds], axis=1)


def check_shape(members: Sequence[Member]):
    """Members of one fit must share the shape of the program they train in."""
    if not members:
        raise ValueError("a population needs at least one member")
    shapes = {role_key(m.config, "shape") for m in members}
    arrays = {(m.dataset.x_train.shape, m.dataset.x_val.shape) for m in members}
    if len(shapes) != 1 or len(arrays) != 1:
        shape = ", ".join(fields_with_role(type(members[0].config), "shape"))
        raise ValueError(f"members of a population must share {shape}")


def check_memory(members: Sequence[Member], devices: Sequence[jax.Device]):
    """Refuse (ValueError) a population whose estimate exceeds what it may use (`memory`)."""
    budget, footprint = Budget.of(devices), Footprint.of(program_for(members), members[0].dataset)
    datasets = len({id(member.dataset) for member in members})
    if not budget.fits(footprint, len(members), datasets):
        raise ValueError(
            f"a population does not fit: {budget.shortfall(footprint, len(members), datasets)}"
        )


def device_description(devices: Sequence[jax.Device]) -> str:
    """E.g. "cpu x2" or "NVIDIA H200": the devices' kind, and their count if more than one."""
    kind = devices[0].device_kind if devices[0].platform != "cpu" else "cpu"
    return kind if len(devices) == 1 else f"{kind} x{len(devices)}"


@dataclass
class _Data:
    """The members' distinct datasets stored once on every device, and each member's slot."""

    x_train: jax.Array
    y_train: jax.Array
    x_val: jax.Array
    y_val: jax.Array
    x_test: jax.Array
    y_test: jax.Array
    slots: np.ndarray  # (members,) each member's dataset

    @classmethod
    def of(cls, members: Sequence[Member], replicated: NamedSharding) -> _Data:
        distinct = {id(member.dataset): member.dataset for member in members}
        slot = {key: place for place, key in enumerate(distinct)}

        def stacked(name: str, dtype) -> jax.Array:
            arrays = [getattr(data, name) for data in distinct.values()]
            flat = np.stack([a.reshape(len(a), -1) if a.ndim > 1 else a for a in arrays])
            return jax.device_put(flat.astype(dtype), replicated)

        test = members[0].dataset
        return cls(
            stacked("x_train", np.uint8),
            stacked("y_train", np.int32),
            stacked("x_val", np.uint8),
            stacked("y_val", np.int32),
            jax.device_put(test.x_test.reshape(1, len(test.x_test), -1), replicated),
            jax.device_put(test.y_test.astype(np.int32)[None], replicated),
            np.array([slot[id(member.dataset)] for member in members], dtype=np.int32),
        )


def rows_for(replicas: int, devices: int) -> int:
    """Rows of the replica axis: a multiple of the device count. A lone run is one row (XLA
    then compiles its matmuls without the replica axis: rounded otherwise in the last bit, within
    the tolerance the tests state, and twice as fast as padding it to two rows)."""
    return max(devices, replicas + (-replicas % devices))


class _Replicas:
    """The rows of the population's replica axis: live members' indices, padded with copies
    of the first (computed, ignored) to `rows_for` rows, and their per-replica inputs on the
    devices, split along the replica axis."""

    def __init__(self, members: Sequence[Member], live: list[int], data: _Data, split):
        self.live = live
        self.rows = live + [live[0]] * (rows_for(len(live), split.mesh.size) - len(live))
        self.split = split
        configs = [members[index].config for index in self.rows]
        self.seeds = [config.seed for config in configs]
        rates = np.array([config.dropout_rates for config in configs], dtype=np.float64)
        thresholds = np.minimum(np.round(rates * 2.0**32), 2.0**32 - 1).astype(np.uint32)
        keys = np.stack([jax.random.key_data(jax.random.key(seed)) for seed in self.seeds])
        self.slots, self.keys, self.rates, self.lrs = jax.device_put(
            (
                data.slots[self.rows],
                keys,
                (thresholds, (1 / (1 - rates)).astype(np.float32)),
                np.array([config.learning_rate for config in configs], dtype=np.float32),
            ),
            split,
        )

    def orders(self, examples: int, padded: int, epoch: int) -> jax.Array:
        """(K, padded): each replica's shuffle of its examples this epoch (`epoch_orders`),
        padded with row 0 to whole batches."""
        orders = epoch_orders(self.seeds, examples, epoch).T.astype(np.int32)
        orders = np.pad(orders, ((0, 0), (0, padded - examples)))
        return jax.device_put(orders, self.split)


class PopulationEngine:
    """Trains members of one shape as one population (see the module); `device` describes the
    devices it uses, to tag runs. During `fit`, the epoch callback may read a live member's
    current weights with `weights(index)`."""

    name = "population"

    def __init__(self, devices: Sequence[jax.Device] | None = None):
        runtime.use_jax_cache()
        self.devices = list(devices or jax.devices())
        self.device = device_description(self.devices)
        mesh = Mesh(np.array(self.devices), ("replicas",))
        self._split = NamedSharding(mesh, PartitionSpec("replicas"))
        self._replicated = NamedSharding(mesh, PartitionSpec())
        self._replicas: _Replicas | None = None
        self._state = None

    def weights(self, index: int) -> Weights:
        """Member `index`'s current weights, in `build_model`'s order, as float32 arrays."""
        row = self._replicas.live.index(index)
        return [np.asarray(param[row], dtype=np.float32) for param in self._state[0]]

    def fit(self, members: Sequence[Member], on_epoch: OnEpoch) -> list[Weights | None]:
        check_shape(members)
        check_memory(members, self.devices)
        program = program_for(members)
        data = _Data.of(members, self._replicated)
        self._replicas = _Replicas(members, list(range(len(members))), data, self._split)
        params = init_params(program, self._replicas.keys)
        self._state = (params, *(jax.tree.map(jax.numpy.zeros_like, params) for _ in range(2)))
        live = [index for index, member in enumerate(members) if not member.stopped]
        for epoch in range(1, members[0].config.epochs + 1):
            self._compact(members, live, data)
            if not live:
                break
            on_epoch(epoch, self._epoch(members, program, data, epoch))
            live = [index for index in live if not members[index].stopped]
        self._compact(members, live, data)
        results = [None] * len(members)
        for index in live:
            results[index] = self.weights(index)
        self._replicas = self._state = None
        return results

    def _compact(self, members: Sequence[Member], live: list[int], data: _Data):
        """Drop stopped members' rows once the live ones fit in fewer (padded) rows."""
        replicas = self._replicas
        padded = rows_for(len(live), self._split.mesh.size)
        if not live or padded >= len(replicas.rows):
            return
        keep = np.array([replicas.live.index(index) for index in live])
        keep = np.pad(keep, (0, padded - len(live)), constant_values=keep[0])
        self._replicas = _Replicas(members, live, data, self._split)
        self._state = jax.tree.map(lambda a: jax.device_put(a[keep], self._split), self._state)

    def _epoch(self, members, program: Program, data: _Data, epoch: int) -> dict:
        """Train every row one epoch and score the live ones; their metrics by member index."""
        replicas = self._replicas
        started = time.perf_counter()
        orders = replicas.orders(program.examples, program.steps * program.batch_size, epoch)
        self._state, loss, accuracy = train_epoch(
            program,
            self._state,
            data.x_train,
            data.y_train,
            orders,
            replicas.slots,
            replicas.keys,
            replicas.rates,
            replicas.lrs,
            np.int32(epoch),
        )
        val = evaluate(program, self._state[0], data.x_val, data.y_val, replicas.slots)
        values = {"loss": loss, "accuracy": accuracy, "val_loss": val[0], "val_accuracy": val[1]}
        values = {name: np.asarray(value) for name, value in values.items()}
        trained = [index for index in replicas.live if not members[index].stopped]
        seconds = (time.perf_counter() - started) / len(trained)
        if any(epoch in members[index].score_epochs for index in trained):
            zeros = jax.device_put(np.zeros(len(replicas.rows), np.int32), self._split)
            test = evaluate(program, self._state[0], data.x_test, data.y_test, zeros)
            values |= {"test_loss": np.asarray(test[0]), "test_accuracy": np.asarray(test[1])}
        metrics = {}
        for index in trained:
            row = replicas.live.index(index)
            scored = epoch in members[index].score_epochs
            names = [name for name in values if scored or not name.startswith("test_")]
            metrics[index] = {name: float(values[name][row]) for name in names}
            metrics[index]["epoch_seconds"] = seconds
        return metrics
