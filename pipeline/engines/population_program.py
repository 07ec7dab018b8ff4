"""The population engine's compiled programs: the notebook MLP's math for one replica in plain
JAX, vmapped over the replica axis, one `jax.jit` program per epoch (a `lax.scan` over its
steps) and one per evaluation. Pure: arrays in, arrays out; no Keras, no tracking.

A replica's randomness depends only on its seed key, the epoch and the step: initial weights
from `fold_in(key, 0)`, dropout masks from `fold_in(fold_in(fold_in(key, epoch), step), layer)`.
Nothing reduces over the replica axis, so a replica's numbers never depend on its neighbours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from itertools import pairwise

import jax
import jax.numpy as jnp
import numpy as np

from pipeline.engines.base import Member

BETA_1, BETA_2, EPSILON = 0.9, 0.999, 1e-7  # Keras 3's Adam defaults
MAX_NORM_EPSILON = 1e-7  # Keras' backend epsilon in MaxNorm
EVAL_CHUNK = 1024  # examples per evaluation step


@dataclass(frozen=True)
class Program:
    """What a compiled program is specialised on (its static arguments): the Dense layers'
    (in, out) sizes, which hidden layers draw dropout masks (some replica's rate > 0), the
    recipe's input scaling and output (softmax or sigmoid), the max-norm (0: no constraint
    op), the batch size and the training examples per replica."""

    layers: tuple[tuple[int, int], ...]
    dropout_layers: tuple[bool, ...]
    scales_input: bool
    softmax: bool
    max_norm: float
    batch_size: int
    examples: int

    @property
    def steps(self) -> int:
        return -(-self.examples // self.batch_size)


def program_for(members: Sequence[Member]) -> Program:
    """The compiled programs' static shape for members of one shape."""
    config, spec = members[0].config, members[0].spec
    widths = (int(np.prod(spec.input_shape)), *spec.hidden_units, spec.num_classes)
    rates = np.array([member.config.dropout_rates for member in members])
    return Program(
        layers=tuple(pairwise(widths)),
        dropout_layers=tuple(bool(drawn) for drawn in (rates > 0).any(axis=0)),
        scales_input=spec.scales_input,
        softmax=spec.output_activation == "softmax",
        max_norm=float(spec.max_norm),
        batch_size=config.batch_size,
        examples=len(members[0].dataset.x_train),
    )


@partial(jax.jit, static_argnums=0)
def init_params(program: Program, keys: jax.Array) -> list[jax.Array]:
    """Per replica (keys (K, 2) uint32), Glorot-uniform kernels and zero biases, in
    `build_model`'s order: kernel, bias of each Dense layer."""

    def one(key_data):
        key = jax.random.fold_in(jax.random.wrap_key_data(key_data), 0)
        params = []
        for layer, (fan_in, fan_out) in enumerate(program.layers):
            limit = np.float32(np.sqrt(6.0 / (fan_in + fan_out)))
            kernel_key = jax.random.fold_in(key, layer)
            shape = (fan_in, fan_out)
            params.append(jax.random.uniform(kernel_key, shape, jnp.float32, -limit, limit))
            params.append(jnp.zeros((fan_out,), jnp.float32))
        return params

    return jax.vmap(one)(keys)


def _inputs(program: Program, images: jax.Array) -> jax.Array:
    x = images.astype(jnp.float32)
    return x * np.float32(1 / 255) if program.scales_input else x


def _dense(x, kernel, bias):
    """x @ kernel + bias, the bias added as a matmul by a column of ones: its gradient is then a
    matmul too, which XLA rounds alike for any number of replicas (the reduction that the
    broadcast's gradient is rounds differently with the replica count on a CPU)."""
    return x @ kernel + jnp.ones((x.shape[0], 1), x.dtype) @ bias[None]


def _logits(program: Program, params, x, key=None, thresholds=None, scales=None):
    """The output layer's logits; with a key, inverted dropout after each hidden layer that
    draws masks: keep where 32 random bits >= the replica's threshold (rate * 2**32)."""
    hidden = len(program.layers) - 1
    for layer in range(hidden):
        x = jax.nn.relu(_dense(x, params[2 * layer], params[2 * layer + 1]))
        if key is not None and program.dropout_layers[layer]:
            bits = jax.random.bits(jax.random.fold_in(key, layer), x.shape, jnp.uint32)
            x = jnp.where(bits >= thresholds[layer], x * scales[layer], 0.0)
    return _dense(x, params[-2], params[-1])


def _scores(program: Program, logits, labels):
    """Per example: cross-entropy of the logits (log-softmax, as Keras for either output) and
    whether the activated output's first maximum is the label (sigmoid's ties count)."""
    losses = -jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None], axis=1)[:, 0]
    outputs = jax.nn.softmax(logits) if program.softmax else jax.nn.sigmoid(logits)
    hits = (jnp.argmax(outputs, axis=1) == labels).astype(jnp.float32)
    return losses, hits


def _batch_loss(program, params, x, y, weight, key, thresholds, scales):
    """The batch's mean loss over its real examples (weight 1; padding 0), and the sums of
    loss and hits over them (dot products, rounded alike for any number of replicas)."""
    logits = _logits(program, params, x, key, thresholds, scales)
    losses, hits = _scores(program, logits, y)
    loss_sum = losses @ weight
    return loss_sum / jnp.sum(weight), (loss_sum, hits @ weight)


