"""`make bench`, replicas: what training runs together as one replica model buys.

- seconds per model-epoch for K = 1, 2, 5, 10, 20 replicas, per backend;
- a study of 2 configs x 5 seeds x 10 epochs with `replicas=1` against the default, per backend:
  wall-time ratio and mean test accuracy per config, beside 10 runs of the bare notebook code.

Each backend runs in a process of its own (Keras fixes its backend at import). Writes
bench/results_replicas.{json,md} and the tables into docs/performance.md between the
`replicas` markers. `--scaling-only` prints the K scaling of the current process's backend as
JSON (also on a GPU machine, where only Keras and JAX are needed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))
PERFORMANCE_DOC = BENCH_DIR.parent / "docs" / "performance.md"
KS = (1, 2, 5, 10, 20)
BACKENDS = ("tensorflow", "jax")


def scaling(images: np.ndarray, labels: np.ndarray, ks=KS, epochs: int = 3) -> dict:
    """Median seconds per model-epoch (epochs after the first) of K replicas of the notebook's
    MLP with its dropout, batch 32, on `images` (each replica its own order)."""
    import keras

    from pipeline.engines.replica_data import epoch_orders, replica_arrays, replica_batches
    from pipeline.models.replica_mlp import build_replica_model
    from pipeline.models.spec import ModelSpec

    results = {}
    for k in ks:
        keras.backend.clear_session()
        steps = -(-len(images) // 32) if keras.backend.backend() == "tensorflow" else 32
        spec = ModelSpec(images.shape[1:], 10, (100, 50, 25), (0.5, 0.25, 0.0))
        model = build_replica_model(
            spec, [spec.dropout_rates] * k, range(k), [1e-3] * k, steps_per_execution=steps
        )
        arrays = replica_arrays([images] * k, [labels] * k)
        seconds = []
        for epoch in range(epochs):
            started = time.perf_counter()
            orders = epoch_orders(range(k), len(images), epoch)
            model.fit(**replica_batches(arrays, orders, 32), verbose=0)
            seconds.append(time.perf_counter() - started)
        results[k] = statistics.median(seconds[1:]) / k
        print(f"K={k}: {results[k]:.3f} s per model-epoch", file=sys.stderr, flush=True)
    return results


def study_seconds(dataset: str, replicas: int, seeds: int, epochs: int) -> dict:
    """Wall time and per-config mean test accuracy of the default study with `replicas`."""
    from pipeline.config.study import StudyConfig
    from pipeline.experiments.study import study
    from pipeline.tracking import child_runs, experiment_name, find_run

    config = StudyConfig(
        dataset=dataset, seeds=seeds, epochs=epochs, replicas=replicas,
        backend=os.environ["KERAS_BACKEND"], study_name=f"bench-replicas-{replicas}",
    )  # fmt: skip
    started = time.perf_counter()
    study(config)
    seconds = time.perf_counter() - started
    parent = find_run(experiment_name(dataset), {"study": config.name})
    accuracy = {}
    for run in child_runs(parent):
        name = run.data.tags["study_config"]
        accuracy.setdefault(name, []).append(run.data.metrics["test_accuracy"])
    return {"seconds": seconds, "accuracy": {k: float(np.mean(v)) for k, v in accuracy.items()}}


def backend_results(dataset: str, replicas: int, seeds: int, epochs: int) -> dict:
    """This process's backend: K scaling and the study with 1 and `replicas` replicas."""
    from pipeline.config.entry_points import TrainConfig
    from pipeline.data.datasets import load_dataset

    data = load_dataset(TrainConfig(dataset=dataset))
    with tempfile.TemporaryDirectory() as store:
        os.chdir(store)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store}/mlflow.db"
        one = study_seconds(dataset, 1, seeds, epochs)
        many = study_seconds(dataset, replicas, seeds, epochs)
    return {
        "scaling": scaling(data.x_train, data.y_train),
        "study": {"1": one, str(replicas): many},
    }


