"""Parameters of every entry point, declared once: one frozen dataclass per entry point whose
fields parse by their type, check by their constraint (`pipeline.config.constraints`) and by
the class's RULES across fields. The CLI, MLproject and README tables (`make params`) and
MLflow params follow. Here the data and model params that train, tune and study share, and
train's and evaluate's configs; tune's in `pipeline.config.tune`, study's in
`pipeline.config.study`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from typing import ClassVar

from pipeline.config.constraints import Interval, ListOf, Options
from pipeline.config.factors import Grid
from pipeline.config.params import (
    ALPHA,
    ANY_TEXT,
    BACKENDS,
    DATA_DIR,
    DATA_DIR_RULE,
    DATASET,
    DATASETS,
    ENGINE,
    MAX_NORM,
    POSITIVE,
    RATE,
    RECIPES,
    REGISTER_AS,
    RUN_FIGURES,
    SEED,
    SHARE,
    STRIPPED,
    TRAIN_SEED_MAX,
    TRAIN_SIZE,
)
from pipeline.config.validation import (
    Config,
    Param,
    ParameterError,
    Rule,
    fields_with_role,
    format_param,
)

__all__ = ["ParameterError", "format_param"]  # re-exported: the package's usual import


@dataclass(frozen=True)
class ModelDataConfig(Config):
    """Data, architecture and optimisation: shared by train, tune and study."""

    RULES: ClassVar = (DATA_DIR_RULE,)

    dataset: str = DATASET
    data_dir: str = DATA_DIR
    hidden_units: tuple[int, ...] = Param(
        (100, 50, 25), ListOf(POSITIVE), "units of the hidden Dense (relu) layers", "shape grid"
    )
    epochs: int = Param(10, POSITIVE, "training epochs", "shape grid")
    batch_size: int = Param(32, POSITIVE, "batch size", "shape grid")
    learning_rate: float = Param(
        0.001, Interval(float, 0, None, closed="neither"), "Adam learning rate", "run grid"
    )
    validation_split: float = Param(
        0.1, SHARE, "stratified share held out to validate", "shape grid"
    )
    train_size: int = TRAIN_SIZE
    max_norm: float = MAX_NORM
    seed: int = SEED
    recipe: str = Param(
        "standard",
        Options(RECIPES),
        "standard: [0, 1] pixels, softmax; notebook: 0-255, sigmoid",
        "shape",
    )
    backend: str = Param(
        "tensorflow",
        Options(BACKENDS),
        "Keras backend of engine=keras; jax trains about twice as fast on CPU but draws other "
        "random numbers, so its results differ from tensorflow's at the same seed",
        "shape",
    )
    engine: str = ENGINE
    run_figures: bool = RUN_FIGURES

    def train_config(self, **changes) -> TrainConfig:
        """The train config of these shared params, with `changes` (e.g. dropout_rates)."""
        shared = {
            field.name: getattr(self, field.name) for field in dataclasses.fields(ModelDataConfig)
        }
        return TrainConfig(**{**shared, **changes})


GRID = Grid(ModelDataConfig, fields_with_role(ModelDataConfig, "grid"))


def one_rate_per_layer(rates: tuple[float, ...], config: ModelDataConfig) -> bool:
    return len(rates) == len(config.hidden_units)


@dataclass(frozen=True)
class TrainConfig(ModelDataConfig):
    ENTRY_POINT: ClassVar = "train"
    seed: int = replace(SEED, constraint=Interval(int, 0, TRAIN_SEED_MAX))  # also tune's seed + k
    RULES: ClassVar = (
        *ModelDataConfig.RULES,
        Rule(
            "dropout_rates",
            f"{ListOf(RATE)}, one per hidden layer",
            lambda c: one_rate_per_layer(c.dropout_rates, c),
            {"dropout_rates": "0.5,0.25"},
        ),
    )

    dropout_rates: tuple[float, ...] = Param(
        (0.5, 0.25, 0.0), ListOf(RATE), "dropout rate after each hidden layer; 0,0,0: none", "run"
    )

    @property
    def run_name(self) -> str:
        recipe = "" if self.recipe == "standard" else f"-recipe_{self.recipe}"
        return f"{self.dataset}-dropout-{format_param(self.dropout_rates)}-seed{self.seed}{recipe}"


@dataclass(frozen=True)
class EvaluateConfig(Config):
    """Scores a logged model (of a train run, or any model URI) on the test set of the data its
    run trained on, optionally against a baseline run's model on the identical examples."""

    ENTRY_POINT: ClassVar = "evaluate"
    RULES: ClassVar = (
        Rule(
            "run_id",
            "the id of a train run with a logged model, or empty when model_uri is given",
            lambda c: bool(c.run_id) != bool(c.model_uri),
            {"run_id": "abc", "model_uri": "runs:/abc/model"},
        ),
    )

    run_id: str = Param("", ANY_TEXT, "train run whose logged model is evaluated", "design")
    model_uri: str = Param(
        "",
        ANY_TEXT,
        "any MLflow model URI (runs:/…, models:/<name>@<alias>) instead of run_id",
        "design",
    )
    baseline_run_id: str = Param(
        "", STRIPPED, "compare with this run's model on the identical test examples", "design"
    )
    dataset: str = replace(
        DATASET,
        default="",
        constraint=Options(("", *DATASETS)),
        help="test data; empty: the dataset the source run trained on",
    )
    data_dir: str = replace(DATA_DIR, help="local folder with IDX or .npz files; empty: the run's")
    alpha: float = ALPHA
    seed: int = replace(SEED, help="seed of the paired bootstrap")
    register_as: str = REGISTER_AS
