"""The population engine (`pipeline.engines.population`) on digits: a replica's numbers are its
own (bit for bit on a CPU, whatever its neighbours, their count, their fate or the epochs left),
its weights are a standard Keras model's, and its accuracy is Keras' within seed noise."""

import dataclasses
import json
import math
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from helpers import PROJECT_ROOT

from pipeline.config.entry_points import ParameterError, TrainConfig
from pipeline.data.datasets import load_dataset
from pipeline.engines.base import Member
from pipeline.engines.population import PopulationEngine

DATASETS = {}


def dataset(seed: int):
    """One Dataset object per seed, shared by the members of that seed."""
    if seed not in DATASETS:
        DATASETS[seed] = load_dataset(TrainConfig(dataset="digits", seed=seed))
    return DATASETS[seed]


def member(seed=1, rates=(0.5, 0.25, 0.0), learning_rate=1e-3, epochs=3, scored=(), **config):
    """A digits member; the test set scored at its last epoch and at the epochs `scored`."""
    config = TrainConfig(
        dataset="digits", seed=seed, epochs=epochs, dropout_rates=rates,
        learning_rate=learning_rate, **config,
    )  # fmt: skip
    return Member(config, dataset(seed), score_epochs=(*scored, epochs))


def fit(members, stop=None, engine=None):
    """Each member's weights (None if stopped) and its metrics per epoch (without the timing);
    `stop(epoch, index, metrics)` returns a reason to stop a member, or ''."""
    history = {index: [] for index in range(len(members))}

    def on_epoch(epoch, metrics):
        for index, values in metrics.items():
            history[index].append({k: v for k, v in values.items() if k != "epoch_seconds"})
            if stop:
                members[index].stopped = stop(epoch, index, values)

    weights = (engine or PopulationEngine()).fit(members, on_epoch)
    return weights, history


