"""Finding the boundary: the levels a grid adds where a candidate's verdict flips.

Where two neighbouring levels of a numeric factor (train_size, epochs) get opposite decided
verdicts, better at one and worse at the other, the effect changes sign between them. The grid
then adds their geometric mean (rounded to an int) as a level, and again in the bracket that
keeps the flip, until the levels around each flip are within a factor of 2. Each round halves a
bracket's log-ratio, so a bracket of ratio r takes about log2(log2(r)) rounds (1,000 to 60,000:
three). train_size 0 (all the data) has no size of its own here and is never refined. From the
regime table: no training, no tracking.
"""

from __future__ import annotations

import itertools
import math

import pandas as pd

from pipeline.analysis.equivalence import BETTER, WORSE
from pipeline.config.factors import Factors

REFINED_FACTORS = ("train_size", "epochs")
CLOSE_ENOUGH = 2  # a bracket within this factor is not split again


def midpoints(verdicts: dict[int, str]) -> list[int]:
    """Between each two neighbouring positive levels with opposite verdicts (better and worse)
    more than a factor CLOSE_ENOUGH apart, their geometric mean rounded to an int."""
    levels = sorted(level for level in verdicts if level > 0)
    return [
        round(math.sqrt(low * high))
        for low, high in itertools.pairwise(levels)
        if {verdicts[low], verdicts[high]} == {BETTER, WORSE} and high > CLOSE_ENOUGH * low
    ]


def added_levels(factors: Factors, table: pd.DataFrame) -> dict[str, list[int]]:
    """The levels to add to each refined factor of the grid: the midpoints of every bracket
    of the regime table's test-accuracy verdicts, for every candidate and every combination
    of the other factors' levels; none when the grid is fine enough."""
    rows = table[table["metric"] == "test_accuracy"]
    names = [name for name, _ in factors]
    added = {}
    for name, levels in factors:
        if name not in REFINED_FACTORS:
            continue
        others = [other for other in names if other != name]
        new = set()
        for _, same in rows.groupby([*others, "candidate"], sort=False):
            new |= set(midpoints(dict(zip(same[name].astype(int), same["verdict"], strict=True))))
        new -= set(levels)
        if new:
            added[name] = sorted(new)
    return added


def with_levels(factors: Factors, added: dict[str, list[int]]) -> Factors:
    """The factors with the added levels, each refined factor's levels in ascending order
    (train_size 0, all the data, last)."""
    refined = []
    for name, levels in factors:
        if name in added:
            sizes = sorted({level for level in levels if level > 0} | set(added[name]))
            levels = sizes + [0] * (0 in levels)
        refined.append((name, levels))
    return refined
