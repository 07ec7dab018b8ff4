"""One verdict from n paired differences: better, worse, equivalent or undecided.

A study trains the reference and the candidate configuration on the same seeds 0..n-1; each seed
gives one paired difference, candidate minus reference test accuracy, in the unit of `margin`
(the caller uses accuracy points). The differences are taken as independent draws from a roughly
normal law: the seed-to-seed variation that Bouthillier et al. (2021) show to be a main source of
variance in ML benchmarks. Every test here is Student's t on them:

- the difference test is the paired t-test, two-sided, of a zero mean;
- the equivalence test is TOST, two one-sided t-tests of mean <= -margin and of mean >= +margin
  (Schuirmann 1987). Its p-value is the larger of the two; it rejects at level alpha exactly when
  the (1 - 2 alpha) interval of the mean lies inside (-margin, +margin);
- the probability of improvement is the share of seeds on which the candidate wins: the paired
  form of rliable's P(X > Y) (Agarwal et al. 2021).

Precedence: better/worse (the two-sided 1 - alpha interval excludes 0) and equivalent (the
1 - 2 alpha interval lies inside ±margin) both hold when the interval is narrow compared with the
margin: a real effect smaller than the margin, "significant but trivial" (Lakens 2017). The
verdict then is better or worse: the sign is the answer to "does dropout help?", and the
intervals show that the effect is smaller than the margin. Either precedence keeps both error
rates, as a verdict is only given when its own test rejects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from pipeline.analysis import _checks
from pipeline.analysis.power import critical_t, required_seeds, required_seeds_equivalence

BETTER, WORSE, EQUIVALENT, UNDECIDED = "better", "worse", "equivalent", "undecided"


@dataclass(frozen=True)
class Improvement:
    """The share of seeds on which the candidate wins (ties count one half), with its
    Wilson score interval at `confidence`."""

    probability: float
    low: float
    high: float
    confidence: float


@dataclass(frozen=True)
class Verdict:
    """One cell's answer from n paired differences; every test and interval at `level`.

    ci_low, ci_high: the two-sided (1 - level) t interval of the mean difference. It excludes 0
    exactly when the difference test rejects (p_value < level): better or worse.
    equivalence_low, equivalence_high: the (1 - 2 level) t interval. It lies inside
    (-margin, margin) exactly when TOST rejects (p_equivalence < level): equivalent.
    improvement_low, improvement_high: the (1 - level) Wilson interval of
    probability_of_improvement.
    seeds_for_power: seeds that a fixed-size study would need for `power` (see verdict).
    With fewer than two seeds sd and seeds_for_power are None and the intervals infinite.
    """

    verdict: str
    n: int
    mean: float
    sd: float | None
    ci_low: float
    ci_high: float
    equivalence_low: float
    equivalence_high: float
    p_value: float
    p_equivalence: float
    probability_of_improvement: float
    improvement_low: float
    improvement_high: float
    seeds_for_power: int | None
    margin: float
    level: float


def tost_p_value(differences, margin: float = 0.5) -> float:
    """The p-value of equivalence within ±margin by TOST (Schuirmann 1987): the larger p of the
    one-sided t-tests of mean <= -margin and mean >= +margin. 1.0 with a single seed."""
    d = _checks.differences(differences)
    margin = _checks.positive("margin", margin)
    return _tost_p(*_mean_se(d), len(d), margin)


def difference_p_value(differences) -> float:
    """The two-sided p-value of the paired t-test of a zero mean difference. 1.0 with a single
    seed."""
    d = _checks.differences(differences)
    return _difference_p(*_mean_se(d), len(d))


def probability_of_improvement(differences, confidence: float = 0.95) -> Improvement:
    """The share of seeds on which the candidate beats the reference, ties counting one half
    (Agarwal et al. 2021's P(X > Y), for seeds paired by their number), with an interval.

    The interval is the Wilson score interval of a binomial share, not a bootstrap over seeds:
    with 10 to 50 seeds and a candidate that often wins on every seed, the percentile bootstrap
    collapses to [1, 1] and claims certainty, while Wilson's interval stays honest (10 wins out
    of 10 give [0.72, 1]), keeps close to its nominal coverage at small n (Brown, Cai and
    DasGupta 2001) and needs no random numbers. Ties enter as half a win each.
    """
    d = _checks.differences(differences)
    confidence = _checks.fraction("confidence", confidence)
    return _improvement(d, (1 - confidence) / 2, confidence)


def verdict(differences, margin: float = 0.5, alpha: float = 0.05, power: float = 0.8) -> Verdict:
    """The fixed-size verdict on paired differences (candidate minus reference, one per seed).

    better: the two-sided paired t-test at level alpha rejects a zero mean and the mean is
    positive; worse: the same with a negative mean; else equivalent: TOST at level alpha rejects
    (the 1 - 2 alpha interval lies inside ±margin); else undecided. Better/worse take precedence
    over equivalent (module docstring). For a family of m cells pass alpha / m (Bonferroni).

    seeds_for_power uses the observed sd, not the observed mean ("post-hoc power" from the
    observed effect says nothing new, Hoenig and Heisey 2001): the larger of the seeds for a
    paired t-test to find a difference of size margin (required_seeds) and for TOST to show
    equivalence when the true difference is 0 (required_seeds_equivalence), each with
    probability `power` at level alpha.
    """
    d = _checks.differences(differences)
    margin = _checks.positive("margin", margin)
    alpha = _checks.fraction("alpha", alpha, 0.5)
    power = _checks.fraction("power", power)
    return summarize(d, margin, alpha, power, alpha)


def summarize(
    d: np.ndarray, margin: float, level: float, power: float, power_alpha: float
) -> Verdict:
    """The Verdict of checked differences d at one test level; seeds_for_power at power_alpha
    (the sequential design tests each look at its own level but plans seeds at its alpha)."""
    n = len(d)
    improvement = _improvement(d, level / 2, 1 - level)
    mean, se = _mean_se(d)
    sd = None if n < 2 else se * math.sqrt(n)
    half = float(_half_width(critical_t(level / 2, n - 1), se)) if n >= 2 else math.inf
    half_tost = float(_half_width(critical_t(level, n - 1), se)) if n >= 2 else math.inf
    return Verdict(
        verdict=str(classify(d, margin, level)),
        n=n,
        mean=mean,
        sd=sd,
        ci_low=mean - half,
        ci_high=mean + half,
        equivalence_low=mean - half_tost,
        equivalence_high=mean + half_tost,
        p_value=_difference_p(mean, se, n),
        p_equivalence=_tost_p(mean, se, n, margin),
        probability_of_improvement=improvement.probability,
        improvement_low=improvement.low,
        improvement_high=improvement.high,
        seeds_for_power=None if sd is None else _seeds_for_power(sd, margin, power_alpha, power),
        margin=margin,
        level=level,
    )


def classify(differences, margin: float, level: float) -> np.ndarray:
    """The verdict word of each row of differences (seeds along the last axis) at one level,
    by the rule of `verdict`; arguments are not checked. It compares intervals instead of
    computing p-values, the same tests, so thousands of simulated studies stay cheap."""
    d = np.asarray(differences, dtype=float)
    n = d.shape[-1]
    if n < 2:
        return np.full(d.shape[:-1], UNDECIDED)
    mean, sd = _mean_sd(d)
    se = sd / math.sqrt(n)
    half = _half_width(critical_t(level / 2, n - 1), se)
    half_tost = _half_width(critical_t(level, n - 1), se)
    rejects = [mean - half > 0, mean + half < 0, np.abs(mean) + half_tost < margin]
    return np.select(rejects, [BETTER, WORSE, EQUIVALENT], UNDECIDED)[()]


def _mean_sd(d: np.ndarray):
    """Mean and sample sd over the last axis (n >= 2): exactly (first value, 0) where all values
    are equal, so that rounding in the mean cannot fake a tiny spread."""
    same = np.ptp(d, axis=-1) == 0
    mean = np.where(same, d[..., 0], d.mean(axis=-1))
    return mean, np.where(same, 0.0, d.std(axis=-1, ddof=1))


def _mean_se(d: np.ndarray) -> tuple[float, float]:
    """Mean and standard error of one array of differences; the error is inf for one seed."""
    if len(d) < 2:
        return float(d[0]), math.inf
    mean, sd = _mean_sd(d)
    return float(mean), float(sd) / math.sqrt(len(d))


def _half_width(critical, se):
    """critical * se, and 0 where se is 0 (all differences equal: the t statistic is infinite)."""
    return np.where(se > 0, critical * np.where(se > 0, se, 1.0), 0.0)


def _t_statistic(distance: float, se: float) -> float:
    """distance / se; with se 0 it is +inf, -inf or 0 for a distance above, below or at 0."""
    if se > 0:
        return distance / se
    return math.copysign(math.inf, distance) if distance else 0.0


def _difference_p(mean: float, se: float, n: int) -> float:
    if n < 2:
        return 1.0
    return float(2 * stats.t.sf(abs(_t_statistic(mean, se)), n - 1))


def _tost_p(mean: float, se: float, n: int, margin: float) -> float:
    if n < 2:
        return 1.0
    above = stats.t.sf(_t_statistic(mean + margin, se), n - 1)  # H0: mean <= -margin
    below = stats.t.cdf(_t_statistic(mean - margin, se), n - 1)  # H0: mean >= +margin
    return float(max(above, below))


def _improvement(d: np.ndarray, tail: float, confidence: float) -> Improvement:
    """Wins (ties one half) over n seeds with the Wilson score interval whose z leaves `tail`
    in each tail (Wilson 1927); a z of infinity gives [0, 1]."""
    n = len(d)
    share = float((np.sum(d > 0) + 0.5 * np.sum(d == 0)) / n)
    z = float(stats.norm.isf(tail))
    if not math.isfinite(z):
        return Improvement(share, 0.0, 1.0, confidence)
    shrink = 1 + z * z / n
    center = (share + z * z / (2 * n)) / shrink
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / shrink
    low = 0.0 if share == 0 else float(max(0.0, center - half))  # exact ends: no rounding
    high = 1.0 if share == 1 else float(min(1.0, center + half))
    return Improvement(share, low, high, confidence)


def _seeds_for_power(sd: float, margin: float, alpha: float, power: float) -> int:
    """Seeds for both goals (verdict's docstring): a ±margin difference found, a zero difference
    shown equivalent, each with probability `power` at level alpha."""
    return max(
        required_seeds(sd, margin, alpha, power),
        required_seeds_equivalence(sd, margin, alpha, power),
    )
