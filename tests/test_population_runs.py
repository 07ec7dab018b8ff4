"""Runs trained together by the population engine, as the experiments log them: each a complete
child run whose model `evaluate` reproduces, failing alone, grouped by shape; study and tune on
top of it. (The engine's own numbers: tests/test_population.py.)"""

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
from pipeline.engines.population import PopulationEngine
from pipeline.experiments.evaluate import evaluate
from pipeline.experiments.train import (
    TrainingDiverged,
    engine_for,
    groups,
    train_group,
    train_members,
)
from pipeline.experiments.tune import tune

A = TrainConfig(
    dataset="digits", epochs=3, seed=0, dropout_rates=(0.5, 0.25, 0.0), engine="population"
)
B = dataclasses.replace(A, seed=1, dropout_rates=(0.0, 0.0, 0.0))
C = dataclasses.replace(A, seed=2, dropout_rates=(0.2, 0.2, 0.2), learning_rate=0.003)
PER_EPOCH = ("loss", "accuracy", "val_loss", "val_accuracy", "generalization_gap", "epoch_seconds")


def members(*configs: TrainConfig) -> list[Member]:
    return [Member(config, load_dataset(config), {"case": str(config.seed)}) for config in configs]


@pytest.fixture(scope="module")
def parent():
    with tracking.run("population tests", "population-tests") as run_id:
        pass  # the children are created and logged by id
    return run_id


@pytest.fixture(scope="module")
def together(parent):
    return train_group(members(A, B, C), parent, PopulationEngine())


def test_each_run_of_a_population_is_a_complete_train_run(together, parent, client):
    group_tags = set()
    for config, result in zip((A, B, C), together, strict=True):
        run = client.get_run(result.run_id)
        assert run.info.status == "FINISHED"
        assert run.data.params == config.to_params()
        assert run.info.run_name == config.run_name
        assert run.data.tags["mlflow.parentRunId"] == parent
        assert run.data.tags["engine"] == "population"
        for name in PER_EPOCH:
            steps = [metric.step for metric in client.get_metric_history(result.run_id, name)]
            assert sorted(steps) == [1, 2, 3], name
        assert {"test_accuracy", "test_macro_f1", "test_tied_top_fraction"} <= set(run.data.metrics)
        paths = {artifact.path for artifact in client.list_artifacts(result.run_id)}
        assert {"classification_report.txt", "confusion_matrix.png", "learning_curves.png"} <= paths
        assert len(run.inputs.dataset_inputs) == 3  # train, validation, test
        group_tags.add(run.data.tags["replica_group"])
    assert len(group_tags) == 1


def test_a_populations_model_is_a_standard_model_that_evaluate_reproduces(together):
    source = together[2]  # C: its own learning rate
    evaluated = evaluate(EvaluateConfig(run_id=source.run_id))
    for name in ("test_accuracy", "test_loss"):
        assert evaluated.metrics[name] == pytest.approx(source.test_metrics[name], abs=1e-6)


def test_a_diverging_run_fails_alone_and_train_members_names_it(parent, client):
    notebook = dataclasses.replace(A, recipe="notebook", epochs=2)
    diverging = dataclasses.replace(notebook, seed=1, learning_rate=1e30)
    group = members(notebook, diverging)
    with pytest.raises(TrainingDiverged, match=r"1 of 2 runs: loss became \w+ at epoch 1"):
        train_members(group, parent, replicas=2)
    healthy, failed = (client.get_run(member.run_id) for member in group)
    assert healthy.info.status == "FINISHED"
    assert len(client.get_metric_history(healthy.info.run_id, "loss")) == 2
    assert failed.info.status == "FAILED"
    assert "loss became" in failed.data.tags["failure_reason"]
    assert running_runs(client) == []


def test_groups_hold_one_shape_at_most_size_at_a_time():
    configs = [A, B, C, dataclasses.replace(A, epochs=4), dataclasses.replace(B, seed=5)]
    grouped = groups([Member(c, None) for c in configs], 2)
    assert [[m.config for m in group] for group in grouped] == [
        [A, B],
        [C, configs[4]],
        [configs[3]],
    ]


def test_max_norm_bounds_each_runs_hidden_units_in_its_logged_model(parent):
    bounded = [dataclasses.replace(c, epochs=1, max_norm=0.3) for c in (A, B)]
    for result in train_group(members(*bounded), parent, PopulationEngine()):
        model, _ = tracking.load_keras_model(f"runs:/{result.run_id}/model")
        hidden = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)][:-1]
        for layer in hidden:
            assert np.linalg.norm(layer.get_weights()[0], axis=0).max() <= 0.3 + 1e-5


def test_the_notebook_recipe_learns_in_a_population_as_with_keras(parent):
    """Its sigmoid outputs saturate: the loss must come from the logits, as Keras computes a
    single model's (a loss on the saturated outputs left every test image tied, 10% accuracy).
    Over 4 seeds: one seed's ties range from 10% to 70% on digits with either engine."""
    notebook = [dataclasses.replace(B, recipe="notebook", seed=seed) for seed in range(4)]
    population = train_group(members(*notebook), parent, PopulationEngine())
    alone = [dataclasses.replace(config, engine="keras") for config in notebook]
    one_at_a_time = train_group(members(*alone), parent, engine_for("keras"))

    def mean(results, name):
        return np.mean([result.test_metrics[name] for result in results])

    assert mean(population, "test_tied_top_fraction") < 0.5
    accuracy = mean(one_at_a_time, "test_accuracy")
    assert mean(population, "test_accuracy") > accuracy - 0.15


def test_study_in_populations_has_complete_paired_children_quietly(client):
    argv = ["study", "--dataset", "digits", "--epochs", "2", "--seeds", "2", "--replicas", "4"]
    result = subprocess.run(
        pipeline_command(*argv, "--study-name", "population"), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert not [line for line in result.stderr.splitlines() if any(s in line for s in TF_CHATTER)]
    parent = client.get_run(tracking.find_run("dropout-mlp-digits", {"study": "population"}))
    children = tracking.child_runs(parent.info.run_id)
    assert len(children) == 4 and all(run.info.status == "FINISHED" for run in children)
    assert {run.data.tags["engine"] for run in children} == {"population"}
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
