"""The effect along training: a candidate's paired test-accuracy difference to the reference at
checkpoint epochs, and where its mean crosses zero.

Every run scores the test set at checkpoint epochs (1, 2, 5, 10, 20, 50, 100, … up to its
epochs, always its last). Because a run's first k epochs are what a k-epoch run computes (the
prefix property of the engines), the difference at a checkpoint is the effect of training that
long. The crossing is where the mean difference changes sign between two checkpoints, found by
linear interpolation in log(epoch); its interval is a percentile bootstrap over seeds (the
crossing of each resample's mean; a resample that does not cross counts as beyond the last
checkpoint). Differences are in test-accuracy points. From seed results: no training, no
tracking.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from pipeline.analysis import significance
from pipeline.analysis.paired import POINTS, SeedResult

CHECKPOINT_STEPS = (1, 2, 5)  # times powers of ten: 1, 2, 5, 10, 20, 50, 100, ...
EFFECT_COLUMNS = ("group", "epoch", "mean_difference", "ci95_low", "ci95_high", "seeds")
CROSSING_COLUMNS = ("group", "crossing_epoch", "crossing_low", "crossing_high")
RESAMPLES = 2000


def checkpoint_epochs(epochs: int, levels: Sequence[int] = (), every: bool = False) -> tuple:
    """The epochs at which a run of `epochs` scores the test set: 1, 2, 5, 10, 20, 50, … below
    it, the `levels` (a grid's epochs levels served by this run), and `epochs` itself; every
    epoch when `every`."""
    if every:
        return tuple(range(1, epochs + 1))
    steps = {
        step * 10**power
        for power in range(len(str(epochs)))
        for step in CHECKPOINT_STEPS
        if step * 10**power < epochs
    }
    return tuple(sorted(steps | set(levels) | {epochs}))


def epoch_differences(
    names: Sequence[str], results: list[SeedResult]
) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """Per candidate (each later config against the first), the checkpoint epochs that every
    run has and the seeds x epochs matrix of paired test-accuracy differences in points."""
    reference = names[0]
    runs = {(r.config, r.seed): r.checkpoints for r in results}
    seeds = sorted({r.seed for r in results if r.config == reference})
    common = set.intersection(*(set(checkpoints) for checkpoints in runs.values()))
    epochs = np.array(sorted(common))
    differences = {}
    for candidate in names[1:]:
        matrix = [
            [runs[candidate, seed][e] - runs[reference, seed][e] for e in epochs] for seed in seeds
        ]
        differences[candidate, reference] = (epochs, POINTS * np.array(matrix))
    return differences


def effect_rows(group: str, epochs: np.ndarray, differences: np.ndarray) -> list[dict]:
    """The mean difference with its 95% t-interval over seeds at each checkpoint."""
    rows = []
    for column, epoch in enumerate(epochs):
        mean, low, high = significance.mean_confidence_interval(differences[:, column])
        rows.append(
            {
                "group": group,
                "epoch": int(epoch),
                "mean_difference": mean,
                "ci95_low": low,
                "ci95_high": high,
                "seeds": len(differences),
            }
        )
    return rows


def crossing_epoch(epochs: np.ndarray, means: np.ndarray) -> float:
    """The first epoch where the mean difference changes sign: interpolated linearly in
    log(epoch) between the checkpoints around it, the checkpoint itself where it is 0 after a
    nonzero one; NaN where it does not cross."""
    for i in range(len(epochs) - 1):
        before, after = means[i], means[i + 1]
        if before != 0 and before * after <= 0:
            share = before / (before - after)
            log_epoch = np.log(epochs[i]) + share * (np.log(epochs[i + 1]) - np.log(epochs[i]))
            return float(np.exp(log_epoch))
    return float("nan")


def crossing_interval(
    epochs: np.ndarray, differences: np.ndarray, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval over seeds of the crossing epoch; a resample whose mean
    does not cross counts as +inf (beyond the last checkpoint), so a high end of inf says the
    seeds cannot rule out no crossing."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(differences), size=(RESAMPLES, len(differences)))
    crossings = np.array([crossing_epoch(epochs, differences[r].mean(axis=0)) for r in rows])
    crossings = np.where(np.isnan(crossings), np.inf, crossings)
    tail = (1 - confidence) / 2
    low = np.quantile(crossings, tail, method="lower")
    high = np.quantile(crossings, 1 - tail, method="higher")
    return float(low), float(high)


def effect_tables(
    groups: dict[str, tuple[np.ndarray, np.ndarray]], seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The effect by epoch (EFFECT_COLUMNS) and the crossings (CROSSING_COLUMNS) of named
    groups, each its checkpoint epochs and seeds x epochs differences in points."""
    effect, crossings = [], []
    for group, (epochs, differences) in groups.items():
        effect += effect_rows(group, epochs, differences)
        crossing = crossing_epoch(epochs, differences.mean(axis=0))
        low, high = (
            crossing_interval(epochs, differences, seed)
            if np.isfinite(crossing)
            else (np.nan, np.nan)
        )
        crossings.append(
            {"group": group, "crossing_epoch": crossing, "crossing_low": low, "crossing_high": high}
        )
    return (
        pd.DataFrame(effect, columns=list(EFFECT_COLUMNS)),
        pd.DataFrame(crossings, columns=list(CROSSING_COLUMNS)),
    )


def crossing_words(effect: pd.DataFrame, crossings: pd.DataFrame) -> str:
    """The crossings in one paragraph: per group where the mean difference changes sign, or
    that it keeps its sign over the checkpoints."""
    parts = []
    for row in crossings.itertuples():
        rows = effect[effect["group"] == row.group].sort_values("epoch")
        first, last = rows.iloc[0], rows.iloc[-1]
        span = (
            f"{first.mean_difference:+.2f} points at epoch {first.epoch}, "
            f"{last.mean_difference:+.2f} at epoch {last.epoch}"
        )
        if np.isnan(row.crossing_epoch):
            parts.append(f"{row.group}: no crossing ({span})")
            continue
        high = (
            "beyond the last checkpoint"
            if np.isinf(row.crossing_high)
            else (f"{row.crossing_high:.3g}")
        )
        parts.append(
            f"{row.group}: crosses zero near epoch {row.crossing_epoch:.3g} (95% bootstrap "
            f"interval {row.crossing_low:.3g} to {high}; {span})"
        )
    return (
        "The effect along training (test accuracy, candidate - reference): "
        + "; ".join(parts)
        + "."
    )
