"""Parameters of every entry point, declared once: one frozen dataclass per entry point whose
fields parse by their type, check by their constraint (`pipeline.validation`) and by the class's
RULES across fields. The CLI, MLproject and README tables (`make params`) and MLflow params follow.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from pipeline.validation import (
    Boolean,
    Config,
    ExistingDir,
    Interval,
    ListOf,
    NamedLists,
    Options,
    Param,
    ParameterError,
    Pattern,
    Rule,
    format_param,
    named_lists,
    parse_named_lists,
)

__all__ = ["ParameterError", "format_param"]  # re-exported: the package's usual import

DATASETS = ("mnist_5k", "mnist", "fashion_mnist", "digits")
LOCAL_DATASETS = ("mnist", "fashion_mnist")  # the ones data_dir can replace
RECIPES = ("standard", "notebook")
BACKENDS = ("tensorflow", "jax")  # Keras backends
PRUNERS = ("median", "percentile", "hyperband", "successive_halving", "none")
CHAMPION_ALIAS = "champion"  # registered models: models:/<name>@champion
RDB_STORAGE_SCHEMES = ("sqlite:", "postgresql", "mysql")  # Optuna RDB storage URLs
# numpy takes seeds < 2**32: a train's; those derived from seed (+ trial number, + k) stay below
SEED_MAX, TRAIN_SEED_MAX = 2**31 - 1, 2**32 - 1
RATE = Interval(float, 0, 1, closed="left")
ANY_TEXT = Pattern(r"(?s).*", "any text", [])
# parsing strips every value, so a padded name arrives trimmed: no invalid value to make
STRIPPED = Pattern(r"(\S(.*\S)?)?", "a name without leading or trailing blanks, or empty", [])


# Parameters that several entry points share.
DATASET = Param(
    "mnist_5k",
    Options(DATASETS),
    "mnist_5k: 5,000 real MNIST digits and the MNIST test set, bundled (offline); mnist: "
    "the full 60,000 (downloaded once); fashion_mnist; digits: sklearn 8x8, tiny",
)
DATA_DIR = Param(
    "",
    ExistingDir(),
    "local folder with the IDX (.gz or raw) or .npz files of mnist or fashion_mnist; "
    "empty: the built-in source",
)
SEED = Param(0, Interval(int, 0, SEED_MAX), "seed of python/numpy/keras and the split")
ALPHA = Param(0.05, Interval(float, 0, 0.5, closed="neither"), "significance level of verdicts")
STUDY_NAME = Param("", STRIPPED, "parent run name")
REGISTER_AS = Param(
    "",
    Pattern(r"[\w.-]*", "empty or a model name of letters, digits, _ . -", ["a b", "x/y"]),
    f"register the model under this name with alias {CHAMPION_ALIAS!r} "
    f"(models:/<name>@{CHAMPION_ALIAS}); empty: do not register",
)
POSITIVE = Interval(int, 1, None, closed="left")
NON_NEGATIVE = Interval(int, 0, None, closed="left")
DATA_DIR_RULE = Rule(
    "data_dir",
    f"empty for datasets other than {LOCAL_DATASETS}",
    lambda c: not c.data_dir or c.dataset in LOCAL_DATASETS,
    {"dataset": "digits", "data_dir": "."},
)


@dataclass(frozen=True)
class ModelDataConfig(Config):
    """Data, architecture and optimisation: shared by train, tune and study."""

    RULES: ClassVar = (DATA_DIR_RULE,)

    dataset: str = DATASET.field()
    data_dir: str = DATA_DIR.field()
    hidden_units: tuple[int, ...] = Param(
        (100, 50, 25), ListOf(POSITIVE), "units of the hidden Dense (relu) layers"
    ).field()
    epochs: int = Param(10, POSITIVE, "training epochs").field()
    batch_size: int = Param(32, POSITIVE, "batch size").field()
    learning_rate: float = Param(
        0.001, Interval(float, 0, None, closed="neither"), "Adam learning rate"
    ).field()
    validation_split: float = Param(
        0.1,
        Interval(float, 0, 1, closed="neither"),
        "stratified share of the training set held out for validation",
    ).field()
    seed: int = SEED.field()
    recipe: str = Param(
        "standard",
        Options(RECIPES),
        "standard: inputs scaled to [0, 1], softmax output; notebook: the notebook's raw "
        "0-255 pixels and sigmoid output",
    ).field()
    backend: str = Param(
        "tensorflow",
        Options(BACKENDS),
        "Keras backend; jax trains about twice as fast on CPU but draws other random numbers, "
        "so its results differ from tensorflow's at the same seed",
    ).field()

    def train_config(self, **changes) -> TrainConfig:
        """The train config of these shared params, with `changes` (e.g. dropout_rates)."""
        shared = {
            field.name: getattr(self, field.name) for field in dataclasses.fields(ModelDataConfig)
        }
        return TrainConfig(**{**shared, **changes})


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
        "dropout rate after each hidden layer; 0,0,0 is the notebook's baseline",
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
        20, POSITIVE, "finished (complete or pruned) trials the study ends with, resumed included"
    ).field()
    max_rate: float = Param(
        0.7,
        Interval(float, 0, 1, closed="neither"),
        "each dropout rate is searched in [0, max_rate]",
    ).field()
    rate_step: float = Param(
        0.05, Interval(float, 0, 1, closed="right"), "grid step of the searched rates"
    ).field()
    search_learning_rate: bool = Param(
        False, Boolean(), "also search the Adam learning rate, log-uniform in [1e-4, 1e-2]"
    ).field()
    pruner: str = Param(
        "median", Options(PRUNERS), "stops unpromising trials early on their val_accuracy"
    ).field()
    pruner_startup_trials: int = Param(
        5, NON_NEGATIVE, "median and percentile pruners: trials run to the end before pruning"
    ).field()
    pruner_percentile: float = Param(
        25.0,
        Interval(float, 0, 100, closed="neither"),
        "percentile pruner: a trial goes on while its val_accuracy is in this top percent of "
        "earlier trials' at the same epoch",
    ).field()
    study_name: str = STUDY_NAME.field(
        help="Optuna study (and MLflow parent run) name; re-running a name resumes it. "
        "Empty: <dataset>-dropout-search"
    )
    storage: str = Param(
        "",
        Pattern(
            r"|journal:.+|(sqlite|postgresql|mysql)[+\w]*://.*",
            "empty, journal:<path>, or an Optuna RDB URL (sqlite:///…, postgresql://…, mysql://…)",
            ["redis://x", "journal:"],
        ),
        "Optuna storage; empty: a journal file beside the local tracking store",
    ).field()
    heartbeat_interval: int = Param(
        30, POSITIVE, "RDB storage: seconds between a running trial's heartbeats"
    ).field()
    grace_period: int = Param(
        90, POSITIVE, "RDB storage: a trial silent this many seconds is marked FAIL and retried"
    ).field()
    timeout: float = Param(
        0.0,
        Interval(float, 0, None, closed="left"),
        "stop starting new trials after this many seconds; 0: no limit",
    ).field()
    final_seeds: int = Param(
        3, NON_NEGATIVE, "retrain the best config and the notebook's two on this many fresh seeds"
    ).field()
    register_as: str = REGISTER_AS.field()

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
    )

    configs: str = Param(
        "baseline=0,0,0;dropout=0.5,0.25,0",
        NamedLists(RATE),
        "the configs to compare; the first is the reference",
    ).field(parse=named_lists)
    seeds: int = Param(
        5, Interval(int, 2, None, closed="left"), "paired seeds per config (seed, seed+1, …)"
    ).field()
    alpha: float = ALPHA.field()
    study_name: str = STUDY_NAME.field(help="parent run name; empty: <dataset>-<recipe>-<names>")

    @property
    def named_configs(self) -> list[tuple[str, tuple[float, ...]]]:
        return parse_named_lists(self.configs)

    @property
    def name(self) -> str:
        names = "-vs-".join(name for name, _ in self.named_configs)
        return self.study_name or f"{self.dataset}-{self.recipe}-{names}"


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

    run_id: str = Param("", ANY_TEXT, "train run whose logged model is evaluated").field()
    model_uri: str = Param(
        "", ANY_TEXT, "any MLflow model URI (runs:/…, models:/<name>@<alias>) instead of run_id"
    ).field()
    baseline_run_id: str = Param(
        "", STRIPPED, "compare with this run's model on the identical test examples"
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
