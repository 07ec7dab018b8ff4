"""`pipeline <entry point> --option value ...`: one subcommand per MLproject entry point.

Options are generated from the entry point's config dataclass, so names and defaults cannot drift
(`--dropout-rates` is the param `dropout_rates`). Bad input exits with code 2 and one line on
stderr before anything is trained or tracked. SIGTERM ends runs KILLED, like Ctrl-C (exit code
128 + the signal's number); no password reaches the terminal (`secrets`).
"""

from __future__ import annotations

import argparse
import dataclasses
import faulthandler
import gc
import os
import sys

from pipeline import lifecycle, runtime, secrets
from pipeline.config.entry_points import EvaluateConfig, ParameterError, TrainConfig
from pipeline.config.study import StudyConfig
from pipeline.config.tune import TuneConfig


def run_train(config: TrainConfig):
    from pipeline.data.datasets import load_dataset
    from pipeline.experiments.train import train

    dataset = load_dataset(config)  # bad data_dir -> exit 2 before any run exists
    result = train(config, dataset)
    print(
        f"run {result.run_id}: test_accuracy {result.test_metrics['test_accuracy']:.4f}  "
        f"test_macro_f1 {result.test_metrics['test_macro_f1']:.4f}"
    )


def run_evaluate(config: EvaluateConfig):
    from pipeline.experiments.evaluate import evaluate

    result = evaluate(config)
    metrics = result.metrics
    line = f"run {result.run_id}: test_accuracy {metrics['test_accuracy']:.4f}"
    if "accuracy_difference" in metrics:
        line += (
            f"  difference to baseline {metrics['accuracy_difference']:+.4f} "
            f"[{metrics['accuracy_difference_ci95_low']:+.4f}, "
            f"{metrics['accuracy_difference_ci95_high']:+.4f}]  "
            f"McNemar p {metrics['mcnemar_p_value']:.4g}"
        )
    print(line)


def run_tune(config: TuneConfig):
    from pipeline.experiments.tune import tune

    tune(config)  # loads every seed's data before it starts a run: bad data_dir -> exit 2


def run_study(config: StudyConfig):
    # both load their data before they start a run: bad data_dir or train_size -> exit 2
    if config.grid:
        from pipeline.experiments.grid import grid_study  # Optuna walks the cells

        grid_study(config)
    else:
        from pipeline.experiments.study import study

        study(config)


DISK_FULL = ("database or disk is full", "No space left on device")  # SQLite, the OS

COMMANDS = {
    "train": (TrainConfig, run_train, "train the MLP once, tracked as one MLflow run"),
    "evaluate": (
        EvaluateConfig,
        run_evaluate,
        "score a logged model; compare it to a baseline run",
    ),
    "tune": (TuneConfig, run_tune, "Optuna search of the dropout rates; a child run per trial"),
    "study": (StudyConfig, run_study, "paired multi-seed comparison of dropout configs"),
}


def option_name(param: str) -> str:
    return "--" + param.replace("_", "-")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pipeline", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, (config_class, _, help_text) in COMMANDS.items():
        subparser = subparsers.add_parser(name, help=help_text, description=help_text)
        defaults = config_class.defaults()
        for field in dataclasses.fields(config_class):
            subparser.add_argument(
                option_name(field.name),
                dest=field.name,
                default=defaults[field.name],
                metavar="VALUE",
                help=f"{field.metadata['help']} (default: {defaults[field.name]!r})",
            )
    return parser


def fail_mlflow_run(error: ParameterError):
    """Under `mlflow run` the run exists before the params are checked: it ends FAILED with the
    one-line error as its reason (MLflow would end it FAILED without one)."""
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if run_id:
        from pipeline import tracking

        tracking.end_run_by_id(run_id, "FAILED", f"{type(error).__name__}: {error}")


def keras_backend(config) -> str:
    """The Keras backend the command needs: the config's `backend` where Keras trains (the keras
    engine; evaluate), JAX where it only builds the models that runs log (the population engine
    trains in JAX: TensorFlow's import, ~3-7 s, is skipped)."""
    if getattr(config, "engine", "keras") == "keras":
        return getattr(config, "backend", "tensorflow")
    return "jax"


def main(argv: list[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    config_class, command, _ = COMMANDS[args.pop("command")]
    lifecycle.handle_signals()
    sys.excepthook = secrets.excepthook  # an unexpected error's traceback, redacted
    try:
        config = config_class.from_strings(args)
        runtime.setup(keras_backend(config))  # before the command imports Keras
        from pipeline import tracking  # imports mlflow, after the runtime's setup
        from pipeline.tracking import store

        store.open_store()
        tracking.end_dead_runs()  # what an earlier process killed with -9 left RUNNING
        command(config)
    except ParameterError as error:
        print(f"error: {secrets.redact(str(error))}", file=sys.stderr)
        fail_mlflow_run(error)
        return 2
    except KeyboardInterrupt as error:  # Ctrl-C or SIGTERM: the runs are already KILLED
        print(f"interrupted by {lifecycle.signal_name(error)}", file=sys.stderr)
        return lifecycle.exit_code(error)
    except RuntimeError as error:  # e.g. TrainingDiverged: the run is already marked FAILED
        print(f"error: {secrets.redact(str(error))}", file=sys.stderr)
        return getattr(error, "exit_code", 1)  # 3: a grid's map logged, some cells diverged
    except Exception as error:
        if not disk_full(error):
            raise
        first_line = secrets.redact(str(error).strip().splitlines()[0])
        print(f"error: the disk of the tracking store is full ({first_line})", file=sys.stderr)
        return 1
    return 0


def disk_full(error: BaseException | None) -> bool:
    """Whether the error, or one it arose from, is a full disk (SQLite's words or the OS's):
    one line says it better than a traceback through MLflow and SQLAlchemy."""
    while error is not None:
        if any(words in str(error) for words in DISK_FULL):
            return True
        error = error.__cause__ or error.__context__
    return False


def run():
    """The `pipeline` console script and `python -m pipeline`: `main`, then a quick exit."""
    faulthandler.enable()  # a crash in native code (TensorFlow, SQLite) prints where it was
    code = main()
    # At exit, Python's last collection would free protobuf's objects one by one, each
    # trimming the heap (malloc_trim): ~3 s after TensorFlow. The OS frees them at once.
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    run()
