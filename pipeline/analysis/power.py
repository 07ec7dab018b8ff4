"""Power and seed counts for the paired t-test and for TOST on seed-to-seed differences.

A study trains both configurations on the same n seeds and tests the n paired differences. With
normal differences of true mean `effect` and standard deviation `sd`, the t statistic for a
hypothesised mean m0 follows a noncentral t law with n - 1 degrees of freedom and noncentrality
(effect - m0) * sqrt(n) / sd. So the power of the paired t-test below is exact (the standard
computation of G*Power or statsmodels' TTestPower). TOST rejects when two t statistics both
cross their bounds; its exact power needs the joint law of the mean and the sd (Owen 1965), so
`tost_power` gives the Bonferroni lower bound P(A and B) >= P(A) + P(B) - 1: the seeds it asks
for are enough, perhaps one or two more than needed.

deep-significance (Ulmer et al. 2022) checks power by bootstrapping a pilot sample; here the
pilot's sd is plugged into the analytic formula instead, which needs no resampling. The sd of a
few seeds is itself uncertain (Bouthillier et al. 2021 measure how much of a benchmark's variance
comes from seeds), so a seed count computed from it is an estimate, not a promise.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import stats

from pipeline.analysis import _checks

LEVEL_FLOOR = 1e-150  # below this scipy's t quantiles lose accuracy (see critical_t)
MOST_SEEDS = 2**40  # a seed count search gives up beyond this


def critical_t(level, df):
    """The upper `level` quantile of Student's t with df degrees of freedom (broadcasts).

    A level below 1e-150 gives infinity: scipy's inverse is unreliable that far out (it returns
    -inf for 1e-300 with 9 degrees of freedom), and a test at such a level decides nothing.
    """
    level = np.asarray(level, dtype=float)
    quantile = stats.t.isf(np.maximum(level, LEVEL_FLOOR), df)
    return np.where(level >= LEVEL_FLOOR, quantile, np.inf)[()]


def t_statistic_exceeds(n, sd: float, shift, critical):
    """Probability that the t statistic of n paired differences exceeds `critical` when their
    true mean lies `shift` above the hypothesised mean (broadcasts over n, shift and critical).

    The statistic follows a noncentral t law with n - 1 degrees of freedom and noncentrality
    shift * sqrt(n) / sd. With sd 0 it is +inf, -inf or 0 for a shift above, below or at zero.
    """
    n, shift, critical = np.broadcast_arrays(
        *(np.asarray(x, dtype=float) for x in (n, shift, critical))
    )
    if sd == 0:
        return np.where(shift > 0, 1.0, np.where(shift < 0, 0.0, (critical < 0) * 1.0))[()]
    return stats.nct.sf(critical, n - 1, shift * np.sqrt(n) / sd)[()]


def tost_bounds(n, sd: float, effect, margin: float, critical) -> tuple:
    """Lower and upper bounds on the probability that TOST rejects, its two t statistics
    compared with `critical`, for a true mean difference `effect` (broadcasts).

    TOST rejects when both A (mean > -margin shown) and B (mean < +margin shown) hold:
    P(A) + P(B) - 1 <= P(A and B) <= min(P(A), P(B)).
    """
    above = t_statistic_exceeds(n, sd, np.add(margin, effect), critical)
    below = t_statistic_exceeds(n, sd, np.subtract(margin, effect), critical)
    return np.maximum(above + below - 1.0, 0.0)[()], np.minimum(above, below)[()]


def t_test_power(n: int, sd: float, effect: float, alpha: float = 0.05) -> float:
    """Probability that a two-sided paired t-test at level alpha on n seeds rejects a zero mean
    in the direction of the true mean difference `effect` (exact for normal differences; a
    rejection with the wrong sign is an error, not power, and is left out)."""
    n = _checks.whole("n", n, 2)
    sd = _checks.nonnegative("sd", sd)
    alpha = _checks.fraction("alpha", alpha)
    effect = abs(_checks.real("effect", effect))
    return float(t_statistic_exceeds(n, sd, effect, critical_t(alpha / 2, n - 1)))


def tost_power(n: int, sd: float, effect: float, margin: float, alpha: float = 0.05) -> float:
    """A lower bound on the probability that TOST at level alpha on n seeds shows the mean
    difference to lie inside (-margin, margin), when it truly is `effect`."""
    n = _checks.whole("n", n, 2)
    sd = _checks.nonnegative("sd", sd)
    margin = _checks.positive("margin", margin)
    alpha = _checks.fraction("alpha", alpha, 0.5)
    effect = _checks.real("effect", effect)
    return float(tost_bounds(n, sd, effect, margin, critical_t(alpha, n - 1))[0])


def required_seeds(sd: float, effect: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """The fewest seeds (at least 2) with which a two-sided paired t-test at level alpha finds a
    true mean difference `effect` with probability `power`, when differences vary with `sd`.

    The normal approximation is n = ((z_{1-alpha/2} + z_{power}) * sd / effect)^2; the exact
    noncentral t power (t_test_power) adds a seed or two. Example: sd 1, effect 0.5, alpha 0.05,
    power 0.8 need 34 seeds, the textbook answer for Cohen's d = 0.5.
    """
    sd = _checks.nonnegative("sd", sd)
    effect = _checks.nonzero("effect", effect)
    alpha = _checks.fraction("alpha", alpha)
    power = _checks.fraction("power", power)
    return _fewest(lambda n: t_test_power(n, sd, effect, alpha), power)


def required_seeds_equivalence(
    sd: float, margin: float, alpha: float = 0.05, power: float = 0.8, effect: float = 0.0
) -> int:
    """The fewest seeds (at least 2) with which TOST at level alpha shows equivalence within
    ±margin with probability at least `power` (by the lower bound of tost_power), when the true
    mean difference is `effect` (default 0) and differences vary with `sd`.

    The normal approximation for effect 0 is n = ((z_{1-alpha} + z_{(1+power)/2}) * sd / margin)^2.
    """
    sd = _checks.nonnegative("sd", sd)
    margin = _checks.positive("margin", margin)
    alpha = _checks.fraction("alpha", alpha, 0.5)
    power = _checks.fraction("power", power)
    effect = _checks.real("effect", effect)
    if abs(effect) >= margin:
        raise ValueError(f"effect {effect:g} is not inside ±margin {margin:g}: never equivalent")
    return _fewest(lambda n: tost_power(n, sd, effect, margin, alpha), power)


def _fewest(power_at: Callable[[int], float], target: float) -> int:
    """The smallest n >= 2 with power_at(n) >= target, for a power that grows with n: doubling,
    then bisection."""
    if power_at(2) >= target:
        return 2
    low, high = 2, 4
    while power_at(high) < target:
        if high >= MOST_SEEDS:
            raise ValueError(f"more than {MOST_SEEDS:,} seeds would be needed")
        low, high = high, 2 * high
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if power_at(middle) >= target else (middle, high)
    return high
