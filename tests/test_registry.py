"""tune's `register_as`: the best config's model in the MLflow model registry, alias champion."""

import mlflow
import pytest
from helpers import running_runs

from pipeline import cli
from pipeline.config.tune import TuneConfig
from pipeline.data.datasets import load_dataset
from pipeline.experiments.tune import tune

SMALL = dict(dataset="digits", epochs=2, n_trials=2, pruner="none", seed=0)


def parent_run(client, study_name: str):
    experiment = client.get_experiment_by_name("dropout-mlp-digits")
    query = f"tags.study = '{study_name}' and tags.entry_point = 'tune'"
    runs = client.search_runs([experiment.experiment_id], query)
    [parent] = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    return parent


@pytest.fixture(scope="module")
def registered_study():
    config = TuneConfig(**SMALL, final_seeds=1, study_name="registered", register_as="digits-mlp")
    return config, tune(config)


def test_champion_is_the_tuned_run_of_the_first_fresh_seed(registered_study, client):
    parent = parent_run(client, "registered")
    champion = client.get_model_version_by_alias("digits-mlp", "champion")
    tuned = client.get_run(champion.run_id)
    assert tuned.data.tags["final_config"] == "tuned" and tuned.data.tags["seed"] == "1"
    assert tuned.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert tuned.data.params["dropout_rates"] == parent.data.tags["best_dropout_rates"]
    assert parent.data.tags["registered_model"] == f"digits-mlp/{champion.version}"


def test_champion_alias_loads_and_predicts():
    dataset = load_dataset(TuneConfig(dataset="digits"))
    model = mlflow.keras.load_model("models:/digits-mlp@champion")
    probabilities = model.predict(dataset.x_test.astype("float32"), verbose=0)
    assert probabilities.shape == (len(dataset.y_test), 10)
    assert (probabilities.argmax(axis=1) == dataset.y_test).mean() > 0.5  # 2 epochs learn some


def test_rerun_registers_no_new_version(registered_study, client):
    config, _ = registered_study
    tune(config)
    versions = client.search_model_versions("name='digits-mlp'")
    assert [int(version.version) for version in versions] == [1]


def test_without_fresh_seeds_the_best_trial_is_registered(client):
    study = tune(TuneConfig(**SMALL, final_seeds=0, study_name="trials-only", register_as="best"))
    champion = client.get_model_version_by_alias("best", "champion")
    run = client.get_run(champion.run_id)
    assert run.data.tags["trial_number"] == str(study.best_trial.number)
    assert mlflow.keras.load_model("models:/best@champion") is not None


def test_empty_register_as_registers_nothing(client):
    tune(TuneConfig(**SMALL, final_seeds=0, study_name="unregistered"))
    assert "registered_model" not in parent_run(client, "unregistered").data.tags


def test_bad_model_name_exits_2(capsys, client):
    assert cli.main(["tune", "--dataset", "digits", "--register-as", "a/b"]) == 2
    assert "The 'register_as' parameter of tune must be" in capsys.readouterr().err
    assert running_runs(client) == []
