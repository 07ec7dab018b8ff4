"""Seeds in batches, a verdict as soon as the data allow it, error rates kept over every look.

The procedure is a group-sequential design with alpha spending (Lan & DeMets 1983). Look k sees
the first n_k = k * batch paired differences (the last look sees max_seeds, perhaps a partial
batch) and spends alpha_k = a(t_k) - a(t_{k-1}) of the cell's alpha, t_k = n_k / max_seeds, with
the O'Brien-Fleming-type spending function a(t) = 2 - 2 Phi(z_{1-alpha/2} / sqrt(t)). At look k:

- better / worse: the paired t-test rejects a zero mean at two-sided level alpha_k;
- equivalent: TOST rejects at level alpha_k (the 1 - 2 alpha_k interval inside ±margin);
- better/worse take precedence over equivalent, as in equivalence.verdict;
- else `continue` while looks remain, and `undecided` at the last look.
A decided cell stops: it keeps the verdict of its stopping look.

Why the error rates hold: each look's test is a t-test at its own level alpha_k (exact for
normally distributed differences, close for others by the central limit theorem), so
whatever the dependence between looks, P(some look rejects) <= sum_k alpha_k = alpha (the union
bound, i.e. Bonferroni across looks). That bounds P(better or worse | mean 0) and
P(equivalent | |mean| >= margin) by alpha; stopping and precedence only ever remove verdicts. The
interval at each look (at 1 - alpha_k) is a repeated confidence interval (Jennison & Turnbull
1989): all of them cover the true mean at once with probability >= 1 - alpha, so the interval
reported at the stopping look stays valid after the data chose when to stop.

Why this procedure: the union bound needs no computation of the looks' joint law (exact
boundaries need recursive numerical integration, and with an estimated sd they are only
approximate), so validity is plain to check. With the O'Brien-Fleming shape it costs little:
early looks get tiny levels and stop only on overwhelming evidence, the last look keeps most of
alpha (0.0216 of 0.05 at the fifth of five equal looks, where exact boundaries would allow about
0.042). Always-valid confidence sequences (Howard et al. 2021) are wider at a handful of looks;
AdaStop (Mathieu et al. 2023) compares several algorithms by permutation tests, more machinery
than two paired configurations need.

Families: the cells of a grid each run at alpha / family_size (Bonferroni). The union bound over
cells and looks keeps the family-wise rate of any false better/worse, and that of any false
equivalent, at or below alpha however the cells stop. Holm would need every cell's p-value at a
common final look, which early stopping does not give; a graphical procedure could recycle alpha
between cells (Maurer & Bretz 2013), out of scope here.

Power: difference_power and equivalence_power state lower bounds on the chance of the right
verdict for a true difference and sd, from the noncentral t law of each look (power.py).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cached_property

import numpy as np
from scipy import stats

from pipeline.analysis import _checks
from pipeline.analysis.equivalence import UNDECIDED, Verdict, classify, summarize
from pipeline.analysis.power import critical_t, t_statistic_exceeds, tost_bounds

CONTINUE = "continue"


def obrien_fleming_spending(fraction, alpha: float):
    """The alpha spent by information fraction t (0 < t <= 1, seeds seen / max_seeds): the
    Lan-DeMets O'Brien-Fleming-type function 2 - 2 Phi(z_{1-alpha/2} / sqrt(t)), which is alpha
    at t = 1 and spends almost nothing early (Lan & DeMets 1983)."""
    alpha = _checks.fraction("alpha", alpha)
    fraction = np.asarray(fraction, dtype=float)
    if not np.all((fraction > 0) & (fraction <= 1)):
        raise ValueError(f"information fractions must lie in (0, 1], got {fraction}")
    return (2 * stats.norm.sf(stats.norm.isf(alpha / 2) / np.sqrt(fraction)))[()]


@dataclass(frozen=True)
class Decision(Verdict):
    """A Verdict at one look of a SequentialDesign, plus where it stands in the design.

    verdict: better, worse or equivalent (the stopping look's, kept), continue (more seeds are
    planned) or undecided (the last look decided nothing). look: 1-based number of the look the
    statistics come from (the stopping look of a decided cell). levels: the nominal level of
    every look, already divided by the family size; level = levels[look - 1]. Compare p_value
    and p_equivalence with level, not with alpha. seeds_for_power: what a fixed-size study at
    the cell's alpha would need (equivalence.verdict); a sequential design pays a little for its
    looks, check a candidate with SequentialDesign.difference_power / equivalence_power.
    """

    look: int
    levels: tuple[float, ...]


@dataclass(frozen=True)
class SequentialDesign:
    """When to look at a cell's seeds and at which levels (module docstring).

    alpha: the error rate kept over all looks (and all family_size cells), for false better/worse
    and, separately, for false equivalent. margin: equivalence bound, in the unit of the
    differences. batch: seeds added between looks. max_seeds: seeds of the last look.
    power: the power seeds_for_power plans for. family_size: cells sharing alpha (Bonferroni),
    fixed before the first look.
    """

    alpha: float = 0.05
    margin: float = 0.5
    batch: int = 10
    max_seeds: int = 50
    power: float = 0.8
    family_size: int = 1

    def __post_init__(self):
        _checks.fraction("alpha", self.alpha, 0.5)
        _checks.positive("margin", self.margin)
        _checks.whole("batch", self.batch, 2)
        _checks.whole("max_seeds", self.max_seeds, 2)
        if self.max_seeds < self.batch:
            raise ValueError(f"max_seeds {self.max_seeds} is less than one batch ({self.batch})")
        _checks.fraction("power", self.power)
        _checks.whole("family_size", self.family_size, 1)

    @property
    def cell_alpha(self) -> float:
        """The alpha of each cell: alpha / family_size."""
        return self.alpha / self.family_size

    @cached_property
    def looks(self) -> tuple[int, ...]:
        """Seed counts at which the design looks: batch, 2 batch, ..., max_seeds."""
        sizes = list(range(self.batch, self.max_seeds + 1, self.batch))
        return tuple(sizes if sizes[-1] == self.max_seeds else [*sizes, self.max_seeds])

    @cached_property
    def levels(self) -> tuple[float, ...]:
        """Nominal level of each look: the alpha spent between the previous look and this one;
        the levels add up to cell_alpha."""
        spent = obrien_fleming_spending(np.divide(self.looks, self.max_seeds), self.cell_alpha)
        spent = np.append(np.atleast_1d(spent)[:-1], self.cell_alpha)  # exactly alpha at the end
        return tuple(float(level) for level in np.maximum(np.diff(spent, prepend=0.0), 0.0))

    def decide(self, differences) -> Decision:
        """The Decision for one cell's paired differences; their count must be one of `looks`.

        Every look up to that count is replayed in order, so a cell that was decided earlier
        keeps its stopping look's verdict and statistics, even if more seeds were trained.
        """
        d = _checks.differences(differences)
        words, seeds = self.decide_many(d[np.newaxis])
        look = self.looks.index(int(seeds[0]))
        level = self.levels[look]
        summary = summarize(d[: seeds[0]], self.margin, level, self.power, self.cell_alpha)
        values = {field.name: getattr(summary, field.name) for field in fields(summary)}
        return Decision(**{**values, "verdict": str(words[0])}, look=look + 1, levels=self.levels)

    def decide_many(self, differences) -> tuple[np.ndarray, np.ndarray]:
        """Verdict words and seeds used for many studies at once: one study a row, as many
        columns as one of `looks`. The seeds used are the stopping look's for a decided study."""
        d = _checks.differences(differences, dimensions=2)
        last = self._look_index(d.shape[1])
        final = UNDECIDED if last == len(self.looks) - 1 else CONTINUE
        words = np.full(len(d), final, dtype="<U10")
        seeds = np.full(len(d), d.shape[1])
        open_rows = np.arange(len(d))
        for size, level in zip(self.looks[: last + 1], self.levels, strict=False):
            word = classify(d[open_rows, :size], self.margin, level)
            decided = open_rows[word != UNDECIDED]
            words[decided], seeds[decided] = word[word != UNDECIDED], size
            open_rows = open_rows[word == UNDECIDED]
        return words, seeds

    def decide_family(self, cells) -> list[Decision]:
        """The Decision of every cell of a family (a grid); all family_size cells must be
        passed, stopped ones too, each with its own count of differences (one of `looks`)."""
        cells = list(cells)
        if len(cells) != self.family_size:
            raise ValueError(
                f"the design splits alpha over family_size={self.family_size} cells but got "
                f"{len(cells)}: pass every cell of the family, stopped ones included"
            )
        return [self.decide(cell) for cell in cells]

    def difference_power(self, effect: float, sd: float) -> float:
        """A lower bound on the probability that a cell ends `better` when its true mean
        difference is effect > 0 (`worse` for effect < 0, by symmetry) and differences vary
        with sd: the largest over looks k of P(look k's test rejects with the right sign) minus
        P(some earlier look stops with another verdict), the latter bounded by the union bound
        (a wrong-sign rejection, or TOST rejecting)."""
        effect = abs(_checks.nonzero("effect", effect))
        sd = _checks.nonnegative("sd", sd)
        n, levels = np.array(self.looks), np.array(self.levels)
        two_sided = critical_t(levels / 2, n - 1)
        found = t_statistic_exceeds(n, sd, effect, two_sided)
        wrong = t_statistic_exceeds(n, sd, -effect, two_sided)
        tost = tost_bounds(n, sd, effect, self.margin, critical_t(levels, n - 1))[1]
        lost_before = np.cumsum(wrong + tost) - (wrong + tost)
        return float(max(0.0, np.max(found - lost_before)))

    def equivalence_power(self, effect: float, sd: float) -> float:
        """A lower bound on the probability that a cell ends `equivalent` when its true mean
        difference is effect (|effect| < margin) and differences vary with sd: the largest over
        looks k of the lower bound on P(TOST rejects at look k) minus P(the difference test
        rejects at look k or earlier), which would stop the cell or take precedence."""
        effect = _checks.real("effect", effect)
        sd = _checks.nonnegative("sd", sd)
        if abs(effect) >= self.margin:
            raise ValueError(f"effect {effect:g} is not inside ±margin {self.margin:g}")
        n, levels = np.array(self.looks), np.array(self.levels)
        two_sided = critical_t(levels / 2, n - 1)
        rejects = t_statistic_exceeds(n, sd, effect, two_sided)
        rejects += t_statistic_exceeds(n, sd, -effect, two_sided)
        tost = tost_bounds(n, sd, effect, self.margin, critical_t(levels, n - 1))[0]
        return float(max(0.0, np.max(tost - np.cumsum(rejects))))

    def _look_index(self, count: int) -> int:
        if count not in self.looks:
            raise ValueError(
                f"{count} differences is not a look of this design: it looks at {self.looks} seeds"
            )
        return self.looks.index(count)
