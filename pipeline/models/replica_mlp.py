"""K copies of the notebook's MLP trained as one Keras model with a replica axis. Pure: no data,
no tracking.

Input `(batch, K, *image)`, labels `(batch, K)`: row i holds replica k's own i-th example. Each
Dense is a kernel of shape (K, in, out) (one batched matmul), each replica has its own dropout
rate and random stream, and the loss is the sum of the replicas' mean losses, so replica k's
gradient is its own loss's gradient and Adam (elementwise, with one learning rate per replica)
updates it as it would a model of its own. Metrics are vectors: one value per replica.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

from pipeline.models.spec import ModelSpec


class ReplicaDense(keras.layers.Layer):
    """K independent Dense layers: (K, batch, in) -> (K, batch, out), one batched matmul."""

    def __init__(self, replicas: int, units: int, activation=None, max_norm=0.0, **kwargs):
        super().__init__(**kwargs)
        self.replicas, self.units = replicas, units
        self.activation = keras.activations.get(activation)
        # as `build_model`'s MaxNorm: each unit's incoming weights, here per replica (axis 1)
        self.constraint = keras.constraints.MaxNorm(max_norm, axis=1) if max_norm else None

    def build(self, input_shape):
        shape = (self.replicas, input_shape[-1], self.units)
        self.kernel = self.add_weight(
            shape=shape, initializer="glorot_uniform", name="kernel", constraint=self.constraint
        )
        self.bias = self.add_weight(shape=(self.replicas, self.units), initializer="zeros")

    def call(self, inputs):
        return self.activation(ops.matmul(inputs, self.kernel) + self.bias[:, None, :])


class ReplicaDropout(keras.layers.Layer):
    """Inverted dropout with replica k's rate and its own seeded random stream, so its masks
    do not depend on which replicas share the model."""

    def __init__(self, rates: Sequence[float], seeds: Sequence[int], **kwargs):
        super().__init__(**kwargs)
        self.rates = tuple(rates)
        self.generators = [keras.random.SeedGenerator(seed) for seed in seeds]

    def call(self, inputs, training=False):
        if not training or not any(self.rates):
            return inputs
        replicas = [
            keras.random.dropout(replica, rate, seed=generator) if rate > 0 else replica
            for replica, rate, generator in zip(
                ops.unstack(inputs), self.rates, self.generators, strict=True
            )
        ]
        return ops.stack(replicas)


def replica_crossentropy(y_true, logits):
    """Per example, the sum over replicas of the sparse categorical cross-entropy of the output
    layer's logits (as Keras computes a single model's softmax or sigmoid output's loss): its
    mean over a batch is the sum of the replicas' mean losses."""
    return ops.sum(crossentropy(y_true, logits), axis=-1)


def crossentropy(y_true, logits):
    return keras.losses.sparse_categorical_crossentropy(y_true, logits, from_logits=True)


