"""How parameters are declared, parsed and validated, after scikit-learn's
`sklearn/utils/_param_validation.py`: constraints check a value, describe themselves
(`str(constraint)` completes "The 'x' parameter of train must be ...") and make invalid values
for tests; `Param` declares a config field, `Rule` a check across fields, and `Config` parses
and validates an entry point's frozen dataclass (see `pipeline.config.entry_points`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from pipeline.config.constraints import Constraint


class ParameterError(ValueError):
    """A parameter value is invalid; the message is one line meant for the user. `name` and
    `must_be` say which parameter and what it must be, when one is to blame."""

    def __init__(self, message: str, name: str = "", must_be: str = ""):
        super().__init__(message)
        self.name, self.must_be = name, must_be


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


def boolean(text: str) -> bool:
    if text.lower() in ("true", "1", "yes"):
        return True
    if text.lower() in ("false", "0", "no"):
        return False
    raise ValueError(text)


def named_lists(text: str) -> str:
    """`name=1,2;name=3,4` in canonical spelling; ValueError when malformed (an empty segment,
    as in `a=0;;b=1`, too)."""
    entries = [entry.split("=") for entry in text.split(";")]
    if any(len(entry) != 2 or not entry[0].strip() for entry in entries):
        raise ValueError(text)
    return ";".join(f"{name.strip()}={format_param(float_list(rates))}" for name, rates in entries)


def parse_named_lists(text: str) -> list[tuple[str, tuple[float, ...]]]:
    return [(name, float_list(values)) for name, values in (e.split("=") for e in text.split(";"))]


PARSERS: dict[str, Callable[[str], Any]] = {  # by the field's annotation
    "str": str,
    "int": int,
    "float": float,
    "bool": boolean,
    "tuple[int, ...]": int_list,
    "tuple[float, ...]": float_list,
}


@dataclass(frozen=True)
class Param:
    """One parameter's default, constraint, help and roles, in that order: a config declares
    a field with one, e.g. `epochs: int = Param(10, POSITIVE, "training epochs", "shape grid")`.

    Roles are names from ROLES separated by spaces; they say what the code does with a field, so
    that each list of fields follows from the declarations. A param that several configs share
    is declared once (`pipeline.config.params`) and assigned in each, and `dataclasses.replace`
    changes its default, help or roles for one of them."""

    default: Any
    constraint: Constraint  # pipeline.config.constraints
    help: str
    roles: str = ""
    parse: Callable[[str], Any] | None = None  # None: by the field's type (PARSERS)

    def __post_init__(self):
        unknown = set(self.roles.split()) - set(ROLES)
        if not self.roles.split() or unknown:
            raise ValueError(f"a Param needs roles from {sorted(ROLES)}, not {self.roles!r}")

    def field(self):
        """The dataclass field of this param, its declaration kept in the field's metadata."""
        metadata = {
            "constraint": self.constraint,
            "help": self.help,
            "parse": self.parse,
            "roles": tuple(self.roles.split()),
        }
        return dataclasses.field(default=self.default, metadata=metadata)


ROLES = {
    "shape": "runs trained together as one population must share it",
    "run": "it may differ between the runs trained together (their seed, rates)",
    "grid": "a study's grid may vary it",
    "design": "it defines what a study, search or evaluation computes (its identity)",
    "resumable": "a resumed search may change it: it does not change what a trial computes",
    "execution": "how or where it runs, not what it computes: no part of a study's identity",
}


def fields_with_role(config_class: type, role: str) -> tuple[str, ...]:
    """The names of a config's fields that have `role`, in declaration order."""
    return tuple(
        field.name for field in dataclasses.fields(config_class) if role in field.metadata["roles"]
    )


def role_key(config, role: str) -> tuple:
    """The values of a config's fields that have `role`: equal keys, equal in that role."""
    return tuple(getattr(config, name) for name in fields_with_role(type(config), role))


@dataclass(frozen=True)
class Rule:
    """A check across fields; a failure is reported on `name` as "must be <must_be>"."""

    name: str
    must_be: str
    holds: Callable[[Any], bool]
    breaking: dict[str, str]  # values that break the rule, for tests


@dataclass(frozen=True)
class Config:
    """Parsing and validation shared by the entry-point configs, frozen dataclasses whose
    fields are declared as Params."""

    ENTRY_POINT: ClassVar[str] = ""
    RULES: ClassVar[tuple[Rule, ...]] = ()

    def __init_subclass__(cls, **kwargs):
        """Replaces each Param the class declares with its field, before @dataclass reads them."""
        super().__init_subclass__(**kwargs)
        for name, value in list(vars(cls).items()):
            if isinstance(value, Param):
                setattr(cls, name, value.field())

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not field.metadata["constraint"].is_satisfied_by(value):
                raise self.invalid(field.name, field.metadata["constraint"], format_param(value))
        for rule in self.RULES:
            if not rule.holds(self):
                raise self.invalid(rule.name, rule.must_be, format_param(getattr(self, rule.name)))

    @classmethod
    def invalid(cls, name: str, must_be: Any, got: str) -> ParameterError:
        """The error for a bad value, also one that fails against the world (an unknown run)."""
        return ParameterError(
            f"The '{name}' parameter of {cls.ENTRY_POINT} must be {must_be}. Got {got!r} instead.",
            name,
            str(must_be),
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
                parse = fields[name].metadata["parse"] or PARSERS[fields[name].type]
                values[name] = parse(str(text).strip())
            except ValueError:
                raise cls.invalid(name, fields[name].metadata["constraint"], str(text)) from None
        return cls(**values)

    @classmethod
    def defaults(cls) -> dict[str, str]:
        return {field.name: format_param(field.default) for field in dataclasses.fields(cls)}

    def to_params(self) -> dict[str, str]:
        return {name: format_param(value) for name, value in dataclasses.asdict(self).items()}
