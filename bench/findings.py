"""`make findings`: run the acceptance studies and write their answers into README.md.

The text between the `findings` markers in README.md is replaced by what `study` reports, and
the text between the `findings:grid` markers by the regime map of the grid study: the notebook's
net over train_size 1000, 5000 and all, trained to 100 epochs with seeds=auto, so that the map
holds the effect along training at epochs 1, 2, 5, …, 100 and where it crosses zero (its
pictures go to docs/). The README's numbers are the tool's, never typed by hand, and the text
says what a smaller run (`--train-sizes`, `--grid-epochs`, `--max-seeds`) left out of that
plan. Runs go to the usual tracking store; `--parts grid` reruns only the map; `--readme`
writes another file (a check at tiny scale).
"""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

import mlflow

from pipeline import runtime, tracking
from pipeline.config.study import StudyConfig
from pipeline.data.sources import DEBIAN_FASHION_MNIST
from pipeline.experiments.grid import grid_study
from pipeline.experiments.study import study, study_key

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
QUESTIONS = {
    "standard": "Standard recipe (pixels scaled to [0, 1], softmax): does the notebook's dropout "
    "beat no dropout?",
    "notebook": "The notebook's own recipe (raw 0-255 pixels, sigmoid output), re-checked",
}


PLAN = {"train_sizes": "1000,5000,0", "grid_epochs": "10,100", "max_seeds": 50}


def write_between(readme: Path, marker: str, text: str):
    pattern = re.compile(rf"(<!-- {marker}:start -->\n).*?(<!-- {marker}:end -->)", re.DOTALL)
    readme.write_text(pattern.sub(lambda m: f"{m[1]}{text}\n{m[2]}", readme.read_text()))


def studies(args) -> str:
    sections = []
    for recipe, question in QUESTIONS.items():
        config = StudyConfig(
            dataset=args.dataset, recipe=recipe, seeds=args.seeds, epochs=args.epochs
        )
        sections.append(f"### {question}\n\n{study(config)}")
    return "\n\n".join(sections)


def left_out(args) -> str:
    """What this run leaves out of the plan (PLAN), in a sentence; empty when nothing."""
    sizes = set(PLAN["train_sizes"].split(",")) - set(args.train_sizes.split(","))
    parts = [f"train_size {'all' if size == '0' else size}" for size in sorted(sizes)]
    longest = max(map(int, PLAN["grid_epochs"].split(",")))
    if max(map(int, args.grid_epochs.split(","))) < longest:
        parts.append(f"training beyond {args.grid_epochs.split(',')[-1]} of {longest} epochs")
    if args.max_seeds < PLAN["max_seeds"]:
        parts.append(f"seeds beyond {args.max_seeds} of {PLAN['max_seeds']} per cell")
    return f"Left out of the plan on this machine: {'; '.join(parts)}." if parts else ""


def regime_map(args) -> str:
    """The grid of the plan (or the smaller one of the args) with seeds=auto; the map's and
    the effect's pictures copied to docs/ beside the README."""
    grid = f"train_size={args.train_sizes};epochs={args.grid_epochs}"
    config = StudyConfig(
        dataset=args.dataset,
        grid=grid,
        seeds="auto",
        max_seeds=args.max_seeds,
        replicas=args.replicas,
    )
    text = grid_study(config)
    tags = {"study": config.name, "study_key": study_key(config)}
    run_id = tracking.find_run(tracking.experiment_name(config.dataset), tags)
    docs = args.readme.parent / "docs"
    docs.mkdir(exist_ok=True)
    for picture in ("regime_map.png", "effect_by_epoch.png"):
        shutil.copy(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/{picture}"), docs)
    pictures = (
        "![The regime map](docs/regime_map.png)\n\n"
        "![The effect along training](docs/effect_by_epoch.png)"
    )
    return "\n\n".join(filter(None, [text, left_out(args), pictures]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = "fashion_mnist" if DEBIAN_FASHION_MNIST.is_dir() else "mnist"
    parser.add_argument("--dataset", default=default)
    parser.add_argument("--seeds", type=int, default=5, help="the two studies' seeds")
    parser.add_argument("--epochs", type=int, default=10, help="the two studies' epochs")
    parser.add_argument("--train-sizes", default=PLAN["train_sizes"], help="the grid's")
    parser.add_argument(
        "--grid-epochs", default=PLAN["grid_epochs"], help="the grid's epochs levels"
    )
    parser.add_argument("--max-seeds", type=int, default=PLAN["max_seeds"])
    parser.add_argument("--replicas", type=int, default=10, help="seeds per batch")
    parser.add_argument("--readme", type=Path, default=README)
    parser.add_argument(
        "--parts", nargs="+", choices=("studies", "grid"), default=["studies", "grid"]
    )
    args = parser.parse_args()
    runtime.setup("tensorflow")
    parts = {"studies": ("findings", studies), "grid": ("findings:grid", regime_map)}
    for part in args.parts:
        marker, write = parts[part]
        text = write(args)
        write_between(args.readme, marker, text)
        print(text)


if __name__ == "__main__":
    main()
