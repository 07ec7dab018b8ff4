"""The grid study: parsing the grid, the regime map's statistics on known answers, a tiny grid on
digits end to end with every artifact, and resuming it."""

import signal

import mlflow
import numpy as np
import pandas as pd
import pytest
from helpers import assert_rejected, running_runs, signal_at_epoch, start
from scipy import stats

from pipeline import cli
from pipeline.analysis.paired import COMPARISON_COLUMNS, SUMMARY_METRICS, SeedResult
from pipeline.analysis.refine import added_levels, midpoints, with_levels
from pipeline.analysis.regime_map import map_findings, regime_figure, regime_table
from pipeline.analysis.sequential import SequentialDesign
from pipeline.config.entry_points import GRID, ParameterError
from pipeline.config.factors import cell_label, cells
from pipeline.config.study import StudyConfig
from pipeline.experiments.grid import grid_study
from pipeline.experiments.grid_groups import cost

TINY = StudyConfig(
    dataset="digits", epochs=1, seeds=2, grid="train_size=300,0", study_name="tiny grid"
)
MAP_ARTIFACTS = {"regime_map.csv", "regime_map.png", "report.md", "report.html"}
MAP_ARTIFACTS |= {"effect_by_epoch.csv", "effect_by_epoch.png", "effect_crossings.csv"}
VERDICTS = {"better", "worse", "equivalent", "undecided"}


def test_the_grid_parses_into_crossed_cells_in_canonical_spelling():
    config = StudyConfig.from_strings(
        {"grid": " train_size = 1000, 5000 ; hidden_units=100-50-25,512-512-512 ;"}
    )
    assert config.grid == "train_size=1000,5000;hidden_units=100-50-25,512-512-512"
    factors = GRID.factors(config.grid)
    assert factors == [("train_size", [1000, 5000]), ("hidden_units", [(100, 50, 25), (512,) * 3])]
    grid_cells = cells(factors)
    assert [cell_label(cell) for cell in grid_cells] == [
        "train_size=1000;hidden_units=100-50-25",
        "train_size=1000;hidden_units=512-512-512",
        "train_size=5000;hidden_units=100-50-25",
        "train_size=5000;hidden_units=512-512-512",
    ]
    assert config.name == "mnist_5k-standard-baseline-vs-dropout-grid"
    assert cost(config, factors) == (
        "grid: 4 cells in 4 trainings x 2 configs x 5 seeds = 40 runs, 400 epochs"
    )
    epochs = StudyConfig.from_strings(
        {"grid": "train_size=1000,0;epochs=10,100", "seeds": "auto", "max_seeds": "20"}
    )
    assert cost(epochs, GRID.factors(epochs.grid)) == (
        "grid: 4 cells in 2 trainings x 2 configs x up to 20 seeds = up to 80 runs, 8,000 epochs"
    )
    assert StudyConfig.from_strings({"grid": "learning_rate=1e-3,0.01"}).grid == (
        "learning_rate=0.001,0.01"
    )


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ("dropout_rates=0.5", "one of ('hidden_units', 'epochs', 'batch_size', 'learning_rate'"),
        ("epochs=10,x", "each level unique and a valid value of its param"),
        ("hidden_units=100,50", "a grid whose hidden_units levels have one layer per config"),
        ("hidden_units=100-50-25,512-512", "a grid whose hidden_units levels have one layer"),
    ],
)
def test_unknown_factors_malformed_levels_and_layer_counts_are_rejected(grid, message):
    with pytest.raises(ParameterError, match="The 'grid' parameter of study must be") as error:
        StudyConfig.from_strings({"grid": grid})
    assert message in str(error.value)


def test_a_train_size_above_the_data_exits_2_before_any_run(capsys, client):
    """Before: a grid level above the data named train_size, which the user left at 0."""
    argv = ["study", "--dataset", "digits", "--grid", "train_size=100,5000", "--epochs", "1"]
    message = (
        "The 'grid' parameter of study must be a grid whose train_size levels are each 0 (all) "
        "or an int in the range [10, 1212]"
    )
    assert_rejected(argv, message, capsys, client)
    argv = ["study", "--dataset", "digits", "--train-size", "5000", "--grid", "epochs=1,2"]
    assert_rejected(argv, "The 'train_size' parameter of study must be 0 (all)", capsys, client)
    argv = ["train", "--dataset", "digits", "--train-size", "5"]
    assert_rejected(argv, "The 'train_size' parameter of train must be 0 (all)", capsys, client)


