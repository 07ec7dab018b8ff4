"""Passwords never leave the process: `redact` replaces them in any text before it becomes an
MLflow param, tag or artifact, or is printed.

A password is the one in a URL's userinfo (`postgresql://alice:***@db/optuna`, up to the last
`@`; seen once, it and its `@`-separated pieces are masked anywhere after), a libpq
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
# up to the URL's last '@': a password with an unencoded '@' is hidden whole
URL_PASSWORD = re.compile(r"(\b[a-z][\w+.-]*://[^:/@\s'\"]*):([^\s'\"]*)@", re.IGNORECASE)
PASSWORD_OPTION = re.compile(r"\b(password=)[^&\s'\"]*", re.IGNORECASE)


_url_passwords: set[str] = set()  # seen in URLs by this process: masked wherever they appear


def secret_values() -> list[str]:
    """Values of the environment variables whose names mark them secret, and the URL passwords
    seen so far with their '@'-separated pieces (a driver that splits such a URL at its first
    '@' prints the rest as the host name), longest first."""
    values = {value for name, value in os.environ.items() if SECRET_VARIABLE.fullmatch(name)}
    values |= _url_passwords
    return sorted((v for v in values if len(v) >= MIN_SECRET_LENGTH), key=len, reverse=True)


def _remember_url_passwords(text: str):
    for match in URL_PASSWORD.finditer(text):
        password = match.group(2)
        _url_passwords.update([password, *password.split("@")])


def redact(text: str, secrets: list[str] | None = None) -> str:
    """`text` with every password replaced by ***; `secrets`: `secret_values()` if given."""
    _remember_url_passwords(text)
    text = URL_PASSWORD.sub(rf"\1:{MASK}@", text)
    text = PASSWORD_OPTION.sub(rf"\1{MASK}", text)
    for value in secret_values() if secrets is None else secrets:
        text = text.replace(value, MASK)
    return text


def redact_values(mapping: dict[str, str]) -> dict[str, str]:
    """The mapping with every value redacted, the secrets listed once for all of them (after
    the URL passwords in any of the values are seen)."""
    for value in mapping.values():
        _remember_url_passwords(value)
    secrets = secret_values()
    return {key: redact(value, secrets) for key, value in mapping.items()}


def excepthook(kind, error, trace):
    """`sys.excepthook` printing the traceback with passwords redacted."""
    sys.stderr.write(redact("".join(traceback.format_exception(kind, error, trace))))
