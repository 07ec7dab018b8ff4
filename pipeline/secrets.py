"""Passwords never leave the process: `redact` replaces them in any text before it becomes an
MLflow param, tag or artifact, or is printed.

A password is the one in a URL's userinfo (`postgresql://alice:***@db/optuna`), a libpq
`password=` option, or the value of an environment variable whose name marks it secret: ending
in PASSWORD, PASSWD, TOKEN, SECRET or SECRET_KEY (PGPASSWORD, MLFLOW_TRACKING_PASSWORD,
AWS_SECRET_ACCESS_KEY, or a variable of your own named so). Passwords belong in such variables
or in `~/.pgpass`, never in a URL or an `mlflow run -P` param (MLflow logs those before this
code runs).
"""

from __future__ import annotations

import os
import re
import sys
import traceback

MASK = "***"
SECRET_VARIABLE = re.compile(r".*(PASSWORD|PASSWD|TOKEN|SECRET(_ACCESS)?(_KEY)?)", re.I)
MIN_SECRET_LENGTH = 6  # shorter values would mask ordinary words and numbers
URL_PASSWORD = re.compile(r"(\b[a-z][\w+.-]*://[^:/@\s'\"]*):[^@\s'\"]*@", re.IGNORECASE)
PASSWORD_OPTION = re.compile(r"\b(password=)[^&\s'\"]*", re.IGNORECASE)


def secret_values() -> list[str]:
    """Values of the environment variables whose names mark them secret, longest first."""
    values = {
        value
        for name, value in os.environ.items()
        if SECRET_VARIABLE.fullmatch(name) and len(value) >= MIN_SECRET_LENGTH
    }
    return sorted(values, key=len, reverse=True)


def redact(text: str) -> str:
    """`text` with every password replaced by ***."""
    text = URL_PASSWORD.sub(rf"\1:{MASK}@", text)
    text = PASSWORD_OPTION.sub(rf"\1{MASK}", text)
    for value in secret_values():
        text = text.replace(value, MASK)
    return text


def excepthook(kind, error, trace):
    """`sys.excepthook` printing the traceback with passwords redacted."""
    sys.stderr.write(redact("".join(traceback.format_exception(kind, error, trace))))