def seed_results(base: list[float], gains: list[float], gap: float) -> list[SeedResult]:
    """Paired results of configs base and drop; every summary metric set to the accuracy."""

    def result(name, seed, accuracy):
        metrics = dict.fromkeys(SUMMARY_METRICS, accuracy)
        metrics["final_generalization_gap"] = gap if name == "base" else gap / 2
        return SeedResult(name, seed, metrics, {})

    return [result("base", seed, value) for seed, value in enumerate(base)] + [
        result("drop", seed, value + gain)
        for seed, (value, gain) in enumerate(zip(base, gains, strict=True))
    ]


def test_the_map_s_statistics_and_bonferroni_split_on_known_answers():
    base = [0.80, 0.90, 0.85, 0.83, 0.88]
    gains = {
        1000: [0.030, 0.031, 0.029, 0.032, 0.028],  # a clear gain: t-test p ~ 1e-7
        5000: [0.010, 0.020, 0.000, 0.015, 0.005],  # p ~ 0.047: below 0.05 alone, not / 3
        0: [0.010, -0.012, 0.004, -0.003, 0.001],  # noise, too few seeds for equivalence
    }
    gaps = {1000: 0.9, 5000: 0.5, 0: 0.1}
    factors = [("train_size", [1000, 5000, 0])]
    cell_results = [
        ({"train_size": size}, seed_results(base, gains[size], gaps[size])) for size in gains
    ]
    design = SequentialDesign(0.05, 0.5, batch=5, max_seeds=5, family_size=3)
    table = regime_table(factors, cell_results, ["base", "drop"], design)
    accuracy = table[table["metric"] == "test_accuracy"].set_index("train_size")
    assert list(accuracy.index) == ["1000", "5000", "0"]
    raw = {}
    for size, gain in gains.items():
        row = accuracy.loc[str(size)]
        points = 100 * np.array(gain)
        raw[size] = stats.ttest_1samp(points, 0).pvalue
        interval = stats.t.interval(1 - 0.05 / 3, 4, loc=points.mean(), scale=stats.sem(points))
        assert row["mean_difference"] == pytest.approx(points.mean())
        assert (row["ci95_low"], row["ci95_high"]) == pytest.approx(interval)
        assert row["p_value"] == pytest.approx(raw[size]) and row["seeds"] == 5
        assert row["reference_generalization_gap"] == pytest.approx(gaps[size])
        assert row["candidate_generalization_gap"] == pytest.approx(gaps[size] / 2)
    assert raw[1000] < 0.05 / 3 < raw[5000] < 0.05 < raw[0]
    assert list(accuracy["verdict"]) == ["better", "undecided", "undecided"]
    assert set(table["metric"]) == {"test_accuracy", "test_macro_f1"}
    config = StudyConfig(configs="base=0,0,0;drop=0.5,0.25,0", grid="train_size=1000,5000,0")
    text = "\n\n".join(map_findings(config, factors, table, design))
    assert "over the 3 tests of the grid (cells x candidates, Bonferroni: 0.0167 each)" in text
    assert "helps in 1 of 3 cells (train_size 1000: +3.0 [" in text
    assert "is undecided in 2 of 3 cells (train_size 5000: +1.0" in text
    assert "train_size all (gap 0.100): +0.0 points" in text
    assert "Kendall's rank correlation of that gap with drop's difference: tau = +1.00" in text


def test_refine_adds_geometric_means_between_opposite_verdicts_until_a_factor_of_2():
    assert midpoints({1000: "better", 60000: "worse", 0: "worse"}) == [7746]
    assert midpoints({1000: "better", 1900: "worse"}) == []  # within a factor of 2
    assert midpoints({10: "better", 100: "undecided", 1000: "worse"}) == []  # not decided

    def verdict(size: int) -> str:  # the synthetic truth: dropout helps below 3,000 images
        return "better" if size < 3000 else "worse"

    factors = [("train_size", [1000, 60000, 0]), ("epochs", [10, 100])]
    rounds = []
    while True:
        rows = [
            {"train_size": str(size), "epochs": str(epochs), "candidate": "drop"}
            | {"metric": "test_accuracy", "verdict": verdict(size) if size else "worse"}
            for size in factors[0][1]
            for epochs in factors[1][1]
        ]
        added = added_levels(factors, pd.DataFrame(rows))
        if not added:
            break
        rounds.append(added)
        factors = with_levels(factors, added)
    assert rounds == [{"train_size": [7746]}, {"train_size": [2783]}, {"train_size": [4643]}]
    assert factors == [("train_size", [1000, 2783, 4643, 7746, 60000, 0]), ("epochs", [10, 100])]


