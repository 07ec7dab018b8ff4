"""evaluate on real digits train runs: same numbers as the source run, a paired comparison with
its artifacts, the model registry path, and bad input."""

import mlflow
import pytest
from helpers import assert_rejected, mnist_data_dir

from pipeline.config.entry_points import EvaluateConfig, TrainConfig
from pipeline.experiments.evaluate import evaluate
from pipeline.experiments.train import train

SCORE_METRICS = ("test_loss", "test_accuracy", "test_macro_f1", "test_weighted_f1")
ARTIFACTS = {
    "classification_report.txt",
    "classification_report.json",
    "confusion_matrix.png",
    "confusion_matrix.csv",
    "calibration.csv",
    "reliability_diagram.png",
    "misclassified.png",
}
COMPARISON_ARTIFACTS = {"comparison.md", "comparison.json", "confusion_matrix_comparison.png"}


@pytest.fixture(scope="module")
def trained():
    """A dropout run and a no-dropout baseline, same seed."""
    common = dict(dataset="digits", epochs=2, seed=3)
    dropout = train(TrainConfig(**common, dropout_rates=(0.5, 0.25, 0.0)))
    baseline = train(TrainConfig(**common, dropout_rates=(0.0, 0.0, 0.0)))
    return dropout.run_id, baseline.run_id


def artifacts(client, run_id: str) -> set[str]:
    return {artifact.path for artifact in client.list_artifacts(run_id)}


def assert_same_test_metrics(evaluated: dict, source: dict):
    for name in (*SCORE_METRICS, *(f"test_f1_class_{k}" for k in range(10))):
        assert evaluated[name] == pytest.approx(source[name], abs=1e-6), name


def test_metrics_equal_the_source_runs(trained, client):
    run_id, _ = trained
    result = evaluate(EvaluateConfig(run_id=run_id))
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert_same_test_metrics(run.data.metrics, client.get_run(run_id).data.metrics)
    assert 0 <= run.data.metrics["test_expected_calibration_error"] <= 1
    assert run.data.tags["source_run_id"] == run_id
    assert run.data.tags["entry_point"] == "evaluate"
    assert run_id in run.data.tags["mlflow.note.content"]  # a link to the source run
    assert artifacts(client, result.run_id) >= ARTIFACTS
    assert not artifacts(client, result.run_id) & COMPARISON_ARTIFACTS
    assert run.info.experiment_id == client.get_run(run_id).info.experiment_id


def test_comparison_with_a_baseline_run(trained, client):
    run_id, baseline_id = trained
    result = evaluate(EvaluateConfig(run_id=run_id, baseline_run_id=baseline_id))
    metrics = client.get_run(result.run_id).data.metrics
    source, baseline = (client.get_run(i).data.metrics for i in trained)
    difference = source["test_accuracy"] - baseline["test_accuracy"]
    assert metrics["accuracy_difference"] == pytest.approx(difference, abs=1e-9)
    assert metrics["baseline_test_accuracy"] == pytest.approx(baseline["test_accuracy"])
    assert metrics["accuracy_difference_ci95_low"] <= difference
    assert difference <= metrics["accuracy_difference_ci95_high"]
    assert 0 <= metrics["mcnemar_p_value"] <= 1
    n_test = 450  # digits: a quarter of 1797
    # discordant counts explain the difference: (only model right - only baseline right) / n
    discordant = metrics["only_model_correct"] - metrics["only_baseline_correct"]
    assert discordant / n_test == pytest.approx(difference, abs=1e-9)
    assert artifacts(client, result.run_id) >= ARTIFACTS | COMPARISON_ARTIFACTS
    report = mlflow.artifacts.load_text(f"runs:/{result.run_id}/comparison.md")
    assert "McNemar" in report and "95% CI" in report and "Verdict" in report
    assert f"{metrics['mcnemar_p_value']:.4g}" in report


def test_registered_model_evaluates_through_its_alias(trained, client):
    run_id, _ = trained
    evaluate(EvaluateConfig(run_id=run_id, register_as="digits-evaluated"))
    version = client.get_model_version_by_alias("digits-evaluated", "champion")
    assert version.run_id == run_id
    result = evaluate(EvaluateConfig(model_uri="models:/digits-evaluated@champion"))
    run = client.get_run(result.run_id)
    assert run.data.tags["source_run_id"] == run_id
    assert_same_test_metrics(run.data.metrics, client.get_run(run_id).data.metrics)


def test_bad_input_exits_2_without_a_run(trained, capsys, client, tmp_path):
    run_id, _ = trained
    with mlflow.start_run() as empty:  # a run without a model
        pass
    deleted = train(TrainConfig(dataset="digits", epochs=1, seed=4)).run_id
    client.delete_run(deleted)  # before: evaluated (exit 0, a new evaluate run)
    cases = [
        ([], "The 'run_id' parameter of evaluate must be the id of a train run"),
        (
            ["--run-id", "0" * 32],
            "The 'run_id' parameter of evaluate must be the id of an existing",
        ),
        (["--run-id", empty.info.run_id], "with a logged Keras model"),
        (["--run-id", deleted], "must be the id of an existing MLflow run, not deleted"),
        (["--model-uri", "models:/no-such-model@champion"], "'model_uri' parameter of evaluate"),
        (["--run-id", run_id, "--baseline-run-id", "f" * 32], "'baseline_run_id' parameter"),
        (["--run-id", run_id, "--dataset", "cifar"], "'dataset' parameter of evaluate must be"),
        (
            ["--run-id", run_id, "--dataset", "mnist", "--data-dir", str(mnist_data_dir(tmp_path))],
            "must be a model for mnist images (28, 28)",
        ),
    ]
    for argv, message in cases:
        assert_rejected(["evaluate", *argv], message, capsys, client)
