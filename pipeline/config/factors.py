"""The study's `grid` param: factors over train params, each with its levels, crossed into cells.

`train_size=1000,5000,0;epochs=10,100` is two factors with 3 and 2 levels: 6 cells. A level is
any valid value of its param, spelled as on the command line, except that hidden_units levels
join their widths with '-' (`hidden_units=100-50-25,512-512-512`).
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

from pipeline.config.constraints import Constraint
from pipeline.config.validation import PARSERS, format_param

Factors = list[tuple[str, list[Any]]]  # (param, its levels) in the grid's order


def level_text(value: Any) -> str:
    """A level as the grid spells it: lists joined by '-'."""
    return format_param(value).replace(",", "-")


class Grid(Constraint):
    """Empty, or factors `name=level,…` separated by ';' over `names` (params of
    `config_class`): each factor once, its levels unique and valid values of its param."""

    def __init__(self, config_class: type, names: tuple[str, ...]):
        fields = {field.name: field for field in dataclasses.fields(config_class)}
        self.fields = {name: fields[name] for name in names}

    def factors(self, text: str) -> Factors:
        """The factors and their parsed levels; ValueError when malformed."""
        factors = []
        for entry in filter(str.strip, text.split(";")):
            name, equals, levels = (part.strip() for part in entry.partition("="))
            if not equals or name not in self.fields:
                raise ValueError(entry)
            factors.append((name, [self.level(name, level) for level in levels.split(",")]))
        return factors

    def level(self, name: str, text: str) -> Any:
        """One level as its param's value (a list's items joined by '-'); ValueError if not."""
        kind, text = self.fields[name].type, text.strip()
        return PARSERS[kind](text.replace("-", ",") if kind.startswith("tuple") else text)

    def canonical(self, text: str) -> str:
        """`text` in canonical spelling (the param's parser); ValueError when malformed."""
        return ";".join(
            f"{name}={','.join(map(level_text, levels))}" for name, levels in self.factors(text)
        )

    def is_satisfied_by(self, value) -> bool:
        try:
            factors = self.factors(value)
        except ValueError:
            return False
        names = [name for name, _ in factors]
        return len(set(names)) == len(names) and all(
            len(set(map(level_text, levels))) == len(levels)
            and all(self.fields[name].metadata["constraint"].is_satisfied_by(v) for v in levels)
            for name, levels in factors
        )

    def __str__(self) -> str:
        return (
            "empty, or factors 'name=level,level' separated by ';', each factor once and one of "
            f"{tuple(self.fields)}, each level unique and a valid value of its param "
            "(hidden_units widths joined by '-', e.g. 100-50-25)"
        )

    def invalid_values(self) -> list[str]:
        return [
            "epochs",
            "seed=1,2",
            "epochs=0",
            "epochs=",
            "epochs=10;epochs=20",
            "epochs=5,5",
            "hidden_units=100-x",
        ]


def cells(factors: Factors) -> list[dict[str, Any]]:
    """Every combination of levels, the first factor varying slowest."""
    names = [name for name, _ in factors]
    return [
        dict(zip(names, combination, strict=True))
        for combination in itertools.product(*(levels for _, levels in factors))
    ]


def cell_label(cell: dict[str, Any]) -> str:
    """`train_size=1000;epochs=100`: the cell in the grid's own spelling."""
    return ";".join(f"{name}={level_text(value)}" for name, value in cell.items())
