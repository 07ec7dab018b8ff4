"""Parameters of every entry point, declared once: one frozen dataclass per entry point whose
fields parse by their type, check by their constraint (`pipeline.config.validation`) and by
the class's RULES across fields. The CLI, MLproject and README tables (`make params`) and
MLflow params follow.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

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
    GRACE_PERIOD,
    HEARTBEAT_INTERVAL,
    MAX_NORM,
    NON_NEGATIVE,
    NON_NEGATIVE_FLOAT,
    POSITIVE,
    RATE,
    RECIPES,
    REGISTER_AS,
    REPLICAS,
    SEED,
    SHARE,
    STORAGE,
    STRIPPED,
    STUDY_NAME,
    TRAIN_SEED_MAX,
    TRAIN_SIZE,
)
from pipeline.config.validation import (
    Boolean,
    Config,
    Interval,
    ListOf,
    NamedLists,
    Options,
    Param,
    ParameterError,
    Rule,
    fields_with_role,
    format_param,
    named_lists,
    parse_named_lists,
)

__all__ = ["ParameterError", "format_param"]  # re-exported: the package's usual import

PRUNERS = ("median", "percentile", "hyperband", "successive_halving", "none")


@dataclass(frozen=True)
class ModelDataConfig(Config):
    """Data, architecture and optimisation: shared by train, tune and study."""

    RULES: ClassVar = (DATA_DIR_RULE,)

    dataset: str = DATASET.field()
    data_dir: str = DATA_DIR.field()
    hidden_units: tuple[int, ...] = Param(
        (100, 50, 25),
        ListOf(POSITIVE),
        "units of the hidden Dense (relu) layers",
        roles=("shape", "grid"),
    ).field()
    epochs: int = Param(10, POSITIVE, "training epochs", roles=("shape", "grid")).field()
    batch_size: int = Param(32, POSITIVE, "batch size", roles=("shape", "grid")).field()
    learning_rate: float = Param(
        0.001,
        Interval(float, 0, None, closed="neither"),
        "Adam learning rate",
        roles=("run", "grid"),
    ).field()
    validation_split: float = Param(
        0.1, SHARE, "stratified share held out to validate", roles=("shape", "grid")
    ).field()
    train_size: int = TRAIN_SIZE.field()
    max_norm: float = MAX_NORM.field()
    seed: int = SEED.field()
    recipe: str = Param(
        "standard",
        Options(RECIPES),
        "standard: [0, 1] pixels, softmax; notebook: 0-255, sigmoid",
        roles=("shape",),
    ).field()
    backend: str = Param(
        "tensorflow",
        Options(BACKENDS),
        "Keras backend; jax trains about twice as fast on CPU but draws other random numbers, "
        "so its results differ from tensorflow's at the same seed",
        roles=("shape",),
    ).field()
    engine: str = ENGINE.field()
    run_figures: bool = Param(
        True,
        Boolean(),
        "each run's learning-curve and confusion-matrix PNGs (~0.45 s a run on 2 cores, more "
        "than its training on a GPU); false keeps their numbers (metrics, csv, json) only",
        roles=("execution",),
    ).field()

    def train_config(self, **changes) -> TrainConfig:
        """The train config of these shared params, with `changes` (e.g. dropout_rates)."""
        shared = {
            field.name: getattr(self, field.name) for field in dataclasses.fields(ModelDataConfig)
        }
        return TrainConfig(**{**shared, **changes})


GRID = Grid(ModelDataConfig, fields_with_role(ModelDataConfig, "grid"))


def _one_rate_per_layer(rates: tuple[float, ...], config: ModelDataConfig) -> bool:
    return len(rates) == len(config.hidden_units)


@dataclass(frozen=True)
class TrainConfig(ModelDataConfig):
    ENTRY_POINT: ClassVar = "train"
    seed: int = SEED.field(constraint=Interval(int, 0, TRAIN_SEED_MAX))  # also tune's seed + k
    RULES: ClassVar = (
        *ModelDataConfig.RULES,
        Rule(
            "dropout_rates",
            f"{ListOf(RATE)}, one per hidden layer",
            lambda c: _one_rate_per_layer(c.dropout_rates, c),
            {"dropout_rates": "0.5,0.25"},
        ),
    )

    dropout_rates: tuple[float, ...] = Param(
        (0.5, 0.25, 0.0),
        ListOf(RATE),
        "dropout rate after each hidden layer; 0,0,0: none",
        roles=("run",),
    ).field()

    @property
    def run_name(self) -> str:
        recipe = "" if self.recipe == "standard" else f"-recipe_{self.recipe}"
        return f"{self.dataset}-dropout-{format_param(self.dropout_rates)}-seed{self.seed}{recipe}"


@dataclass(frozen=True)
class TuneConfig(ModelDataConfig):
    """An Optuna search over one dropout rate per hidden layer (and optionally the learning
    rate); `seed` seeds the sampler and every trial's training."""

    ENTRY_POINT: ClassVar = "tune"
    RULES: ClassVar = (
        *ModelDataConfig.RULES,
        Rule(
            "rate_step",
            "a float in the range (0, max_rate]",
            lambda c: c.rate_step <= c.max_rate,
            {"max_rate": "0.3", "rate_step": "0.5"},
        ),
        Rule(
            "grace_period",
            "an int greater than heartbeat_interval",
            lambda c: c.grace_period > c.heartbeat_interval,
            {"heartbeat_interval": "30", "grace_period": "30"},
        ),
    )

    n_trials: int = Param(
        20,
        POSITIVE,
        "finished (complete or pruned) trials the study ends with, resumed included",
        roles=("resumable",),
    ).field()
    max_rate: float = Param(
        0.7, SHARE, "dropout rates are searched in [0, max_rate]", roles=("design",)
    ).field()
    rate_step: float = Param(
        0.05,
        Interval(float, 0, 1, closed="right"),
        "grid step of the searched rates",
        roles=("design",),
    ).field()
    search_learning_rate: bool = Param(
        False,
        Boolean(),
        "also search the Adam learning rate, log-uniform in [1e-4, 1e-2]",
        roles=("design",),
    ).field()
    pruner: str = Param(
        "median",
        Options(PRUNERS),
        "stops unpromising trials early on their val_accuracy",
        roles=("design",),
    ).field()
    pruner_startup_trials: int = Param(
        5,
        NON_NEGATIVE,
        "median and percentile pruners: trials run to the end before pruning",
        roles=("design",),
    ).field()
    pruner_percentile: float = Param(
        25.0,
        Interval(float, 0, 100, closed="neither"),
        "percentile pruner: a trial goes on while its val_accuracy is in this top percent of "
        "earlier trials' at the same epoch",
        roles=("design",),
    ).field()
    study_name: str = STUDY_NAME.field(
        roles=("resumable",),
        help="Optuna study (and MLflow parent run) name; re-running a name resumes it. "
        "Empty: <dataset>-dropout-search",
    )
    storage: str = STORAGE.field(roles=("resumable", "execution"))
    heartbeat_interval: int = HEARTBEAT_INTERVAL.field()
    grace_period: int = GRACE_PERIOD.field()
    timeout: float = Param(
        0.0,
        NON_NEGATIVE_FLOAT,
        "stop starting new trials after this many seconds; 0: no limit",
        roles=("resumable",),
    ).field()
    final_seeds: int = Param(
        3,
        NON_NEGATIVE,
        "retrain the best config and the notebook's two on this many fresh seeds",
        roles=("resumable",),
    ).field()
    register_as: str = REGISTER_AS.field()
    engine: str = ENGINE.field(default="replicas")
    replicas: int = REPLICAS.field()
    trial_seeds: int = Param(
        1,
        POSITIVE,
        "seeds each trial trains at once; pruner and objective see their mean",
        roles=("design",),
    ).field()

    @property
    def name(self) -> str:
        return self.study_name or f"{self.dataset}-dropout-search"


