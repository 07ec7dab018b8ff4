"""Parameters of every entry point: names, defaults, parsing and validation, declared once.

Each entry point has one frozen dataclass. A field's metadata says how to parse it from the
string that MLproject / the CLI pass, what a valid value is (for the error message) and a help
line. `cli.py` builds its options from these fields and `MLproject` must list the same names and
defaults (a contract test checks it); MLflow params carry exactly these names.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DATASETS = ("mnist_5k", "mnist", "fashion_mnist", "digits")
LOCAL_DATASETS = ("mnist", "fashion_mnist")  # the ones data_dir can replace
RECIPES = ("standard", "seed")
BACKENDS = ("tensorflow", "jax")  # Keras backends


class ParameterError(ValueError):
    """A parameter value is invalid; the message is one line meant for the user."""


def format_param(value: Any) -> str:
    """The canonical string of a value, as MLproject, the CLI and MLflow params show it."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(format_param(item) for item in value)
    if isinstance(value, float):
        return f"{value:g}" if value == 0 or 1e-4 <= abs(value) < 1e6 else repr(value)
    return str(value)


def int_list(text: str) -> tuple[int, ...]:
    return tuple(int(item) for item in text.split(",")) if text.strip() else ()


def float_list(text: str) -> tuple[float, ...]:
    return tuple(float(item) for item in text.split(",")) if text.strip() else ()


def param(default: Any, parse: Callable[[str], Any], must_be: str, check: Callable, help: str):
    """A config field: `check(value, config)` is True for a valid value, else the error says
    "must be <must_be>"."""
    metadata = {"parse": parse, "must_be": must_be, "check": check, "help": help}
    return dataclasses.field(default=default, metadata=metadata)


def _is_rate(rate: float) -> bool:
    return math.isfinite(rate) and 0 <= rate < 1


