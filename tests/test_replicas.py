"""Runs trained together as one replica model: each a complete child run, independent of its
neighbours, deterministic, failing alone; study and tune on top of it."""

import dataclasses
import subprocess

import keras
import numpy as np
import pytest
from helpers import TF_CHATTER, assert_rejected, pipeline_command, running_runs

from pipeline import cli, tracking
from pipeline.config.entry_points import EvaluateConfig, TrainConfig
from pipeline.config.tune import TuneConfig
from pipeline.data.datasets import load_dataset
from pipeline.engines.base import Member
from pipeline.engines.replica_data import epoch_orders, replica_arrays, replica_batches
from pipeline.engines.replicas import ReplicaEngine
from pipeline.experiments.evaluate import evaluate
from pipeline.experiments.train import (
    TrainingDiverged,
    groups,
    train,
    train_group,
    train_members,
)
from pipeline.experiments.tune import tune

A = TrainConfig(
    dataset="digits", epochs=3, seed=0, dropout_rates=(0.5, 0.25, 0.0), engine="replicas"
)
B = dataclasses.replace(A, seed=1, dropout_rates=(0.0, 0.0, 0.0))
C = dataclasses.replace(A, seed=2, dropout_rates=(0.2, 0.2, 0.2), learning_rate=0.003)
PER_EPOCH = ("loss", "accuracy", "val_loss", "val_accuracy", "generalization_gap", "epoch_seconds")
# A alone and A beside B and C differ by float rounding only: measured up to 3.5e-7 relative
# (3 epochs on digits); the tolerance leaves room for other CPUs' kernels.
TOLERANCE = 1e-5


def members(*configs: TrainConfig) -> list[Member]:
    return [Member(config, load_dataset(config), {"case": str(config.seed)}) for config in configs]


@pytest.fixture(scope="module")
def parent():
    with tracking.run("replica tests", "replica-tests") as run_id:
        pass  # the children are created and logged by id
    return run_id


@pytest.fixture(scope="module")
def alone_and_together(parent):
    alone = train_group(members(A), parent, ReplicaEngine())
    together = train_group(members(A, B, C), parent, ReplicaEngine())
    return alone[0], together


def test_a_replica_does_not_depend_on_its_neighbours(alone_and_together):
    alone, (together, *_) = alone_and_together
    for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(together.history[name], alone.history[name], rtol=TOLERANCE)
    for name in ("test_loss", "test_accuracy", "test_macro_f1"):
        assert together.test_metrics[name] == pytest.approx(alone.test_metrics[name], TOLERANCE)


def test_each_replica_is_a_complete_train_run(alone_and_together, parent, client):
    _, together = alone_and_together
    group_tags = set()
    for config, result in zip((A, B, C), together, strict=True):
        run = client.get_run(result.run_id)
        assert run.info.status == "FINISHED"
        assert run.data.params == config.to_params()
        assert run.info.run_name == config.run_name
        assert run.data.tags["mlflow.parentRunId"] == parent
        for name in PER_EPOCH:
            steps = [metric.step for metric in client.get_metric_history(result.run_id, name)]
            assert sorted(steps) == [1, 2, 3], name
        assert {"test_accuracy", "test_macro_f1", "test_tied_top_fraction"} <= set(run.data.metrics)
        paths = {artifact.path for artifact in client.list_artifacts(result.run_id)}
        assert {"classification_report.txt", "confusion_matrix.png", "learning_curves.png"} <= paths
        assert len(run.inputs.dataset_inputs) == 3  # train, validation, test
        group_tags.add(run.data.tags["replica_group"])
    assert len(group_tags) == 1


def test_the_replicas_model_is_a_standard_model_that_evaluate_reproduces(alone_and_together):
    _, together = alone_and_together
    source = together[2]  # C: its own learning rate
    evaluated = evaluate(EvaluateConfig(run_id=source.run_id))
    for name in ("test_accuracy", "test_loss"):
        assert evaluated.metrics[name] == pytest.approx(source.test_metrics[name], abs=1e-6)


def test_the_same_seeds_give_identical_metrics(alone_and_together, parent):
    _, together = alone_and_together
    again = train_group(members(A, B, C), parent, ReplicaEngine())
    for first, second in zip(together, again, strict=True):
        for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert first.history[name] == second.history[name]
        assert first.test_metrics == second.test_metrics


def test_a_diverging_replica_fails_alone(parent, client):
    notebook = dataclasses.replace(A, recipe="notebook", epochs=2)
    diverging = dataclasses.replace(notebook, seed=1, learning_rate=1e10)
    group = members(notebook, diverging)
    with pytest.raises(TrainingDiverged, match="loss became nan at epoch 1"):
        train_members(group, parent, replicas=2)
    healthy, failed = (client.get_run(member.run_id) for member in group)
    assert healthy.info.status == "FINISHED"
    assert len(client.get_metric_history(healthy.info.run_id, "loss")) == 2
    assert failed.info.status == "FAILED"
    assert "loss became nan" in failed.data.tags["failure_reason"]
    assert running_runs(client) == []


