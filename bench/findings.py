"""`make findings`: run the acceptance studies and write their answers into README.md.

The text between the `findings` markers in README.md is replaced by what `study` reports, and
the text between the `findings:grid` markers by the regime map of the grid study (its picture
goes to docs/regime_map.png), so the README's numbers are the tool's, never typed by hand.
Runs go to the usual tracking store; `--parts grid` reruns only the map (about 30 minutes).
"""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

import mlflow

from pipeline import runtime, tracking
from pipeline.config.entry_points import StudyConfig
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


def write_between(marker: str, text: str):
    pattern = re.compile(rf"(<!-- {marker}:start -->\n).*?(<!-- {marker}:end -->)", re.DOTALL)
    README.write_text(pattern.sub(lambda m: f"{m[1]}{text}\n{m[2]}", README.read_text()))


def studies(args) -> str:
    sections = []
    for recipe, question in QUESTIONS.items():
        config = StudyConfig(
            dataset=args.dataset, recipe=recipe, seeds=args.seeds, epochs=args.epochs
        )
        sections.append(f"### {question}\n\n{study(config)}")
    return "\n\n".join(sections)


def regime_map(args) -> str:
    """The notebook's architecture at 1,000, 5,000 and all training images x 10 and
    `grid_epochs` epochs; the map's picture copied to docs/."""
    grid = f"train_size=1000,5000,0;epochs={args.epochs},{args.grid_epochs}"
    config = StudyConfig(dataset=args.dataset, seeds=args.seeds, grid=grid)
    text = grid_study(config)
    tags = {"study": config.name, "study_key": study_key(config)}
    run_id = tracking.find_run(tracking.experiment_name(config.dataset), tags)
    picture = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/regime_map.png")
    shutil.copy(picture, ROOT / "docs" / "regime_map.png")
    return f"{text}\n\n![The regime map](docs/regime_map.png)"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = "fashion_mnist" if DEBIAN_FASHION_MNIST.is_dir() else "mnist"
    parser.add_argument("--dataset", default=default)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument(
        "--grid-epochs", type=int, default=50, help="the grid's long training (about 30 min)"
    )
    parser.add_argument(
        "--parts", nargs="+", choices=("studies", "grid"), default=["studies", "grid"]
    )
    args = parser.parse_args()
    runtime.setup("tensorflow")
    parts = {"studies": ("findings", studies), "grid": ("findings:grid", regime_map)}
    for part in args.parts:
        marker, write = parts[part]
        text = write(args)
        write_between(marker, text)
        print(text)


if __name__ == "__main__":
    main()
