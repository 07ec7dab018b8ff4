"""`make bench`: the pipeline against the bare notebook code, on the same data and model.

Writes bench/results.json and bench/results.md (and the table into docs/performance.md between the
`bench` markers). Every timing is repeated (seeds 0..repeats-1) and reported as the median.

    python bench/bench.py [--epochs 10] [--repeats 3] [--trials 20] [--trial-epochs 9]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pandas as pd
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from pipeline import runtime, tracking
from pipeline.config.entry_points import TrainConfig
from pipeline.config.tune import PRUNERS, TuneConfig
from pipeline.data.datasets import Dataset, load_dataset
from pipeline.data.sources import DEBIAN_FASHION_MNIST

BENCH_DIR = Path(__file__).resolve().parent
PERFORMANCE_DOC = BENCH_DIR.parent / "docs" / "performance.md"
TRACKING_CALLS = (
    "log_params",
    "log_params_to",
    "log_metrics",
    "log_metrics_to",
    "create_run",
    "tag_run",
    "end_run_by_id",
    "end_run_after",
    "log_dataset_splits",
    "log_figure",
    "log_text",
    "log_files",
    "log_keras_model",
    "set_tags",
)


class TrackingTimer:
    """Adds up the seconds spent inside pipeline.tracking (every MLflow call goes through it),
    in all, and per call in `by_call` (from any thread: a group's runs finish in one)."""

    def __init__(self):
        self.seconds = 0.0
        self.by_call: dict[str, float] = {}
        self.lock = threading.Lock()
        for name in TRACKING_CALLS:
            setattr(tracking, name, self._timed(getattr(tracking, name)))
        original_run = tracking.run

        @contextlib.contextmanager
        def timed_run(*args, **kwargs):
            manager = original_run(*args, **kwargs)
            started = time.perf_counter()
            run_id = manager.__enter__()
            self.seconds += time.perf_counter() - started
            try:
                yield run_id
            except BaseException as error:
                manager.__exit__(type(error), error, error.__traceback__)
                raise
            started = time.perf_counter()
            manager.__exit__(None, None, None)
            self.seconds += time.perf_counter() - started

        tracking.run = timed_run

    def _timed(self, function):
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                seconds = time.perf_counter() - started
                with self.lock:
                    self.seconds += seconds
                    name = function.__name__
                    self.by_call[name] = self.by_call.get(name, 0.0) + seconds

        return timed


def bench_dataset() -> str:
    return "fashion_mnist" if DEBIAN_FASHION_MNIST.is_dir() else "digits"


def bare_notebook(name: str, epochs: int, seed: int) -> dict:
    """The notebook's code with the pipeline's default model: build, compile, fit(x, y) with
    Keras' defaults (one step per call). Trained on the pipeline's training split (the same
    examples), without validation or tracking, in a process of its own with TensorFlow's
    defaults (no runtime.setup)."""
    import keras

    from pipeline.models.mlp import build_model
    from pipeline.models.spec import ModelSpec

    dataset = load_dataset(TrainConfig(dataset=name, seed=seed))
    keras.utils.set_random_seed(seed)
    started = time.perf_counter()
    spec = ModelSpec(dataset.x_train.shape[1:], 10, (100, 50, 25), (0.5, 0.25, 0.0))
    model = build_model(spec, steps_per_execution=1)
    model.fit(dataset.x_train, dataset.y_train, epochs=epochs, batch_size=32, verbose=0)
    seconds = time.perf_counter() - started
    probabilities = model.predict(dataset.x_test, verbose=0)
    return {
        "seconds": seconds,
        "test_accuracy": float(np.mean(probabilities.argmax(axis=1) == dataset.y_test)),
    }


def in_fresh_process(*args: str, environment: dict[str, str] | None = None) -> dict:
    """bench.py run with hidden `args` in a new Python process; its last line is JSON. It picks
    its own Keras backend: the bare notebook code Keras' default, TensorFlow."""
    command = [sys.executable, str(BENCH_DIR / "bench.py"), *args]
    inherited = {key: value for key, value in os.environ.items() if key != "KERAS_BACKEND"}
    environment = {**inherited, **(environment or {})}
    output = subprocess.run(command, capture_output=True, text=True, check=True, env=environment)
    return json.loads(output.stdout.strip().splitlines()[-1])


def pipeline_train(config: TrainConfig, dataset: Dataset, timer: TrackingTimer) -> dict:
    from pipeline.experiments.train import (
        train,  # not at the top: --bare and --lever keep TF's defaults
    )

    timer.seconds = 0.0
    started = time.perf_counter()
    result = train(config, dataset)
    seconds = time.perf_counter() - started
    return {
        "run_id": result.run_id,
        "seconds": seconds,
        "tracking_seconds": timer.seconds,
        "test_accuracy": result.test_metrics["test_accuracy"],
    }


TRAIN_VARIANTS = {  # prefix: (config changes, MLflow's async logging)
    "": ({}, False),  # defaults: engine=population
    "async_": ({}, True),
    "keras_": ({"engine": "keras"}, False),
    "keras_jax_": ({"engine": "keras", "backend": "jax"}, False),
}


def train_variant(prefix: str, name: str, epochs: int, seed: int) -> dict:
    """`pipeline train` of a variant in TRAIN_VARIANTS, in this (fresh) process, with the Keras
    backend the CLI picks for it; with async logging, checks that every epoch still arrived."""
    from pipeline.cli import keras_backend

    changes, async_logging = TRAIN_VARIANTS[prefix]
    config = TrainConfig(dataset=name, epochs=epochs, seed=seed, **changes)
    runtime.setup(keras_backend(config))
    mlflow.config.enable_async_logging(async_logging)
    row = pipeline_train(config, load_dataset(config), TrackingTimer())
    mlflow.config.enable_async_logging(False)
    assert len(tracking.metric_history(row["run_id"], "val_accuracy")) == config.epochs
    return row


def medians(rows: list[dict], bare: float, prefix: str) -> dict:
    """A variant's median wall time, its ratio to the bare code's, its median share of time
    inside MLflow, its accuracies and its first run's time (the one that compiled), under keys
    that start with `prefix`."""
    seconds = statistics.median(row["seconds"] for row in rows)
    return {
        f"{prefix}seconds_median": seconds,
        f"{prefix}time_ratio": seconds / bare,
        f"{prefix}tracking_share_median": statistics.median(
            row["tracking_seconds"] / row["seconds"] for row in rows
        ),
        f"{prefix}accuracy": [row["test_accuracy"] for row in rows],
        f"{prefix}first_seconds": rows[0]["seconds"],
    }


def compare_train(name: str, epochs: int, repeats: int) -> dict:
    """The bare notebook code against `pipeline train` on defaults (engine=population), with
    MLflow's async logging, and on the notebook's path (engine=keras) with either backend, each
    in a process of its own as the CLI runs it, JAX's compilation cache empty at the first
    seed."""
    rows = {key: [] for key in ("bare", *TRAIN_VARIANTS)}
    cache = {"JAX_COMPILATION_CACHE_DIR": tempfile.mkdtemp()}
    for seed in range(repeats):
        run = ("--dataset", name, "--seed", str(seed), "--epochs", str(epochs))
        rows["bare"].append(in_fresh_process("--bare", *run))
        for prefix in TRAIN_VARIANTS:
            variant = ("--train-variant", prefix or "defaults")
            rows[prefix].append(in_fresh_process(*variant, *run, environment=cache))
        print(f"seed {seed}: " + "  ".join(f"{key} {value[-1]}" for key, value in rows.items()))
    bare = statistics.median(row["seconds"] for row in rows["bare"])
    results = {
        "bare_seconds_median": bare,
        "bare_accuracy": [row["test_accuracy"] for row in rows["bare"]],
    }
    for prefix in TRAIN_VARIANTS:
        results |= medians(rows[prefix], bare, prefix)
    return results


def compare_pruning(name: str, trials: int, epochs: int) -> dict:
    """The same seeded study with and without pruning: epochs spent and best value."""
    from pipeline.experiments.tune import epochs_spent, tune

    results = {}
    for pruner in PRUNERS[::-1]:  # "none" first
        config = TuneConfig(
            dataset=name,
            epochs=epochs,
            n_trials=trials,
            pruner=pruner,
            pruner_startup_trials=2,
            final_seeds=0,
            study_name=f"bench-{pruner}-{time.time_ns()}",
        )
        started = time.perf_counter()
        study = tune(config)
        results[pruner] = {
            "seconds": time.perf_counter() - started,
            "best_val_accuracy": study.best_value,
            **epochs_spent(study, epochs),
        }
    return results


def compare_workers(trials: int = 8, epochs: int = 3) -> dict:
    """One study run by one `pipeline tune` process, then the same study by two processes
    sharing a journal storage (digits: small enough that the cores, not memory, decide), each
    in batches of 4 trials (`replicas`): with the default 10 the first worker took all 8."""
    runs = {}
    for workers in (1, 2):
        study_name = f"bench-workers-{workers}-{time.time_ns()}"
        command = [
            sys.executable, "-m", "pipeline", "tune", "--dataset", "digits",
            "--epochs", str(epochs), "--n-trials", str(trials), "--pruner", "none",
            "--final-seeds", "0", "--study-name", study_name, "--replicas", "4",
            "--storage", f"journal:{Path.cwd() / 'workers.journal'}",
        ]  # fmt: skip
        started = time.perf_counter()
        processes = [subprocess.Popen(command, stdout=subprocess.DEVNULL) for _ in range(workers)]
        if any(process.wait() != 0 for process in processes):
            raise RuntimeError(f"a tune worker failed: {command}")
        seconds = time.perf_counter() - started
        storage = JournalStorage(JournalFileBackend(str(Path.cwd() / "workers.journal")))
        study = optuna.load_study(study_name=study_name, storage=storage)
        finished = len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED)))
        runs[str(workers)] = {"seconds": seconds, "finished": finished}
        print(f"{workers} tune worker(s): {seconds:.1f}s, {finished} finished trials")
    return {"dataset": "digits", "trials": trials, "epochs": epochs, "runs": runs}


