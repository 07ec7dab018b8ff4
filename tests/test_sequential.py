"""The sequential design (pipeline/analysis/sequential.py): its error rates over repeated looks,
its power and its early stops, measured on thousands of simulated studies; and its API.

Simulated studies draw paired differences from N(effect, 0.75), in accuracy points: the seed-to-
seed sd of the dropout study. Rates are asserted within 3 Monte-Carlo standard errors; each test
prints what it measured (pytest -s) and records it (the junit XML's properties).
"""

import numpy as np
import pytest

from pipeline.analysis.equivalence import classify
from pipeline.analysis.sequential import SequentialDesign, obrien_fleming_spending

pytestmark = pytest.mark.fast  # make test-fast

SD = 0.75
STUDIES = 4000
DESIGN = SequentialDesign()  # alpha 0.05, margin 0.5, batch 10, up to 50 seeds


def studies(effect: float, seed: int, count: int = STUDIES, seeds: int = 50) -> np.ndarray:
    return np.random.default_rng(seed).normal(effect, SD, (count, seeds))


def ceiling(rate: float, count: int) -> float:
    """rate plus three Monte-Carlo standard errors of a share measured on count studies."""
    return rate + 3 * np.sqrt(rate * (1 - rate) / count)


def floor(rate: float, count: int) -> float:
    return rate - 3 * np.sqrt(rate * (1 - rate) / count)


@pytest.fixture
def report(record_property):
    def measured(name: str, value: float):
        print(f"{name}: {value:.4f}")
        record_property(name, round(float(value), 4))

    return measured


def naive_rate(d: np.ndarray, words: list[str], level: float = 0.05) -> float:
    """Share of studies that some look at every batch of 10 would call one of words, each look
    testing at the full level: what repeated looks do without alpha spending."""
    hit = np.zeros(len(d), bool)
    for size in DESIGN.looks:
        hit |= np.isin(classify(d[:, :size], DESIGN.margin, level), words)
    return hit.mean()


def test_no_effect_gives_better_or_worse_at_most_alpha_over_all_looks(report):
    d = studies(0.0, seed=1)
    words, _ = DESIGN.decide_many(d)
    rate = np.isin(words, ["better", "worse"]).mean()
    report("false_difference_rate", rate)
    assert rate <= ceiling(0.05, STUDIES)
    # the check has teeth: testing every look at 0.05 errs far more often on the same studies
    naive = naive_rate(d, ["better", "worse"])
    report("false_difference_rate_without_spending", naive)
    assert naive > ceiling(0.05, STUDIES)


def test_a_family_of_six_null_cells_keeps_the_family_wise_rate(report):
    families = 3000
    d = studies(0.0, seed=2, count=6 * families)
    split, _ = SequentialDesign(family_size=6).decide_many(d)
    rate = np.isin(split, ["better", "worse"]).reshape(families, 6).any(axis=1).mean()
    report("family_wise_false_difference_rate", rate)
    assert rate <= ceiling(0.05, families)
    unsplit, _ = DESIGN.decide_many(d)  # each cell at the full alpha: the family errs often
    naive = np.isin(unsplit, ["better", "worse"]).reshape(families, 6).any(axis=1).mean()
    report("family_wise_rate_without_split", naive)
    assert naive > ceiling(0.05, families)


def test_a_true_difference_at_the_margin_is_rarely_called_equivalent(report):
    half = STUDIES // 2
    d = np.concatenate([studies(0.5, seed=3, count=half), studies(-0.5, seed=4, count=half)])
    words, _ = DESIGN.decide_many(d)
    rate = (words == "equivalent").mean()
    report("false_equivalence_rate", rate)
    assert rate <= ceiling(0.05, STUDIES)
    naive = naive_rate(d, ["equivalent"])
    report("false_equivalence_rate_without_spending", naive)
    assert naive > ceiling(0.05, STUDIES)


@pytest.mark.parametrize(
    "design", [DESIGN, SequentialDesign(batch=5, max_seeds=20)], ids=["10x5", "5x4"]
)
def test_a_true_difference_is_found_with_the_power_the_design_states(design, report):
    stated = design.difference_power(0.5, SD)
    better, _ = design.decide_many(studies(0.5, seed=5, seeds=design.max_seeds))
    worse, _ = design.decide_many(studies(-0.5, seed=6, seeds=design.max_seeds))
    report(f"stated_power_{design.max_seeds}", stated)
    report(f"simulated_power_{design.max_seeds}", (better == "better").mean())
    assert stated > 0.6  # a bound that says something
    assert (better == "better").mean() >= floor(stated, STUDIES)
    assert (worse == "worse").mean() >= floor(stated, STUDIES)


def test_the_default_design_plans_enough_seeds_for_the_dropout_study():
    assert DESIGN.difference_power(0.5, SD) >= DESIGN.power
    assert DESIGN.equivalence_power(0.0, SD) >= DESIGN.power
    fewer = SequentialDesign(batch=5, max_seeds=20)
    assert fewer.difference_power(0.5, SD) < DESIGN.power
    assert fewer.equivalence_power(0.0, SD) < DESIGN.power
    assert DESIGN.difference_power(0.5, 0.0) == 1.0  # no variance: found at the first look


