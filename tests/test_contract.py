"""MLproject, the CLI and the config dataclasses declare the same params with the same defaults."""

import dataclasses
import re

import pytest
import yaml
from conftest import PROJECT_ROOT

from pipeline import cli
from pipeline.config import ParameterError, TrainConfig, format_param

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
            "The 'dropout_rates' parameter of train must be a "
            "comma-separated list of rates in [0, 1), one per hidden layer. "
            "Got '0.5,1.5,0' instead.",
        ),
        ({"dropout_rates": "0.5,0.25"}, "Got '0.5,0.25' instead."),
        ({"dropout_rates": "a,b,c"}, "Got 'a,b,c' instead."),
        ({"epochs": "0"}, "The 'epochs' parameter of train must be an integer >= 1. Got '0'"),
        ({"batch_size": "-3"}, "The 'batch_size' parameter of train must be an integer >= 1."),
        ({"validation_split": "1"}, "'validation_split' parameter of train must be a float in"),
        ({"dataset": "cifar"}, "The 'dataset' parameter of train must be one of ('mnist',"),
        ({"recipe": "fancy"}, "The 'recipe' parameter of train must be one of ('standard',"),
        ({"data_dir": "/no/such/dir"}, "The 'data_dir' parameter of train must be an existing"),
        ({"learning_rate": "nan"}, "The 'learning_rate' parameter of train must be a float > 0"),
    ],
)
def test_bad_values_raise_one_clear_message(raw, expected):
    with pytest.raises(ParameterError) as error:
        TrainConfig.from_strings(raw)
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


def test_format_param_is_canonical():
    assert format_param((0.5, 0.25, 0.0)) == "0.5,0.25,0"
    assert format_param(0.001) == "0.001"
    assert format_param((100, 50, 25)) == "100,50,25"
    assert TrainConfig(dropout_rates=(0.1, 0.2, 0.3)).run_name == "mnist-dropout-0.1,0.2,0.3-seed0"
