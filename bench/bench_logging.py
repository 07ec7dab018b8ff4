"""Time inside MLflow and figure rendering in a many-seed study: 2 configs x 50 seeds x 20 epochs
on mnist_5k (100 runs, population engine, groups of 10), every run a complete run.

Runs the study in this process with `bench.TrackingTimer` around every call of
`pipeline.tracking` (from any thread), into a fresh local store, and prints and writes
(--out, bench/logging_results.json): the wall time, the seconds inside tracking calls (summed
over threads: the finishing thread overlaps training), those rendering and logging figures
(`log_figure`) and logging models (`log_keras_model`), and the runs' `epoch_seconds` summed over
runs and epochs (a population's epoch time is shared out among its runs).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))
sys.path.insert(0, str(BENCH_DIR))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist_5k")
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--out", default=str(BENCH_DIR / "logging_results.json"))
    args = parser.parse_args()
    store = tempfile.mkdtemp()
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store}/mlflow.db"
    from pipeline import runtime

    runtime.setup("jax")  # as the CLI for engine=population
    import mlflow

    from bench import TrackingTimer
    from pipeline.config.study import StudyConfig
    from pipeline.experiments.study import study
    from pipeline.tracking import store as tracking_store

    tracking_store.open_store()
    timer = TrackingTimer()
    config = StudyConfig(dataset=args.dataset, seeds=args.seeds, epochs=args.epochs)
    started = time.perf_counter()
    study(config)
    wall = time.perf_counter() - started
    runs = mlflow.search_runs(search_all_experiments=True)
    children = runs[runs["tags.mlflow.parentRunId"].notna()]
    client = mlflow.MlflowClient()
    results = {
        "study": f"{args.dataset}, 2 configs x {args.seeds} seeds x {args.epochs} epochs",
        "runs": len(children),
        "finished": int((children["status"] == "FINISHED").sum()),
        "wall_seconds": wall,
        "tracking_seconds": timer.seconds,
        "figure_seconds": timer.by_call.get("log_figure", 0.0),
        "model_seconds": timer.by_call.get("log_keras_model", 0.0),
        "epoch_seconds_sum": sum(
            sum(metric.value for metric in client.get_metric_history(run_id, "epoch_seconds"))
            for run_id in children["run_id"]
        ),
        "by_call": dict(sorted(timer.by_call.items(), key=lambda item: -item[1])),
    }
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
