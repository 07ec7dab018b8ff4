"""Beyond one process, with real servers: a throwaway PostgreSQL cluster holds an MLflow tracking
server's store and the Optuna study; two tune workers share them; a worker is killed, the server
restarted; a model is served over REST. Skipped where PostgreSQL is not installed."""

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from itertools import pairwise
from pathlib import Path

import mlflow
import numpy as np
import optuna
import pytest
from helpers import pipeline_command
from servers import MLFLOW, POSTGRES_BINARIES, TrackingServer, free_port, wait_until

from pipeline.config.entry_points import TrainConfig
from pipeline.data.datasets import load_dataset

FINISHED = {"COMPLETE", "PRUNED"}

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not POSTGRES_BINARIES, reason="PostgreSQL is not installed"),
]


@pytest.fixture(scope="module")
def postgres(postgres_cluster):
    """Databases `mlflow` and `optuna` of the session's cluster; yields the URL prefix
    `postgresql+psycopg2://postgres@127.0.0.1:<port>`."""
    postgres_cluster.execute("CREATE DATABASE mlflow", "CREATE DATABASE optuna")
    return postgres_cluster.url


@pytest.fixture(scope="module")
def server(postgres, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tracking-server")
    tracking_server = TrackingServer(f"{postgres}/mlflow", folder / "artifacts")
    tracking_server.start()
    yield tracking_server
    tracking_server.stop()


def against(server: TrackingServer) -> dict[str, str]:
    """The environment of a subprocess that tracks to the server."""
    return dict(os.environ, MLFLOW_TRACKING_URI=server.url)


def train_on_server(server: TrackingServer, *args: str) -> subprocess.CompletedProcess:
    command = pipeline_command("train", "--dataset", "digits", *args)
    return subprocess.run(command, env=against(server), capture_output=True, text=True, timeout=300)


def run_id_of(train_output: str) -> str:
    """From train's last line, `run <id>: test_accuracy …`."""
    return train_output.rsplit("run ", 1)[1].split(":")[0]


@pytest.fixture(scope="module")
def trained_run(server):
    result = train_on_server(server, "--epochs", "3")
    assert result.returncode == 0, result.stderr[-3000:]
    return server.client().get_run(run_id_of(result.stdout))


@pytest.fixture
def tracking_to(monkeypatch):
    """Points this process's MLflow at a server for one test (`runs:/` URIs included)."""
    return lambda server: monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)


def test_train_logs_params_metrics_and_artifacts_through_the_server(
    trained_run, server, tracking_to
):
    tracking_to(server)
    client = server.client()
    run_id = trained_run.info.run_id
    assert trained_run.info.status == "FINISHED"
    assert trained_run.data.params == TrainConfig(dataset="digits", epochs=3).to_params()
    for name in ("loss", "accuracy", "val_loss", "val_accuracy", "generalization_gap"):
        assert [m.step for m in client.get_metric_history(run_id, name)] == [1, 2, 3], name
    assert {"test_accuracy", "test_macro_f1", "test_f1_class_9"} <= set(trained_run.data.metrics)
    assert trained_run.info.artifact_uri.startswith("mlflow-artifacts:")  # proxied
    artifacts = {artifact.path for artifact in client.list_artifacts(run_id)}
    assert {"classification_report.txt", "confusion_matrix.png", "learning_curves.png"} <= artifacts
    model = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model")
    assert (Path(model) / "MLmodel").is_file()


def test_training_survives_a_tracking_server_restart(server):
    """MLflow's client retries a refused request with backoff (7 times, about 4 minutes in
    all): a run whose server restarts within that waits, then logs every epoch once."""
    command = pipeline_command("train", "--dataset", "digits", "--epochs", "30")
    with tempfile.TemporaryFile("w+") as output:
        process = subprocess.Popen(
            command, env=against(server), stdout=output, stderr=subprocess.STDOUT, text=True
        )
        wait_until(lambda: "epoch 3/30" in read(output), 120, "epoch 3")
        stopped = time.monotonic()
        server.stop()
        time.sleep(3)
        server.start()
        print(f"tracking server down for {time.monotonic() - stopped:.1f} s")
        assert process.wait(timeout=300) == 0, read(output)[-3000:]
        log = read(output)
    run = server.client().get_run(run_id_of(log))
    assert run.info.status == "FINISHED"
    history = sorted(
        server.client().get_metric_history(run.info.run_id, "val_accuracy"),
        key=lambda metric: metric.step,
    )
    assert [metric.step for metric in history] == list(range(1, 31))
    assert "test_accuracy" in run.data.metrics
    gaps = [later.timestamp - earlier.timestamp for earlier, later in pairwise(history)]
    print(f"longest gap between two epochs' metrics: {max(gaps) / 1000:.1f} s")


