"""The study entry point: paired statistics on known answers, a tiny real study on digits."""

import signal
import socket
import subprocess

import mlflow
import numpy as np
import pytest
from helpers import pipeline_command, running_runs, signal_at_epoch, start
from scipy import stats

from pipeline.analysis.paired import SUMMARY_METRICS, SeedResult, comparison_table, summary_table
from pipeline.analysis.significance import mean_confidence_interval, paired_comparison
from pipeline.config.entry_points import ParameterError, StudyConfig, TrainConfig
from pipeline.experiments.study import study

TINY = StudyConfig(dataset="digits", epochs=2, seeds=2, configs="base=0,0,0;drop=0.5,0.25,0")
REPORTS = {
    "report.md",
    "report.html",
    "summary.csv",
    "summary.md",
    "comparisons.csv",
    "learning_curves.png",
}


def test_paired_comparison_matches_scipy():
    reference = np.array([0.861, 0.855, 0.870, 0.858, 0.852])
    candidate = np.array([0.866, 0.861, 0.871, 0.869, 0.858])
    result = paired_comparison(reference, candidate, alpha=0.05)
    differences = candidate - reference
    assert result["mean_difference"] == pytest.approx(differences.mean())
    assert result["t_test_p_value"] == pytest.approx(stats.ttest_rel(candidate, reference).pvalue)
    assert result["wilcoxon_p_value"] == pytest.approx(stats.wilcoxon(differences).pvalue)
    assert result["wilcoxon_p_value"] == pytest.approx(2 / 2**5)  # all 5 differences positive
    assert result["cohens_dz"] == pytest.approx(differences.mean() / differences.std(ddof=1))
    low, high = stats.t.interval(0.95, 4, loc=differences.mean(), scale=stats.sem(differences))
    assert (result["t_ci95_low"], result["t_ci95_high"]) == pytest.approx((low, high))
    assert result["bootstrap_ci95_low"] <= differences.mean() <= result["bootstrap_ci95_high"]
    assert result["verdict"] == "better"
    assert paired_comparison(candidate, reference)["verdict"] == "worse"


def test_paired_comparison_of_noise_and_of_identical_values():
    rng = np.random.default_rng(0)
    reference = rng.normal(0.85, 0.01, 5)
    noisy = paired_comparison(reference, reference + rng.normal(0, 0.01, 5))
    assert noisy["verdict"] == "no detectable difference"
    same = paired_comparison(reference, reference)
    assert same["verdict"] == "no detectable difference" and same["t_test_p_value"] == 1.0
    shifted = paired_comparison(reference, reference + 0.01)  # the same gain on every seed
    assert shifted["verdict"] == "better" and shifted["cohens_dz"] == np.inf


def test_mean_confidence_interval_is_the_t_interval():
    values = [0.84, 0.86, 0.85]
    mean, low, high = mean_confidence_interval(values)
    expected = stats.t.interval(0.95, 2, loc=np.mean(values), scale=stats.sem(values))
    assert mean == pytest.approx(0.85) and (low, high) == pytest.approx(expected)


def test_tables_take_named_train_configs_and_pair_by_seed():
    configs = {
        "base": TrainConfig(dataset="digits", dropout_rates=(0.0, 0.0, 0.0)),
        "drop": TrainConfig(dataset="digits", dropout_rates=(0.5, 0.25, 0.0)),
    }
    base = {0: 0.80, 1: 0.90, 2: 0.85}
    gain = {0: 0.01, 1: 0.02, 2: 0.015}  # small next to the spread across seeds

    def result(name: str, seed: int, accuracy: float) -> SeedResult:
        return SeedResult(name, seed, dict.fromkeys(SUMMARY_METRICS, accuracy), {})

    results = [result("drop", seed, base[seed] + gain[seed]) for seed in (2, 0, 1)]
    results += [result("base", seed, accuracy) for seed, accuracy in base.items()]
    summary = summary_table(configs, results)
    assert list(summary["config"]) == ["base", "drop"]
    assert list(summary["dropout_rates"]) == ["0,0,0", "0.5,0.25,0"]
    assert summary["test_accuracy_mean"][0] == pytest.approx(0.85)
    comparisons = comparison_table(list(configs), results, alpha=0.05, seed=0)
    [row] = comparisons[comparisons["metric"] == "test_accuracy"].itertuples()
    assert (row.candidate, row.reference, row.n_pairs) == ("drop", "base", 3)
    assert row.mean_difference == pytest.approx(0.015) and row.verdict == "better"


