"""One fixed-size verdict (pipeline/analysis/equivalence.py): TOST, probability of improvement,
intervals and edge cases, on known answers and against scipy's t-tests."""

import math

import numpy as np
import pytest
from scipy import stats

from pipeline.analysis.equivalence import (
    difference_p_value,
    probability_of_improvement,
    tost_p_value,
    verdict,
)
from pipeline.analysis.power import required_seeds_equivalence

pytestmark = [pytest.mark.fast, pytest.mark.filterwarnings("error")]  # no RuntimeWarning


def shaped(mean: float, sd: float, n: int) -> np.ndarray:
    """n differences with exactly this mean and sample sd."""
    z = np.random.default_rng(n).normal(size=n)
    return mean + sd * (z - z.mean()) / z.std(ddof=1)


@pytest.mark.parametrize("mean", [0.0, 0.2, 0.45, -0.3, 0.8])
@pytest.mark.parametrize("n", [2, 5, 20])
def test_tost_is_the_larger_p_of_scipys_two_one_sided_t_tests(mean, n):
    d = np.random.default_rng(7).normal(mean, 0.75, n)
    lower = stats.ttest_1samp(d, -0.5, alternative="greater").pvalue
    upper = stats.ttest_1samp(d, 0.5, alternative="less").pvalue
    assert tost_p_value(d, 0.5) == pytest.approx(max(lower, upper), rel=1e-9)
    assert difference_p_value(d) == pytest.approx(stats.ttest_1samp(d, 0.0).pvalue, rel=1e-9)


def test_intervals_are_scipys_t_intervals_at_1_minus_alpha_and_1_minus_2_alpha():
    d = np.random.default_rng(3).normal(0.2, 0.75, 15)
    result = verdict(d, margin=0.5, alpha=0.05)
    scale = stats.sem(d)
    ci = stats.t.interval(0.95, 14, loc=d.mean(), scale=scale)
    tost_ci = stats.t.interval(0.90, 14, loc=d.mean(), scale=scale)
    assert (result.ci_low, result.ci_high) == pytest.approx(ci)
    assert (result.equivalence_low, result.equivalence_high) == pytest.approx(tost_ci)
    assert result.sd == pytest.approx(d.std(ddof=1))


def test_the_verdict_follows_the_p_values_and_the_intervals_on_random_studies():
    rng = np.random.default_rng(11)
    words = set()
    for _ in range(200):
        d = rng.normal(rng.uniform(-1, 1), 0.75, rng.integers(2, 40))
        r = verdict(d, margin=0.5, alpha=0.05)
        words.add(r.verdict)
        inside = r.equivalence_low > -0.5 and r.equivalence_high < 0.5
        assert inside == (r.p_equivalence < 0.05)
        assert (r.ci_low > 0 or r.ci_high < 0) == (r.p_value < 0.05)
        if r.p_value < 0.05:
            expected = "better" if r.mean > 0 else "worse"
        else:
            expected = "equivalent" if r.p_equivalence < 0.05 else "undecided"
        assert r.verdict == expected
    assert words == {"better", "worse", "equivalent", "undecided"}


def test_better_takes_precedence_when_a_real_effect_is_smaller_than_the_margin():
    d = shaped(0.3, 0.2, 40)  # mean 0.3 with a tight interval: different and equivalent
    result = verdict(d, margin=0.5)
    assert result.p_value < 0.05 and result.p_equivalence < 0.05
    assert result.verdict == "better"
    assert verdict(-d, margin=0.5).verdict == "worse"
    assert verdict(d, margin=0.2).verdict == "better"  # the margin no longer matters here
    assert verdict(shaped(0.0, 0.2, 40), margin=0.5).verdict == "equivalent"