def test_the_map_draws_a_panel_per_candidate_and_level_of_each_extra_factor():
    factors = [("train_size", [1000, 0]), ("epochs", [10, 100]), ("max_norm", [0.0, 3.0])]
    rows = [
        {"train_size": size, "epochs": epochs, "max_norm": norm, "candidate": candidate}
        for size in ("1000", "0")
        for epochs in ("10", "100")
        for norm in ("0", "3")
        for candidate in ("drop", "light")
    ]
    table = pd.DataFrame(rows).assign(
        reference="base",
        metric="test_accuracy",
        mean_difference=0.01,
        ci95_low=-0.01,
        ci95_high=0.03,
        verdict="undecided",
        seeds=5,
    )
    figure = regime_figure(table, factors, "title")
    panels = [axis for axis in figure.axes if axis.get_title()]
    assert [axis.get_title() for axis in panels] == [
        "drop - base, max_norm 0",
        "drop - base, max_norm 3",
        "light - base, max_norm 0",
        "light - base, max_norm 3",
    ]
    assert [label.get_text() for label in panels[0].get_xticklabels()] == ["1000", "all"]
    assert len(panels[0].texts) == 4  # every cell annotated


def runs_of(client, name: str):
    experiment = client.get_experiment_by_name("dropout-mlp-digits")
    return client.search_runs([experiment.experiment_id], f"tags.study = '{name}'")


@pytest.fixture(scope="module")
def tiny_grid():
    text = grid_study(TINY)
    runs = runs_of(mlflow.MlflowClient(), TINY.name)
    [parent] = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    return text, parent, runs


def test_every_cell_is_a_nested_parent_of_its_paired_runs(tiny_grid):
    _, parent, runs = tiny_grid
    cell_runs = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(run.info.run_name for run in cell_runs) == ["train_size=0", "train_size=300"]
    for cell in cell_runs:
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == cell.info.run_id]
        pairs = sorted((r.data.tags["study_config"], r.data.tags["study_seed"]) for r in children)
        assert pairs == [("baseline", "0"), ("baseline", "1"), ("dropout", "0"), ("dropout", "1")]
        assert {r.data.params["train_size"] for r in children} == {cell.info.run_name[11:]}
        assert all(r.info.status == "FINISHED" for r in [cell, *children])
        assert cell.data.params["train_size"] == cell.info.run_name[11:]
        assert "baseline_test_accuracy_mean" in cell.data.metrics  # the cell's own study report
    small = next(
        r
        for r in runs
        if r.data.tags.get("grid_cell") == "train_size=300" and "study_seed" in r.data.tags
    )
    inputs = {item.dataset.name for item in small.inputs.dataset_inputs}
    assert inputs == {"digits-train-300", "digits-validation", "digits-test"}


def test_the_top_parent_holds_the_map_its_figure_and_the_report(tiny_grid, client):
    text, parent, _ = tiny_grid
    assert parent.info.status == "FINISHED"
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} == MAP_ARTIFACTS
    table = pd.read_csv(
        mlflow.artifacts.download_artifacts(f"runs:/{parent.info.run_id}/regime_map.csv")
    )
    assert list(table.columns) == [
        "train_size",
        *COMPARISON_COLUMNS,
        "reference_generalization_gap",
        "candidate_generalization_gap",
    ]
    assert sorted(table["train_size"]) == [0, 0, 300, 300]
    assert set(table["verdict"]) <= VERDICTS
    assert parent.data.tags["mlflow.note.content"] == text
    assert "split over the 2 tests of the grid" in text
    assert "**dropout** (0.5,0.25,0) against **baseline** (0,0,0)" in text
    html = mlflow.artifacts.load_text(f"runs:/{parent.info.run_id}/report.html")
    assert "<table" in html and "data:image/png;base64," in html


def test_a_rerun_reuses_every_finished_run_and_trains_only_what_is_missing(
    tiny_grid, client, capsys
):
    _, parent, runs = tiny_grid
    grid_study(TINY)
    assert capsys.readouterr().out.count("reusing finished run") == 8
    assert len(runs_of(client, TINY.name)) == len(runs)
    interrupted = next(r for r in runs if r.data.tags.get("study_seed") == "1")
    client.set_terminated(interrupted.info.run_id, "KILLED")  # as Ctrl-C leaves a run
    grid_study(TINY)
    assert capsys.readouterr().out.count("reusing finished run") == 7
    assert len(runs_of(client, TINY.name)) == len(runs) + 1
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"


