"""Statistics of the summaries, on plain arrays: means with t intervals, paired tests on seeds,
equivalence (TOST), the minimal detectable effect, Holm, the outcome of a line, and the rank
tests across blocks (Friedman, Nemenyi and its critical difference; Demšar 2006).

Replicates are seeds. A paired comparison matches two arms on seed only (same seed = same data,
split and initial negatives), never on configuration. With fewer than `MIN_SEEDS` pairs no test
is run: two numbers cannot say whether a difference is noise, and a zero-variance difference of
one pair once printed "p < 0.001" (issue 9). Every test is scipy's or statsmodels'.

A line has one of four outcomes (issue 20): `a better`, `a worse`, `practically equivalent`
(TOST within +-rope) or `inconclusive`, which names the smallest effect the seeds could have
detected. A non-significant difference is never read as "the same".
"""

from __future__ import annotations

import gc
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower
from statsmodels.stats.weightstats import ttost_paired

from suite.spec.vocabulary import DEFAULT_ROPE  # the one default, next to the sweep key

CI_LEVEL = 0.95
ALPHA = 0.05
# The power at which the minimal detectable effect is quoted (the usual 80 %).
POWER = 0.8
# Fewer independent seeds than this: no test at all, and the table says why.
MIN_SEEDS = 3
# An exact two-sided Wilcoxon signed-rank test on n non-zero differences cannot go below
# p = 2 / 2**n, which is >= 0.05 up to n = 5: below 6 pairs it cannot say anything.
WILCOXON_MIN_N = 6