@pytest.fixture(scope="module")
def tiny_study():
    text = study(TINY)
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("dropout-mlp-digits")
    runs = client.search_runs([experiment.experiment_id], f"tags.study = '{TINY.name}'")
    [parent] = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    children = [run for run in runs if "mlflow.parentRunId" in run.data.tags]
    return text, parent, children


def test_every_config_and_seed_is_a_finished_child(tiny_study):
    _, parent, children = tiny_study
    assert parent.info.status == "FINISHED"
    pairs = sorted((r.data.tags["study_config"], r.data.tags["study_seed"]) for r in children)
    assert pairs == [("base", "0"), ("base", "1"), ("drop", "0"), ("drop", "1")]
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parent.info.run_id}
    assert all(r.info.status == "FINISHED" for r in children)
    drop = [r for r in children if r.data.tags["study_config"] == "drop"]
    assert {r.data.params["dropout_rates"] for r in drop} == {"0.5,0.25,0"}


def test_parent_logs_tables_report_and_verdict(tiny_study, client):
    text, parent, children = tiny_study
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert artifacts >= REPORTS and "dose_response.png" not in artifacts  # 2 configs: no sweep
    metrics = parent.data.metrics
    accuracies = [
        r.data.metrics["test_accuracy"] for r in children if r.data.tags["study_config"] == "base"
    ]
    assert metrics["base_test_accuracy_mean"] == pytest.approx(np.mean(accuracies))
    assert 0 <= metrics["drop_vs_base_test_accuracy_p_value"] <= 1
    summary = mlflow.artifacts.load_text(f"runs:/{parent.info.run_id}/summary.csv")
    assert summary.splitlines()[0].startswith("config,dropout_rates,mean_rate,test_accuracy_mean")
    assert "Does **drop** (0.5,0.25,0) beat **base** (0,0,0)?" in text
    assert "Verdict: **" in text and "Tied top scores" in text
    assert parent.data.tags["mlflow.note.content"] == text
    html = mlflow.artifacts.load_text(f"runs:/{parent.info.run_id}/report.html")
    assert "<table" in html and "data:image/png;base64," in html


def test_rerun_reuses_the_parent_and_its_finished_children(tiny_study, client, capsys):
    _, parent, children = tiny_study
    study(TINY)
    assert capsys.readouterr().out.count("reusing finished run") == 4
    experiment = client.get_experiment_by_name("dropout-mlp-digits")
    runs = client.search_runs([experiment.experiment_id], f"tags.study = '{TINY.name}'")
    assert len(runs) == 1 + len(children)
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"


def test_a_rate_sweep_gets_a_dose_response_plot(client):
    config = StudyConfig(
        dataset="digits",
        epochs=1,
        seeds=2,
        study_name="sweep",
        configs="r0=0,0,0;r2=0.2,0.2,0;r4=0.4,0.4,0",
    )
    study(config)
    experiment = client.get_experiment_by_name("dropout-mlp-digits")
    [parent] = client.search_runs(
        [experiment.experiment_id],
        "tags.study = 'sweep' and tags.entry_point = 'study' and attributes.run_name = 'sweep'",
    )
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert "dose_response.png" in artifacts
    assert "r4_vs_r0_test_accuracy_difference" in parent.data.metrics


def test_a_second_identical_study_refuses_while_the_first_runs(client):
    """Before: both attached to one parent and each trained every config x seed (8 children
    for 4 slots)."""
    argv = ["study", "--dataset", "digits", "--epochs", "500", "--seeds", "2"]
    argv += ["--study-name", "twice at once"]
    first = start(*argv)
    for line in first.stdout:
        if line.startswith("epoch 1/"):
            break
    second = subprocess.run(pipeline_command(*argv), capture_output=True, text=True, timeout=300)
    signal_at_epoch(first, signal.SIGTERM)
    assert second.returncode == 2, second.stderr[-3000:]
    [line] = second.stderr.splitlines()
    assert line.startswith("error: The 'study_name' parameter of study must be a study no other")
    assert f"worker {socket.gethostname()}:{first.pid} is running it" in line
    experiment = client.get_experiment_by_name("dropout-mlp-digits")
    runs = client.search_runs([experiment.experiment_id], "tags.study = 'twice at once'")
    assert len(runs) == 1 + 4  # the parent, one child per config x seed
    assert running_runs(client) == []


def test_configs_with_an_empty_segment_are_rejected():
    """Before: `a=0,0,0;;b=…` was accepted, the empty segment dropped."""
    with pytest.raises(ParameterError, match="The 'configs' parameter of study must be"):
        StudyConfig.from_strings({"configs": "a=0,0,0;;b=0.5,0.25,0"})