class ReplicaMean(keras.metrics.Metric):
    """Per replica, the mean over examples of `fn(y_true, y_pred)` (shape (batch, K)): a
    vector of K values, e.g. each replica's accuracy."""

    def __init__(self, fn, replicas: int, name: str):
        super().__init__(name=name)
        self.fn = fn
        self.total = self.add_variable(shape=(replicas,), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = ops.cast(self.fn(y_true, y_pred), self.dtype)
        self.total.assign_add(ops.sum(values, axis=0))
        self.count.assign_add(ops.cast(ops.shape(values)[0], self.dtype))

    def result(self):
        return self.total / self.count


class ReplicaAdam(keras.optimizers.Adam):
    """Adam with one learning rate per replica: every variable's first axis is the replica.

    Keras' formula, with the constants 1 - beta in the variable's dtype as TensorFlow's fused
    Adam kernel has them. With TensorFlow and one learning rate for all replicas, that kernel
    does the update (one pass over each variable instead of ~9: ~20% faster steps on a CPU,
    where these updates are memory-bound); both ways give a replica the same numbers."""

    def __init__(self, learning_rates: Sequence[float], **kwargs):
        super().__init__(learning_rate=1.0, **kwargs)
        self.learning_rates = tuple(learning_rates)

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        dtype = variable.dtype
        step = ops.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = ops.cast(self.beta_1, dtype), ops.cast(self.beta_2, dtype)
        beta_1_power, beta_2_power = ops.power(beta_1, step), ops.power(beta_2, step)
        if keras.backend.backend() == "tensorflow" and len(set(self.learning_rates)) == 1:
            import tensorflow as tf

            tf.raw_ops.ResourceApplyAdam(
                var=variable.handle,
                m=m.value.handle,
                v=v.value.handle,
                beta1_power=beta_1_power,
                beta2_power=beta_2_power,
                lr=ops.cast(learning_rate, dtype) * self.learning_rates[0],
                beta1=beta_1,
                beta2=beta_2,
                epsilon=ops.cast(self.epsilon, dtype),
                grad=gradient,
            )
            return
        shape = (len(self.learning_rates),) + (1,) * (len(variable.shape) - 1)
        rates = ops.reshape(ops.convert_to_tensor(self.learning_rates, dtype), shape)
        alpha = rates * ops.cast(learning_rate, dtype) * ops.sqrt(1 - beta_2_power)
        alpha = alpha / (1 - beta_1_power)
        self.assign_add(m, (gradient - m) * (1 - beta_1))
        self.assign_add(v, (ops.square(gradient) - v) * (1 - beta_2))
        self.assign_sub(variable, (m * alpha) / (ops.sqrt(v) + ops.cast(self.epsilon, dtype)))


def build_replica_model(
    spec: ModelSpec,
    dropout_rates: Sequence[tuple[float, ...]],
    seeds: Sequence[int],
    learning_rates: Sequence[float],
    steps_per_execution: int = 1,
) -> keras.Model:
    """One model of len(seeds) replicas of the spec's shape (its own rates aside); replica k has
    `dropout_rates[k]` (one per hidden layer), `learning_rates[k]`, and draws its dropout masks
    from `seeds[k]`."""
    input_shape, hidden_units = spec.input_shape, spec.hidden_units
    replicas = len(seeds)
    inputs = keras.Input(shape=(replicas, *input_shape))
    x = ops.reshape(inputs, (-1, replicas, int(np.prod(input_shape))))
    x = ops.transpose(x, (1, 0, 2))  # replica axis first: batched matmuls
    if spec.scales_input:
        x = x / 255.0
    for layer, units in enumerate(hidden_units):
        x = ReplicaDense(replicas, units, "relu", spec.max_norm, name=f"dense_{layer}")(x)
        rates = [rates[layer] for rates in dropout_rates]
        layer_seeds = [seed * len(hidden_units) + layer for seed in seeds]
        x = ReplicaDropout(rates, layer_seeds, name=f"dropout_{layer}")(x)
    activation = keras.activations.get(spec.output_activation)
    x = ReplicaDense(replicas, spec.num_classes, name="output")(x)
    outputs = ops.transpose(x, (1, 0, 2))  # logits (batch, K, classes)

    def accuracy(y_true, logits):  # of the outputs: sigmoid's saturated ties count, as in train
        return keras.metrics.sparse_categorical_accuracy(y_true, activation(logits))

    model = keras.Model(inputs, outputs, name="replica_mlp")
    model.compile(
        optimizer=ReplicaAdam(learning_rates),
        loss=replica_crossentropy,
        metrics=[
            ReplicaMean(accuracy, replicas, "accuracy"),
            ReplicaMean(crossentropy, replicas, "xent"),
        ],
        steps_per_execution=steps_per_execution,
    )
    return model


def _replica_layers(replica_model: keras.Model) -> list[ReplicaDense]:
    return [layer for layer in replica_model.layers if isinstance(layer, ReplicaDense)]


def replica_weights(replica_model: keras.Model) -> list[list[np.ndarray]]:
    """Each replica's weights in `build_model`'s order: kernel and bias of each Dense."""
    arrays = [
        array.numpy()
        for layer in _replica_layers(replica_model)
        for array in (layer.kernel, layer.bias)
    ]
    return [[array[replica] for array in arrays] for replica in range(len(arrays[0]))]


def set_replica_weights(replica_model: keras.Model, replica: int, weights: list[np.ndarray]):
    """The inverse: a single MLP's weights (e.g. its seeded initial ones) into replica slot
    `replica`, so replica k starts where a model built with its seed starts."""
    layers = _replica_layers(replica_model)
    for layer, kernel_part, bias_part in zip(layers, weights[::2], weights[1::2], strict=True):
        kernel, bias = layer.kernel.numpy(), layer.bias.numpy()
        kernel[replica], bias[replica] = kernel_part, bias_part
        layer.kernel.assign(kernel)
        layer.bias.assign(bias)
