"""evaluate's paired statistics on arrays with known answers."""

import numpy as np
import pytest

from pipeline.analysis.significance import holm_adjusted, mcnemar_exact, paired_accuracy_difference

pytestmark = pytest.mark.fast  # make test-fast


def correctness(both: int, only_candidate: int, only_reference: int, neither: int):
    candidate = [1] * both + [1] * only_candidate + [0] * only_reference + [0] * neither
    reference = [1] * both + [0] * only_candidate + [1] * only_reference + [0] * neither
    return np.array(candidate, bool), np.array(reference, bool)


@pytest.mark.parametrize(
    ("only_candidate", "only_reference", "p_value"),
    [
        (0, 6, 2 * 0.5**6),  # all six discordant pairs favour one model
        (1, 5, 2 * (1 + 6) / 2**6),  # two-sided binomial tail P(X <= 1) + P(X >= 5)
        (3, 3, 1.0),  # balanced
        (0, 0, 1.0),  # no discordant pair: no evidence of a difference
    ],
)
def test_mcnemar_exact_p_values(only_candidate, only_reference, p_value):
    result = mcnemar_exact(*correctness(50, only_candidate, only_reference, 7))
    assert result["mcnemar_p_value"] == pytest.approx(p_value)
    assert result["only_candidate_correct"] == only_candidate
    assert result["only_reference_correct"] == only_reference


def test_mcnemar_ignores_concordant_examples():
    few = mcnemar_exact(*correctness(0, 2, 9, 0))
    many = mcnemar_exact(*correctness(5000, 2, 9, 3000))
    assert few == many


def test_paired_bootstrap_interval_of_the_accuracy_difference():
    same = paired_accuracy_difference(*correctness(40, 0, 0, 10))
    assert (same["accuracy_difference_ci95_low"], same["accuracy_difference_ci95_high"]) == (0, 0)
    right, wrong = np.ones(30, bool), np.zeros(30, bool)
    assert paired_accuracy_difference(right, wrong)["accuracy_difference_ci95_low"] == 1.0

    candidate, reference = correctness(8000, 700, 300, 1000)  # difference 0.04, n = 10,000
    result = paired_accuracy_difference(candidate, reference)
    assert result["accuracy_difference"] == pytest.approx(0.04)
    # the normal approximation of the paired difference's interval: mean ± 1.96 sd / sqrt(n)
    half_width = 1.96 * (candidate.astype(float) - reference).std() / np.sqrt(10_000)
    assert result["accuracy_difference_ci95_low"] == pytest.approx(0.04 - half_width, abs=1e-3)
    assert result["accuracy_difference_ci95_high"] == pytest.approx(0.04 + half_width, abs=1e-3)


def test_holm_adjusted_p_values_on_known_answers():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04 -> kept monotone
    adjusted = holm_adjusted([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm_adjusted([0.3]), [0.3])  # one test: unchanged
    np.testing.assert_allclose(holm_adjusted([0.6, 0.7]), [1.0, 1.0])  # capped at 1
    np.testing.assert_allclose(holm_adjusted([0.02, 0.02]), [0.04, 0.04])  # ties
    assert holm_adjusted([]).shape == (0,)
