"""The builder reproduces the notebook's architecture in both recipes."""

import keras
import numpy as np
import pytest

from pipeline.models.mlp import build_model
from pipeline.models.spec import ModelSpec

pytestmark = pytest.mark.fast  # make test-fast

# Flatten 784 -> 100 -> 50 -> 25 -> 10, as in the notebook
NOTEBOOK_PARAMS = (784 * 100 + 100) + (100 * 50 + 50) + (50 * 25 + 25) + (25 * 10 + 10)


def layer_summary(model: keras.Model) -> list[tuple]:
    summary = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            summary.append(("dense", layer.units, layer.activation.__name__))
        elif isinstance(layer, keras.layers.Dropout):
            summary.append(("dropout", layer.rate))
        else:
            summary.append((type(layer).__name__.lower(),))
    return summary


@pytest.mark.parametrize("rates", [(0.0, 0.0, 0.0), (0.5, 0.25, 0.0)])
def test_notebook_recipe_is_the_notebook_model(rates):
    model = build_model(ModelSpec((28, 28), 10, (100, 50, 25), rates, recipe="notebook"))
    expected = [("flatten",), ("dense", 100, "relu")]
    expected += [("dropout", 0.5)] if rates[0] else []
    expected += [("dense", 50, "relu")]
    expected += [("dropout", 0.25)] if rates[1] else []
    expected += [("dense", 25, "relu"), ("dense", 10, "sigmoid")]
    assert layer_summary(model) == expected
    assert model.count_params() == NOTEBOOK_PARAMS
    assert model.loss == "sparse_categorical_crossentropy"
    assert isinstance(model.optimizer, keras.optimizers.Adam)


def test_standard_recipe_scales_inputs_and_ends_in_softmax():
    model = build_model(
        ModelSpec((28, 28), 10, (100, 50, 25), (0.5, 0.25, 0.0)), learning_rate=0.01
    )
    summary = layer_summary(model)
    assert summary[:2] == [("rescaling",), ("flatten",)]
    assert summary[-1] == ("dense", 10, "softmax")
    assert model.count_params() == NOTEBOOK_PARAMS
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    probabilities = model.predict(np.full((2, 28, 28), 255.0), verbose=0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_hidden_layers_follow_the_config():
    model = build_model(ModelSpec((8, 8), 10, (32, 16), (0.1, 0.0)))
    assert layer_summary(model)[2:] == [
        ("dense", 32, "relu"),
        ("dropout", 0.1),
        ("dense", 16, "relu"),
        ("dense", 10, "softmax"),
    ]


def test_max_norm_bounds_each_hidden_unit_s_incoming_weights():
    keras.utils.set_random_seed(0)  # fit shuffles: a seeded op under op determinism
    model = build_model(ModelSpec((8, 8), 10, (32, 16), (0.0, 0.0), max_norm=0.5))
    hidden = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)][:-1]
    assert [layer.kernel_constraint.max_value for layer in hidden] == [0.5, 0.5]
    x, y = np.random.default_rng(0).integers(0, 255, (64, 8, 8)), np.arange(64) % 10
    model.fit(x.astype("float32"), y, epochs=2, verbose=0)
    for layer in hidden:
        norms = np.linalg.norm(layer.kernel.numpy(), axis=0)  # one per unit, over its inputs
        assert norms.max() <= 0.5 + 1e-5
    assert model.layers[-1].kernel_constraint is None  # the output layer is free
    plain = build_model(ModelSpec((8, 8), 10, (32, 16), (0.0, 0.0)))
    assert all(layer.kernel_constraint is None for layer in plain.layers[2:])


@pytest.mark.parametrize("recipe", ["standard", "notebook"])
def test_numpy_inference_gives_the_keras_model_s_predictions_and_loss(recipe):
    """`forward.predict` (how a run is scored) equals Keras' predict and evaluate on real
    digits: probabilities within float32 rounding, the same classes, the same loss."""
    from sklearn.datasets import load_digits

    from pipeline.models import forward
    from pipeline.models.inputs import predict

    digits = load_digits()
    images = (digits.images * 16).clip(0, 255).astype(np.uint8)  # 0-255 pixels, as our data
    labels = digits.target
    spec = ModelSpec((8, 8), 10, (32, 16), (0.5, 0.0), recipe=recipe)
    keras.utils.set_random_seed(0)
    model = build_model(spec)
    model.fit(images, labels, epochs=2, batch_size=64, verbose=0)
    weights = [np.asarray(w) for w in model.get_weights()]
    keras_probabilities, keras_loss = predict(model, images, labels)
    probabilities, loss = forward.predict(spec, weights, images, labels)
    np.testing.assert_allclose(probabilities, keras_probabilities, atol=2e-6)
    assert (probabilities.argmax(1) == keras_probabilities.argmax(1)).all()
    assert loss == pytest.approx(keras_loss, rel=1e-5)
