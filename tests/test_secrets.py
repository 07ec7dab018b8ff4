"""No password leaves the process: redacted in params, tags, failure reasons, descriptions, text
artifacts, error lines and tracebacks; a tracking URI holding one is refused. The end-to-end
check against a password-protected PostgreSQL is in test_auth.py."""

import sys

import mlflow
import pytest

from pipeline import cli, secrets, tracking


@pytest.mark.fast
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql+psycopg2://alice:S3cret@db/x", "postgresql+psycopg2://alice:***@db/x"),
        ("postgresql://alice@db/x", "postgresql://alice@db/x"),  # nothing to hide
        ("http://u:p%40ss@host:5000/x", "http://u:***@host:5000/x"),
        ("at 'mysql://root:pw@h:1/x': refused", "at 'mysql://root:***@h:1/x': refused"),
        ("postgresql://db/x?user=a&password=pw&y=1", "postgresql://db/x?user=a&password=***&y=1"),
        ("host=db password=pw dbname=x", "host=db password=*** dbname=x"),
        ("journal:/tmp/a:b@c.journal", "journal:/tmp/a:b@c.journal"),  # a path, not a URL
        ("postgresql://bob:Pa55w0rd@hunter2x@db:1/x", "postgresql://bob:***@db:1/x"),  # '@' in it
    ],
)
def test_redact_hides_url_passwords_and_password_options(text, expected):
    assert secrets.redact(text) == expected


@pytest.mark.fast
def test_redact_hides_values_of_variables_named_secret(monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "hunter2-db")
    monkeypatch.setenv("MY_API_TOKEN", "tok-123456")
    monkeypatch.setenv("HOME_DIR_NAME", "hunter")  # not a secret's name
    monkeypatch.setenv("SHORT_SECRET", "abc")  # too short to mask safely
    text = "hunter2-db and tok-123456 for hunter, abc"
    assert secrets.redact(text) == "*** and *** for hunter, abc"


@pytest.mark.fast
def test_redact_values_hides_a_url_password_in_every_value(monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "hunter2-db")
    values = {"a": "pw-seen-first-9 alone", "b": "postgresql://u:pw-seen-first-9@h/db hunter2-db"}
    assert secrets.redact_values(values) == {"a": "*** alone", "b": "postgresql://u:***@h/db ***"}


@pytest.mark.fast
def test_params_tags_reasons_and_descriptions_are_redacted(client):
    url = "postgresql://alice:S3cretPW@127.0.0.1:1/optuna"
    with pytest.raises(RuntimeError), tracking.run("leaky", "dropout-mlp-secrets") as run_id:
        tracking.log_params({"storage": url})
        tracking.set_tags({"where": url})
        tracking.set_description(f"tuned on {url}")
        tracking.log_text(url, "url.txt")
        raise RuntimeError(f"could not reach {url}")
    run = client.get_run(run_id)
    redacted = "postgresql://alice:***@127.0.0.1:1/optuna"
    assert run.data.params["storage"] == redacted
    assert run.data.tags["where"] == redacted
    assert run.data.tags["failure_reason"] == f"RuntimeError: could not reach {redacted}"
    assert run.data.tags["mlflow.note.content"] == f"tuned on {redacted}"
    assert mlflow.artifacts.load_text(f"runs:/{run_id}/url.txt") == redacted


@pytest.mark.fast
def test_a_traceback_is_printed_redacted(capsys):
    try:
        raise ConnectionError("API request to http://bob:pw0rd@mlflow:5000 failed")
    except ConnectionError:
        secrets.excepthook(*sys.exc_info())
    err = capsys.readouterr().err
    assert "Traceback" in err and "http://bob:***@mlflow:5000" in err and "pw0rd" not in err


def test_a_tracking_uri_with_a_password_is_refused(monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://bob:pw0rd@127.0.0.1:1")
    assert cli.main(["train", "--dataset", "digits"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert "'http://bob:***@127.0.0.1:1'" in line and "pw0rd" not in line
    assert line.endswith("set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD instead.")


def test_a_password_with_an_unencoded_at_sign_never_shows(capsys, client):
    """Before: the console showed `bob:***@hunter2x@…`, the driver's `host name
    "hunter2x@127.0.0.1"`, and a note line before the error."""
    url = "postgresql://bob:Pa55w0rd@hunter2x@127.0.0.1:55432/optuna2"
    capsys.readouterr()
    argv = ["tune", "--dataset", "digits", "--epochs", "1", "--storage", url]
    assert cli.main([*argv, "--study-name", "at sign"]) == 2
    out, err = capsys.readouterr()
    [line] = err.splitlines()
    assert line.startswith("error: Cannot open the Optuna storage 'postgresql://bob:***@127.0.0.1")
    assert "Pa55w0rd" not in out + err and "hunter2x" not in out + err