def test_training_fails_loudly_when_the_server_stays_down(server):
    """Down for longer than the client retries (1 retry here; by default 7, about 4 minutes):
    the process exits 1 naming the unreachable server, the run stays RUNNING on the server
    with every epoch logged before the outage."""
    command = pipeline_command("train", "--dataset", "digits", "--epochs", "300")
    env = dict(against(server), MLFLOW_HTTP_REQUEST_MAX_RETRIES="1")
    with tempfile.TemporaryFile("w+") as output:
        process = subprocess.Popen(
            command, env=env, stdout=output, stderr=subprocess.STDOUT, text=True
        )
        wait_until(lambda: "epoch 3/300" in read(output), 120, "epoch 3")
        server.stop()
        returncode = process.wait(timeout=120)
        log = read(output)
    server.start()
    assert returncode == 1
    assert f"API request to {server.url}/api/2.0/mlflow/" in log
    assert "Connection refused" in log.splitlines()[-1]
    client = server.client()
    experiment = client.get_experiment_by_name("dropout-mlp-digits")
    [run] = client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'")
    steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy"))
    assert steps == list(range(1, len(steps) + 1)) and 3 <= len(steps) < 300
    client.set_terminated(run.info.run_id, "FAILED")  # as a user would, after reading the error


def read(output) -> str:
    output.seek(0)
    return output.read()


def tune_workers(server: TrackingServer, postgres: str, logs: Path, study: str, *args: str):
    """Two tune processes on one study; each one's output goes to the file `.log`."""
    command = pipeline_command(
        "tune",
        "--dataset",
        "digits",
        "--pruner",
        "none",
        "--final-seeds",
        "0",
        "--study-name",
        study,
        "--storage",
        f"{postgres}/optuna",
        "--heartbeat-interval",
        "1",
        "--grace-period",
        "3",
        *args,
    )
    workers = []
    for index in range(2):
        log = logs / f"worker-{index}.log"
        with log.open("w") as output:
            worker = subprocess.Popen(
                command, env=against(server), stdout=output, stderr=subprocess.STDOUT
            )
        worker.log = log
        workers.append(worker)
    return command, workers


def study_runs(server: TrackingServer, study: str):
    client = server.client()
    experiment = client.get_experiment_by_name("dropout-mlp-digits")
    runs = client.search_runs([experiment.experiment_id], f"tags.study = '{study}'")
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    children = [run for run in runs if "mlflow.parentRunId" in run.data.tags]
    return parents, children


def load_trials(postgres: str, study: str) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=study, storage=f"{postgres}/optuna").trials


@pytest.fixture(scope="module")
def parallel_study(server, postgres, tmp_path_factory):
    logs = tmp_path_factory.mktemp("parallel")
    started = time.monotonic()
    _, workers = tune_workers(  # batches of 2 trials: each worker gets some of the 6
        server, postgres, logs, "parallel", "--epochs", "3", "--n-trials", "6", "--replicas", "2"
    )
    for worker in workers:
        assert worker.wait(timeout=600) == 0, worker.log.read_text()[-3000:]
    print(f"two workers, 6 trials: {time.monotonic() - started:.1f} s")
    return load_trials(postgres, "parallel"), study_runs(server, "parallel")


def test_two_workers_finish_exactly_n_trials_under_one_parent(parallel_study):
    trials, (parents, children) = parallel_study
    finished = [trial for trial in trials if trial.state.name in FINISHED]
    assert len(finished) == 6
    assert all(trial.user_attrs.get("surplus") for trial in trials if trial not in finished)
    [parent] = parents
    assert parent.info.status == "FINISHED"
    assert {run.data.tags["mlflow.parentRunId"] for run in children} == {parent.info.run_id}
    numbers = sorted(int(run.data.tags["trial_number"]) for run in children)
    assert numbers == sorted(trial.number for trial in finished)
    assert all(run.info.status == "FINISHED" for run in children)
    assert parent.data.metrics["n_finished_trials"] == 6


def test_two_workers_run_at_the_same_time_and_sample_different_params(parallel_study):
    trials, _ = parallel_study
    finished = [trial for trial in trials if trial.state.name in FINISHED]
    by_worker = {}
    for trial in finished:
        by_worker.setdefault(trial.user_attrs["worker"], []).append(trial)
    assert len(by_worker) == 2
    first, second = by_worker.values()
    assert any(
        a.datetime_start < b.datetime_complete and b.datetime_start < a.datetime_complete
        for a in first
        for b in second
    ), "no trial of one worker overlaps a trial of the other"
    assert len({tuple(sorted(trial.params.items())) for trial in finished}) == len(finished)