LEVERS = {  # cumulative: each row adds one setting to the row above
    "keras defaults (the notebook's fit)": {"steps_per_execution": 1},
    "+ steps_per_execution=32": {},
    "+ one intra-op thread": {"intra_op_threads": 1},
    "+ the pipeline's tf.data batches (no autotuning)": {"intra_op_threads": 1, "batches": True},
    "+ steps_per_execution=one call per epoch (pipeline)": {
        "intra_op_threads": 1,
        "batches": True,
        "steps_per_execution": "epoch",
    },
    "+ XLA jit_compile (needs op determinism off)": {
        "intra_op_threads": 1,
        "batches": True,
        "jit_compile": True,
    },
    "Keras on JAX instead (backend=jax: XLA, other random streams)": {
        "backend": "jax",
        "batches": True,
    },
}


def lever_setup(settings: dict):
    """TensorFlow's settings of one lever (or runtime.setup's for JAX), before Keras starts."""
    if settings.get("backend") == "jax":
        runtime.setup("jax")
        return
    import tensorflow as tf

    if "intra_op_threads" in settings:
        tf.config.threading.set_intra_op_parallelism_threads(settings["intra_op_threads"])
    if not settings.get("jit_compile"):  # Keras turns XLA off under op determinism (TF only)
        tf.config.experimental.enable_op_determinism()


