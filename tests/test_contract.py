"""The configs are the single source of every param: MLproject, the CLI and the README tables
follow them, and every constraint rejects its invalid values with one line and exit 2."""

import dataclasses
import re

import pytest
import yaml
from helpers import PROJECT_ROOT, assert_rejected

from pipeline import cli, project_files
from pipeline.config.entry_points import ParameterError, TrainConfig, format_param

pytestmark = pytest.mark.fast  # make test-fast

MLPROJECT = yaml.safe_load((PROJECT_ROOT / "MLproject").read_text())


def cli_defaults(command: str) -> dict[str, str]:
    parser = cli.build_parser()
    subparser = parser._subparsers._group_actions[0].choices[command]
    return {
        action.dest: action.default
        for action in subparser._actions
        if action.option_strings and action.dest != "help"
    }


def test_every_cli_command_is_an_mlproject_entry_point():
    assert set(cli.COMMANDS) <= set(MLPROJECT["entry_points"])


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_mlproject_cli_and_config_declare_the_same_params(command):
    config_class = cli.COMMANDS[command][0]
    entry_point = MLPROJECT["entry_points"][command]
    mlproject_defaults = {
        name: str(spec["default"]) for name, spec in entry_point["parameters"].items()
    }
    config_defaults = config_class.defaults()
    assert mlproject_defaults == config_defaults
    assert cli_defaults(command) == config_defaults
    assert [field.name for field in dataclasses.fields(config_class)] == list(config_defaults)


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_mlproject_command_passes_each_param_to_its_option(command):
    entry_point = MLPROJECT["entry_points"][command]
    passed = dict(re.findall(r"(--[a-z-]+) \{(\w+)\}", entry_point["command"]))
    assert entry_point["command"].startswith(f"python -m pipeline {command} ")
    assert passed == {cli.option_name(name): name for name in entry_point["parameters"]}


def test_defaults_round_trip_through_their_strings():
    assert TrainConfig.from_strings(TrainConfig.defaults()) == TrainConfig()
    assert TrainConfig().to_params() == TrainConfig.defaults()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {"dropout_rates": "0.5,1.5,0"},
            "The 'dropout_rates' parameter of train must be a comma-separated list of floats "
            "in the range [0, 1). Got '0.5,1.5,0' instead.",
        ),
        (
            {"dropout_rates": "0.5,0.25"},
            "must be a comma-separated list of floats in the range [0, 1), one per hidden layer. "
            "Got '0.5,0.25' instead.",
        ),
        ({"epochs": "0"}, "The 'epochs' parameter of train must be an int in the range [1, inf)."),
        ({"validation_split": "1"}, "must be a float in the range (0, 1). Got '1' instead."),
        ({"dataset": "cifar"}, "The 'dataset' parameter of train must be one of ('mnist_5k',"),
        ({"data_dir": "/tmp"}, "must be empty for datasets other than ('mnist', 'fashion_mnist')"),
        ({"seed": "4294967296"}, "must be an int in the range [0, 4294967295]."),
    ],
)
def test_constraints_describe_themselves_in_the_error(raw, expected):
    with pytest.raises(ParameterError) as error:
        TrainConfig.from_strings(raw)
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("command", ["train", "study", "tune"])
def test_the_retired_replicas_engine_exits_2_naming_the_engines_left(command, capsys, client):
    """engine=replicas (a Keras replica model) was retired for population: a bad value now."""
    message = (
        f"The 'engine' parameter of {command} must be one of ('keras', 'population'). "
        "Got 'replicas' instead."
    )
    assert_rejected([command, "--engine", "replicas"], message, capsys, client)


def test_generated_files_match_the_configs():
    """MLproject and README's parameter tables are written by `make params` from config."""
    assert project_files.outdated() == []


def test_drift_in_a_generated_file_is_caught(monkeypatch, tmp_path):
    (tmp_path / "MLproject").write_text(project_files.mlproject().replace('"10"', '"20"'))
    (tmp_path / "README.md").write_text((PROJECT_ROOT / "README.md").read_text())
    monkeypatch.setattr(project_files, "ROOT", tmp_path)
    assert project_files.outdated() == [tmp_path / "MLproject"]


def invalid_cases() -> list[tuple[str, str, str]]:
    """For every param of every entry point, the invalid values its constraint makes."""
    return [
        (command, field.name, value)
        for command, (config_class, _, _) in cli.COMMANDS.items()
        for field in dataclasses.fields(config_class)
        for value in field.metadata["constraint"].invalid_values()
    ]


def test_every_param_with_a_constraint_has_invalid_values():
    covered = {(command, name) for command, name, _ in invalid_cases()}
    free_text = {("tune", "study_name"), ("study", "study_name"), ("evaluate", "run_id")}
    free_text |= {("evaluate", "model_uri"), ("evaluate", "baseline_run_id")}
    every = {
        (command, field.name)
        for command, (config_class, _, _) in cli.COMMANDS.items()
        for field in dataclasses.fields(config_class)
    }
    assert every - covered == free_text


def rule_cases() -> list[tuple[str, str, dict[str, str]]]:
    """For every rule across params, values that break it."""
    return [
        (command, rule.name, rule.breaking)
        for command, (config_class, _, _) in cli.COMMANDS.items()
        for rule in config_class.RULES
    ]


@pytest.mark.parametrize(("command", "name", "values"), rule_cases())
def test_every_rule_across_params_exits_2_naming_its_param(command, name, values, capsys, client):
    argv = [command] + [f"{cli.option_name(key)}={value}" for key, value in values.items()]
    assert_rejected(argv, f"The '{name}' parameter of {command} must be", capsys, client)


# evaluate needs one of run_id / model_uri: a model_uri makes the other params the only fault
VALID_BASE = {"evaluate": ["--model-uri", "models:/m@champion"]}


@pytest.mark.parametrize(("command", "name", "value"), invalid_cases())
def test_every_invalid_value_exits_2_with_one_line_naming_it(command, name, value, capsys, client):
    argv = [command, *VALID_BASE.get(command, []), f"{cli.option_name(name)}={value}"]
    assert_rejected(argv, f"The '{name}' parameter of {command} must be", capsys, client)


def test_format_param_is_canonical():
    assert format_param((0.5, 0.25, 0.0)) == "0.5,0.25,0"
    assert format_param(0.001) == "0.001"
    assert format_param((100, 50, 25)) == "100,50,25"
    config = TrainConfig(dropout_rates=(0.1, 0.2, 0.3))
    assert config.run_name == "mnist_5k-dropout-0.1,0.2,0.3-seed0"
