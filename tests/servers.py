"""Real servers for the tests that need them (marker `postgres`): a throwaway PostgreSQL cluster
on a free loopback port and `mlflow server` on it, optionally with MLflow's basic-auth app.

In the cluster the superuser `postgres` connects without a password (the tests' own setup);
every other role must give its password (scram-sha-256), as on a real server.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import mlflow
import psycopg2

POSTGRES_BINARIES = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
MLFLOW = str(Path(sys.executable).parent / "mlflow")
DB_USER = "postgres"
PG_HBA = """\
local all all trust
host all postgres 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {seconds} s for {what}")
        time.sleep(0.2)


def as_db_user(args: list) -> list[str]:
    """initdb refuses to run as root: root runs the cluster as the `postgres` user."""
    prefix = ["runuser", "-u", DB_USER, "--"] if os.geteuid() == 0 else []
    return [*prefix, *map(str, args)]


class PostgresCluster:
    """initdb + pg_ctl in a temporary folder; `url` is `postgresql+psycopg2://postgres@host:port`."""

    def __init__(self):
        self.binaries = POSTGRES_BINARIES[-1].parent
        self.folder = Path(tempfile.mkdtemp(prefix="pipeline-postgres-"))
        if os.geteuid() == 0:
            shutil.chown(self.folder, DB_USER)
        self.data, self.port = self.folder / "data", free_port()
        self.url = f"postgresql+psycopg2://{DB_USER}@127.0.0.1:{self.port}"
        self.pg_ctl = [self.binaries / "pg_ctl", "-D", self.data, "-l", self.folder / "log"]
        self.pg_ctl += ["-w", "-t", "60"]

    def start(self):
        initdb = [self.binaries / "initdb", "-D", self.data, "-A", "trust", "-U", DB_USER]
        run = {"cwd": self.folder, "check": True, "capture_output": True}
        subprocess.run(as_db_user([*initdb, "--no-sync"]), timeout=120, **run)
        (self.data / "pg_hba.conf").write_text(PG_HBA)
        options = f"-h 127.0.0.1 -p {self.port} -k {self.data} -c fsync=off"
        subprocess.run(as_db_user([*self.pg_ctl, "-o", options, "start"]), timeout=90, **run)

    def stop(self):
        command = as_db_user([*self.pg_ctl, "-m", "immediate", "stop"])
        subprocess.run(command, cwd=self.folder, timeout=90)
        shutil.rmtree(self.folder, ignore_errors=True)

    def execute(self, *statements: str):
        """SQL as the superuser, outside a transaction (CREATE DATABASE needs that)."""
        connection = psycopg2.connect(f"postgresql://{DB_USER}@127.0.0.1:{self.port}/postgres")
        connection.autocommit = True
        for statement in statements:
            connection.cursor().execute(statement)
        connection.close()

    def create_role(self, name: str, password: str, *databases: str) -> str:
        """A login role owning new databases; returns its URL prefix, without the password."""
        self.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
        self.execute(*(f"CREATE DATABASE {database} OWNER {name}" for database in databases))
        return f"postgresql+psycopg2://{name}@127.0.0.1:{self.port}"


class TrackingServer:
    """`mlflow server` on PostgreSQL with proxied artifacts in a local folder; restartable.
    `app_name="basic-auth"` runs MLflow's auth app; `env` adds to the server's environment
    (MLFLOW_AUTH_CONFIG_PATH, PGPASSWORD)."""

    def __init__(self, backend_store_uri: str, artifacts: Path, app_name="", env=None):
        self.command = [MLFLOW, "server", "--backend-store-uri", backend_store_uri]
        self.command += ["--artifacts-destination", str(artifacts), "--workers", "1"]
        if app_name:
            self.command += ["--app-name", app_name]
        self.command += ["--host", "127.0.0.1", "--port", str(free_port())]
        self.url = f"http://127.0.0.1:{self.command[-1]}"
        self.log = artifacts.parent / "server.log"
        self.env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **(env or {})}
        self.process = None

    def is_up(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def start(self):
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                self.command, stdout=log, stderr=log, env=self.env, start_new_session=True
            )
        wait_until(self.is_up, 120, f"the tracking server (log: {self.log})")

    def stop(self):
        """SIGTERM to the server's process group (uvicorn runs in a child)."""
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=60)
        wait_until(lambda: not self.is_up(), 30, "the tracking server to stop")

    def client(self) -> mlflow.MlflowClient:
        return mlflow.MlflowClient(tracking_uri=self.url)
