"""The study entry point: paired statistics on known answers, a tiny real study on digits."""

import dataclasses
import signal
import socket
import subprocess

import mlflow
import numpy as np
import pandas as pd
import pytest
from helpers import pipeline_command, running_runs, signal_at_epoch, start
from scipy import stats

from pipeline.analysis.effect import (
    checkpoint_epochs,
    crossing_epoch,
    crossing_words,
    effect_tables,
)
from pipeline.analysis.paired import (
    COMPARISON_COLUMNS,
    SUMMARY_METRICS,
    SeedResult,
    comparison_table,
    seed_differences,
    summary_table,
)
from pipeline.analysis.sequential import SequentialDesign
from pipeline.analysis.significance import mean_confidence_interval
from pipeline.config.entry_points import ParameterError, TrainConfig
from pipeline.config.study import StudyConfig
from pipeline.experiments.study import study

TINY = StudyConfig(dataset="digits", epochs=2, seeds=2, configs="base=0,0,0;drop=0.5,0.25,0")
VERDICTS = ("better", "worse", "equivalent", "undecided")
REPORTS = {
    "effect_by_epoch.csv",
    "effect_by_epoch.png",
    "effect_crossings.csv",
    "report.md",
    "report.html",
    "summary.csv",
    "summary.md",
    "comparisons.csv",
    "learning_curves.png",
}


def accuracies(name: str, values) -> list[SeedResult]:
    return [
        SeedResult(name, seed, dict.fromkeys(SUMMARY_METRICS, value), {})
        for seed, value in enumerate(values)
    ]


def one_comparison(base, gains, **design) -> pd.Series:
    """The test-accuracy row of drop against base over len(base) seeds, at one look."""
    seeds = len(base)
    results = accuracies("base", base) + accuracies("drop", np.add(base, gains))
    table = comparison_table(["base", "drop"], results, SequentialDesign(0.05, 0.5, seeds, seeds))
    assert list(table.columns) == list(COMPARISON_COLUMNS)
    return table[table["metric"] == "test_accuracy"].iloc[0]


def test_comparison_table_columns_on_known_answers():
    base = np.array([0.861, 0.855, 0.870, 0.858, 0.852])
    gains = np.array([0.005, 0.006, 0.001, 0.011, 0.006])  # points: 0.5, 0.6, 0.1, 1.1, 0.6
    row = one_comparison(base, gains)
    d = 100 * gains
    assert (row.candidate, row.reference, row.seeds, row.margin) == ("drop", "base", 5, 0.5)
    assert row.mean_difference == pytest.approx(d.mean())
    low, high = stats.t.interval(0.95, 4, loc=d.mean(), scale=stats.sem(d))
    assert (row.ci95_low, row.ci95_high) == pytest.approx((low, high))
    low, high = stats.t.interval(0.90, 4, loc=d.mean(), scale=stats.sem(d))
    assert (row.equivalence_low, row.equivalence_high) == pytest.approx((low, high))
    assert row.p_value == pytest.approx(stats.ttest_1samp(d, 0).pvalue)
    tost = max(
        stats.ttest_1samp(d, -0.5, alternative="greater").pvalue,
        stats.ttest_1samp(d, 0.5, alternative="less").pvalue,
    )
    assert row.p_equivalence == pytest.approx(tost)
    assert row.probability_of_improvement == 1.0  # drop wins on every seed
    assert row.improvement_high == 1.0 and 0.4 < row.improvement_low < 0.7  # Wilson, n = 5
    assert row.verdict == "better" and row.seeds_for_power >= 2
    assert one_comparison(base + gains, -gains).verdict == "worse"


def test_equivalent_undecided_and_the_seed_differences_in_points():
    base = np.linspace(0.80, 0.90, 20)
    tiny = np.resize([0.0005, -0.0005, 0.001, -0.001], 20)  # +-0.05 to 0.1 points
    row = one_comparison(base, tiny)
    assert row.verdict == "equivalent" and row.probability_of_improvement == 0.5
    assert -0.5 < row.equivalence_low < row.equivalence_high < 0.5
    noisy = one_comparison(base[:3], [0.02, -0.03, 0.01])
    assert noisy.verdict == "undecided" and noisy.seeds_for_power > 3
    gains = np.array([0.02, -0.03, 0.01])
    results = accuracies("base", base[:3]) + accuracies("drop", base[:3] + gains)
    differences = seed_differences(["base", "drop"], results, "test_accuracy")
    assert list(differences) == [("drop", "base", "test_accuracy")]
    np.testing.assert_allclose(differences["drop", "base", "test_accuracy"], [2.0, -3.0, 1.0])


