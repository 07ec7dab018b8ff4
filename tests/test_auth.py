"""The shared server as docs/scaling-out.md deploys it, with real servers: `mlflow server
--app-name basic-auth` on PostgreSQL (admin password from the auth config, one user per
worker), roles that must give passwords; and no password ever reaches a param, tag, artifact
or the console. Runs wherever PostgreSQL is installed (CI installs it)."""

import os
import secrets
import subprocess
import urllib.error
import urllib.request

import mlflow
import mlflow.server
import optuna
import pytest
from helpers import pipeline_command
from mlflow.exceptions import MlflowException
from servers import POSTGRES_BINARIES, TrackingServer

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not POSTGRES_BINARIES, reason="PostgreSQL is not installed"),
]
EXPERIMENT = "dropout-mlp-digits"
AUTH_CONFIG = """\
[mlflow]
default_permission = NO_PERMISSIONS
database_uri = {database_uri}
admin_username = admin
admin_password = {admin_password}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
"""


def password() -> str:
    return secrets.token_urlsafe(12)


@pytest.fixture(scope="module")
def optuna_role(postgres_cluster) -> tuple[str, str]:
    """The tune workers' database `studies`: its URL as the docs write it (a bare postgresql://
    without password) and the role's password."""
    role_password = password()
    url = postgres_cluster.create_role("tuner", role_password, "studies")
    return url.replace("postgresql+psycopg2://", "postgresql://") + "/studies", role_password


@pytest.fixture(scope="module")
def auth_server(postgres_cluster, tmp_path_factory):
    """The documented deployment: the auth app, runs and users in PostgreSQL (the server's
    role password in PGPASSWORD, not in a URL), the admin password from the auth config."""
    folder = tmp_path_factory.mktemp("auth-server")
    server_password, admin_password = password(), password()
    prefix = postgres_cluster.create_role("tracking", server_password, "runs", "users")
    config = folder / "basic_auth.ini"
    config.write_text(
        AUTH_CONFIG.format(database_uri=f"{prefix}/users", admin_password=admin_password)
    )
    env = {
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": password(),
        "PGPASSWORD": server_password,
    }
    server = TrackingServer(f"{prefix}/runs", folder / "artifacts", "basic-auth", env)
    server.start()
    server.admin_password = admin_password
    yield server
    server.stop()


def as_user(monkeypatch, username: str, user_password: str):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", user_password)


@pytest.fixture(scope="module")
def users(auth_server) -> dict[str, str]:
    """As admin (MLflow's own auth client): the experiment, a READ user and two workers with
    EDIT on it. Returns username -> password."""
    credentials = {name: password() for name in ("reader", "worker1", "worker2")}
    with pytest.MonkeyPatch.context() as monkeypatch:
        as_user(monkeypatch, "admin", auth_server.admin_password)
        experiment_id = auth_server.client().create_experiment(EXPERIMENT)
        admin = mlflow.server.get_app_client("basic-auth", tracking_uri=auth_server.url)
        for name, user_password in credentials.items():
            admin.create_user(name, user_password)
            permission = "READ" if name == "reader" else "EDIT"
            admin.grant_user_permission(name, "experiment", experiment_id, permission)
    return credentials


def test_anonymous_requests_get_401(auth_server):
    url = f"{auth_server.url}/api/2.0/mlflow/experiments/search?max_results=1"
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(url, timeout=30)
    assert error.value.code == 401
    assert error.value.headers["WWW-Authenticate"].startswith("Basic")


def test_a_user_with_read_can_read_but_not_log(auth_server, users, monkeypatch):
    as_user(monkeypatch, "admin", auth_server.admin_password)
    experiment_id = auth_server.client().get_experiment_by_name(EXPERIMENT).experiment_id
    run_id = auth_server.client().create_run(experiment_id).info.run_id
    as_user(monkeypatch, "reader", users["reader"])
    reader = auth_server.client()
    assert reader.get_run(run_id).info.experiment_id == experiment_id
    for write in (
        lambda: reader.log_metric(run_id, "accuracy", 1.0),
        lambda: reader.set_tag(run_id, "by", "reader"),
        lambda: reader.create_run(experiment_id),
    ):
        with pytest.raises(MlflowException, match="403") as denied:
            write()
        assert denied.value.error_code == "PERMISSION_DENIED"
    as_user(monkeypatch, "admin", auth_server.admin_password)
    auth_server.client().delete_run(run_id)


