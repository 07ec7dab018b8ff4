"""The README's pictures of `mlflow ui`, from real runs (`make docs`; about a minute).

Trains two Fashion-MNIST runs (no dropout / the notebook's dropout, 3 epochs each) and a tiny
digits study into a fresh local store, starts `mlflow ui` on it, and photographs the pages in
headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) into docs/. The confusion
matrix and learning curves are the run's own artifacts, downloaded from MLflow.

    python docs/screenshots.py [--store DIR]   # keep the store in DIR; trains only if it is new
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent / "tests"))

from mlflow_ui import (  # noqa: E402  (tests/ holds the helpers the browser test uses too)
    artifact_url,
    chart_url,
    chromium_page,
    compare_url,
    experiment_url,
    mlflow_ui,
    show_columns,
)

RATES = ("0,0,0", "0.5,0.25,0")
FASHION = "dropout-mlp-fashion_mnist"
DIGITS = "dropout-mlp-digits"
STUDY = "digits-standard-baseline-vs-dropout"


def pipeline(store: Path, *args: str):
    print("pipeline", *args, flush=True)
    subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=store, check=True)


def train_runs(store: Path):
    for rates in RATES:
        pipeline(
            store, "train", "--dataset", "fashion_mnist", "--epochs", "3", "--dropout-rates", rates
        )
    pipeline(store, "study", "--dataset", "digits", "--seeds", "2", "--epochs", "2")


def find_runs(client) -> dict:
    fashion = client.get_experiment_by_name(FASHION).experiment_id
    digits = client.get_experiment_by_name(DIGITS).experiment_id
    by_name = {run.info.run_name: run for run in client.search_runs([fashion])}
    [study] = client.search_runs([digits], f"attributes.run_name = '{STUDY}'")
    return dict(
        fashion=fashion,
        digits=digits,
        run_ids=[by_name[f"fashion_mnist-dropout-{rates}-seed0"].info.run_id for rates in RATES],
        study=study.info.run_id,
    )


def photograph(page, base_url: str, runs: dict):
    page.goto(experiment_url(base_url, runs["fashion"]))
    page.get_by_role("link", name=f"fashion_mnist-dropout-{RATES[0]}-seed0").wait_for()
    show_columns(
        page,
        ["dropout_rates", "val_accuracy", "test_accuracy"],
        hide=("Source", "Models", "Dataset"),
    )
    page.locator('[role=gridcell][col-id="metrics.`test_accuracy`"]').first.wait_for()
    handle = page.locator('[col-id="attributes.`Run Name`"] .ag-header-cell-resize')
    handle.hover()  # drag the run name column wider: names in full
    box = handle.bounding_box()
    page.mouse.down()
    page.mouse.move(box["x"] + 120, box["y"] + box["height"] / 2, steps=10)
    page.mouse.up()
    page.screenshot(path=DOCS / "runs_table.png", clip=dict(x=0, y=0, width=1400, height=420))

    page.goto(compare_url(base_url, runs["fashion"], runs["run_ids"]))
    page.get_by_text("Comparing 2 Runs from 1 Experiment").wait_for()
    page.get_by_text("Visualizations", exact=True).click()  # folded: the tables come first
    page.get_by_role("switch", name="Parameters - Show diff only").click()
    page.get_by_role("rowheader", name="batch_size", exact=True).wait_for(state="detached")
    page.screenshot(path=DOCS / "compare_runs.png")

    page.goto(chart_url(base_url, runs["fashion"]))
    page.get_by_placeholder("Search metric charts").fill("val_")
    cards = page.get_by_test_id("experiment-view-compare-runs-card")
    cards.filter(has_text="val_loss").locator(".scatterlayer .trace .point").nth(5).wait_for()
    page.screenshot(path=DOCS / "epoch_charts.png", clip=dict(x=0, y=0, width=1400, height=680))

    page.goto(f"{base_url}/#/experiments/{runs['digits']}/runs/{runs['study']}")
    page.get_by_text("Does dropout", exact=False).first.wait_for()  # the description
    page.get_by_text("Show more", exact=True).click()
    page.screenshot(path=DOCS / "study_description.png")

    page.set_viewport_size({"width": 1800, "height": 1250})  # the report's figure too
    page.goto(artifact_url(base_url, runs["digits"], runs["study"], "report.html"))
    report = page.frame_locator("iframe").first
    report.get_by_text("Does dropout help?").wait_for()
    report.locator("img").first.wait_for()
    page.wait_for_timeout(500)
    page.screenshot(path=DOCS / "study_report.png")


def copy_artifacts(run_id: str):
    import mlflow

    with tempfile.TemporaryDirectory() as folder:
        for name in ("confusion_matrix.png", "learning_curves.png"):
            path = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=name, dst_path=folder
            )
            shutil.copyfile(path, DOCS / name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, help="keep the tracking store here (default: temp)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        store = (args.store or Path(scratch) / "store").resolve()
        store.mkdir(parents=True, exist_ok=True)
        new = not (store / "mlflow.db").exists()
        uri = f"sqlite:///{store / 'mlflow.db'}"
        os.environ["MLFLOW_TRACKING_URI"] = uri
        for name in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
            os.environ.pop(name, None)
        if new:
            train_runs(store)

        import mlflow

        runs = find_runs(mlflow.MlflowClient())
        copy_artifacts(runs["run_ids"][1])
        with (
            mlflow_ui(uri, store, Path(scratch) / "mlflow-ui.log") as base_url,
            chromium_page(Path(scratch) / "chromium-profile") as page,
        ):
            photograph(page, base_url, runs)
    for path in sorted(DOCS.glob("*.png")):
        print(f"{path.relative_to(DOCS.parent)}  {path.stat().st_size / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