def mean_ci(values: Iterable[float], level: float = CI_LEVEL) -> tuple[float, float, int]:
    """Mean, t-based confidence half-width and n of the finite values (half-width NaN if n < 2).

    The interval is mean +- t_{(1+level)/2, n-1} * s / sqrt(n), as scipy.stats.t.interval.
    """
    x = np.asarray(list(values), dtype=np.float64)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return math.nan, math.nan, 0
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan, 1
    sem = float(x.std(ddof=1)) / math.sqrt(n)
    return mean, float(stats.t.ppf((1.0 + level) / 2.0, n - 1) * sem), n


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (statsmodels), in the input order; NaN stays NaN and is
    not counted in the family size."""
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        # statsmodels' Holm ends with gc.collect(); in a sweep driver that full collection cost
        # 2.2 of the summary's 5 s (py-spy, 114 trials). Frozen objects are skipped by it.
        gc.freeze()
        try:
            out[ok] = multipletests(p[ok], method="holm")[1]
        finally:
            gc.unfreeze()
    return out


def min_detectable_effect(sd: float, n: int, alpha: float = ALPHA,
                          power: float = POWER) -> float:
    """The smallest mean paired difference a two-sided paired t-test on `n` seeds detects with
    `power` at `alpha`, given the paired sd: statsmodels' TTestPower solved for the effect
    size, times `sd`. NaN where it cannot be computed (n < 2, sd not finite)."""
    if n < 2 or not math.isfinite(sd):
        return math.nan
    if sd == 0:
        return 0.0
    d = TTestPower().solve_power(effect_size=None, nobs=n, alpha=alpha, power=power,
                                 alternative="two-sided")
    return float(d) * sd


@dataclass(frozen=True)
class Paired:
    """One paired comparison: a minus b over the seeds both have.

    `diff` and [`ci_low`, `ci_high`] are the mean difference and its 95 % t interval (the effect
    size, in the metric's units); `sd` the sd of the differences, `dz` = diff / sd. `t_p` and
    `wilcoxon_p` are two-sided; `tost_p` is the TOST p of |diff| < `rope` (statsmodels
    `ttost_paired`); `mde` the minimal detectable effect; NaN where no test ran, `why` says why.
    """

    n: int
    diff: float
    ci_low: float
    ci_high: float
    sd: float
    dz: float
    t_p: float
    wilcoxon_p: float
    tost_p: float
    mde: float
    rope: float
    why: str

    def as_dict(self) -> dict[str, float | int | str]:
        """Columns of a comparison table."""
        return {"n_pairs": self.n, "diff": self.diff, "ci_low": self.ci_low,
                "ci_high": self.ci_high, "sd": self.sd, "dz": self.dz, "t_p": self.t_p,
                "wilcoxon_p": self.wilcoxon_p, "tost_p": self.tost_p, "mde": self.mde,
                "rope": self.rope, "why_no_test": self.why}


def _tests(x: np.ndarray, y: np.ndarray, d: np.ndarray, sd: float,
           rope: float) -> tuple[float, float, float]:
    """(paired t p, Wilcoxon p, TOST p) on matched, finite samples of >= MIN_SEEDS pairs."""
    if sd == 0:
        # A constant difference: t is infinite (scipy and statsmodels return NaN or warn on
        # 0 / 0); the limits are p = 0 for a non-zero shift, 1 for none, and TOST decides by
        # where the constant lies.
        t_p = 1.0 if d[0] == 0 else 0.0
        w_p = (1.0 if d[0] == 0 else math.nan) if d.size >= WILCOXON_MIN_N else math.nan
        return t_p, w_p, 0.0 if abs(float(d[0])) < rope else 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        t_p = float(stats.ttest_rel(x, y).pvalue)
        w_p = math.nan
        if np.count_nonzero(d) >= WILCOXON_MIN_N:
            w_p = float(stats.wilcoxon(x, y).pvalue)
        tost_p = float(ttost_paired(x, y, -rope, rope)[0])
    return t_p, w_p, tost_p


def paired(a: Sequence[float], b: Sequence[float], rope: float = DEFAULT_ROPE,
           level: float = CI_LEVEL) -> Paired:
    """Paired difference a - b (already matched, one entry per seed): effect size with CI, paired
    t, Wilcoxon and TOST p-values, the minimal detectable effect. Pairs with a non-finite side
    are dropped."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"paired samples differ in length: {x.size} vs {y.size}")
    if not (math.isfinite(rope) and rope > 0):
        raise ValueError(f"rope must be a positive number, got {rope!r}")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    d = x - y
    mean, half, n = mean_ci(d, level)
    sd = float(d.std(ddof=1)) if n >= 2 else math.nan
    dz = mean / sd if n >= 2 and sd > 0 else math.nan
    lo, hi = (mean - half, mean + half) if n >= 2 else (math.nan, math.nan)
    if sd == 0:
        lo = hi = mean
    mde = min_detectable_effect(sd, n)
    if n < MIN_SEEDS:
        why = f"only {n} paired seed(s); a test needs >= {MIN_SEEDS} independent seeds"
        return Paired(n, mean, lo, hi, sd, dz, math.nan, math.nan, math.nan, mde, rope, why)
    t_p, w_p, tost_p = _tests(x, y, d, sd, rope)
    return Paired(n, mean, lo, hi, sd, dz, t_p, w_p, tost_p, mde, rope, "")


def friedman(blocks: np.ndarray) -> tuple[float, float, str]:
    """Friedman test across arms: `blocks` is blocks (seeds) x arms, complete rows only used.

    Returns (statistic, p, why); NaN and a reason where fewer than 3 arms or `MIN_SEEDS` blocks.
    """
    m = np.asarray(blocks, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"friedman needs a blocks x arms matrix, got shape {m.shape}")
    m = m[np.all(np.isfinite(m), axis=1)]
    if m.shape[1] < 3:
        return math.nan, math.nan, f"{m.shape[1]} arm(s); Friedman needs >= 3"
    if m.shape[0] < MIN_SEEDS:
        return math.nan, math.nan, (f"only {m.shape[0]} block(s) with every arm; a test needs "
                                    f">= {MIN_SEEDS}")
    if np.all(m == m[:, :1]):
        return 0.0, 1.0, ""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.friedmanchisquare(*m.T)
    return float(res.statistic), float(res.pvalue), ""


def outcome(diff: float, p_holm: float, tost_holm: float, mode: str, a: str, why: str,
            n: int, mde: float, rope: float) -> str:
    """The reading of one line: 'a better' / 'a worse' (Holm paired t < ALPHA, direction by
    `mode`), 'practically equivalent (within +-rope)' (Holm TOST < ALPHA; it wins over a
    difference smaller than the rope), else 'inconclusive: with n seeds the smallest effect
    this can detect is X'. Never "no detectable difference"."""
    if why or not math.isfinite(p_holm):
        return f"inconclusive: no test ({why or 'no p-value'})"
    if math.isfinite(tost_holm) and tost_holm < ALPHA:
        return f"practically equivalent (within +-{rope:g})"
    if p_holm < ALPHA and diff != 0:
        good = diff > 0 if mode == "max" else diff < 0
        return f"{a} better" if good else f"{a} worse"
    detect = "n/a" if not math.isfinite(mde) else f"{mde:.4f}"
    return f"inconclusive: with {n} seeds the smallest effect this can detect is {detect}"


def kind_of(verdict: str) -> str:
    """'better' / 'worse' / 'equivalent' / 'inconclusive' of an outcome string."""
    if verdict.startswith("practically equivalent"):
        return "equivalent"
    if verdict.startswith("inconclusive"):
        return "inconclusive"
    return "better" if verdict.endswith(" better") else "worse"


def average_ranks(blocks: pd.DataFrame, mode: str) -> pd.Series:
    """Mean rank of each arm over the blocks (1 = best; ties share the average rank)."""
    sign = -1.0 if mode == "max" else 1.0
    ranks = np.vstack([stats.rankdata(sign * row) for row in blocks.to_numpy(float)])
    return pd.Series(ranks.mean(axis=0), index=blocks.columns).sort_values()


def nemenyi(blocks: pd.DataFrame) -> pd.DataFrame:
    """Nemenyi post-hoc p-values after Friedman (scikit-posthocs), arms x arms."""
    import scikit_posthocs as sp

    return sp.posthoc_nemenyi_friedman(blocks.reset_index(drop=True))


def critical_difference(k: int, n: int, alpha: float = ALPHA) -> float:
    """Demšar's (2006) Nemenyi critical difference of average ranks for k arms, n blocks: the
    studentized range quantile (scipy) / sqrt(2) * sqrt(k (k + 1) / (6 n))."""
    q = stats.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2)
    return float(q * math.sqrt(k * (k + 1) / (6.0 * n)))
