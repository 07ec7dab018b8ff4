"""The constraints a parameter's value must satisfy, after scikit-learn's
`sklearn/utils/_param_validation.py`: each checks a value, describes itself and makes invalid
values for tests (see `pipeline.config.validation` for how params use them)."""

from __future__ import annotations

import abc
import math
import os
import re
from collections.abc import Sequence
from typing import Any

from pipeline.config.validation import parse_named_lists


class Constraint(abc.ABC):
    """What a valid value is: a check, a description that completes "The 'x' parameter of
    train must be ...", and strings a test can feed to see it refused."""

    @abc.abstractmethod
    def is_satisfied_by(self, value: Any) -> bool: ...

    @abc.abstractmethod
    def __str__(self) -> str: ...

    @abc.abstractmethod
    def invalid_values(self) -> list[str]:
        """Strings that parse (or fail to parse) to values this constraint rejects."""


class Interval(Constraint):
    """A number of `kind` (int or float) between `left` and `right` (None: unbounded)."""

    CLOSED = ("left", "right", "both", "neither")

    def __init__(self, kind: type, left=None, right=None, closed: str = "both"):
        if kind not in (int, float) or closed not in self.CLOSED:
            raise ValueError(f"an Interval of int or float, closed one of {self.CLOSED}")
        if left is not None and right is not None and left > right:
            raise ValueError(f"an Interval's left bound {left} is above its right {right}")
        self.kind, self.left, self.right, self.closed = kind, left, right, closed

    def is_satisfied_by(self, value) -> bool:
        kinds = (int, float) if self.kind is float else int
        if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value):
            return False
        left_ok = self.left is None or (
            value >= self.left if self.closed in ("left", "both") else value > self.left
        )
        right_ok = self.right is None or (
            value <= self.right if self.closed in ("right", "both") else value < self.right
        )
        return left_ok and right_ok

    @property
    def range(self) -> str:
        """The interval alone: `in the range [0, 1)`."""
        left = "-inf" if self.left is None else self.left
        right = "inf" if self.right is None else self.right
        opening = "[" if self.closed in ("left", "both") and self.left is not None else "("
        closing = "]" if self.closed in ("right", "both") and self.right is not None else ")"
        return f"in the range {opening}{left}, {right}{closing}"

    def __str__(self) -> str:
        return f"{'an int' if self.kind is int else 'a float'} {self.range}"

    def invalid_values(self) -> list[str]:
        values = ["x", "nan"]
        if self.kind is int:
            values.append("1.5")
        if self.left is not None:
            values.append(str(self.left if self.closed in ("right", "neither") else self.left - 1))
        if self.right is not None:
            values.append(str(self.right if self.closed in ("left", "neither") else self.right + 1))
        return values


class IntOrWord(Constraint):
    """An int satisfying `interval`, or the one `word` (e.g. seeds: 2 or more, or auto)."""

    def __init__(self, interval: Interval, word: str):
        self.interval, self.word = interval, word

    def parse(self, text: str) -> int | str:
        """The word as itself, anything else as an int (ValueError when it is not one)."""
        return text if text == self.word else int(text)

    def is_satisfied_by(self, value) -> bool:
        return value == self.word or self.interval.is_satisfied_by(value)

    def __str__(self) -> str:
        return f"{self.interval} or {self.word!r}"

    def invalid_values(self) -> list[str]:
        return [*self.interval.invalid_values(), self.word.upper()]


class Options(Constraint):
    def __init__(self, options: Sequence[str]):
        self.options = tuple(options)

    def is_satisfied_by(self, value) -> bool:
        return value in self.options

    def __str__(self) -> str:
        return f"one of {self.options}"

    def invalid_values(self) -> list[str]:
        return ["no-such-option"]


class Pattern(Constraint):
    """A string that fully matches `regex`; `description` says it in words."""

    def __init__(self, regex: str, description: str, invalid: Sequence[str]):
        self.regex, self.description, self.invalid = re.compile(regex), description, invalid

    def is_satisfied_by(self, value) -> bool:
        return isinstance(value, str) and self.regex.fullmatch(value) is not None

    def __str__(self) -> str:
        return self.description

    def invalid_values(self) -> list[str]:
        return list(self.invalid)


class NamedLists(Constraint):
    """Two or more `name=v,v,v` separated by ';', unique names, each value satisfying `item`."""

    def __init__(self, item: Interval):
        self.item = item

    def is_satisfied_by(self, value) -> bool:
        named = parse_named_lists(value)
        names = [name for name, _ in named]
        return (
            len(names) >= 2
            and len(set(names)) == len(names)
            and all(re.fullmatch(r"[\w.-]+", name) for name in names)  # names become metric keys
            and all(ListOf(self.item).is_satisfied_by(values) for _, values in named)
        )

    def __str__(self) -> str:
        return (
            "two or more 'name=values' separated by ';', with unique names (letters, digits, "
            f"_ . -) and values {self.item.range}"
        )

    def invalid_values(self) -> list[str]:
        bad = self.item.invalid_values()[-1]
        return ["only=0,0,0", "a=0,0,0;a=0,0,0", f"a=0,0,0;b={bad},0,0", "a=0,0,0;b", "a=0;;b=0"]


class Boolean(Constraint):
    def is_satisfied_by(self, value) -> bool:
        return isinstance(value, bool)

    def __str__(self) -> str:
        return "true or false"

    def invalid_values(self) -> list[str]:
        return ["maybe"]


class ExistingDir(Constraint):
    def is_satisfied_by(self, value) -> bool:
        return value == "" or os.path.isdir(value)

    def __str__(self) -> str:
        return "empty or an existing folder with IDX (.gz or raw) or .npz files"

    def invalid_values(self) -> list[str]:
        return ["/no/such/folder"]


class ListOf(Constraint):
    """A non-empty comma-separated list whose items each satisfy `item`."""

    def __init__(self, item: Interval):
        self.item = item

    def is_satisfied_by(self, value) -> bool:
        return len(value) > 0 and all(self.item.is_satisfied_by(element) for element in value)

    def __str__(self) -> str:
        kind = "ints" if self.item.kind is int else "floats"
        return f"a comma-separated list of {kind} {self.item.range}"

    def invalid_values(self) -> list[str]:
        return ["", *(f"{value},{value}" for value in self.item.invalid_values())]
