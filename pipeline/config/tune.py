"""tune's params: an Optuna search over one dropout rate per hidden layer."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from pipeline.config.constraints import Boolean, Interval, Options
from pipeline.config.entry_points import ModelDataConfig
from pipeline.config.params import (
    GRACE_PERIOD,
    HEARTBEAT_INTERVAL,
    NON_NEGATIVE,
    NON_NEGATIVE_FLOAT,
    POSITIVE,
    REGISTER_AS,
    REPLICAS,
    RUN_FIGURES,
    SHARE,
    STORAGE,
    STUDY_NAME,
)
from pipeline.config.validation import Param, Rule

PRUNERS = ("median", "percentile", "hyperband", "successive_halving", "none")


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
        "resumable",
    )
    max_rate: float = Param(0.7, SHARE, "dropout rates are searched in [0, max_rate]", "design")
    rate_step: float = Param(
        0.05, Interval(float, 0, 1, closed="right"), "grid step of the searched rates", "design"
    )
    search_learning_rate: bool = Param(
        False,
        Boolean(),
        "also search the Adam learning rate, log-uniform in [1e-4, 1e-2]",
        "design",
    )
    pruner: str = Param(
        "median", Options(PRUNERS), "stops unpromising trials early on their val_accuracy", "design"
    )
    pruner_startup_trials: int = Param(
        5,
        NON_NEGATIVE,
        "median and percentile pruners: trials run to the end before pruning",
        "design",
    )
    pruner_percentile: float = Param(
        25.0,
        Interval(float, 0, 100, closed="neither"),
        "percentile pruner: a trial goes on while its val_accuracy is in this top percent of "
        "earlier trials' at the same epoch",
        "design",
    )
    study_name: str = replace(
        STUDY_NAME,
        roles="resumable",
        help="Optuna study (and MLflow parent run) name; re-running a name resumes it. "
        "Empty: <dataset>-dropout-search",
    )
    storage: str = replace(STORAGE, roles="resumable execution")
    heartbeat_interval: int = HEARTBEAT_INTERVAL
    grace_period: int = GRACE_PERIOD
    timeout: float = Param(
        0.0,
        NON_NEGATIVE_FLOAT,
        "stop starting new trials after this many seconds; 0: no limit",
        "resumable",
    )
    final_seeds: int = Param(
        3,
        NON_NEGATIVE,
        "retrain the best config and the notebook's two on this many fresh seeds",
        "resumable",
    )
    register_as: str = REGISTER_AS
    run_figures: bool = replace(
        RUN_FIGURES, default=False, help=f"{RUN_FIGURES.help}; the parent has the study's figures"
    )
    replicas: int = replace(
        REPLICAS,
        help=f"{REPLICAS.help}; the search trains replicas // trial_seeds trials at a time",
    )
    trial_seeds: int = Param(
        1,
        POSITIVE,
        "seeds each trial trains at once; pruner and objective see their mean",
        "design",
    )

    @property
    def name(self) -> str:
        return self.study_name or f"{self.dataset}-dropout-search"