def in_backend(backend: str, *args: str) -> dict:
    command = [sys.executable, __file__, "--backend-run", *args]
    environment = {**os.environ, "KERAS_BACKEND": backend}
    output = subprocess.run(command, capture_output=True, text=True, check=True, env=environment)
    return json.loads(output.stdout.strip().splitlines()[-1])


def bare_runs(dataset: str, runs: int, epochs: int) -> float:
    """Seconds of `runs` runs of the bare notebook code (bench.py --bare), one after another."""
    total = 0.0
    for seed in range(runs):
        command = [sys.executable, str(BENCH_DIR / "bench.py"), "--bare", "--dataset", dataset]
        command += ["--epochs", str(epochs), "--seed", str(seed)]
        output = subprocess.run(command, capture_output=True, text=True, check=True)
        total += json.loads(output.stdout.strip().splitlines()[-1])["seconds"]
    return total


def markdown(results: dict) -> str:
    replicas = str(results["replicas"])
    rows = []
    for backend, result in results["backends"].items():
        one, many = result["study"]["1"], result["study"][replicas]
        rows.append(
            {
                "backend": backend,
                "replicas=1 (s)": round(one["seconds"], 1),
                f"replicas={replicas} (s)": round(many["seconds"], 1),
                "ratio": f"{many['seconds'] / one['seconds']:.2f}x",
                "test accuracy per config, replicas=1": ", ".join(
                    f"{name} {value:.4f}" for name, value in one["accuracy"].items()
                ),
                f"replicas={replicas}": ", ".join(
                    f"{name} {value:.4f}" for name, value in many["accuracy"].items()
                ),
            }
        )
    study = pd.DataFrame(rows).to_markdown(index=False)
    per_k = pd.DataFrame(
        {backend: result["scaling"] for backend, result in results["backends"].items()}
    )
    per_k.index.name = "K"
    return (
        f"Machine: {results['machine']}; data: {results['dataset']}, batch 32.\n\n"
        f"Study of 2 configs x {results['seeds']} seeds x {results['epochs']} epochs "
        f"(the same {results['seeds'] * 2} runs of the bare notebook code, one after another: "
        f"{results['bare_seconds']:.1f} s):\n\n{study}\n\n"
        f"Seconds per model-epoch with K replicas in one model:\n\n"
        f"{per_k.to_markdown(floatfmt='.3f')}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion_mnist")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--replicas", type=int, default=0, help="default: the study's default")
    parser.add_argument("--backend-run", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--scaling-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ks", default=",".join(map(str, KS)), help=argparse.SUPPRESS)
    args = parser.parse_args()
    from pipeline import runtime

    runtime.setup(os.environ.get("KERAS_BACKEND", "tensorflow"))
    if args.scaling_only:  # random images of MNIST's shape: timing only
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (54000, 28, 28), dtype=np.uint8)
        ks = [int(k) for k in args.ks.split(",")]
        print(json.dumps(scaling(images, rng.integers(0, 10, 54000), ks)))
        return
    from pipeline.config.study import StudyConfig

    replicas = args.replicas or StudyConfig().replicas
    if args.backend_run:
        result = backend_results(args.dataset, replicas, args.seeds, args.epochs)
        print(json.dumps(result))
        return
    study_args = ("--dataset", args.dataset, "--seeds", str(args.seeds))
    study_args += ("--epochs", str(args.epochs), "--replicas", str(replicas))
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "dataset": args.dataset,
        "seeds": args.seeds,
        "epochs": args.epochs,
        "replicas": replicas,
        "bare_seconds": bare_runs(args.dataset, 2 * args.seeds, args.epochs),
        "backends": {
            backend: in_backend(backend, *study_args) for backend in ("tensorflow", "jax")
        },
    }
    (BENCH_DIR / "results_replicas.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (BENCH_DIR / "results_replicas.md").write_text(table + "\n")
    text = PERFORMANCE_DOC.read_text()
    pattern = re.compile(r"(<!-- replicas:start -->\n).*?(<!-- replicas:end -->)", re.DOTALL)
    PERFORMANCE_DOC.write_text(pattern.sub(lambda m: f"{m[1]}{table}\n{m[2]}", text))
    print(table)


if __name__ == "__main__":
    main()