def same_weights(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


# A replica's numbers do not depend on its neighbours, but on a CPU XLA rounds some of the
# batched matmuls of a replica row differently from row 0's (the last bit, depending on the
# row and the data), which 3 digits epochs grow to < 1e-6 in the weights (measured: 9e-8).
# Hence these tolerances beside others; runs with the same rows are bit-identical.
WEIGHT_TOLERANCE, LOSS_RTOL, ACCURACY_TOLERANCE = 1e-5, 1e-5, 3 / 450  # 3 of 450 test images


def close_weights(a, b) -> bool:
    return all(np.allclose(x, y, rtol=0, atol=WEIGHT_TOLERANCE) for x, y in zip(a, b, strict=True))


def close_history(a, b) -> bool:
    """Epoch metrics alike: losses within LOSS_RTOL, accuracies within ACCURACY_TOLERANCE."""
    if len(a) != len(b) or any(x.keys() != y.keys() for x, y in zip(a, b, strict=True)):
        return False
    return all(
        math.isclose(x[k], y[k], rel_tol=LOSS_RTOL)
        if "loss" in k
        else abs(x[k] - y[k]) <= ACCURACY_TOLERANCE
        for x, y in zip(a, b, strict=True)
        for k in x
    )


def test_a_replica_trains_alike_alone_and_beside_others():
    """Within the tolerances above (alone, a run is a one-row program, which XLA compiles
    without the replica axis: measured, its val_loss differs in the 7th digit); bit-identical
    in the same row of populations of other neighbours."""
    alone_weights, alone = fit([member()])
    weights, beside = fit([member(2, (0.2, 0.0, 0.0)), member(), member(3, learning_rate=3e-3)])
    assert close_history(beside[1], alone[0])
    assert close_weights(weights[1], alone_weights[0])
    first_weights, first = fit([member(), member(2, (0.2, 0.0, 0.0))])
    other_weights, other = fit([member(), member(3, learning_rate=3e-3)])
    assert close_history(first[0], alone[0]) and close_weights(first_weights[0], alone_weights[0])
    assert first[0] == other[0] and same_weights(first_weights[0], other_weights[0])


def test_same_seeds_give_identical_weights_and_metrics():
    first = fit([member(), member(2, (0.0, 0.0, 0.0))])
    second = fit([member(), member(2, (0.0, 0.0, 0.0))])
    assert first[1] == second[1]
    assert all(same_weights(a, b) for a, b in zip(first[0], second[0], strict=True))


def test_the_state_after_epoch_e_does_not_depend_on_the_epochs_left():
    """A run of 2 epochs equals the first 2 epochs of a run of 3: metrics and weights (read
    by the callback after epoch 2)."""
    short_weights, short = fit([member(epochs=2)])
    engine, at_two = PopulationEngine(), []

    def on_epoch(epoch, metrics):
        if epoch == 2:
            at_two.append(engine.weights(0))

    _, long = fit([member(epochs=3, scored=(2,))])
    engine.fit([member(epochs=3)], on_epoch)
    assert long[0][:2] == short[0]
    assert same_weights(at_two[0], short_weights[0])


def test_a_diverging_replica_is_reported_and_leaves_the_others_alike():
    def stop_diverged(epoch, index, metrics):
        return "" if math.isfinite(metrics["loss"]) else "diverged"

    others = [member(), member(2)]
    weights, history = fit([others[0], member(3, learning_rate=1e30), others[1]], stop_diverged)
    alone_weights, alone = fit([member(), member(2)])
    assert not math.isfinite(history[1][-1]["loss"]) and weights[1] is None
    assert history[0] == alone[0] and close_history(history[2], alone[1])
    assert same_weights(weights[0], alone_weights[0])
    assert close_weights(weights[2], alone_weights[1])


def test_stopped_members_get_none_and_their_neighbours_train_on_alike():
    """Stopping two of three at epoch 1 also drops them from the program (fewer rows)."""
    members = [member(), member(2), member(3)]
    weights, history = fit(members, lambda epoch, index, _: "pruned" if index != 1 else "")
    alone_weights, alone = fit([member(2)])
    assert weights[0] is None and weights[2] is None
    assert len(history[0]) == 1 and close_history(history[1], alone[0])
    assert close_weights(weights[1], alone_weights[0])


@pytest.mark.parametrize("config", [{}, {"recipe": "notebook"}, {"max_norm": 3.0}])
def test_the_weights_load_into_a_keras_model_with_the_engines_test_accuracy(config):
    from pipeline.models.mlp import build_model

    members = [member(**config), member(2, (0.0, 0.3, 0.0), **config)]
    weights, history = fit(members)
    for index, m in enumerate(members):
        model = build_model(m.spec)
        model.set_weights(weights[index])
        _, accuracy = model.evaluate(
            m.dataset.x_test.astype("float32"), m.dataset.y_test, verbose=0, batch_size=1024
        )
        assert abs(accuracy - history[index][-1]["test_accuracy"]) <= 1e-6


def test_two_devices_give_the_metrics_of_one():
    """Three replicas split over two simulated CPU devices (four rows, one ignored): the
    metrics of one device, within the tolerances above."""
    script = (
        "import json, sys; sys.path.insert(0, 'tests');"
        "from pipeline import runtime; runtime.setup('tensorflow');"
        "import test_population as t;"
        "engine = t.PopulationEngine();"
        "_, history = t.fit([t.member(), t.member(2), t.member(3)], engine=engine);"
        "print(json.dumps([engine.device, history]))"
    )
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    output = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, env=env, capture_output=True,
        text=True, check=True,
    )  # fmt: skip
    device, history = json.loads(output.stdout.strip().splitlines()[-1])
    _, one = fit([member(), member(2), member(3)])
    assert device == "cpu x2"
    assert all(close_history(history[str(index)], one[index]) for index in range(3))


def test_it_refuses_a_population_that_does_not_fit(monkeypatch):
    import psutil

    class Memory:
        available = 10 * 2**20

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Memory)
    with pytest.raises(ValueError, match="does not fit: 8 replicas"):
        PopulationEngine().fit([member()] * 8, lambda epoch, metrics: None)