@dataclass(frozen=True)
class StudyConfig(ModelDataConfig):
    """Every config trained on the same seeds (paired), compared with paired statistics.
    `seed` is the first seed; the study uses seed, seed+1, ..., seed+seeds-1."""

    ENTRY_POINT: ClassVar = "study"
    RULES: ClassVar = (
        *ModelDataConfig.RULES,
        Rule(
            "configs",
            "configs with one rate per hidden layer",
            lambda c: all(_one_rate_per_layer(rates, c) for _, rates in c.named_configs),
            {"configs": "a=0,0;b=0.5,0"},
        ),
        Rule(
            "grid",
            "a grid whose hidden_units levels have one layer per config rate",
            lambda c: all(len(units) == len(c.hidden_units) for units in c.levels("hidden_units")),
            {"grid": "hidden_units=100-50"},
        ),
        Rule(
            "storage",
            "empty without a grid",
            lambda c: bool(c.grid) or not c.storage,
            {"storage": "journal:study.journal"},
        ),
    )

    configs: str = Param(
        "baseline=0,0,0;dropout=0.5,0.25,0",
        NamedLists(RATE),
        "the configs to compare; the first is the reference",
        roles=("design",),
    ).field(parse=named_lists)
    seeds: int = Param(
        5,
        Interval(int, 2, None, closed="left"),
        "paired seeds per config (seed, seed+1, …)",
        roles=("design",),
    ).field()
    alpha: float = ALPHA.field()
    study_name: str = STUDY_NAME.field(
        help="parent run name; empty: <dataset>-<recipe>-<names>, with -grid for a grid"
    )
    grid: str = Param(
        "",
        GRID,
        "run the study in every cell of a grid over train params, e.g. "
        "train_size=1000,5000,0;epochs=10,100 (factors crossed; a nested parent run per cell); "
        "empty: one study",
        roles=("design",),
    ).field(parse=GRID.canonical)
    storage: str = STORAGE.field(help=f"grid only: the cells' {STORAGE.help}")
    engine: str = ENGINE.field(default="replicas")
    replicas: int = REPLICAS.field()

    @property
    def named_configs(self) -> list[tuple[str, tuple[float, ...]]]:
        return parse_named_lists(self.configs)

    def levels(self, factor: str) -> list:
        """The grid's levels of one factor (none when it is not a factor)."""
        return dict(GRID.factors(self.grid)).get(factor, [])

    @property
    def name(self) -> str:
        names = "-vs-".join(name for name, _ in self.named_configs)
        grid = "-grid" if self.grid else ""
        return self.study_name or f"{self.dataset}-{self.recipe}-{names}{grid}"


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

    run_id: str = Param(
        "", ANY_TEXT, "train run whose logged model is evaluated", roles=("design",)
    ).field()
    model_uri: str = Param(
        "",
        ANY_TEXT,
        "any MLflow model URI (runs:/…, models:/<name>@<alias>) instead of run_id",
        roles=("design",),
    ).field()
    baseline_run_id: str = Param(
        "",
        STRIPPED,
        "compare with this run's model on the identical test examples",
        roles=("design",),
    ).field()
    dataset: str = DATASET.field(
        default="",
        constraint=Options(("", *DATASETS)),
        help="test data; empty: the dataset the source run trained on",
    )
    data_dir: str = DATA_DIR.field(help="local folder with IDX or .npz files; empty: the run's")
    alpha: float = ALPHA.field()
    seed: int = SEED.field(help="seed of the paired bootstrap")
    register_as: str = REGISTER_AS.field()
