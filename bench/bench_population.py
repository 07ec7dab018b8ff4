"""Population engine against the keras engine: seconds per model-epoch, batch 32.

K replicas of the notebook MLP (dropout 0.5, 0.25, 0; seeds 0..K-1, all on one seed's split
of the data, stored once) train for one warm-up epoch (compiling) and one timed epoch, with
validation, per engine and K, through the engine seam (`fit(members, on_epoch)`); the rounds
interleave engines and Ks, and each cell is the median over rounds of the timed epoch's
`epoch_seconds` (the engine call's epoch time divided by K). The keras engine runs on this
process's Keras backend (KERAS_BACKEND, default TensorFlow). Prints a markdown table and writes
--out (bench/population_results.json; the recorded one of 2026-12-04 also has a `replicas`
column: the retired Keras replica model's).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))
RATES = (0.5, 0.25, 0.0)


def engine_seconds(engine: str, dataset, k: int, epochs: int = 2) -> float:
    """The last epoch's seconds per model-epoch of K members trained by one engine call."""
    from pipeline.config.entry_points import TrainConfig
    from pipeline.engines.base import Member
    from pipeline.experiments.train import engine_for

    config = TrainConfig(epochs=epochs, dropout_rates=RATES, engine=engine)
    members = [Member(dataclasses.replace(config, seed=seed), dataset) for seed in range(k)]
    seconds = []
    engine_for(engine).fit(members, lambda epoch, metrics: seconds.append(metrics[0]))
    return seconds[-1]["epoch_seconds"]


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
    parser.add_argument("--keras-ks", default="1", help="the keras engine trains one at a time")
    parser.add_argument("--out", default=str(BENCH_DIR / "population_results.json"))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from pipeline import runtime

    runtime.setup(os.environ.get("KERAS_BACKEND", "tensorflow"))
    from pipeline.config.entry_points import TrainConfig
    from pipeline.data.datasets import load_dataset
    from pipeline.engines.population import PopulationEngine

    dataset = load_dataset(TrainConfig(dataset=args.dataset, data_dir=args.data_dir, seed=0))
    ks = {"population": args.population_ks, "keras": args.keras_ks}
    cells = [(engine, int(k)) for engine, text in ks.items() for k in filter(None, text.split(","))]
    runs: dict[str, dict[int, list[float]]] = {}
    for round_ in range(args.rounds):
        for engine, k in cells:
            seconds = engine_seconds(engine, dataset, k)
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
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))


if __name__ == "__main__":
    main()
