"""Statistics of the summaries: means with t intervals, paired differences on seeds, tests.

Replicates are seeds. A paired comparison matches two arms on seed only (same seed = same data,
split and initial negatives), never on configuration. With fewer than `MIN_SEEDS` pairs no test
is run: two numbers cannot say whether a difference is noise, and a zero-variance difference of
one pair once printed "p < 0.001" (issue 9). Multiple comparisons are Holm-corrected with
statsmodels; the Friedman test (scipy) asks whether any of three or more arms differ.
"""

from __future__ import annotations

import gc
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests

CI_LEVEL = 0.95
ALPHA = 0.05
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
        # statsmodels' Holm ends with gc.collect(); in a sweep driver (Ray, torch, pandas on the
        # heap) that full collection cost 2.2 of the summary's 5 s (py-spy, 114 trials).
        # Frozen objects are skipped by a collection, and this call creates no cycles to free.
        gc.freeze()
        try:
            out[ok] = multipletests(p[ok], method="holm")[1]
        finally:
            gc.unfreeze()
    return out


@dataclass(frozen=True)
class Paired:
    """One paired comparison: a minus b over the seeds both have.

    `diff` and [`ci_low`, `ci_high`] are the mean difference and its 95 % t interval (the effect
    size, in the metric's units); `dz` is the standardised effect (mean / sd of the differences).
    `t_p` / `wilcoxon_p` are two-sided, NaN where no test ran; `why` says why not.
    """

    n: int
    diff: float
    ci_low: float
    ci_high: float
    dz: float
    t_p: float
    wilcoxon_p: float
    why: str

    def as_dict(self) -> dict[str, float | int | str]:
        """Columns of a comparison table."""
        return {"n_pairs": self.n, "diff": self.diff, "ci_low": self.ci_low,
                "ci_high": self.ci_high, "dz": self.dz, "t_p": self.t_p,
                "wilcoxon_p": self.wilcoxon_p, "why_no_test": self.why}


def paired(a: Sequence[float], b: Sequence[float], level: float = CI_LEVEL) -> Paired:
    """Paired difference a - b (already matched, one entry per seed): effect size with CI, paired
    t and Wilcoxon p-values. Pairs with a non-finite side are dropped."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"paired samples differ in length: {x.size} vs {y.size}")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    d = x - y
    mean, half, n = mean_ci(d, level)
    sd = float(d.std(ddof=1)) if n >= 2 else math.nan
    dz = mean / sd if n >= 2 and sd > 0 else math.nan
    lo, hi = (mean - half, mean + half) if n >= 2 else (math.nan, math.nan)
    if n < MIN_SEEDS:
        why = f"only {n} paired seed(s); a test needs >= {MIN_SEEDS} independent seeds"
        return Paired(n, mean, lo, hi, dz, math.nan, math.nan, why)
    if np.all(d == 0):
        # No difference at all: no evidence of one (scipy returns NaN from 0 / 0).
        return Paired(n, 0.0, 0.0, 0.0, math.nan, 1.0,
                      1.0 if n >= WILCOXON_MIN_N else math.nan, "")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        t_p = float(stats.ttest_rel(x, y).pvalue)
        w_p = math.nan
        if np.count_nonzero(d) >= WILCOXON_MIN_N:
            w_p = float(stats.wilcoxon(x, y).pvalue)
    return Paired(n, mean, lo, hi, dz, t_p, w_p, "")


def friedman(blocks: np.ndarray) -> tuple[float, float, str]:
    """Friedman test across arms: `blocks` is seeds x arms (complete rows only are used).

    Returns (statistic, p, why); NaN and a reason where fewer than 3 arms or `MIN_SEEDS` seeds.
    """
    m = np.asarray(blocks, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"friedman needs a seeds x arms matrix, got shape {m.shape}")
    m = m[np.all(np.isfinite(m), axis=1)]
    if m.shape[1] < 3:
        return math.nan, math.nan, f"{m.shape[1]} arm(s); Friedman needs >= 3"
    if m.shape[0] < MIN_SEEDS:
        return math.nan, math.nan, (f"only {m.shape[0]} seed(s) with every arm; a test needs "
                                    f">= {MIN_SEEDS}")
    if np.all(m == m[:, :1]):
        return 0.0, 1.0, ""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.friedmanchisquare(*m.T)
    return float(res.statistic), float(res.pvalue), ""


def verdict(diff: float, p_holm: float, mode: str, a: str, why: str) -> str:
    """'a better' / 'a worse' / 'no detectable difference' / 'no test (why)'.

    A difference counts only when the Holm-corrected paired t-test is below ALPHA; the direction
    follows `mode` (for a metric to minimise, a negative difference is better)."""
    if why or not math.isfinite(p_holm):
        return f"no test ({why or 'no p-value'})"
    if p_holm >= ALPHA or diff == 0:
        return "no detectable difference"
    good = diff > 0 if mode == "max" else diff < 0
    return f"{a} better" if good else f"{a} worse"
