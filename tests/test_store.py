"""The local tracking store and what reaches it: artifacts beside the store, created once when
processes start together, and every bad input of the environment or the data stopped with one
line and exit 2 before a run exists."""

import os
import shutil
import subprocess

import mlflow
import numpy as np
import pytest
from helpers import assert_rejected, pipeline_command

from pipeline import cli
from pipeline.config.entry_points import TrainConfig
from pipeline.config.params import SEED_MAX
from pipeline.config.study import StudyConfig
from pipeline.config.tune import TuneConfig
from pipeline.data.datasets import DataError, load_dataset

DIGITS = ["train", "--dataset", "digits", "--epochs", "1"]


def test_artifacts_go_beside_the_store_not_the_first_working_directory(
    tmp_path, monkeypatch, capsys
):
    """Before: the experiment's artifacts went to ./mlruns of the folder that first trained;
    deleting that folder broke `evaluate` of runs trained from elsewhere."""
    store, first, second = (tmp_path / name for name in ("store", "a", "b"))
    for folder in (store, first, second):
        folder.mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")
    run_ids = []
    for folder in (first, second):
        monkeypatch.chdir(folder)
        assert cli.main(DIGITS) == 0
        run_ids.append(capsys.readouterr().out.rsplit("run ", 1)[1].split(":")[0])
    shutil.rmtree(first)
    experiment = mlflow.MlflowClient().get_experiment_by_name("dropout-mlp-digits")
    assert experiment.artifact_location == (store / "mlruns" / "dropout-mlp-digits").as_uri()
    assert cli.main(["evaluate", "--run-id", run_ids[1]]) == 0
    assert not list(second.iterdir())  # nothing written where it ran


def test_two_processes_starting_together_on_a_new_store_both_finish(tmp_path):
    """Before: one died in MLflow's schema creation (`duplicate column name`, `table
    _alembic_tmp_experiments already exists`), 3 of 3 tries."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    processes = [
        subprocess.Popen(
            pipeline_command(*DIGITS, "--seed", str(seed)),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for seed in (1, 2)
    ]
    for process in processes:
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, output[-3000:]


def test_a_read_only_working_directory_stops_with_one_line(monkeypatch, capsys, client):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.chdir("/proc")  # read-only, even for root
    message = "Cannot open the tracking store 'sqlite:////proc/mlflow.db'"
    assert_rejected(DIGITS, message, capsys, client)


def test_an_unknown_experiment_id_stops_with_one_line(monkeypatch, capsys, client):
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", "999")
    message = "MLFLOW_EXPERIMENT_ID must be the id of an active experiment in"
    assert_rejected(DIGITS, message, capsys, client)


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ("journal:/nonexistent/dir/x", "Cannot open the Optuna storage '/nonexistent/dir/x'"),
        ("postgresql://alice@127.0.0.1:1/optuna", "Connection refused"),  # psycopg2, not 3
    ],
)
def test_a_storage_that_cannot_open_stops_with_one_line(storage, message, capsys, client):
    argv = ["tune", "--dataset", "digits", "--storage", storage]
    assert_rejected(argv, message, capsys, client)


def npz_folder(folder, y_train: np.ndarray):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (len(y_train), 28, 28), dtype=np.uint8)
    folder.mkdir()
    np.savez(folder / "data.npz", x_train=images, y_train=y_train, x_test=images[:20],
             y_test=np.arange(20) % 10)  # fmt: skip
    return folder


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.arange(200) % 10 - 1, "must be the class numbers 0 … classes-1; got -1"),
        (np.arange(200) % 10 + 0.5, "must be one integer per image"),
        (np.r_[np.arange(199) % 9, 9], "Class 9 has 1 training examples"),
        (np.arange(30) % 10, "validation_split=0.1 cannot hold out every one of the 10 classes"),
    ],
)
def test_data_without_usable_labels_stops_before_training(labels, message, tmp_path):
    folder = npz_folder(tmp_path / "data", labels)
    with pytest.raises(DataError, match=message):
        load_dataset(TrainConfig(dataset="mnist", data_dir=str(folder)))


def test_negative_labels_exit_2_from_the_cli(tmp_path, capsys, client):
    """Before: a TensorFlow traceback from inside the first epoch, the run left FAILED."""
    folder = npz_folder(tmp_path / "data", np.arange(200) % 10 - 1)
    argv = ["train", "--dataset", "mnist", "--data-dir", str(folder)]
    assert_rejected(argv, "must be the class numbers 0 … classes-1", capsys, client)


def test_the_largest_seed_leaves_room_for_derived_seeds():
    """Before: tune --seed 2147483647 trained its trials, then failed on the fresh seeds."""
    tune = TuneConfig(seed=SEED_MAX, final_seeds=3)
    assert tune.train_config(seed=SEED_MAX + 3).seed == SEED_MAX + 3
    study = StudyConfig(seed=SEED_MAX, seeds=5)
    assert study.train_config(seed=SEED_MAX + 4).seed == SEED_MAX + 4


def test_a_full_disk_at_start_is_one_line(tmp_path, monkeypatch, capsys):
    """Before: a 187-line traceback ending in AttributeError (the failed experiment creation
    was taken for a parallel worker's)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")

    def full(*args, **kwargs):
        raise mlflow.exceptions.MlflowException(
            "(sqlite3.OperationalError) database or disk is full"
        )

    monkeypatch.setattr(mlflow.MlflowClient, "create_experiment", full)
    capsys.readouterr()
    assert cli.main(DIGITS) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: the disk of the tracking store is full (")
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []
