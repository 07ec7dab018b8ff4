"""MLproject and the README's parameter tables, written from the configs (`make params`).

`python -m pipeline.project_files` rewrites both; `--check` exits 1 when either differs from
what the configs say (the contract test runs the same comparison).
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import textwrap
from pathlib import Path

from pipeline.cli import COMMANDS, option_name
from pipeline.config.entry_points import ModelDataConfig

ROOT = Path(__file__).resolve().parents[1]
MLPROJECT_HEADER = """\
# Generated from pipeline/config/entry_points.py by `make params`: edit the configs, not this file.
name: dropout-mlp

# `mlflow run . -e train --env-manager local` runs in the current environment (`make install`
# builds it); `--env-manager uv` builds an isolated one from conda.yaml; with conda, no flag.
conda_env: conda.yaml

entry_points:
"""


def _fields(command: str) -> list[dataclasses.Field]:
    return list(dataclasses.fields(COMMANDS[command][0]))


def mlproject() -> str:
    """Every entry point with its params (strings with the config's defaults) and command."""
    lines = [MLPROJECT_HEADER.rstrip("\n")]
    for command in COMMANDS:
        defaults = COMMANDS[command][0].defaults()
        lines += [f"  {command}:", "    parameters:"]
        for name, default in defaults.items():
            lines.append(f"      {name}: {{type: string, default: {json.dumps(default)}}}")
        options = " ".join(f"{option_name(name)} {{{name}}}" for name in defaults)
        wrapped = textwrap.wrap(
            f"python -m pipeline {command} {options}", 94, break_on_hyphens=False
        )
        lines += ["    command: >-", *(f"      {line}" for line in wrapped), ""]
    return "\n".join(lines)


def params_table(command: str) -> str:
    """The README table of an entry point's params: name, default, meaning. Tune's and study's
    tables name the train params they share instead of repeating them."""
    rows = ["| name | default | meaning |", "|---|---|---|"]
    config_class = COMMANDS[command][0]
    shared = set()
    if command != "train" and issubclass(config_class, ModelDataConfig):
        shared = {field.name for field in dataclasses.fields(ModelDataConfig)}
        rows.append("| *train's* | | every param of train but `dropout_rates`, same defaults |")
    defaults = config_class.defaults()
    for field in _fields(command):
        if field.name in shared:
            continue
        default = f"`{defaults[field.name]}`" if defaults[field.name] else '`""`'
        meaning = field.metadata["help"].replace("|", "\\|")
        rows.append(f"| {field.name} | {default} | {meaning} |")
    return "\n".join(rows)


def marker(command: str, end: str) -> str:
    return f"<!-- params:{command}:{end} -->"


def readme(text: str) -> str:
    """`text` with each entry point's table between its markers replaced by the generated one."""
    for command in COMMANDS:
        start, end = marker(command, "start"), marker(command, "end")
        pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
        if not pattern.search(text):
            raise ValueError(f"README.md lacks the markers {start} … {end}")
        table = f"{start}\n{params_table(command)}\n{end}"
        text = pattern.sub(lambda _, table=table: table, text)
    return text


def outdated() -> list[Path]:
    """The generated files that differ from what the configs say."""
    mlproject_path, readme_path = ROOT / "MLproject", ROOT / "README.md"
    stale = []
    if mlproject_path.read_text() != mlproject():
        stale.append(mlproject_path)
    if readme_path.read_text() != readme(readme_path.read_text()):
        stale.append(readme_path)
    return stale


def main(argv: list[str]) -> int:
    if "--check" in argv:
        stale = outdated()
        for path in stale:
            print(
                f"{path.name} is out of date with pipeline/config/entry_points.py: "
                "run `make params`"
            )
        return 1 if stale else 0
    (ROOT / "MLproject").write_text(mlproject())
    (ROOT / "README.md").write_text(readme((ROOT / "README.md").read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