def test_checkpoints_and_the_crossing_on_known_answers():
    assert checkpoint_epochs(100) == (1, 2, 5, 10, 20, 50, 100)
    assert checkpoint_epochs(4, levels=(3,)) == (1, 2, 3, 4)
    assert checkpoint_epochs(3, every=True) == (1, 2, 3)
    epochs = np.array([1, 10, 100])
    assert crossing_epoch(epochs, np.array([1.0, -1.0, -2.0])) == pytest.approx(np.sqrt(10))
    assert crossing_epoch(epochs, np.array([-3.0, 1.0, 2.0])) == pytest.approx(10**0.75)
    assert np.isnan(crossing_epoch(epochs, np.array([1.0, 2.0, 0.5])))
    seeds = np.array([[2.0, -1.0, -2.0], [1.0, -2.0, -3.0], [1.5, -1.5, -2.5], [1.2, -0.8, -2.2]])
    table, crossings = effect_tables({"drop - base": (epochs, seeds)})
    assert list(table["mean_difference"]) == pytest.approx(seeds.mean(axis=0))
    [row] = crossings.itertuples()
    assert row.crossing_low <= row.crossing_epoch <= row.crossing_high < 10
    assert "crosses zero near epoch" in crossing_words(table, crossings)


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
    comparisons = comparison_table(list(configs), results, SequentialDesign(0.05, 0.5, 3, 3))
    [row] = comparisons[comparisons["metric"] == "test_accuracy"].itertuples()
    assert (row.candidate, row.reference, row.seeds) == ("drop", "base", 3)
    assert row.mean_difference == pytest.approx(1.5) and row.verdict == "better"


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
    assert "The effect along training" in text
    assert any(f"Verdict: **{word}**" in text for word in VERDICTS)
    effect = pd.read_csv(
        mlflow.artifacts.download_artifacts(f"runs:/{parent.info.run_id}/effect_by_epoch.csv")
    )
    assert list(effect.columns) == [
        "group",
        "epoch",
        "mean_difference",
        "ci95_low",
        "ci95_high",
        "seeds",
    ]
    assert list(effect["epoch"]) == [1, 2] and set(effect["group"]) == {"drop - base"}
    crossings = pd.read_csv(
        mlflow.artifacts.download_artifacts(f"runs:/{parent.info.run_id}/effect_crossings.csv")
    )
    assert list(crossings.columns) == ["group", "crossing_epoch", "crossing_low", "crossing_high"]
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


def test_a_run_s_checkpoint_is_what_a_shorter_run_gives(tiny_study, client):
    """The prefix property, through the study: the epoch-2 checkpoint of a 4-epoch study's run
    is the test accuracy of the 2-epoch study's run of the same config and seed (up to float32
    rounding)."""
    _, _, short = tiny_study
    longer = dataclasses.replace(TINY, epochs=4, study_name="tiny, 4 epochs")
    study(longer)
    experiment = client.get_experiment_by_name("dropout-mlp-digits")
    runs = client.search_runs([experiment.experiment_id], f"tags.study = '{longer.name}'")
    checkpoint = {
        (run.data.tags["study_config"], run.data.tags["study_seed"]): {
            m.step: m.value for m in client.get_metric_history(run.info.run_id, "test_accuracy")
        }
        for run in runs
        if "study_seed" in run.data.tags
    }
    for run in short:
        key = (run.data.tags["study_config"], run.data.tags["study_seed"])
        assert sorted(checkpoint[key]) == [1, 2, 4]
        # the same count of correct test images: Keras reports the checkpoint in float32
        # (0.7666666507720947 for 0.7666666666666667, measured), far below one image in 360
        assert checkpoint[key][2] == pytest.approx(run.data.metrics["test_accuracy"], abs=1e-6)


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