def test_a_killed_worker_s_trial_fails_and_the_other_worker_finishes(server, postgres, tmp_path):
    command, (victim, survivor) = tune_workers(  # one trial at a time: one trial killed
        server, postgres, tmp_path, "killed", "--epochs", "8", "--n-trials", "4", "--replicas", "1"
    )
    wait_until(lambda: "epoch 2/8" in victim.log.read_text(), 180, "a worker mid-trial")
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert survivor.wait(timeout=600) == 0, survivor.log.read_text()[-3000:]
    trials = load_trials(postgres, "killed")
    assert sum(trial.state.name in FINISHED for trial in trials) == 4

    cleanup = subprocess.run(command, env=against(server), capture_output=True, timeout=300)
    assert cleanup.returncode == 0, cleanup.stdout[-3000:]
    trials = load_trials(postgres, "killed")
    victim_id = f"{socket.gethostname()}:{victim.pid}"
    [killed] = [trial for trial in trials if trial.user_attrs.get("worker") == victim_id]
    assert killed.state.name == "FAIL"
    [retry] = [trial for trial in trials if trial.system_attrs.get("failed_trial") == killed.number]
    assert retry.params == killed.params and retry.state.name == "COMPLETE"
    assert [t.state.name for t in trials if t.state.name not in {"FAIL", *FINISHED}] == []
    parents, children = study_runs(server, "killed")
    assert [parent.info.status for parent in parents] == ["FINISHED"]
    [killed_run] = [r for r in children if r.data.tags["trial_number"] == str(killed.number)]
    assert killed_run.info.status == "FAILED"
    assert "worker process died" in killed_run.data.tags["failure_reason"]
    assert sorted(run.info.status for run in children) == ["FAILED"] + ["FINISHED"] * 4


def post_json(url: str, payload) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, json.dumps(payload).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def is_serving(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def test_served_model_answers_with_the_model_s_probabilities(
    trained_run, server, tracking_to, tmp_path
):
    tracking_to(server)
    model_uri = f"runs:/{trained_run.info.run_id}/model"
    images = load_dataset(TrainConfig(dataset="digits")).x_test[:8].astype("float32")
    expected = mlflow.pyfunc.load_model(model_uri).predict(images)
    port = free_port()
    command = [MLFLOW, "models", "serve", "-m", model_uri, "--env-manager", "local"]
    command += ["-h", "127.0.0.1", "-p", str(port)]
    url = f"http://127.0.0.1:{port}"
    with (tmp_path / "serve.log").open("w") as log:
        process = subprocess.Popen(
            command, env=against(server), stdout=log, stderr=log, start_new_session=True
        )
    try:
        wait_until(lambda: is_serving(url), 180, "mlflow models serve")
        status, answer = post_json(f"{url}/invocations", {"inputs": images.tolist()})
        assert status == 200
        np.testing.assert_allclose(answer["predictions"], expected, atol=1e-5)
        assert np.allclose(np.sum(answer["predictions"], axis=1), 1, atol=1e-4)
        status, answer = post_json(f"{url}/invocations", {"images": images.tolist()})
        assert status == 400 and answer["error_code"] == "BAD_REQUEST"
        status, answer = post_json(f"{url}/invocations", {"inputs": [[1, 2, 3]]})
        assert 400 <= status < 500, answer
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


def test_two_workers_share_a_grid_s_cells_and_one_logs_the_map(server, postgres, tmp_path):
    """The grid's training groups (cells that differ only in epochs) are trials of one Optuna
    study on PostgreSQL: two workers train each group once, under one top parent, and the last
    to end logs the regime map."""
    grid = ["--grid", "train_size=300,0;epochs=1,2", "--storage", f"{postgres}/optuna"]
    command = pipeline_command(
        "study", "--dataset", "digits", "--seeds", "2", "--study-name", "grid", *grid
    )
    logs = [tmp_path / f"worker-{index}.log" for index in range(2)]
    workers = []
    for log in logs:
        with log.open("w") as output:
            workers.append(
                subprocess.Popen(
                    command, env=against(server), stdout=output, stderr=subprocess.STDOUT
                )
            )
    for worker, log in zip(workers, logs, strict=True):
        assert worker.wait(timeout=600) == 0, log.read_text()[-3000:]
    summaries = optuna.get_all_study_summaries(f"{postgres}/optuna")
    [name] = [summary.study_name for summary in summaries if summary.study_name.startswith("grid-")]
    trials = load_trials(postgres, name)
    complete = [trial for trial in trials if trial.state.name == "COMPLETE"]
    groups = sorted(trial.params["group"] for trial in complete)
    assert groups == ["train_size=0;epochs<=2", "train_size=300;epochs<=2"]
    assert all(trial.user_attrs.get("surplus") for trial in trials if trial not in complete)
    assert len({trial.user_attrs["worker"] for trial in complete}) == 2
    [parent], children = study_runs(server, "grid")
    assert parent.info.status == "FINISHED"
    cell_runs = [r for r in children if r.data.tags["mlflow.parentRunId"] == parent.info.run_id]
    assert sorted(run.data.tags["grid_cell"] for run in cell_runs) == groups
    seed_runs = [run for run in children if run not in cell_runs]
    assert len(seed_runs) == 2 * 2 * 2  # every group x config x seed trained once, to 2 epochs
    assert all(run.info.status == "FINISHED" for run in children)
    artifacts = {a.path for a in server.client().list_artifacts(parent.info.run_id)}
    assert {"regime_map.csv", "regime_map.png", "report.md", "report.html"} <= artifacts
    assert any("**Grid study `grid`**" in log.read_text() for log in logs)
