"""Population engine against the replica engine: seconds per model-epoch, batch 32.

K replicas of the notebook MLP (dropout 0.5, 0.25, 0; seeds 0..K-1, all on one seed's split
of the data, stored once) train for one warm-up epoch (compiling) and one timed epoch, with
validation, per engine and K; the rounds interleave engines and Ks, and each cell is the median
over rounds of the timed epoch's seconds divided by K. The replica engine is the Keras replica
model (`pipeline.models.replica_mlp`) on this process's backend (TensorFlow). Prints a markdown
table and writes bench/population_results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))
RATES = (0.5, 0.25, 0.0)


def population_seconds(dataset, k: int, epochs: int = 2) -> float:
    """The last epoch's seconds per model-epoch of a population of K."""
    from pipeline.config.entry_points import TrainConfig
    from pipeline.engines.base import Member
    from pipeline.engines.population import PopulationEngine

    members = [Member(TrainConfig(seed=seed, epochs=epochs), dataset) for seed in range(k)]
    seconds = []
    PopulationEngine().fit(members, lambda epoch, metrics: seconds.append(metrics[0]))
    return seconds[-1]["epoch_seconds"]


def replica_seconds(dataset, k: int, epochs: int = 2) -> float:
    """The last epoch's seconds per model-epoch of the Keras replica model of K."""
    import keras

    from pipeline.engines.replica_data import (
        epoch_orders,
        replica_arrays,
        training_data,
        validation_data,
    )
    from pipeline.experiments.train import PREDICT_BATCH_SIZE, steps_per_execution
    from pipeline.models.replica_mlp import build_replica_model

    keras.backend.clear_session()
    x, y = dataset.x_train, dataset.y_train
    model = build_replica_model(
        x.shape[1:], len(dataset.class_names), (100, 50, 25), [RATES] * k, range(k), [1e-3] * k,
        steps_per_execution=steps_per_execution(len(x), 32),
    )  # fmt: skip
    arrays = replica_arrays([x] * k, [y] * k)
    validation = validation_data([dataset.x_val] * k, [dataset.y_val] * k, PREDICT_BATCH_SIZE)
    seconds = []
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        model.fit(
            **training_data(arrays, epoch_orders(range(k), len(x), epoch), 32),
            validation_data=validation,
            validation_batch_size=PREDICT_BATCH_SIZE,
            verbose=0,
        )
        seconds.append((time.perf_counter() - started) / k)
    return seconds[-1]


def markdown(results: dict) -> str:
    import pandas as pd

    table = pd.DataFrame(
        {engine: {k: cell["median"] for k, cell in cells.items()} for engine, cells in
         results["seconds"].items()}
    )  # fmt: skip
    table.index.name = "K"
    return (
        f"Machine: {results['machine']} (JAX devices: {results['devices']}); data: "
        f"{results['dataset']} ({results['examples']} training images), batch 32; seconds per "
        f"model-epoch, medians of {results['rounds']} interleaved rounds:\n\n"
        f"{table.to_markdown(floatfmt='.3f')}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--data-dir", default="", help="a folder of the dataset's IDX files")
    parser.add_argument("--population-ks", default="1,10,100")
    parser.add_argument("--replica-ks", default="1,10")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from pipeline import runtime

    runtime.setup(os.environ.get("KERAS_BACKEND", "tensorflow"))
    from pipeline.config.entry_points import TrainConfig
    from pipeline.data.datasets import load_dataset
    from pipeline.engines.population import PopulationEngine

    dataset = load_dataset(TrainConfig(dataset=args.dataset, data_dir=args.data_dir, seed=0))
    cells = [("population", int(k), population_seconds) for k in args.population_ks.split(",")]
    cells += [("replicas", int(k), replica_seconds) for k in args.replica_ks.split(",")]
    runs: dict[str, dict[int, list[float]]] = {}
    for round_ in range(args.rounds):
        for engine, k, measure in cells:
            seconds = measure(dataset, k)
            runs.setdefault(engine, {}).setdefault(k, []).append(seconds)
            print(f"round {round_ + 1} {engine} K={k}: {seconds:.3f} s", file=sys.stderr)
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "devices": PopulationEngine().device,
        "dataset": args.dataset,
        "examples": len(dataset.x_train),
        "rounds": args.rounds,
        "seconds": {
            engine: {k: {"median": statistics.median(v), "runs": v} for k, v in ks.items()}
            for engine, ks in runs.items()
        },
    }
    (BENCH_DIR / "population_results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))


if __name__ == "__main__":
    main()
