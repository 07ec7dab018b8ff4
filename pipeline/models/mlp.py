"""The notebook's MLP, built from a config. Pure: no data, no tracking.

The model takes raw 0-255 pixels in both recipes: `standard` scales them to [0, 1] inside the
model and ends in softmax; `seed` is the notebook exactly (raw pixels, sigmoid output), so a
logged model can be served or re-evaluated on images as they are.
"""

from __future__ import annotations

import keras

# Runs several batches per call into the compiled step: same numerics, fewer Python round trips.
STEPS_PER_EXECUTION = 32


def build_model(
    input_shape: tuple[int, ...],
    num_classes: int,
    hidden_units: tuple[int, ...],
    dropout_rates: tuple[float, ...],
    recipe: str = "standard",
    learning_rate: float = 0.001,
    steps_per_execution: int = STEPS_PER_EXECUTION,
    jit_compile: bool | str = "auto",
    max_norm: float = 0.0,
) -> keras.Model:
    """`max_norm` > 0 bounds the norm of each hidden unit's incoming weights (Keras' MaxNorm on
    the kernel's input axis), the constraint the dropout paper pairs with dropout."""
    constraint = keras.constraints.MaxNorm(max_norm) if max_norm else None
    layers = [keras.Input(shape=input_shape)]
    if recipe == "standard":
        layers.append(keras.layers.Rescaling(1 / 255))
    layers.append(keras.layers.Flatten())
    for units, rate in zip(hidden_units, dropout_rates, strict=True):
        layers.append(keras.layers.Dense(units, activation="relu", kernel_constraint=constraint))
        if rate > 0:
            layers.append(keras.layers.Dropout(rate))
    output_activation = "softmax" if recipe == "standard" else "sigmoid"
    layers.append(keras.layers.Dense(num_classes, activation=output_activation))
    model = keras.Sequential(layers, name="dropout_mlp")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
        jit_compile=jit_compile,  # auto: XLA with JAX, none for TensorFlow on a CPU
    )
    return model