def test_no_effect_is_mostly_shown_equivalent_before_the_last_look(report):
    words, seeds = DESIGN.decide_many(studies(0.0, seed=7))
    stated = DESIGN.equivalence_power(0.0, SD)
    early = ((words == "equivalent") & (seeds < DESIGN.max_seeds)).mean()
    report("stated_equivalence_power", stated)
    report("simulated_equivalence_power", (words == "equivalent").mean())
    report("equivalent_before_max_seeds", early)
    report("mean_seeds_at_no_effect", seeds.mean())
    assert (words == "equivalent").mean() >= floor(stated, STUDIES)
    assert early >= 0.8


def test_a_large_effect_stops_early(report):
    words, seeds = DESIGN.decide_many(studies(1.5, seed=8, count=1000))
    report("mean_seeds_at_effect_1.5", seeds.mean())
    assert (words == "better").all()
    assert seeds.mean() <= 0.5 * DESIGN.max_seeds


def test_looks_and_levels_follow_the_obrien_fleming_spending():
    assert DESIGN.looks == (10, 20, 30, 40, 50)
    assert sum(DESIGN.levels) == pytest.approx(0.05, abs=1e-15)
    assert np.all(np.diff(DESIGN.levels) > 0) and DESIGN.levels[0] < 1e-4
    assert DESIGN.levels[-1] == pytest.approx(0.02157, abs=1e-5)  # 0.05 - spent by 40 of 50
    assert obrien_fleming_spending(0.5, 0.05) == pytest.approx(0.005575, abs=1e-6)
    assert obrien_fleming_spending(1.0, 0.05) == pytest.approx(0.05)
    assert SequentialDesign(max_seeds=45).looks == (10, 20, 30, 40, 45)  # a partial last batch
    assert sum(SequentialDesign(family_size=6).levels) == pytest.approx(0.05 / 6)


def test_decide_replays_the_looks_and_keeps_the_stopping_verdict():
    d = studies(0.6, seed=9, count=400)
    words, seeds = DESIGN.decide_many(d)
    for row in range(40):  # one call per study agrees with the vectorized one
        decision = DESIGN.decide(d[row])
        assert (decision.verdict, decision.n) == (words[row], seeds[row])
    stopped = d[np.flatnonzero((seeds == 20) & (words == "better"))[0]]
    at_twenty = DESIGN.decide(stopped[:20])
    assert DESIGN.decide(stopped) == at_twenty  # more seeds trained: still look 2's answer
    assert (at_twenty.look, at_twenty.level, at_twenty.n) == (2, DESIGN.levels[1], 20)
    assert at_twenty.p_value < at_twenty.level < DESIGN.alpha
    assert DESIGN.decide(stopped[:10]).verdict == "continue"


def test_the_last_look_is_undecided_with_seeds_for_power():
    d = studies(0.3, seed=10, count=400)  # between 0 and the margin: often undecided
    words, _ = DESIGN.decide_many(d)
    decision = DESIGN.decide(d[np.flatnonzero(words == "undecided")[0]])
    assert (decision.verdict, decision.look, decision.n) == ("undecided", 5, 50)
    assert decision.seeds_for_power >= 15
    assert DESIGN.decide([0.0] * 10).verdict == "equivalent"  # zero variance decides at once


def test_decide_family_splits_alpha_and_needs_every_cell():
    design = SequentialDesign(family_size=3)
    cells = [studies(effect, seed=11, count=1)[0] for effect in (0.0, 1.5, -1.5)]
    decisions = design.decide_family(cells)
    assert [decision.verdict for decision in decisions[1:]] == ["better", "worse"]
    assert sum(decisions[0].levels) == pytest.approx(0.05 / 3)
    with pytest.raises(ValueError, match="family_size=3 cells but got 2"):
        design.decide_family(cells[:2])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: SequentialDesign(alpha=0.5), "alpha must lie strictly between 0 and 0.5"),
        (lambda: SequentialDesign(margin=0), "margin must be above 0"),
        (lambda: SequentialDesign(batch=1), "batch must be at least 2"),
        (lambda: SequentialDesign(batch=2.5), "batch must be a whole number"),
        (lambda: SequentialDesign(max_seeds=5), "max_seeds 5 is less than one batch"),
        (lambda: SequentialDesign(power=1), "power must lie strictly between 0 and 1"),
        (lambda: SequentialDesign(family_size=0), "family_size must be at least 1"),
        (lambda: DESIGN.decide(np.zeros(25)), r"25 differences is not a look"),
        (lambda: DESIGN.decide_many(np.zeros(10)), "must be a 2-D array"),
        (lambda: DESIGN.difference_power(0.0, SD), "effect must not be 0"),
        (lambda: DESIGN.equivalence_power(0.5, SD), "not inside ±margin"),
        (lambda: obrien_fleming_spending(0.0, 0.05), r"fractions must lie in \(0, 1\]"),
    ],
)
def test_bad_arguments_are_refused_with_the_argument_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()
