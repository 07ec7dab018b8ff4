"""Statistics on arrays of metrics (scipy where it has the test): CIs, paired tests."""

from __future__ import annotations

import numpy as np
from scipy import stats


def mean_confidence_interval(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval of independent values (NaN bounds for n < 2)."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if len(values) < 2 or np.all(values == values[0]):
        spread = np.nan if len(values) < 2 else 0.0
        return mean, mean - spread, mean + spread
    low, high = stats.t.interval(confidence, len(values) - 1, loc=mean, scale=stats.sem(values))
    return mean, float(low), float(high)
