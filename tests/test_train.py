"""Real training runs on real data into a temporary MLflow store: what every train run logs."""

import json
import math
import os
import re
import signal
import subprocess
import sys

import keras
import mlflow
import numpy as np
import pytest
from helpers import FASHION_MNIST, mnist_data_dir, pipeline_command, running_runs

from pipeline import cli
from pipeline.config.entry_points import ParameterError, TrainConfig
from pipeline.data.datasets import load_dataset
from pipeline.engines.base import EPOCH_METRICS
from pipeline.engines.keras_engine import steps_per_execution, training_data
from pipeline.experiments.train import TrainingDiverged, train
from pipeline.models.mlp import build_model
from pipeline.models.spec import ModelSpec

DIGITS = TrainConfig(dataset="digits", epochs=3, seed=7)
PER_EPOCH = (*EPOCH_METRICS, "generalization_gap", "epoch_seconds")
ARTIFACTS = {
    "classification_report.txt",
    "classification_report.json",
    "confusion_matrix.png",
    "confusion_matrix.csv",
    "learning_curves.png",
    "model_input_example.json",
}


@pytest.fixture(scope="module")
def digits_run():
    result = train(DIGITS)
    return result, mlflow.MlflowClient().get_run(result.run_id)


def test_run_finishes_with_every_param_and_a_descriptive_name(digits_run):
    _, run = digits_run
    assert run.info.status == "FINISHED"
    assert run.data.params == DIGITS.to_params()
    assert run.info.run_name == "digits-dropout-0.5,0.25,0-seed7"
    assert run.data.tags["recipe"] == "standard"
    assert len(run.data.tags["data_sha256"]) == 64


def test_each_epoch_metric_is_logged_once_per_epoch(digits_run, client):
    result, run = digits_run
    for name in PER_EPOCH:
        history = client.get_metric_history(run.info.run_id, name)
        assert sorted(metric.step for metric in history) == [1, 2, 3], name
    gaps = [
        m.value
        for m in sorted(
            client.get_metric_history(run.info.run_id, "generalization_gap"), key=lambda m: m.step
        )
    ]
    expected = np.subtract(result.history["val_loss"], result.history["loss"])
    np.testing.assert_allclose(gaps, expected, rtol=1e-6)


def test_final_test_metrics(digits_run):
    result, run = digits_run
    metrics = run.data.metrics
    names = {
        "test_loss",
        "test_accuracy",
        "test_macro_f1",
        "test_weighted_f1",
        "test_tied_top_fraction",
    } | {f"test_f1_class_{k}" for k in range(10)}
    assert names <= set(metrics)
    assert 0.5 < metrics["test_accuracy"] <= 1  # 3 epochs on digits learn something
    assert metrics["test_tied_top_fraction"] == 0.0  # softmax does not tie
    assert result.test_metrics["test_accuracy"] == metrics["test_accuracy"]


def test_artifacts_and_model(digits_run, client, tmp_path):
    _, run = digits_run
    run_id = run.info.run_id
    assert {artifact.path for artifact in client.list_artifacts(run_id)} >= ARTIFACTS
    report = json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/classification_report.json"))
    assert report["accuracy"] == pytest.approx(run.data.metrics["test_accuracy"])
    csv = mlflow.artifacts.load_text(f"runs:/{run_id}/confusion_matrix.csv").splitlines()
    assert len(csv) == 11 and csv[0].startswith("true,")
    model_uri = f"runs:/{run_id}/model"
    assert mlflow.models.get_model_info(model_uri).signature is not None
    example = json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/model_input_example.json"))
    probabilities = mlflow.keras.load_model(model_uri).predict(np.array(example["inputs"]))
    assert probabilities.shape == (5, 10)


def test_dataset_inputs_carry_digests(digits_run):
    _, run = digits_run
    inputs = {
        tag.value: item.dataset
        for item in run.inputs.dataset_inputs
        for tag in item.tags
        if tag.key == "mlflow.data.context"
    }
    assert set(inputs) == {"train", "validation", "test"}
    assert inputs["test"].name == "digits-test" and len(inputs["test"].digest) == 16


def test_same_seed_gives_identical_metrics(digits_run):
    first, _ = digits_run
    again = train(DIGITS)
    assert again.test_metrics == first.test_metrics
    for name in EPOCH_METRICS:
        assert again.history[name] == first.history[name]


