"""`make findings`: run the two acceptance studies and write their answers into README.md.

The text between the `findings` markers in README.md is replaced by what `study` reports, so
the README's numbers are the tool's, never typed by hand. Runs go to the usual tracking store.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from pipeline import runtime
from pipeline.config import StudyConfig
from pipeline.data import DEBIAN_FASHION_MNIST
from pipeline.study import study

README = Path(__file__).resolve().parents[1] / "README.md"
QUESTIONS = {
    "standard": "Standard recipe (pixels scaled to [0, 1], softmax): does the notebook's dropout "
    "beat no dropout?",
    "notebook": "The notebook's own recipe (raw 0-255 pixels, sigmoid output), re-checked",
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = "fashion_mnist" if DEBIAN_FASHION_MNIST.is_dir() else "mnist"
    parser.add_argument("--dataset", default=default)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    runtime.setup("tensorflow")
    sections = []
    for recipe, question in QUESTIONS.items():
        config = StudyConfig(
            dataset=args.dataset, recipe=recipe, seeds=args.seeds, epochs=args.epochs
        )
        sections.append(f"### {question}\n\n{study(config)}")
    findings = "\n\n".join(sections)
    pattern = re.compile(r"(<!-- findings:start -->\n).*?(<!-- findings:end -->)", re.DOTALL)
    README.write_text(pattern.sub(lambda m: f"{m[1]}{findings}\n{m[2]}", README.read_text()))
    print(findings)


if __name__ == "__main__":
    main()
