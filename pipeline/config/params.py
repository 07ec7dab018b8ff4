"""Parameters that several entry points share, declared once, and the names they choose from;
the entry points' configs (`pipeline.config.entry_points`) take their fields from here."""

from __future__ import annotations

from pipeline.config.constraints import Boolean, ExistingDir, Interval, Options, Pattern
from pipeline.config.validation import Param, Rule

DATASETS = ("mnist_5k", "mnist", "fashion_mnist", "digits")
LOCAL_DATASETS = ("mnist", "fashion_mnist")  # the ones data_dir can replace
RECIPES = ("standard", "notebook")
BACKENDS = ("tensorflow", "jax")  # Keras backends
ENGINES = ("keras", "population")  # pipeline.engines
CHAMPION_ALIAS = "champion"  # registered models: models:/<name>@champion
RDB_STORAGE_SCHEMES = ("sqlite:", "postgresql", "mysql")  # Optuna RDB storage URLs
# numpy takes seeds < 2**32: a train's; those derived from seed (+ trial number, + k) stay below
SEED_MAX, TRAIN_SEED_MAX = 2**31 - 1, 2**32 - 1
RATE = Interval(float, 0, 1, closed="left")
SHARE = Interval(float, 0, 1, closed="neither")
POSITIVE = Interval(int, 1, None, closed="left")
NON_NEGATIVE = Interval(int, 0, None, closed="left")
NON_NEGATIVE_FLOAT = Interval(float, 0, None, closed="left")
ANY_TEXT = Pattern(r"(?s).*", "any text", [])
# parsing strips every value, so a padded name arrives trimmed: no invalid value to make
STRIPPED = Pattern(r"(\S(.*\S)?)?", "a name without leading or trailing blanks, or empty", [])

DATASET = Param(
    "mnist_5k",
    Options(DATASETS),
    "mnist_5k: 5,000 real MNIST digits and the MNIST test set, bundled (offline); mnist: "
    "the full 60,000 (downloaded once); fashion_mnist; digits: sklearn 8x8, tiny",
    "shape",
)
DATA_DIR = Param(
    "",
    ExistingDir(),
    "local folder with the IDX (.gz or raw) or .npz files of mnist or fashion_mnist; "
    "empty: the built-in source",
    "shape",
)
SEED = Param(0, Interval(int, 0, SEED_MAX), "seed of python/numpy/keras and the split", "run")
ALPHA = Param(
    0.05, Interval(float, 0, 0.5, closed="neither"), "significance level of verdicts", "design"
)
STUDY_NAME = Param("", STRIPPED, "parent run name", "design")
REGISTER_AS = Param(
    "",
    Pattern(r"[\w.-]*", "empty or a model name of letters, digits, _ . -", ["a b", "x/y"]),
    f"register the model under this name with alias {CHAMPION_ALIAS!r} "
    f"(models:/<name>@{CHAMPION_ALIAS}); empty: do not register",
    "resumable design",
)
STORAGE = Param(
    "",
    Pattern(
        r"|journal:.+|(sqlite|postgresql|mysql)[+\w]*://.*",
        "empty, journal:<path>, or an Optuna RDB URL (sqlite:///…, postgresql://…, mysql://…)",
        ["redis://x", "journal:"],
    ),
    "Optuna storage; empty: a journal file beside the local tracking store",
    "execution",
)
HEARTBEAT_INTERVAL = Param(
    30, POSITIVE, "RDB storage: seconds between a running trial's heartbeats", "resumable execution"
)
GRACE_PERIOD = Param(
    90,
    POSITIVE,
    "RDB storage: a trial silent this many seconds is marked FAIL and retried",
    "resumable execution",
)
TRAIN_SIZE = Param(
    0,
    NON_NEGATIVE,
    "training examples kept (stratified) after the validation split; 0: all",
    "shape grid",
)
MAX_NORM = Param(
    0.0, NON_NEGATIVE_FLOAT, "max-norm of each hidden unit's incoming weights; 0: off", "shape grid"
)
REPLICAS = Param(
    10,
    POSITIVE,
    "population size: the most runs of one shape engine=population trains together; 1: one at "
    "a time",
    "resumable execution",
)
DATA_DIR_RULE = Rule(
    "data_dir",
    f"empty for datasets other than {LOCAL_DATASETS}",
    lambda c: not c.data_dir or c.dataset in LOCAL_DATASETS,
    {"dataset": "digits", "data_dir": "."},
)
ENGINE = Param(
    "population",
    Options(ENGINES),
    "keras: one model.fit per run (backend trains it); population: up to `replicas` runs of one "
    "shape as one JAX program per epoch",
    "shape",
)
RUN_FIGURES = Param(
    True,
    Boolean(),
    "each run's learning-curve and confusion-matrix PNGs (~0.45 s a run on 2 cores, more than "
    "its training on a GPU); false keeps their numbers (metrics, csv, json) only",
    "execution",
)