def measure_lever(lever: str, name: str, epochs: int = 8) -> dict:
    """Epoch time and test accuracy of the pipeline's model under one lever's settings, in a
    fresh process (thread settings only apply before TensorFlow starts)."""
    settings = LEVERS[lever]
    lever_setup(settings)
    import keras

    from pipeline.engines.keras_engine import steps_per_execution, training_data
    from pipeline.models.inputs import PREDICT_BATCH_SIZE, in_order
    from pipeline.models.mlp import build_model
    from pipeline.models.spec import ModelSpec

    dataset = load_dataset(TrainConfig(dataset=name))
    x_train, x_val = dataset.x_train.astype("float32"), dataset.x_val.astype("float32")
    steps = settings.get("steps_per_execution", 32)
    if steps == "epoch":  # as train sets it
        steps = steps_per_execution(len(x_train), 32)
    keras.utils.set_random_seed(0)
    spec = ModelSpec(x_train.shape[1:], 10, (100, 50, 25), (0.5, 0.25, 0.0))
    model = build_model(spec, 0.001, steps, jit_compile=settings.get("jit_compile", "auto"))
    if settings.get("batches"):  # as train feeds the model
        data = training_data(x_train, dataset.y_train, 32, seed=0)
        validation = in_order(x_val, dataset.y_val)
    else:
        data = {"x": x_train, "y": dataset.y_train, "batch_size": 32}
        validation = (x_val, dataset.y_val)
    epoch_seconds = []
    callback = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: epoch_seconds.append(-time.perf_counter()),
        on_epoch_end=lambda epoch, logs: epoch_seconds.append(
            epoch_seconds.pop() + time.perf_counter()
        ),
    )
    model.fit(
        **data,
        epochs=epochs,
        validation_data=validation,
        validation_batch_size=PREDICT_BATCH_SIZE,
        callbacks=[callback],
        verbose=0,
    )
    x_test = dataset.x_test.astype("float32")
    probabilities = model.predict(*in_order(x_test), batch_size=PREDICT_BATCH_SIZE, verbose=0)
    return {
        # the mean, not the median: an occasional stalled epoch is a cost too
        "epoch_seconds_mean": statistics.mean(epoch_seconds[1:]),  # epoch 1 traces the graph
        "test_accuracy": float(np.mean(probabilities.argmax(axis=1) == dataset.y_test)),
    }


