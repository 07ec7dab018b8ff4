"""`python -m pipeline.create_experiment <name>`: the MLflow experiment `<name>`, created as the
pipeline creates its own (a local SQLite store keeps its artifacts beside it, in
`mlruns/<name>`), before `mlflow run --experiment-name <name>` would create it with MLflow's
default: `mlruns/` of the working directory. An existing experiment is left as it is. `make
train` runs it first.
"""

from __future__ import annotations

import argparse
import sys

from pipeline.config.validation import ParameterError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.create_experiment", description=__doc__
    )
    parser.add_argument("name", help="the experiment's name, e.g. dropout-mlp-digits")
    name = parser.parse_args(argv).name
    import mlflow

    from pipeline.tracking import store

    try:
        store.open_store()
    except ParameterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    experiment = mlflow.MlflowClient().get_experiment(store.experiment_id(name))
    print(f"experiment {name!r} (id {experiment.experiment_id}): {experiment.artifact_location}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
