"""The notebook's MLP, built from a `ModelSpec`. Pure: no data, no tracking.

The model takes raw 0-255 pixels in both recipes: `standard` scales them to [0, 1] inside the
model and ends in softmax; `notebook` is the notebook exactly (raw pixels, sigmoid output), so a
logged model can be served or re-evaluated on images as they are.
"""

from __future__ import annotations

import keras

from pipeline.models.spec import ModelSpec

# Runs several batches per call into the compiled step: same numerics, fewer Python round trips.
STEPS_PER_EXECUTION = 32


def build_model(
    spec: ModelSpec,
    learning_rate: float = 0.001,
    steps_per_execution: int = STEPS_PER_EXECUTION,
    jit_compile: bool | str = "auto",
) -> keras.Model:
    """The spec's model, compiled with Adam at `learning_rate`. A `max_norm` > 0 bounds the norm
    of each hidden unit's incoming weights (Keras' MaxNorm on the kernel's input axis), the
    constraint the dropout paper pairs with dropout. Its weights are, in order, the kernel and
    bias of each Dense layer: what the engines return."""
    constraint = keras.constraints.MaxNorm(spec.max_norm) if spec.max_norm else None
    layers = [keras.Input(shape=spec.input_shape)]
    if spec.scales_input:
        layers.append(keras.layers.Rescaling(1 / 255))
    layers.append(keras.layers.Flatten())
    for units, rate in zip(spec.hidden_units, spec.dropout_rates, strict=True):
        layers.append(keras.layers.Dense(units, activation="relu", kernel_constraint=constraint))
        if rate > 0:
            layers.append(keras.layers.Dropout(rate))
    layers.append(keras.layers.Dense(spec.num_classes, activation=spec.output_activation))
    model = keras.Sequential(layers, name="dropout_mlp")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
        jit_compile=jit_compile,  # auto: XLA with JAX, none for TensorFlow on a CPU
    )
    return model
