"""The notebook MLP's inference in NumPy, from its weights: what scoring a run needs, without
building, tracing or calling a Keras model. Pure: no tracking.

It computes what `build_model(spec)` computes at inference (dropout off): Dense relu layers on
the (scaled) flattened pixels, then softmax or sigmoid; and the loss Keras reports for either
output, the cross-entropy of the output layer's logits.
"""

from __future__ import annotations

import numpy as np

from pipeline.models.spec import ModelSpec

CHUNK = 4096  # images per matrix product: bounds the activations' memory


def logits(spec: ModelSpec, weights: list[np.ndarray], images: np.ndarray) -> np.ndarray:
    """The output layer's pre-activations of `images` (raw 0-255 pixels), in float32."""
    x = images.reshape(len(images), -1).astype(np.float32)
    if spec.scales_input:
        x = x * np.float32(1 / 255)
    kernels, biases = weights[0::2], weights[1::2]
    for kernel, bias in zip(kernels[:-1], biases[:-1], strict=True):
        x = np.maximum(x @ kernel + bias, 0)
    return x @ kernels[-1] + biases[-1]


def predict(
    spec: ModelSpec, weights: list[np.ndarray], images: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, float]:
    """Class probabilities of `images` and the mean cross-entropy against `labels`, as Keras'
    `predict` and `evaluate` give them."""
    parts = [logits(spec, weights, images[i : i + CHUNK]) for i in range(0, len(images), CHUNK)]
    z = np.concatenate(parts).astype(np.float64)
    shifted = z - z.max(axis=1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = float(-log_softmax[np.arange(len(labels)), labels].mean())
    if spec.output_activation == "softmax":
        probabilities = np.exp(log_softmax)
    else:
        probabilities = 1 / (1 + np.exp(-z))
    return probabilities.astype(np.float32), loss