def test_probability_of_improvement_on_hand_counted_examples():
    all_wins = probability_of_improvement([0.3, 1.2, 0.1, 0.5, 0.7, 0.2, 0.9, 0.4, 0.6, 0.8])
    assert all_wins.probability == 1.0
    z2 = stats.norm.isf(0.025) ** 2
    assert all_wins.low == pytest.approx(10 / (10 + z2))  # Wilson's bound for 10 of 10
    assert all_wins.high == 1.0
    assert probability_of_improvement([-0.2, -0.1]).probability == 0.0
    assert probability_of_improvement([1.0, -1.0, 0.0, 0.0]).probability == 0.5  # ties: halves
    assert probability_of_improvement([0.2, 0.0, -0.3, 0.1]).probability == 0.625
    seven = probability_of_improvement([1] * 7 + [-1] * 3)  # 7 of 10: Wilson (0.3968, 0.8922)
    assert (seven.low, seven.high) == pytest.approx((0.3968, 0.8922), abs=1e-4)
    wider = probability_of_improvement([1] * 7 + [-1] * 3, confidence=0.99)
    assert wider.low < seven.low and wider.high > seven.high


def test_two_seeds_give_a_full_verdict():
    result = verdict([0.4, 0.6])
    assert result.n == 2 and result.mean == pytest.approx(0.5)
    assert result.p_value == pytest.approx(stats.ttest_1samp([0.4, 0.6], 0).pvalue)
    assert result.verdict == "undecided"  # t = 5 with 1 degree of freedom: p = 0.126
    assert result.seeds_for_power == required_seeds_equivalence(result.sd, 0.5)


def test_one_seed_is_undecided_without_nan():
    result = verdict([0.7])
    assert result.verdict == "undecided" and result.n == 1 and result.mean == 0.7
    assert result.sd is None and result.seeds_for_power is None
    assert (result.ci_low, result.ci_high) == (-math.inf, math.inf)
    assert (result.p_value, result.p_equivalence) == (1.0, 1.0)
    assert result.probability_of_improvement == 1.0
    assert 0 < result.improvement_low < result.improvement_high == 1.0
    assert tost_p_value([0.0]) == 1.0 and difference_p_value([0.0]) == 1.0


@pytest.mark.parametrize(
    ("value", "word", "p_value", "p_equivalence"),
    [
        (0.0, "equivalent", 1.0, 0.0),  # identical runs: no difference, surely inside
        (0.3, "better", 0.0, 0.0),  # the same win on every seed, inside the margin
        (-0.7, "worse", 0.0, 1.0),
        (0.5, "better", 0.0, 0.5),  # on the margin itself: not shown inside it
        (0.1 + 0.2, "better", 0.0, 0.0),  # 0.30000000000000004: rounding fakes no spread
    ],
)
def test_zero_variance_decides_on_the_mean_alone(value, word, p_value, p_equivalence):
    result = verdict([value] * 6)
    assert (result.verdict, result.p_value, result.p_equivalence) == (word, p_value, p_equivalence)
    assert result.sd == 0.0 and result.ci_low == result.ci_high == value
    assert result.seeds_for_power == 2


def test_seeds_for_power_of_the_dropout_study():
    result = verdict(shaped(0.1, 0.75, 8))
    assert result.verdict == "undecided"
    assert result.seeds_for_power == 21  # TOST at effect 0 needs more than the t-test's 20
    assert verdict(shaped(0.1, 1.5, 8)).seeds_for_power > 3.5 * 21


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: verdict([]), "differences is empty"),
        (lambda: verdict([0.1, float("nan")]), "NaN or infinity"),
        (lambda: verdict([[0.1, 0.2]]), "differences must be one array"),
        (lambda: verdict([0.1, 0.2], margin=0), "margin must be above 0"),
        (lambda: verdict([0.1, 0.2], alpha=0.5), r"alpha must lie strictly between 0 and 0.5"),
        (lambda: verdict([0.1, 0.2], alpha=True), "alpha must be a finite number"),
        (lambda: verdict([0.1, 0.2], power=0), "power must lie strictly between 0 and 1"),
        (lambda: tost_p_value([0.1, 0.2], margin=-1), "margin must be above 0"),
        (lambda: probability_of_improvement([0.1], confidence=1), "confidence must lie"),
    ],
)
def test_bad_arguments_are_refused_with_the_argument_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()