def test_seeds_auto_stops_each_epochs_cell_at_its_own_verdict(client):
    """Cells that share training (epochs 1 and 4) stop one by one: a cell decided early keeps
    the verdict and the seeds of its stopping look while its sibling trains on."""
    config = StudyConfig.from_strings(
        {
            "dataset": "digits",
            "grid": "epochs=1,4",
            "seeds": "auto",
            "max_seeds": "6",
            "replicas": "2",
            "hidden_units": "16,8",
            "configs": "a=0,0;b=0.9,0.9",
            "study_name": "auto grid",
        }
    )
    text = grid_study(config)
    runs = runs_of(client, config.name)
    [parent] = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    [group] = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert group.info.run_name == "epochs<=4"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == group.info.run_id]
    assert {r.data.params["epochs"] for r in children} == {"4"}  # trained once, to 4 epochs
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert artifacts == MAP_ARTIFACTS
    load = mlflow.artifacts.download_artifacts
    table = pd.read_csv(load(f"runs:/{parent.info.run_id}/regime_map.csv"))
    accuracy = table[table["metric"] == "test_accuracy"].set_index("epochs")
    assert set(table["verdict"]) <= VERDICTS
    decided = accuracy[accuracy["verdict"].isin(["better", "worse", "equivalent"])]
    assert (decided["seeds"] < 6).any()  # a cell decided early kept its look's seeds
    assert accuracy["seeds"].nunique() > 1  # the cells stopped at different seed counts
    assert len(children) == 2 * accuracy["seeds"].max()  # batches of 2 seeds until decided
    assert "looking every 2 seeds up to 6" in text
    effect = pd.read_csv(load(f"runs:/{parent.info.run_id}/effect_by_epoch.csv"))
    assert list(effect["epoch"]) == [1, 2, 4] and set(effect["group"]) == {"b - a"}
    group_artifacts = {a.path for a in client.list_artifacts(group.info.run_id)}
    assert {"epochs=1", "epochs=4"} <= group_artifacts  # each cell's own study report


def test_a_grid_killed_with_kill_9_finishes_every_cell_on_its_first_rerun(client):
    """Before: the rerun queued the killed cell again without its grid id, and Optuna's
    GridSampler raised KeyError: 'grid_id' (exit 1, the top parent FAILED, a cell never run)."""
    argv = ["study", "--dataset", "digits", "--grid", "epochs=2,30", "--hidden-units", "32,16"]
    argv += ["--configs", "a=0,0;b=0.5,0", "--seeds", "2", "--study-name", "killed grid"]
    signal_at_epoch(start(*argv), signal.SIGKILL, epoch=3)
    assert cli.main(argv) == 0
    runs = runs_of(client, "killed grid")
    [parent] = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert parent.info.status == "FINISHED"
    finished_cells = {
        run.data.tags["grid_cell"]
        for run in runs
        if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id
        and run.info.status == "FINISHED"
    }
    assert finished_cells == {"epochs<=30"}  # one training serves both cells
    assert running_runs(client) == []


def test_a_diverging_cell_is_a_result_marked_on_the_map(capsys, client):
    """Before: the diverged cell was trained again at the end (4 more FAILED runs), the grid
    ended FAILED without a map, "TrainingDiverged: TrainingDiverged: …" was repeated and an
    empty progress line "epoch 1/2  0 runs" was printed."""
    argv = ["study", "--dataset", "digits", "--epochs", "2", "--seeds", "2"]
    argv += ["--grid", "learning_rate=0.001,1e30", "--study-name", "diverging grid"]
    capsys.readouterr()
    assert cli.main(argv) == 3
    out, err = capsys.readouterr()
    assert err.splitlines()[-1].startswith(
        "error: 1 of 2 training groups diverged (learning_rate=1e+30)"
    )
    assert " 0 runs" not in out and "Traceback" not in err
    runs = runs_of(client, "diverging grid")
    [parent] = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert parent.info.status == "FINISHED"
    table = pd.read_csv(
        mlflow.artifacts.download_artifacts(f"runs:/{parent.info.run_id}/regime_map.csv")
    )
    verdicts = dict(zip(table["learning_rate"], table["verdict"], strict=False))
    assert verdicts[1e30] == "diverged" and verdicts[0.001] != "diverged"
    diverged = [run for run in runs if run.data.tags.get("grid_cell") == "learning_rate=1e+30"]
    cell = [run for run in diverged if "study_seed" not in run.data.tags]
    children = [run for run in diverged if "study_seed" in run.data.tags]
    assert len(cell) == 1 and len(children) == 4  # trained once: divergence is deterministic
    for run in diverged:
        assert run.info.status == "FAILED"
        reason = run.data.tags["failure_reason"]
        assert reason.count("TrainingDiverged") == 1 and reason.count("loss became") == 1
    assert running_runs(client) == []
