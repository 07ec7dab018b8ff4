"""Argument checks shared by the analysis modules; each raises ValueError naming the argument."""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np


def real(name: str, value) -> float:
    """The value as a float, if it is a finite number."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def positive(name: str, value) -> float:
    """The value as a float, if it is a finite number above zero."""
    number = real(name, value)
    if number <= 0:
        raise ValueError(f"{name} must be above 0, got {value!r}")
    return number


def nonnegative(name: str, value) -> float:
    """The value as a float, if it is a finite number of at least zero."""
    number = real(name, value)
    if number < 0:
        raise ValueError(f"{name} must be 0 or more, got {value!r}")
    return number


def nonzero(name: str, value) -> float:
    """The value as a float, if it is a finite number other than zero."""
    number = real(name, value)
    if number == 0:
        raise ValueError(f"{name} must not be 0: there is nothing to detect")
    return number


def fraction(name: str, value, upper: float = 1.0) -> float:
    """The value as a float, if it lies strictly between 0 and upper."""
    number = real(name, value)
    if not 0 < number < upper:
        raise ValueError(f"{name} must lie strictly between 0 and {upper:g}, got {value!r}")
    return number


def whole(name: str, value, minimum: int) -> int:
    """The value as an int, if it is a whole number of at least minimum."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value!r}")
    return int(value)


def differences(values, dimensions: int = 1) -> np.ndarray:
    """Paired differences as a float array of the given number of dimensions: finite, at least
    one difference (one column) in it."""
    array = np.asarray(values, dtype=float)
    if array.ndim != dimensions:
        shape = "one array" if dimensions == 1 else "a 2-D array (one study a row)"
        raise ValueError(f"differences must be {shape}, got shape {array.shape}")
    if array.shape[-1] == 0:
        raise ValueError("differences is empty: there is no seed to judge")
    if not np.all(np.isfinite(array)):
        raise ValueError("differences contain NaN or infinity: drop unfinished seeds first")
    return array
