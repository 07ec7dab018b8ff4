"""study's params: configs compared paired by seed, in one study or every cell of a grid."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from pipeline.config.constraints import Boolean, Interval, IntOrWord, NamedLists
from pipeline.config.entry_points import GRID, ModelDataConfig, one_rate_per_layer
from pipeline.config.params import ALPHA, RATE, REPLICAS, RUN_FIGURES, STORAGE, STUDY_NAME
from pipeline.config.validation import Param, Rule, named_lists, parse_named_lists

AUTO = "auto"  # seeds=auto: seeds in batches until a sequential verdict
SEEDS = IntOrWord(Interval(int, 2, None, closed="left"), AUTO)


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
            lambda c: all(one_rate_per_layer(rates, c) for _, rates in c.named_configs),
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
        Rule(
            "replicas",
            "an int of at least 2 when seeds is auto (the seeds of a batch between verdicts)",
            lambda c: c.seeds != AUTO or c.replicas >= 2,
            {"seeds": AUTO, "replicas": "1"},
        ),
        Rule(
            "max_seeds",
            "an int of at least replicas when seeds is auto (one batch of seeds)",
            lambda c: c.seeds != AUTO or c.max_seeds >= c.replicas,
            {"seeds": AUTO, "replicas": "10", "max_seeds": "5"},
        ),
        Rule(
            "refine",
            "false without a grid",
            lambda c: bool(c.grid) or not c.refine,
            {"refine": "true"},
        ),
    )

    configs: str = Param(
        "baseline=0,0,0;dropout=0.5,0.25,0",
        NamedLists(RATE),
        "the configs to compare; the first is the reference",
        "design",
        parse=named_lists,
    )
    seeds: int | str = Param(
        5,
        SEEDS,
        "paired seeds per config (seed, seed+1, …); auto: batches of `replicas` seeds until "
        "each cell's sequential verdict, at most max_seeds",
        "design",
        parse=SEEDS.parse,
    )
    max_seeds: int = Param(
        50,
        Interval(int, 2, None, closed="left"),
        "seeds=auto: the most seeds per config of a cell, where it ends undecided",
        "design",
    )
    alpha: float = ALPHA
    margin: float = Param(
        0.5,
        Interval(float, 0, None, closed="neither"),
        "equivalence margin in test-accuracy points: a difference shown to lie within ±margin "
        "is `equivalent`",
        "design",
    )
    refine: bool = Param(
        False,
        Boolean(),
        "grid only: between neighbouring train_size or epochs levels with opposite verdicts "
        "(better, worse), add their geometric mean until they are within a factor of 2",
        "design",
    )
    study_name: str = replace(
        STUDY_NAME, help="parent run name; empty: <dataset>-<recipe>-<names>, with -grid for a grid"
    )
    grid: str = Param(
        "",
        GRID,
        "run the study in every cell of a grid over train params, e.g. "
        "train_size=1000,5000,0;epochs=10,100 (factors crossed; a nested parent run per cell); "
        "empty: one study",
        "design",
        parse=GRID.canonical,
    )
    storage: str = replace(STORAGE, help=f"grid only: the cells' {STORAGE.help}")
    run_figures: bool = replace(
        RUN_FIGURES, default=False, help=f"{RUN_FIGURES.help}; the parent has the study's figures"
    )
    replicas: int = REPLICAS

    @property
    def named_configs(self) -> list[tuple[str, tuple[float, ...]]]:
        return parse_named_lists(self.configs)

    @property
    def adaptive(self) -> bool:
        """Seeds come in batches until each cell's sequential verdict (seeds=auto)."""
        return self.seeds == AUTO

    @property
    def most_seeds(self) -> int:
        """The seeds per config a cell may train: max_seeds with seeds=auto, else seeds."""
        return self.max_seeds if self.adaptive else self.seeds

    def levels(self, factor: str) -> list:
        """The grid's levels of one factor (none when it is not a factor)."""
        return dict(GRID.factors(self.grid)).get(factor, [])

    @property
    def name(self) -> str:
        names = "-vs-".join(name for name, _ in self.named_configs)
        grid = "-grid" if self.grid else ""
        return self.study_name or f"{self.dataset}-{self.recipe}-{names}{grid}"
