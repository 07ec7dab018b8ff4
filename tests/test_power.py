"""Power and seed counts (pipeline/analysis/power.py): textbook answers and simulated t-tests."""

import numpy as np
import pytest
from scipy import stats

from pipeline.analysis.power import (
    critical_t,
    required_seeds,
    required_seeds_equivalence,
    t_test_power,
    tost_power,
)

pytestmark = pytest.mark.fast  # make test-fast

STUDIES = 20_000  # simulated fixed-size studies per check: a standard error of <= 0.0035


def simulated_rejections(n: int, effect: float, sd: float, seed: int):
    """Shares of simulated studies of n seeds whose paired t-test rejects upward at 0.05, and
    whose TOST (margin 0.5) rejects at 0.05."""
    d = np.random.default_rng(seed).normal(effect, sd, (STUDIES, n))
    mean, se = d.mean(axis=1), d.std(axis=1, ddof=1) / np.sqrt(n)
    upward = mean / se > stats.t.isf(0.025, n - 1)
    tost = np.abs(mean) + stats.t.isf(0.05, n - 1) * se < 0.5
    return upward.mean(), tost.mean()


@pytest.mark.parametrize(("effect", "seeds"), [(0.5, 34), (0.8, 15), (-0.8, 15), (1.2, 8)])
def test_required_seeds_match_the_textbook_one_sample_t_test(effect, seeds):
    # G*Power, one-sample t-test, two-tailed, alpha 0.05, power 0.8: d = 0.5 -> 34, d = 0.8 -> 15
    assert required_seeds(1.0, effect) == seeds
    assert t_test_power(seeds, 1.0, effect) >= 0.8 > t_test_power(seeds - 1, 1.0, effect)


@pytest.mark.parametrize("sd", [0.75, 1.5, 3.0, 6.0])  # normal answers of 18 seeds and up
def test_required_seeds_exceed_the_normal_approximation_by_a_seed_or_two(sd):
    normal = ((stats.norm.isf(0.025) + stats.norm.isf(0.2)) * sd / 0.5) ** 2
    assert normal <= required_seeds(sd, 0.5) <= normal + 3


def test_required_seeds_of_the_dropout_study_and_of_no_variance():
    assert required_seeds(0.75, 0.5) == 20  # sd 0.75 points, margin 0.5 points
    assert required_seeds(0.0, 0.5) == 2  # no variance: two seeds show it


def test_t_test_power_agrees_with_simulated_t_tests():
    n, effect, sd = 12, 0.5, 0.75
    simulated, _ = simulated_rejections(n, effect, sd, seed=1)
    stated = t_test_power(n, sd, effect)
    assert abs(simulated - stated) < 3 * np.sqrt(stated * (1 - stated) / STUDIES)


def test_tost_seeds_reach_the_power_in_simulation_and_one_fewer_does_not_by_the_bound():
    n = required_seeds_equivalence(0.75, 0.5)
    assert n == 21
    assert tost_power(n, 0.75, 0.0, 0.5) >= 0.8 > tost_power(n - 1, 0.75, 0.0, 0.5)
    _, simulated = simulated_rejections(n, 0.0, 0.75, seed=2)
    assert simulated >= 0.8 - 3 * np.sqrt(0.16 / STUDIES)
    # the Bonferroni bound is a lower bound, and a close one here
    assert tost_power(n, 0.75, 0.0, 0.5) <= simulated + 3 * np.sqrt(0.16 / STUDIES)
    assert simulated - tost_power(n, 0.75, 0.0, 0.5) < 0.03


def test_tost_needs_more_seeds_when_the_true_difference_nears_the_margin():
    at_zero = required_seeds_equivalence(0.75, 0.5)
    assert required_seeds_equivalence(0.75, 0.5, effect=0.25) > 2 * at_zero
    assert required_seeds_equivalence(0.75, 0.5, effect=-0.25) == required_seeds_equivalence(
        0.75, 0.5, effect=0.25
    )


def test_critical_t_is_scipys_quantile_and_infinite_below_the_floor():
    assert critical_t(0.025, 9) == pytest.approx(stats.t.ppf(0.975, 9))
    assert critical_t(1e-300, 9) == np.inf  # scipy itself answers -inf there
    np.testing.assert_array_equal(critical_t([0.05, 0.0], 5) > 0, [True, True])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: required_seeds(0.75, 0.0), "effect must not be 0"),
        (lambda: required_seeds(-1.0, 0.5), "sd must be 0 or more"),
        (lambda: required_seeds(0.75, 0.5, alpha=1.5), "alpha must lie strictly between 0 and 1"),
        (lambda: required_seeds(0.75, 0.5, power=1.0), "power must lie strictly between"),
        (lambda: required_seeds(float("nan"), 0.5), "sd must be a finite number"),
        (lambda: required_seeds_equivalence(0.75, 0.5, effect=0.5), "not inside ±margin"),
        (lambda: required_seeds_equivalence(0.75, 0.5, alpha=0.5), "alpha must lie"),
        (lambda: t_test_power(1, 0.75, 0.5), "n must be at least 2"),
        (lambda: tost_power(10, 0.75, 0.0, margin=0.0), "margin must be above 0"),
    ],
)
def test_bad_arguments_are_refused_with_the_argument_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()