def test_groups_hold_one_shape_at_most_size_at_a_time():
    configs = [A, B, C, dataclasses.replace(A, epochs=4), dataclasses.replace(B, seed=5)]
    grouped = groups([Member(c, None) for c in configs], 2)
    assert [[m.config for m in group] for group in grouped] == [
        [A, B],
        [C, configs[4]],
        [configs[3]],
    ]


def test_study_with_replicas_has_complete_paired_children_quietly(client):
    argv = ["study", "--dataset", "digits", "--epochs", "2", "--seeds", "2", "--replicas", "4"]
    result = subprocess.run(
        pipeline_command(*argv, "--study-name", "replicas"), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert not [line for line in result.stderr.splitlines() if any(s in line for s in TF_CHATTER)]
    parent = client.get_run(tracking.find_run("dropout-mlp-digits", {"study": "replicas"}))
    children = tracking.child_runs(parent.info.run_id)
    assert len(children) == 4 and all(run.info.status == "FINISHED" for run in children)
    assert len({run.data.tags["replica_group"] for run in children}) == 1
    assert parent.data.params["replicas"] == "4"


def test_tune_with_trial_seeds_prunes_and_reports_the_mean(client):
    config = TuneConfig(
        dataset="digits",
        epochs=3,
        n_trials=4,
        trial_seeds=2,
        pruner_startup_trials=1,
        final_seeds=0,
        study_name="trial-seeds",
    )
    result = tune(config)
    for trial in result.trials:
        assert len(trial.user_attrs.get("seed_best_val_accuracy", [0, 0])) == 2
    parent_id = result.user_attrs["mlflow_parent_run_id"]
    runs = tracking.child_runs(parent_id)
    assert len(runs) == 2 * len(result.trials)
    for trial in result.trials:
        seeds = [run for run in runs if run.data.tags["trial_number"] == str(trial.number)]
        assert sorted(run.data.tags["trial_seed"] for run in seeds) == ["0", "1"]
        if trial.state.name == "COMPLETE":
            curves = [tracking.metric_history(run.info.run_id, "val_accuracy") for run in seeds]
            assert trial.value == pytest.approx(np.mean(curves, axis=0).max())
        else:
            assert all(run.info.status == "KILLED" for run in seeds)
    summary = client.get_run(parent_id).data.tags["mlflow.note.content"]
    assert "Over its 2 seeds the best trial" in summary
    assert running_runs(client) == []


def test_more_runs_together_than_memory_holds_exits_2(capsys, client):
    argv = ["study", "--dataset", "digits", "--seeds", "100000000", "--replicas", "100000000"]
    assert_rejected(argv, "The 'replicas' parameter of study must be at most", capsys, client)


def test_replicas_above_the_runs_means_all_of_them(capsys):
    argv = ["study", "--dataset", "digits", "--epochs", "1", "--seeds", "2"]
    assert cli.main([*argv, "--replicas", "1000000", "--study-name", "all-together"]) == 0
    assert "epoch 1/1  4 runs" in capsys.readouterr().out


def test_max_norm_bounds_each_replicas_hidden_units(parent):
    bounded = [dataclasses.replace(c, epochs=1, max_norm=0.3) for c in (A, B)]
    for result in train_group(members(*bounded), parent, ReplicaEngine()):
        model, _ = tracking.load_keras_model(f"runs:/{result.run_id}/model")
        hidden = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)][:-1]
        for layer in hidden:
            assert np.linalg.norm(layer.get_weights()[0], axis=0).max() <= 0.3 + 1e-5


def test_the_notebook_recipe_learns_in_a_group_as_alone(parent):
    """Its sigmoid outputs saturate: the loss must come from the logits, as Keras computes a
    single model's (a loss on the saturated outputs left every test image tied, 10% accuracy)."""
    notebook = dataclasses.replace(B, recipe="notebook", epochs=3)
    [grouped] = train_group(members(notebook), parent, ReplicaEngine())
    single = train(notebook, load_dataset(notebook), parent)
    assert grouped.test_metrics["test_tied_top_fraction"] < 0.5
    assert grouped.test_metrics["test_accuracy"] > single.test_metrics["test_accuracy"] - 0.15


def test_replicas_of_one_seed_share_one_copy_of_its_split():
    seed_0, seed_1 = (load_dataset(dataclasses.replace(A, seed=seed)) for seed in (0, 1))
    images = [seed_0.x_train, seed_1.x_train, seed_0.x_train]
    *arrays, firsts = replica_arrays(images, [seed_0.y_train, seed_1.y_train, seed_0.y_train])
    n = len(seed_0.x_train)
    assert len(arrays[0]) == 2 * n and firsts.tolist() == [0, n, 0]
    orders = epoch_orders([0, 1, 0], n, epoch=1)
    data = replica_batches((*arrays, firsts), orders, 32)
    batch = next(iter(data["x"]))[0] if "y" not in data else data["x"][:32]
    for replica, own in enumerate(images):  # each replica's own examples in its own order
        np.testing.assert_array_equal(np.asarray(batch)[:, replica], own[orders[:32, replica]])