def _adam(params, moments, velocities, grads, learning_rate, t):
    """Keras 3's Adam update of every variable at iteration t (1-based)."""
    alpha = learning_rate * jnp.sqrt(1 - BETA_2**t) / (1 - BETA_1**t)
    new_params, new_moments, new_velocities = [], [], []
    for w, m, v, g in zip(params, moments, velocities, grads, strict=True):
        m = m + (g - m) * np.float32(1 - BETA_1)
        v = v + (jnp.square(g) - v) * np.float32(1 - BETA_2)
        new_params.append(w - (m * alpha) / (jnp.sqrt(v) + np.float32(EPSILON)))
        new_moments.append(m)
        new_velocities.append(v)
    return new_params, new_moments, new_velocities


def _max_norm(program: Program, params):
    """Keras' MaxNorm on each hidden kernel: each unit's incoming weights (axis 0) scaled to
    a norm of at most `max_norm`."""
    constrained = list(params)
    for layer in range(len(program.layers) - 1):
        kernel = params[2 * layer]
        norms = jnp.sqrt(jnp.sum(jnp.square(kernel), axis=0, keepdims=True))
        desired = jnp.clip(norms, 0, program.max_norm)
        constrained[2 * layer] = kernel * (desired / (np.float32(MAX_NORM_EPSILON) + norms))
    return constrained


def _replica_epoch(program, state, x_all, y_all, order, slot, key_data, rates, lr, epoch):
    """One replica's epoch: its `order` (padded to whole batches) of dataset `slot`'s examples.
    Returns its new state (params, moments, velocities) and its summed loss and hits."""
    batch, steps = program.batch_size, program.steps
    thresholds, scales = rates
    epoch_key = jax.random.fold_in(jax.random.wrap_key_data(key_data), epoch)
    grad = jax.grad(partial(_batch_loss, program), has_aux=True)

    def step(carry, i):
        (params, moments, velocities), (loss_sum, hit_sum) = carry
        start = i * batch
        rows = jax.lax.dynamic_slice_in_dim(order, start, batch)
        x, y = _inputs(program, x_all[slot, rows]), y_all[slot, rows]
        weight = (start + jnp.arange(batch) < program.examples).astype(jnp.float32)
        key = jax.random.fold_in(epoch_key, i)
        grads, (losses, hits) = grad(params, x, y, weight, key, thresholds, scales)
        t = ((epoch - 1) * steps + i + 1).astype(jnp.float32)
        params, moments, velocities = _adam(params, moments, velocities, grads, lr, t)
        if program.max_norm:
            params = _max_norm(program, params)
        return ((params, moments, velocities), (loss_sum + losses, hit_sum + hits)), None

    zero = jnp.zeros((), jnp.float32)
    (state, sums), _ = jax.lax.scan(step, (state, (zero, zero)), jnp.arange(steps))
    return state, sums


@partial(jax.jit, static_argnums=0, donate_argnums=1)
def train_epoch(program, state, x_all, y_all, orders, slots, keys, rates, lrs, epoch):
    """The population's epoch, one program: state (params, moments, velocities), each a list
    of (K, ...) arrays; datasets x_all (D, n, features) uint8, y_all (D, n) int32; orders
    (K, steps * batch); slots (K,); keys (K, 2); rates (thresholds, scales), each (K, hidden);
    lrs (K,). Returns the new state and each replica's mean loss and accuracy."""
    epoch_fn = partial(_replica_epoch, program)
    axes = (0, None, None, 0, 0, 0, 0, 0, None)
    state, (loss_sum, hit_sum) = jax.vmap(epoch_fn, in_axes=axes)(
        state, x_all, y_all, orders, slots, keys, rates, lrs, epoch
    )
    return state, loss_sum / program.examples, hit_sum / program.examples


@partial(jax.jit, static_argnums=0)
def evaluate(program, params, x_all, y_all, slots):
    """Each replica's mean loss and accuracy, without dropout, on dataset `slots[k]` of x_all
    (D, n, features) uint8 (the test set: D = 1), in chunks of EVAL_CHUNK examples."""
    n = x_all.shape[1]
    chunks = -(-n // EVAL_CHUNK)
    pad = chunks * EVAL_CHUNK - n
    x_all = jnp.pad(x_all, ((0, 0), (0, pad), (0, 0)))
    y_all = jnp.pad(y_all, ((0, 0), (0, pad)))
    weight = (jnp.arange(chunks * EVAL_CHUNK) < n).astype(jnp.float32)

    def replica(params, slot):
        def chunk(sums, i):
            rows = jnp.arange(EVAL_CHUNK) + i * EVAL_CHUNK
            x, y = _inputs(program, x_all[slot, rows]), y_all[slot, rows]
            losses, hits = _scores(program, _logits(program, params, x), y)
            w = weight[rows]
            return (sums[0] + losses @ w, sums[1] + hits @ w), None

        zero = jnp.zeros((), jnp.float32)
        (loss_sum, hit_sum), _ = jax.lax.scan(chunk, (zero, zero), jnp.arange(chunks))
        return loss_sum / n, hit_sum / n

    return jax.vmap(replica)(params, slots)