@dataclass(frozen=True)
class _Config:
    """Parsing and validation shared by the entry-point configs."""

    ENTRY_POINT = ""

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not field.metadata["check"](value, self):
                self._fail(field, format_param(value))

    @classmethod
    def _fail(cls, field: dataclasses.Field, got: str):
        raise cls.invalid(field.name, field.metadata["must_be"], got)

    @classmethod
    def invalid(cls, name: str, must_be: str, got: str) -> ParameterError:
        """The error for a value that only fails against the world (e.g. an unknown run id)."""
        return ParameterError(
            f"The '{name}' parameter of {cls.ENTRY_POINT} must be {must_be}. Got {got!r} instead."
        )

    @classmethod
    def from_strings(cls, raw: dict[str, str]):
        """Build from string values (CLI / MLproject); unknown names are an error."""
        fields = {field.name: field for field in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - set(fields))
        if unknown:
            raise ParameterError(f"{cls.ENTRY_POINT} has no parameter {unknown[0]!r}.")
        values = {}
        for name, text in raw.items():
            try:
                values[name] = fields[name].metadata["parse"](str(text).strip())
            except ValueError:
                cls._fail(fields[name], str(text))
        return cls(**values)

    @classmethod
    def defaults(cls) -> dict[str, str]:
        return {field.name: format_param(field.default) for field in dataclasses.fields(cls)}

    def to_params(self) -> dict[str, str]:
        return {name: format_param(value) for name, value in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class ModelDataConfig(_Config):
    """Data, architecture and optimisation: shared by train, tune and study."""

    dataset: str = param(
        "mnist_5k",
        str,
        f"one of {DATASETS}",
        lambda v, c: v in DATASETS,
        "mnist_5k: 5,000 real MNIST digits and the MNIST test set, bundled (offline); mnist: "
        "the full 60,000 (download once); fashion_mnist; digits: sklearn 8x8, tiny",
    )
    data_dir: str = param(
        "",
        str,
        "an existing folder with IDX (.gz or raw) or .npz files, for mnist or fashion_mnist",
        lambda v, c: v == "" or (c.dataset in LOCAL_DATASETS and os.path.isdir(v)),
        "local folder with IDX or .npz files (offline MNIST); empty: built-in source",
    )
    hidden_units: tuple[int, ...] = param(
        (100, 50, 25),
        int_list,
        "a comma-separated list of positive integers",
        lambda v, c: len(v) > 0 and all(units > 0 for units in v),
        "units of the hidden Dense (relu) layers",
    )
    epochs: int = param(10, int, "an integer >= 1", lambda v, c: v >= 1, "training epochs")
    batch_size: int = param(32, int, "an integer >= 1", lambda v, c: v >= 1, "batch size")
    learning_rate: float = param(
        0.001,
        float,
        "a float > 0",
        lambda v, c: math.isfinite(v) and v > 0,
        "Adam learning rate",
    )
    validation_split: float = param(
        0.1,
        float,
        "a float in the open interval (0, 1)",
        lambda v, c: 0 < v < 1,
        "stratified share of the training set held out for validation",
    )
    seed: int = param(
        0, int, "an integer >= 0", lambda v, c: v >= 0, "seed of python/numpy/tf and the split"
    )
    recipe: str = param(
        "standard",
        str,
        f"one of {RECIPES}",
        lambda v, c: v in RECIPES,
        "standard: inputs scaled to [0,1], softmax; seed: the notebook's raw pixels, sigmoid",
    )
    backend: str = param(
        "tensorflow",
        str,
        f"one of {BACKENDS}",
        lambda v, c: v in BACKENDS,
        "Keras backend; jax trains about twice as fast on CPU but draws other random numbers, "
        "so its results differ from tensorflow's at the same seed",
    )

    def train_config(self, **changes) -> TrainConfig:
        """The train config of these shared params, with `changes` (e.g. dropout_rates)."""
        shared = {
            field.name: getattr(self, field.name) for field in dataclasses.fields(ModelDataConfig)
        }
        return TrainConfig(**{**shared, **changes})


@dataclass(frozen=True)
class TrainConfig(ModelDataConfig):
    ENTRY_POINT = "train"

    dropout_rates: tuple[float, ...] = param(
        (0.5, 0.25, 0.0),
        float_list,
        "a comma-separated list of rates in [0, 1), one per hidden layer",
        lambda v, c: len(v) == len(c.hidden_units) and all(_is_rate(rate) for rate in v),
        "dropout rate after each hidden layer; 0,0,0 is the notebook's baseline",
    )

    @property
    def run_name(self) -> str:
        recipe = "" if self.recipe == "standard" else f"-recipe_{self.recipe}"
        return f"{self.dataset}-dropout-{format_param(self.dropout_rates)}-seed{self.seed}{recipe}"


CHAMPION_ALIAS = "champion"  # registered models: models:/<name>@champion
PRUNERS = ("median", "percentile", "hyperband", "successive_halving", "none")
RDB_STORAGE_SCHEMES = ("sqlite:", "postgresql", "mysql")  # Optuna RDBStorage URLs
STORAGE_SCHEMES = ("journal:", *RDB_STORAGE_SCHEMES)


def boolean(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise ValueError(text)


@dataclass(frozen=True)
class TuneConfig(ModelDataConfig):
    """An Optuna search over one dropout rate per hidden layer (and optionally the learning
    rate); `seed` seeds the sampler and every trial's training."""

    ENTRY_POINT = "tune"

    n_trials: int = param(
        20,
        int,
        "an integer >= 1",
        lambda v, c: v >= 1,
        "finished (complete or pruned) trials the study ends with, resumed runs included",
    )
    max_rate: float = param(
        0.7,
        float,
        "a float in the open interval (0, 1)",
        lambda v, c: 0 < v < 1,
        "each dropout rate is searched in [0, max_rate]",
    )
    rate_step: float = param(
        0.05,
        float,
        "a float in (0, max_rate]",
        lambda v, c: 0 < v <= c.max_rate,
        "grid step of the searched rates",
    )
    search_learning_rate: bool = param(
        False,
        boolean,
        "true or false",
        lambda v, c: isinstance(v, bool),
        "also search the Adam learning rate, log-uniform in [1e-4, 1e-2]",
    )
    pruner: str = param(
        "median",
        str,
        f"one of {PRUNERS}",
        lambda v, c: v in PRUNERS,
        "stops unpromising trials early on their per-epoch val_accuracy",
    )
    pruner_startup_trials: int = param(
        5,
        int,
        "an integer >= 0",
        lambda v, c: v >= 0,
        "median and percentile pruners: trials that run to the end before pruning starts",
    )
    pruner_percentile: float = param(
        25.0,
        float,
        "a float in the open interval (0, 100)",
        lambda v, c: 0 < v < 100,
        "percentile pruner: a trial goes on while its val_accuracy is in this top percent of "
        "earlier trials' at the same epoch",
    )
    study_name: str = param(
        "",
        str,
        "a non-blank name or empty",
        lambda v, c: v == v.strip(),
        "Optuna study (and MLflow parent run) name; re-running a name resumes it. "
        "Empty: <dataset>-dropout-search",
    )
    storage: str = param(
        "",
        str,
        "empty, journal:<path>, or an Optuna RDB URL (sqlite:///…, postgresql://…, mysql://…)",
        lambda v, c: v == "" or v.startswith(STORAGE_SCHEMES),
        "Optuna storage; empty: a journal file beside the local tracking store",
    )
    heartbeat_interval: int = param(
        30,
        int,
        "an integer >= 1 (seconds)",
        lambda v, c: v >= 1,
        "RDB storage: seconds between a running trial's heartbeats",
    )
    grace_period: int = param(
        90,
        int,
        "an integer > heartbeat_interval (seconds)",
        lambda v, c: v > c.heartbeat_interval,
        "RDB storage: a running trial without heartbeat for this long is marked FAIL and retried",
    )
    timeout: float = param(
        0.0,
        float,
        "a float >= 0 (seconds; 0 means none)",
        lambda v, c: math.isfinite(v) and v >= 0,
        "stop starting new trials after this many seconds",
    )
    final_seeds: int = param(
        3,
        int,
        "an integer >= 0",
        lambda v, c: v >= 0,
        "retrain the best config and the notebook's two configs on this many fresh seeds",
    )
    register_as: str = param(
        "",
        str,
        "empty or a model name of letters, digits, _ . -",
        lambda v, c: re.fullmatch(r"[\w.-]*", v) is not None,
        "register the best config's model under this name with alias 'champion' "
        "(models:/<name>@champion); empty: do not register",
    )

    @property
    def name(self) -> str:
        return self.study_name or f"{self.dataset}-dropout-search"


def named_rate_lists(text: str) -> str:
    """`name=r,r,r;name=r,r,r` in canonical spelling; ValueError when malformed."""
    entries = [entry.split("=") for entry in text.split(";") if entry.strip()]
    if any(len(entry) != 2 or not entry[0].strip() for entry in entries):
        raise ValueError(text)
    return ";".join(f"{name.strip()}={format_param(float_list(rates))}" for name, rates in entries)


def _valid_configs(text: str, config: StudyConfig) -> bool:
    names = [name for name, _ in config.named_configs]
    return (
        len(names) >= 2
        and len(set(names)) == len(names)
        and all(re.fullmatch(r"[\w.-]+", name) for name in names)  # names become metric keys
        and all(
            len(rates) == len(config.hidden_units) and all(_is_rate(rate) for rate in rates)
            for _, rates in config.named_configs
        )
    )


@dataclass(frozen=True)
class StudyConfig(ModelDataConfig):
    """Every config trained on the same seeds (paired), compared with paired statistics.
    `seed` is the first seed; the study uses seed, seed+1, ..., seed+seeds-1."""

    ENTRY_POINT = "study"

    configs: str = param(
        "baseline=0,0,0;dropout=0.5,0.25,0",
        named_rate_lists,
        "two or more 'name=rates' separated by ';', with unique names (letters, digits, _ . -) "
        "and one rate in [0, 1) per hidden layer",
        _valid_configs,
        "the configs to compare; the first is the reference",
    )
    seeds: int = param(
        5, int, "an integer >= 2", lambda v, c: v >= 2, "paired seeds per config (seed, seed+1, …)"
    )
    alpha: float = param(
        0.05,
        float,
        "a float in the open interval (0, 0.5)",
        lambda v, c: 0 < v < 0.5,
        "significance level of the verdicts",
    )
    study_name: str = param(
        "",
        str,
        "a name without leading or trailing blanks, or empty",
        lambda v, c: v == v.strip(),
        "parent run name; empty: <dataset>-<recipe>-<config names>",
    )

    @property
    def named_configs(self) -> list[tuple[str, tuple[float, ...]]]:
        pairs = (entry.split("=") for entry in self.configs.split(";"))
        return [(name, float_list(rates)) for name, rates in pairs]

    @property
    def name(self) -> str:
        names = "-vs-".join(name for name, _ in self.named_configs)
        return self.study_name or f"{self.dataset}-{self.recipe}-{names}"


@dataclass(frozen=True)
class EvaluateConfig(_Config):
    """Scores a logged model (of a train run, or any model URI) on the test set of the data its
    run trained on, optionally against a baseline run's model on the identical examples."""

    ENTRY_POINT = "evaluate"

    run_id: str = param(
        "",
        str,
        "the id of a train run with a logged model, or empty when model_uri is given",
        lambda v, c: bool(v) != bool(c.model_uri),
        "train run whose logged model is evaluated",
    )
    model_uri: str = param(
        "",
        str,
        "a model URI (runs:/<id>/model, models:/<name>@<alias>, ...), or empty given a run_id",
        lambda v, c: True,  # exactly one of run_id and model_uri: checked on run_id
        "any MLflow model URI instead of run_id",
    )
    baseline_run_id: str = param(
        "",
        str,
        "empty or the id of a train run with a logged model",
        lambda v, c: v == v.strip(),
        "compare with this run's model on the identical test examples",
    )
    dataset: str = param(
        "",
        str,
        f"empty (the source run's) or one of {DATASETS}",
        lambda v, c: v in ("", *DATASETS),
        "test data; empty: the dataset the source run trained on",
    )
    data_dir: str = param(
        "",
        str,
        "empty or an existing folder with IDX (.gz or raw) or .npz files",
        lambda v, c: v == "" or os.path.isdir(v),
        "local folder with IDX or .npz files; empty: the source run's",
    )
    alpha: float = param(
        0.05,
        float,
        "a float in the open interval (0, 0.5)",
        lambda v, c: 0 < v < 0.5,
        "significance level of the comparison's verdict",
    )
    seed: int = param(
        0, int, "an integer >= 0", lambda v, c: v >= 0, "seed of the paired bootstrap"
    )
    register_as: str = param(
        "",
        str,
        "empty or a model name of letters, digits, _ . -",
        lambda v, c: re.fullmatch(r"[\w.-]*", v) is not None,
        f"register the evaluated model under this name with alias {CHAMPION_ALIAS!r}; "
        "empty: do not register",
    )
