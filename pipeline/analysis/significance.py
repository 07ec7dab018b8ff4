"""Statistics on arrays of metrics (scipy where it has the test): CIs, bootstrap intervals and
the per-example tests of two models on the same examples (paired verdicts over seeds:
`equivalence`, `sequential`)."""

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


def bootstrap_mean_interval(
    values, confidence: float = 0.95, seed: int = 0, resamples: int = 10_000
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (scipy.stats.bootstrap)."""
    values = np.asarray(values, dtype=float)
    if np.all(values == values[0]):
        return float(values[0]), float(values[0])
    result = stats.bootstrap(
        (values,),
        np.mean,
        confidence_level=confidence,
        n_resamples=resamples,
        method="percentile",
        batch=1000,  # resamples per vectorized call: bounded memory for 10,000 test examples
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def mcnemar_exact(correct_candidate, correct_reference) -> dict:
    """McNemar's exact test on per-example correctness of two models on the same examples.

    Only the discordant examples count; under "equally accurate" they split 50/50, so the
    p-value is the two-sided binomial test of that split (scipy.stats.binomtest)."""
    candidate = np.asarray(correct_candidate, dtype=bool)
    reference = np.asarray(correct_reference, dtype=bool)
    only_candidate = int(np.sum(candidate & ~reference))
    only_reference = int(np.sum(~candidate & reference))
    discordant = only_candidate + only_reference
    p_value = 1.0 if discordant == 0 else stats.binomtest(only_candidate, discordant).pvalue
    return {
        "only_candidate_correct": only_candidate,
        "only_reference_correct": only_reference,
        "mcnemar_p_value": float(p_value),
    }


def paired_accuracy_difference(correct_candidate, correct_reference, seed: int = 0) -> dict:
    """Accuracy of candidate minus reference on the same examples, with a paired bootstrap 95%
    interval (examples resampled together, so both models see the same resample)."""
    differences = np.asarray(correct_candidate, dtype=float) - np.asarray(
        correct_reference, dtype=float
    )
    low, high = bootstrap_mean_interval(differences, seed=seed)
    return {
        "accuracy_difference": float(differences.mean()),
        "accuracy_difference_ci95_low": low,
        "accuracy_difference_ci95_high": high,
    }
