"""What a user sees: two train runs in `mlflow ui`, checked in headless Chromium (Debian's).

Screenshots of every page checked go to pytest's temp dir (`browser0/`), printed with -s.
"""

import json
import os
import re
import subprocess
import urllib.parse
from contextlib import ExitStack

import mlflow
import pytest
from helpers import pipeline_command
from mlflow_ui import (
    CHROMIUM,
    artifact_file_url,
    artifact_url,
    chart_url,
    chromium_page,
    column_values,
    compare_url,
    experiment_url,
    mlflow_ui,
    show_columns,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
]

RATES = ("0,0,0", "0.5,0.25,0")
NAMES = tuple(f"digits-dropout-{rates}-seed0" for rates in RATES)
EXPERIMENT = "browser-dropout-mlp-digits"  # its own experiment: exactly the two runs below


@pytest.fixture(scope="module")
def ui(tracking_store, tmp_path_factory):
    """Two 2-epoch digits runs, trained while `mlflow ui` starts; yields what the tests need."""
    folder = tmp_path_factory.mktemp("browser")
    client = mlflow.MlflowClient()
    experiment_id = client.create_experiment(EXPERIMENT)  # the store exists before the server
    env = {**os.environ, "MLFLOW_EXPERIMENT_ID": experiment_id}
    with ExitStack() as stack:
        trainings = []
        for rates in RATES:
            log = stack.enter_context(open(folder / f"train-{rates}.log", "wb"))
            command = pipeline_command("train", "--dataset", "digits", "--epochs", "2")
            command += ["--dropout-rates", rates]
            trainings.append(subprocess.Popen(command, env=env, stdout=log, stderr=log))
            stack.callback(trainings[-1].kill)  # (a no-op once it has ended)
        uri = os.environ["MLFLOW_TRACKING_URI"]
        base_url = stack.enter_context(mlflow_ui(uri, tracking_store, folder / "mlflow-ui.log"))
        for training, rates in zip(trainings, RATES, strict=True):
            assert training.wait(timeout=120) == 0, (folder / f"train-{rates}.log").read_text()
        runs = {run.info.run_name: run for run in client.search_runs([experiment_id])}
        assert sorted(runs) == sorted(NAMES)
        page = stack.enter_context(chromium_page(folder / "chromium-profile"))
        errors = []
        page.on("pageerror", lambda error: errors.append(error))
        yield dict(
            base_url=base_url,
            experiment_id=experiment_id,
            run_ids=[runs[name].info.run_id for name in NAMES],
            page=page,
            errors=errors,
            folder=folder,
        )


def screenshot(ui, name: str):
    path = ui["folder"] / f"{name}.png"
    ui["page"].screenshot(path=path)
    print(f"screenshot: {path}")


def test_experiment_page_lists_both_runs_with_params_as_columns(ui):
    page = ui["page"]
    page.goto(experiment_url(ui["base_url"], ui["experiment_id"]))
    for name in NAMES:
        page.get_by_role("link", name=name).wait_for()
    assert page.url.split("?")[0].endswith(f"/experiments/{ui['experiment_id']}/runs")
    show_columns(page, ["dropout_rates", "test_accuracy"])
    page.locator('[role=gridcell][col-id="params.`dropout_rates`"]').first.wait_for()
    assert sorted(column_values(page, "params.`dropout_rates`")) == sorted(RATES)
    accuracies = column_values(page, "metrics.`test_accuracy`")
    assert len(accuracies) == 2 and all(0 < float(value) <= 1 for value in accuracies)
    screenshot(ui, "experiment")
    assert ui["errors"] == []


def test_compare_button_opens_the_compare_url(ui):
    page = ui["page"]
    page.goto(experiment_url(ui["base_url"], ui["experiment_id"]))
    for name in NAMES:
        row = page.get_by_role("row").filter(has=page.get_by_role("link", name=name))
        row.get_by_role("checkbox", name=re.compile("toggle row selection")).check()
    page.get_by_role("button", name="Compare").click()
    page.get_by_text("Comparing 2 Runs from 1 Experiment").wait_for()
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(page.url).fragment.split("?", 1)[1])
    assert page.url.split("#")[1].startswith("/compare-runs?")
    assert sorted(json.loads(query["runs"][0])) == sorted(ui["run_ids"])
    assert json.loads(query["experiments"][0]) == [ui["experiment_id"]]
    assert ui["errors"] == []


def test_compare_page_shows_run_names_and_the_differing_param(ui):
    page = ui["page"]
    page.goto(compare_url(ui["base_url"], ui["experiment_id"], ui["run_ids"]))
    page.get_by_text("Comparing 2 Runs from 1 Experiment").wait_for()
    for text in (*NAMES, *RATES):
        page.get_by_text(text, exact=True).first.wait_for()
    batch_size = page.get_by_role("rowheader", name="batch_size", exact=True)
    assert batch_size.count() == 1  # every param, as a row; one column per run
    page.get_by_role("switch", name="Parameters - Show diff only").click()
    batch_size.wait_for(state="detached")  # the same in both runs
    rates = page.get_by_role("row").filter(
        has=page.get_by_role("rowheader", name="dropout_rates", exact=True)
    )
    assert [cell.strip() for cell in rates.get_by_role("cell").all_inner_texts()] == list(RATES)
    page.get_by_text("Run details").scroll_into_view_if_needed()
    screenshot(ui, "compare")
    assert ui["errors"] == []


def test_chart_view_plots_every_epoch_of_both_runs(ui):
    page = ui["page"]
    page.goto(chart_url(ui["base_url"], ui["experiment_id"]))
    page.get_by_placeholder("Search metric charts").fill("val_accuracy")
    card = page.get_by_test_id("experiment-view-compare-runs-card").filter(has_text="val_accuracy")
    traces = card.locator(".scatterlayer .trace")  # plotly: a line per run, a marker per epoch
    traces.locator(".point").nth(3).wait_for()
    points = [trace.locator(".point").count() for trace in traces.all()]
    assert [count for count in points if count] == [2, 2]  # (plus an empty overlay per run)
    screenshot(ui, "charts")
    assert ui["errors"] == []


def test_confusion_matrix_artifact_opens(ui):
    page, run_id = ui["page"], ui["run_ids"][1]
    url = artifact_url(ui["base_url"], ui["experiment_id"], run_id, "confusion_matrix.png")
    with page.expect_response(
        lambda response: "get-artifact" in response.url and "confusion_matrix.png" in response.url
    ) as fetched:  # the UI fetches the file and shows it from a blob: URL
        page.goto(url)
    response = fetched.value  # (Playwright keeps no body for it: compared below, fetched again)
    assert response.status == 200 and response.headers["content-type"] == "image/png"
    logged = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path="confusion_matrix.png"
    )
    with open(logged, "rb") as stream:
        png = stream.read()
    assert int(response.headers["content-length"]) == len(png)
    for artifact in ("confusion_matrix.png", "learning_curves.png", "classification_report.txt"):
        page.get_by_text(artifact, exact=True).first.wait_for()  # the artifact tree
    image = page.locator("img[src^='blob:']").first
    image.wait_for()
    page.wait_for_function(
        "image => image.complete && image.naturalWidth > 0", arg=image.element_handle()
    )
    width, height = image.evaluate("image => [image.naturalWidth, image.naturalHeight]")
    assert (width, height) == (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big"))
    screenshot(ui, "confusion_matrix")

    direct = page.request.get(artifact_file_url(ui["base_url"], run_id, "confusion_matrix.png"))
    assert direct.status == 200 and direct.body() == png
    assert ui["errors"] == []