def compare_levers(name: str) -> dict:
    results = {}
    for lever in LEVERS:
        results[lever] = in_fresh_process("--lever", lever, "--dataset", name)
        print(lever, results[lever])
    return results


def table(columns: str, rows: list[tuple]) -> str:
    """A markdown table (columns separated by `|`), cells as given: numbers not re-parsed."""
    frame = pd.DataFrame(rows, columns=columns.split("|"))
    return frame.to_markdown(index=False, disable_numparse=True)


def mean_sd(values: list[float]) -> str:
    return f"{np.mean(values):.4f} ± {np.std(values):.4f}"


def targets(results: dict) -> str:
    """The issue's targets against this run's numbers, each with met / not met."""
    train, tune = results["train"], results["tune"]
    unpruned = tune["none"]
    close = {  # pruners whose best value is within 1 point of the unpruned study's
        pruner: row["epochs_trained"] / unpruned["epochs_trained"]
        for pruner, row in tune.items()
        if pruner != "none" and unpruned["best_val_accuracy"] - row["best_val_accuracy"] <= 0.01
    }
    best = min(close, key=close.get) if close else None
    rows = [
        ("train on defaults: wall time <= 0.5x the bare notebook code",
         f"{train['time_ratio']:.2f}x", train["time_ratio"] <= 0.5),
        ("the same on the notebook's path (engine=keras, TensorFlow)",
         f"{train['keras_time_ratio']:.2f}x", train["keras_time_ratio"] <= 0.5),
        ("time inside MLflow calls <= 5%", f"{100 * train['tracking_share_median']:.1f}%",
         train["tracking_share_median"] <= 0.05),
        ("pruning: <= 40% of the unpruned epochs, best value within 1 point",
         f"{close[best]:.0%} ({best})" if best else "no pruner within 1 point",
         bool(best) and close[best] <= 0.4),
    ]  # fmt: skip
    rows = [(name, value, "yes" if met else "no") for name, value, met in rows]
    return table("target|measured|met", rows)


def train_table(train: dict) -> str:
    bare = train["bare_seconds_median"]
    rows = [
        (
            "wall time (s)",
            f"{bare:.1f}",
            f"{train['seconds_median']:.1f}",
            f"{train['time_ratio']:.2f}x",
        ),
        (
            "test accuracy (mean ± sd over seeds)",
            mean_sd(train["bare_accuracy"]),
            mean_sd(train["accuracy"]),
            "",
        ),
        ("time inside MLflow calls", "—", f"{100 * train['tracking_share_median']:.1f}%", ""),
    ]
    for prefix, label in (("async_", "with async MLflow logging"),
                          ("keras_", "engine=keras (model.fit, TensorFlow)"),
                          ("keras_jax_", "engine=keras, backend=jax")):  # fmt: skip
        rows += [
            (f"{label}: wall time (s)", "", f"{train[prefix + 'seconds_median']:.1f}",
             f"{train[prefix + 'time_ratio']:.2f}x"),
            (f"{label}: test accuracy (mean ± sd over seeds)", "",
             mean_sd(train[prefix + "accuracy"]), ""),
            (f"{label}: time inside MLflow calls", "",
             f"{100 * train[prefix + 'tracking_share_median']:.1f}%", ""),
        ]  # fmt: skip
    for prefix, label in (("", "defaults"), ("keras_jax_", "engine=keras, backend=jax")):
        first = train[prefix + "first_seconds"]
        rows.append((f"{label}: first run, empty compilation cache (s)", "", f"{first:.1f}",
                     f"{first / bare:.2f}x"))  # fmt: skip
    return table(
        "measure|bare notebook code|pipeline train (defaults: engine=population)|ratio", rows
    )