def test_a_run_without_credentials_stops_with_one_line(auth_server):
    env = dict(os.environ, MLFLOW_TRACKING_URI=auth_server.url)
    command = pipeline_command("train", "--dataset", "digits", "--epochs", "1")
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()[-1:]
    assert line.startswith("error: Cannot open the tracking store") and "401" in line


def test_authenticated_workers_finish_their_study(
    auth_server, users, optuna_role, tmp_path, monkeypatch
):
    """Two tune workers, each its own MLflow user through MLFLOW_TRACKING_USERNAME/PASSWORD,
    on PostgreSQL storage whose password comes from PGPASSWORD: one parent, n_trials."""
    storage_url, role_password = optuna_role
    command = pipeline_command(
        *("tune", "--dataset", "digits", "--epochs", "2", "--n-trials", "4"),
        *("--pruner", "none", "--final-seeds", "0", "--study-name", "authenticated"),
        *("--storage", storage_url, "--heartbeat-interval", "1"),
        *("--grace-period", "3", "--replicas", "1"),  # one trial at a time: both workers get some
    )
    workers = []
    for name in ("worker1", "worker2"):
        env = dict(os.environ, MLFLOW_TRACKING_URI=auth_server.url, PGPASSWORD=role_password)
        env.update(MLFLOW_TRACKING_USERNAME=name, MLFLOW_TRACKING_PASSWORD=users[name])
        log = tmp_path / f"{name}.log"
        with log.open("w") as output:
            workers.append((subprocess.Popen(command, env=env, stdout=output, stderr=output), log))
    for worker, log in workers:
        assert worker.wait(timeout=600) == 0, log.read_text()[-3000:]
    monkeypatch.setenv("PGPASSWORD", role_password)
    study = optuna.load_study(
        study_name="authenticated", storage=storage_url.replace("ql:", "ql+psycopg2:")
    )
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 4
    assert len({trial.user_attrs["worker"] for trial in finished}) == 2
    as_user(monkeypatch, "admin", auth_server.admin_password)
    client = auth_server.client()
    experiment_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
    runs = client.search_runs([experiment_id], "tags.study = 'authenticated'")
    [parent] = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert parent.info.status == "FINISHED" and parent.data.metrics["n_finished_trials"] == 4
    assert parent.data.params["storage"] == storage_url
    assert {run.info.status for run in runs} == {"FINISHED"}


def test_a_password_in_the_storage_url_is_never_stored_or_printed(optuna_role, tmp_path):
    """The documented leak: `--storage postgresql://alice:PASSWORD@…` logged the password as a
    param and printed it when the server was unreachable. Now: `alice:***@` everywhere."""
    storage_url, role_password = optuna_role
    with_password = storage_url.replace("tuner@", f"tuner:{role_password}@")
    store = tmp_path / "store"
    store.mkdir()
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{store / 'mlflow.db'}")
    command = pipeline_command(
        *("tune", "--dataset", "digits", "--epochs", "1", "--n-trials", "1"),
        *("--final-seeds", "0", "--study-name", "leak", "--storage", with_password),
    )
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    unreachable = f"postgresql://tuner:{role_password}@127.0.0.1:1/studies"
    refused = subprocess.run(
        [*command[:-1], unreachable], env=env, capture_output=True, text=True, timeout=300
    )
    assert refused.returncode == 2
    assert "Connection refused" in refused.stderr and "tuner:***@" in refused.stderr
    console = result.stdout + result.stderr + refused.stdout + refused.stderr
    assert role_password not in console
    for path in store.rglob("*"):
        if path.is_file():
            assert role_password.encode() not in path.read_bytes(), path
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
    [parent] = client.search_runs([experiment_id], "tags.mlflow.runName = 'leak'")
    assert parent.data.params["storage"] == with_password.replace(role_password, "***")
