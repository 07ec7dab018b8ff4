"""What a finished search logs on its parent run: the trials, Optuna's plots, the best params,
the epochs pruning saved, and the fresh-seed comparison of the tuned config with the notebook's
two, run through the study code (same child runs, tables and paired tests as `study`)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from pipeline import tracking
from pipeline.analysis.paired import (
    COMPARED_METRICS,
    comparison_table,
    pair_findings,
    summary_table,
)
from pipeline.analysis.sequential import SequentialDesign
from pipeline.config.entry_points import TrainConfig, format_param
from pipeline.config.tune import TuneConfig
from pipeline.data.datasets import seed_datasets
from pipeline.experiments.study import log_table_metrics, run_configs
from pipeline.experiments.workers import FINISHED, SURPLUS_ATTR

ALPHA = 0.05  # significance level of the fresh-seed verdicts
MARGIN = 0.5  # their equivalence margin, in test-accuracy points
FINAL_COLUMNS = [
    "config",
    "dropout_rates",
    *(
        f"{metric}_{stat}"
        for metric in COMPARED_METRICS
        for stat in ("mean", "ci95_low", "ci95_high")
    ),
]


def epochs_spent(study: optuna.Study, epochs: int) -> dict[str, float]:
    trials = study.get_trials(deepcopy=False, states=FINISHED)
    pruned = [trial for trial in trials if trial.state == TrialState.PRUNED]
    trained = sum(len(trial.intermediate_values) for trial in trials)
    failed = [
        trial
        for trial in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
        if not trial.user_attrs.get(SURPLUS_ATTR)
    ]
    return {
        "n_finished_trials": len(trials),
        "n_pruned_trials": len(pruned),
        "n_failed_trials": len(failed),
        "epochs_trained": trained,
        "epochs_saved_by_pruning": len(trials) * epochs - trained,
    }


def best_rates(study: optuna.Study, layers: int) -> tuple[float, ...]:
    return tuple(study.best_params[f"dropout_rate_{layer}"] for layer in range(layers))


def _log_plots(study: optuna.Study):
    """Optuna's own visualizations (matplotlib backend), as png artifacts of the parent."""
    from optuna.visualization import matplotlib as optuna_plots

    plots = {
        "optimization_history": optuna_plots.plot_optimization_history,
        "parallel_coordinate": optuna_plots.plot_parallel_coordinate,
        "slice": optuna_plots.plot_slice,
        "param_importances": optuna_plots.plot_param_importances,
        "intermediate_values": optuna_plots.plot_intermediate_values,
    }
    for name, plot in plots.items():
        try:
            axes = plot(study)
        except (ValueError, RuntimeError) as error:  # e.g. importances need 2+ complete trials
            print(f"skipped plot {name}: {error}")
            continue
        figure = np.ravel(axes)[0].get_figure()
        figure.set_size_inches(10, 6)
        tracking.log_figure(figure, f"plots/{name}.png")
    plt.close("all")


def log_study_results(study: optuna.Study, config: TuneConfig):
    frame = study.trials_dataframe(
        attrs=("number", "value", "params", "state", "duration", "user_attrs")
    )
    frame["duration_seconds"] = frame.pop("duration").dt.total_seconds()
    tracking.log_text(frame.to_csv(index=False), "trials.csv")
    tracking.log_metrics(epochs_spent(study, config.epochs))
    _log_plots(study)
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return
    rates = best_rates(study, len(config.hidden_units))
    best = {"best_val_accuracy": study.best_value, "best_trial_number": study.best_trial.number}
    best.update({f"best_dropout_rate_{layer}": rate for layer, rate in enumerate(rates)})
    if config.search_learning_rate:
        best["best_learning_rate"] = study.best_params["learning_rate"]
    tracking.log_metrics(best)
    tracking.set_tags({"best_dropout_rates": format_param(rates)})


def notebook_configs(config: TuneConfig, study: optuna.Study) -> dict[str, TrainConfig]:
    """The notebook's two configs (padded/cut to the number of layers) and the tuned one;
    no_dropout first: the reference of the paired comparisons."""
    layers = len(config.hidden_units)
    notebook_dropout = ((0.5, 0.25) + (0.0,) * layers)[:layers]
    best_learning_rate = study.best_params.get("learning_rate", config.learning_rate)
    return {
        "no_dropout": config.train_config(dropout_rates=(0.0,) * layers),
        "notebook_dropout": config.train_config(dropout_rates=notebook_dropout),
        "tuned": config.train_config(
            dropout_rates=best_rates(study, layers), learning_rate=best_learning_rate
        ),
    }


def search_seeds(config: TuneConfig) -> range:
    """The seeds every trial trains on: seed, seed+1, ... (trial_seeds of them)."""
    return range(config.seed, config.seed + config.trial_seeds)


def fresh_seeds(config: TuneConfig) -> range:
    """The seeds after the search's, which the search never saw."""
    start = config.seed + config.trial_seeds
    return range(start, start + config.final_seeds)


def compare_on_fresh_seeds(
    config: TuneConfig, study: optuna.Study, parent_run_id: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Retrain the tuned and the notebook's configs on seeds the search never saw (children
    tagged `final_config` and `seed`, reused when FINISHED); log the per-config table
    (`final_summary.csv`), with 2+ seeds the paired comparisons (`final_comparison.csv`), and
    their metrics `final_<config>_…`. Returns both tables (no comparisons for one seed)."""
    configs = notebook_configs(config, study)
    datasets = seed_datasets(config, fresh_seeds(config))
    tags = {"entry_point": "tune", "study": config.name}
    results = run_configs(
        configs, datasets, parent_run_id, tags, "final_config", "seed", config.replicas
    )
    summary = summary_table(configs, results)
    tracking.log_text(summary.to_csv(index=False), "final_summary.csv")
    comparisons = pd.DataFrame()
    if config.final_seeds >= 2:  # a paired test needs two pairs
        comparisons = comparison_table(list(configs), results, final_design(config.final_seeds))
        tracking.log_text(comparisons.to_csv(index=False), "final_comparison.csv")
    log_table_metrics(summary, comparisons, prefix="final_")
    return summary, comparisons


def final_design(seeds: int) -> SequentialDesign:
    """The fresh-seed verdicts: one look at all the seeds (the fixed-size verdict)."""
    return SequentialDesign(ALPHA, MARGIN, seeds, seeds)


def describe_final(summary: pd.DataFrame, comparisons: pd.DataFrame, seeds: int) -> str:
    """The fresh-seed comparison for the parent's description: table and verdicts."""
    lines = [
        f"Test set, retrained on {seeds} fresh seeds (mean, 95% CI):\n",
        summary[FINAL_COLUMNS].to_markdown(index=False, floatfmt=".4f"),
    ]
    if not comparisons.empty:
        lines.append(f"\nPaired by seed, verdicts at alpha {ALPHA}:\n")
        lines.append("\n\n".join(pair_findings(summary, comparisons, final_design(seeds))))
    return "\n".join(lines)