@pytest.mark.fast
@pytest.mark.parametrize("per_device, devices", [(False, 1), (False, 2), (True, 1), (True, 4)])
def test_most_is_the_largest_population_that_fits(per_device, devices):
    from pipeline.engines.memory import Budget, Footprint

    footprint = Footprint(per_replica=7, per_dataset=5, shared=3)
    budget = Budget(devices, per_device, available=2000, where="here")
    for ratio in (1.0, 0.5, 0.1):
        most = budget.most(footprint, ratio)
        assert budget.fits(footprint, most, math.ceil(most * ratio))
        assert not budget.fits(footprint, most + 1, math.ceil((most + 1) * ratio))


@pytest.mark.fast
@pytest.mark.parametrize("available_mib", [100, 400])
def test_a_study_is_refused_up_front_where_the_engine_would_refuse_it(monkeypatch, available_mib):
    """The study's check (before any run) and the engine's (at its fit) are one estimate: the
    most replicas the study allows fit the engine, one more would not (each seed's split its
    own dataset, two configs a seed)."""
    import psutil

    from pipeline.config.study import StudyConfig
    from pipeline.engines.memory import Budget, Footprint, check_study_fits
    from pipeline.engines.population import check_memory
    from pipeline.engines.population_program import program_for

    memory = psutil.virtual_memory()._replace(available=available_mib * 2**20)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: memory)
    study = StudyConfig(dataset="mnist_5k", seeds=1000, replicas=100000)
    data = load_dataset(study)
    with pytest.raises(ParameterError, match="replicas' parameter of study must be at most ab"):
        check_study_fits(study, data)
    budget, members = Budget.of(jax.devices()), [Member(study.train_config(), data)]
    most = budget.most(Footprint.of(program_for(members), data), 0.5)
    assert most > 0
    check_study_fits(dataclasses.replace(study, replicas=most), data)
    with pytest.raises(ParameterError):
        check_study_fits(dataclasses.replace(study, replicas=most + 2), data)

    def population(runs):  # a seed's two configs on its own split (a copy: another dataset)
        splits = [dataclasses.replace(data) for _ in range(math.ceil(runs / 2))]
        return [Member(study.train_config(), split) for split in splits for _ in "ab"][:runs]

    check_memory(population(most), jax.devices())
    with pytest.raises(ValueError, match="does not fit"):
        check_memory(population(most + 2), jax.devices())


def test_members_must_share_one_shape():
    with pytest.raises(ValueError, match="must share"):
        PopulationEngine().fit([member(), member(epochs=2)], lambda epoch, metrics: None)


@pytest.mark.slow
@pytest.mark.parametrize("rates", [(0.0, 0.0, 0.0), (0.5, 0.25, 0.0)])
def test_its_mean_test_accuracy_is_keras_within_seed_noise(rates):
    """Over 10 seeds, 5 epochs: |mean difference| within 3 standard errors."""
    import keras

    from pipeline.models.mlp import build_model

    seeds = range(10)
    members = [member(seed, rates, epochs=5) for seed in seeds]
    _, history = fit(members)
    ours = [history[index][-1]["test_accuracy"] for index in range(len(members))]
    theirs = []
    for m in members:
        keras.utils.set_random_seed(m.config.seed)
        model = build_model(m.spec)
        x = m.dataset.x_train.astype("float32")
        model.fit(x, m.dataset.y_train, batch_size=32, epochs=5, verbose=0)
        x_test = m.dataset.x_test.astype("float32")
        theirs.append(model.evaluate(x_test, m.dataset.y_test, verbose=0)[1])
    error = math.sqrt(np.var(ours, ddof=1) / len(ours) + np.var(theirs, ddof=1) / len(theirs))
    assert abs(np.mean(ours) - np.mean(theirs)) <= 3 * max(error, 1e-3)