def test_training_batches_give_the_same_weights_for_the_same_seed():
    """train's own batches (tf.data, one call per epoch): the same seed trains the same weights,
    another seed other weights."""
    dataset = load_dataset(TrainConfig(dataset="digits"))
    x, y = dataset.x_train.astype("float32"), dataset.y_train
    steps = steps_per_execution(len(x), 32)

    def trained_weights(seed: int) -> list[np.ndarray]:
        keras.utils.set_random_seed(seed)
        spec = ModelSpec(x.shape[1:], 10, (100, 50, 25), (0.5, 0.25, 0.0))
        model = build_model(spec, 0.001, steps)
        model.fit(**training_data(x, y, 32, seed), epochs=3, verbose=0)
        return model.get_weights()

    assert steps == len(training_data(x, y, 32, 0)["x"]) > 1  # the whole epoch in one call
    first, again, other = trained_weights(3), trained_weights(3), trained_weights(4)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_importing_train_changes_no_tensorflow_setting():
    code = (
        "import tensorflow as tf; import pipeline.experiments.train; "
        "print(tf.config.threading.get_intra_op_parallelism_threads())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "0"  # TensorFlow's default, where runtime.setup makes it 1


# What TensorFlow's C++ side logs unless told not to: absl's format (I0000 00:00:...) and more
NOISE = re.compile(
    r"^[IWE]\d{4} |absl::InitializeLog|oneDNN|cpu_feature_guard|use_unbounded_threadpool", re.M
)


def test_a_train_run_prints_progress_and_no_tensorflow_log_lines():
    result = subprocess.run(
        pipeline_command("train", "--dataset", "digits", "--epochs", "1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("epoch 1/1  loss ")
    assert not NOISE.search(result.stdout + result.stderr), result.stderr


def test_jax_backend_trains_deterministically_and_reuses_compiled_steps(client, tmp_path):
    """engine=keras with backend=jax (opt-in), in its own process (Keras picks the backend at
    import): same seed, same numbers, no TensorFlow imported; the second run takes its compiled
    steps from the disk cache."""
    environment = {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "cache")}
    code = (
        "import sys; from pipeline.cli import main; code = main(sys.argv[1:]); "
        "print('tensorflow imported:', 'tensorflow' in sys.modules); sys.exit(code)"
    )
    argv = [sys.executable, "-c", code, "train", "--dataset", "digits", "--epochs", "3"]

    def run_jax() -> dict[str, float]:
        output = subprocess.run(
            [*argv, "--seed", "7", "--engine", "keras", "--backend", "jax"],
            env=environment,
            capture_output=True,
            text=True,
        ).stdout
        assert "tensorflow imported: False" in output
        run = client.get_run(re.search(r"^run (\w+):", output, re.M)[1])
        assert run.info.status == "FINISHED"
        assert run.data.params == {**DIGITS.to_params(), "engine": "keras", "backend": "jax"}
        timings = ("epoch_seconds", "system/")  # wall clock and the machine's load
        return {k: v for k, v in run.data.metrics.items() if not k.startswith(timings)}

    first = run_jax()
    cached = sorted((tmp_path / "cache").iterdir())
    assert run_jax() == first
    assert cached and sorted((tmp_path / "cache").iterdir()) == cached  # nothing new compiled
    assert first["test_accuracy"] > 0.5  # it learns (chance: 0.1); make bench compares seeds


def test_a_backend_other_than_the_imported_one_is_rejected_before_any_run(client):
    before = len(client.search_runs([e.experiment_id for e in client.search_experiments()]))
    with pytest.raises(ParameterError, match="The 'backend' parameter of train must be the"):
        train(TrainConfig(dataset="digits", engine="keras", backend="jax"))
    after = len(client.search_runs([e.experiment_id for e in client.search_experiments()]))
    assert after == before


def test_non_finite_loss_fails_the_run_with_a_reason(client):
    config = TrainConfig(dataset="digits", epochs=3, recipe="notebook", learning_rate=1e10)
    with pytest.raises(TrainingDiverged, match="loss became nan at epoch 1"):
        train(config)
    run = client.get_run(mlflow.last_active_run().info.run_id)
    assert run.info.status == "FAILED"
    assert "loss became nan" in run.data.tags["failure_reason"]
    assert len(client.get_metric_history(run.info.run_id, "loss")) == 1  # stopped at once


def test_corrupt_data_dir_exits_2_before_training(tmp_path, capsys, client):
    folder = mnist_data_dir(tmp_path)
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    before = len(client.search_runs([e.experiment_id for e in client.search_experiments()]))
    assert cli.main(["train", "--dataset", "mnist", "--data-dir", str(folder)]) == 2
    assert "Cannot read IDX file" in capsys.readouterr().err
    after = len(client.search_runs([e.experiment_id for e in client.search_experiments()]))
    assert after == before


def test_bad_input_from_the_shell_exits_2():
    result = subprocess.run(
        pipeline_command("train", "--epochs", "-1"), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: The 'epochs' parameter of train must be an int in the range [1, inf). "
        "Got '-1' instead."
    )


def test_ctrl_c_ends_the_run_killed(client):
    process = subprocess.Popen(
        pipeline_command("train", "--dataset", "digits", "--epochs", "500"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in process.stdout:
        if line.startswith("epoch 2/"):
            break
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr[-5000:]
    experiment = client.get_experiment_by_name("dropout-mlp-digits")
    [run] = client.search_runs(
        [experiment.experiment_id], order_by=["start_time DESC"], max_results=1
    )
    assert run.info.status == "KILLED"
    assert "KeyboardInterrupt" in run.data.tags["failure_reason"]
    assert running_runs(client) == []


def test_mnist_from_a_local_idx_folder(tmp_path, client):
    folder = mnist_data_dir(tmp_path, n_train=8000)
    result = train(TrainConfig(dataset="mnist", data_dir=str(folder), epochs=2))
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED" and run.data.params["data_dir"] == str(folder)
    assert run.data.tags["data_source"] == str(folder.resolve())
    assert result.test_metrics["test_accuracy"] > 0.85  # real digits, 7200 training images


@pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="Debian's dataset-fashion-mnist absent")
def test_fashion_mnist_run_names_its_classes(client):
    result = train(TrainConfig(dataset="fashion_mnist", epochs=1))
    report = mlflow.artifacts.load_text(f"runs:/{result.run_id}/classification_report.txt")
    assert "Ankle boot" in report and "T-shirt/top" in report
    assert result.test_metrics["test_accuracy"] > 0.75
    assert math.isfinite(result.test_metrics["test_loss"])
