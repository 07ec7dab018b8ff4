"""Finding runs: by tags (safely: see `_search`), a parent's children, a metric's history."""

from __future__ import annotations

import os
import re

import mlflow

# MLflow's filter strings cannot escape a quote inside a value: only these enter a filter
FILTER_SAFE = re.compile(r"[\w.,:-]*", re.ASCII)


def _search(experiment_ids: list[str], tags: dict[str, str]) -> list:
    """Runs with these tag values, oldest first. MLflow's filter parser strips a value's quotes
    and nothing else, so a quote inside a value cannot be escaped: only values of a safe
    alphabet (ids, numbers, our own names) enter the filter; user text such as a study name
    with quotes, blanks or unicode is compared here, on the runs the filter found."""
    safe = {key: value for key, value in tags.items() if FILTER_SAFE.fullmatch(value)}
    clauses = [f"tags.{key} = '{value}'" for key, value in safe.items()]
    runs = mlflow.search_runs(
        experiment_ids, " and ".join(clauses), order_by=["start_time ASC"], output_format="list"
    )
    return [run for run in runs if all(run.data.tags.get(k) == v for k, v in tags.items())]


def child_runs(parent_run_id: str, tags: dict[str, str] | None = None) -> list:
    """Runs nested under a parent, optionally with the given tag values, oldest first."""
    experiment_id = mlflow.get_run(parent_run_id).info.experiment_id
    return _search([experiment_id], {"mlflow.parentRunId": parent_run_id, **(tags or {})})


def find_run(default_experiment: str, tags: dict[str, str]) -> str | None:
    """The oldest top-level run with these tag values in the experiment runs go to, if any."""
    experiment_id = os.environ.get("MLFLOW_EXPERIMENT_ID")
    if not experiment_id:
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or default_experiment
        experiment = mlflow.MlflowClient().get_experiment_by_name(name)
        if experiment is None:
            return None
        experiment_id = experiment.experiment_id
    runs = _search([experiment_id], tags)
    top_level = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    return top_level[0].info.run_id if top_level else None


def metric_history(run_id: str, key: str) -> list[float]:
    history = mlflow.MlflowClient().get_metric_history(run_id, key)
    return [metric.value for metric in sorted(history, key=lambda metric: metric.step)]


def metric_by_step(run_id: str, key: str) -> dict[int, float]:
    """A metric's values by step (the last one logged at a step)."""
    history = mlflow.MlflowClient().get_metric_history(run_id, key)
    return {metric.step: metric.value for metric in sorted(history, key=lambda m: m.timestamp)}