def tune_table(tune: dict) -> str:
    unpruned = tune["none"]
    rows = [
        (pruner, str(row["epochs_trained"]),
         f"{row['epochs_trained'] / unpruned['epochs_trained']:.0%}",
         f"{row['best_val_accuracy']:.4f}",
         f"{100 * (row['best_val_accuracy'] - unpruned['best_val_accuracy']):+.2f}",
         str(row["n_pruned_trials"]), f"{row['seconds']:.0f}")
        for pruner, row in tune.items()
    ]  # fmt: skip
    return table(
        "pruner|epochs trained|share of unpruned|best val_accuracy|vs unpruned (points)|"
        "pruned trials|wall time (s)",
        rows,
    )


def markdown(results: dict) -> str:
    workers, runs = results["workers"], results["workers"]["runs"]
    worker_rows = [
        (count, f"{row['seconds']:.1f}", f"{runs['1']['seconds'] / row['seconds']:.2f}x",
         str(row["finished"]))
        for count, row in runs.items()
    ]  # fmt: skip
    lever_rows = [
        (lever, f"{row['epoch_seconds_mean']:.2f}", f"{row['test_accuracy']:.4f}")
        for lever, row in results["levers"].items()
    ]
    sections = [
        f"Machine: {results['machine']}; data: {results['dataset']}, batch 32, "
        f"{results['epochs']} epochs, median of {results['repeats']} seeds.",
        train_table(results["train"]),
        f"Tune, {results['trials']} trials x {results['trial_epochs']} epochs, same seed:",
        tune_table(results["tune"]),
        f"Tune workers sharing one journal storage ({workers['dataset']}, {workers['trials']} "
        f"trials x {workers['epochs']} epochs, no pruning):",
        table("workers|wall time (s)|speed-up|finished trials", worker_rows),
        f"Training levers of engine=keras (one seed, {results['dataset']}, mean of the epochs "
        "after the first):",
        table("lever|seconds per epoch|test accuracy after 8 epochs", lever_rows),
        "Targets:",
        targets(results),
    ]
    return "\n\n".join(sections)


def write_readme_table(table: str):
    text = PERFORMANCE_DOC.read_text()
    pattern = re.compile(r"(<!-- bench:start -->\n).*?(<!-- bench:end -->)", re.DOTALL)
    PERFORMANCE_DOC.write_text(pattern.sub(lambda match: f"{match[1]}{table}\n{match[2]}", text))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--trial-epochs", type=int, default=9)
    parser.add_argument("--lever", choices=LEVERS, help=argparse.SUPPRESS)
    parser.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--train-variant", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--dataset", default=bench_dataset(), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.lever:
        print(json.dumps(measure_lever(args.lever, args.dataset)))
        return
    if args.bare:
        print(json.dumps(bare_notebook(args.dataset, args.epochs, args.seed)))
        return
    if args.train_variant:
        prefix = "" if args.train_variant == "defaults" else args.train_variant
        print(json.dumps(train_variant(prefix, args.dataset, args.epochs, args.seed)))
        return
    name = args.dataset
    runtime.setup("jax")  # as the CLI for engine=population (tune below); the rest: own processes
    with tempfile.TemporaryDirectory() as store:
        os.chdir(store)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store}/mlflow.db"
        results = {
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
            "dataset": name,
            "epochs": args.epochs,
            "repeats": args.repeats,
            "trials": args.trials,
            "trial_epochs": args.trial_epochs,
            "levers": compare_levers(name),
            "train": compare_train(name, args.epochs, args.repeats),
            "tune": compare_pruning(name, args.trials, args.trial_epochs),
            "workers": compare_workers(),
        }
    (BENCH_DIR / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (BENCH_DIR / "results.md").write_text(table + "\n")
    write_readme_table(table)
    print(table)


if __name__ == "__main__":
    main()
