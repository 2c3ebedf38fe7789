"""suite.summary.stats against scipy and statsmodels on fixed inputs: intervals, paired tests,
Holm, Friedman, TOST equivalence, the minimal detectable effect and the four outcomes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from suite.summary.stats import (
    DEFAULT_ROPE,
    MIN_SEEDS,
    friedman,
    holm,
    kind_of,
    mean_ci,
    min_detectable_effect,
    outcome,
    paired,
)

A = [0.61, 0.65, 0.58, 0.70, 0.66, 0.64, 0.69]
B = [0.60, 0.61, 0.57, 0.66, 0.62, 0.65, 0.64]


def test_mean_ci_matches_scipy_t_interval() -> None:
    mean, half, n = mean_ci(A + [float("nan")])
    lo, hi = stats.t.interval(0.95, len(A) - 1, loc=np.mean(A), scale=stats.sem(A))
    assert n == len(A) and mean == pytest.approx(np.mean(A))
    assert (mean - half, mean + half) == pytest.approx((lo, hi))
    one = mean_ci([0.5])
    assert one[0] == 0.5 and math.isnan(one[1]) and one[2] == 1
    assert mean_ci([])[2] == 0


def test_holm_matches_statsmodels_and_hand() -> None:
    p = np.array([0.001, 0.2, 0.013, 0.04, 0.5, 0.03])
    np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1])
    # sorted 0.01, 0.03, 0.04 -> 0.03, 0.06, max(0.06, 0.04) = 0.06
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    # NaN is not part of the family (m = 3)
    out = holm([0.5, 0.01, float("nan"), 0.6])
    np.testing.assert_allclose(out[[0, 1, 3]], [1.0, 0.03, 1.0])
    assert math.isnan(out[2])
    assert np.isnan(holm([float("nan")])).all()


def test_paired_effect_size_ci_and_tests_match_scipy() -> None:
    r = paired(A, B)
    d = np.subtract(A, B)
    lo, hi = stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=stats.sem(d))
    assert r.n == 7 and r.why == ""
    assert r.diff == pytest.approx(d.mean())
    assert (r.ci_low, r.ci_high) == pytest.approx((lo, hi))
    assert r.dz == pytest.approx(d.mean() / d.std(ddof=1))
    assert r.t_p == pytest.approx(stats.ttest_rel(A, B).pvalue)
    assert r.wilcoxon_p == pytest.approx(stats.wilcoxon(A, B).pvalue)
    # 5 pairs: Wilcoxon cannot reach 0.05 (2 / 2**5), so it is not reported; t still is.
    r5 = paired(A[:5], B[:5])
    assert math.isfinite(r5.t_p) and math.isnan(r5.wilcoxon_p)


def test_fewer_than_three_seeds_gives_no_p_value_and_says_why() -> None:
    # The one-seed case that once printed "p<0.001: beyond noise" (differences of -4/610).
    for n in (1, 2):
        r = paired([0.5 - 4 / 610] * n, [0.5] * n)
        assert math.isnan(r.t_p) and math.isnan(r.wilcoxon_p)
        assert f"only {n} paired seed(s)" in r.why and f">= {MIN_SEEDS}" in r.why
        assert outcome(r.diff, math.nan, math.nan, "max", "ocfb", r.why, r.n, r.mde,
                       r.rope).startswith("inconclusive: no test (only")
    assert math.isnan(paired([0.5], [0.4]).ci_low)
    with pytest.raises(ValueError, match="differ in length"):
        paired([1.0, 2.0], [1.0])


def test_friedman_matches_scipy_and_refuses_small_designs() -> None:
    m = np.array([[0.60, 0.62, 0.55], [0.64, 0.66, 0.58], [0.59, 0.65, 0.57],
                  [0.61, 0.63, 0.60], [np.nan, 0.7, 0.6]])
    stat, p, why = friedman(m)
    ref = stats.friedmanchisquare(*m[:4].T)  # the incomplete block is left out
    assert why == "" and stat == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue)
    assert "needs >= 3" in friedman(m[:, :2])[2]
    s2, p2, why2 = friedman(m[:2])
    assert math.isnan(p2) and "only 2 block(s)" in why2


def _say(diff: float, p: float, tost: float = 1.0, mode: str = "max") -> str:
    return outcome(diff, p, tost, mode, "ocfb", "", 5, 0.0123, DEFAULT_ROPE)


def test_outcome_wording_follows_mode_holm_and_equivalence() -> None:
    assert _say(0.1, 0.004) == "ocfb better"
    assert _say(-0.1, 0.004) == "ocfb worse"
    assert _say(-0.1, 0.004, mode="min") == "ocfb better"
    # Not significant and not equivalent: inconclusive, naming what the seeds could detect.
    said = _say(0.1, 0.2)
    assert said == "inconclusive: with 5 seeds the smallest effect this can detect is 0.0123"
    assert "no detectable difference" not in said
    # TOST within the rope wins, even over a (tiny) significant difference.
    assert _say(0.002, 0.01, tost=0.01) == "practically equivalent (within +-0.01)"
    assert [kind_of(x) for x in (_say(0.1, 0.004), _say(-0.1, 0.004), _say(0.1, 0.2),
                                 _say(0.0, 1.0, 0.0))] == [
        "better", "worse", "inconclusive", "equivalent"]


def test_tost_matches_the_textbook_two_one_sided_tests() -> None:
    # Schuirmann (1987): p = max of the two one-sided t-tests against -rope and +rope.
    a = np.array([0.612, 0.640, 0.598, 0.655, 0.630, 0.621])
    b = np.array([0.610, 0.636, 0.601, 0.650, 0.628, 0.622])
    d = a - b
    se, df = d.std(ddof=1) / math.sqrt(d.size), d.size - 1
    lower = stats.t.sf((d.mean() + 0.01) / se, df)  # H0: mean <= -rope
    upper = stats.t.cdf((d.mean() - 0.01) / se, df)  # H0: mean >= +rope
    r = paired(a, b, rope=0.01)
    assert r.tost_p == pytest.approx(max(lower, upper)) and r.tost_p < 0.05
    assert outcome(r.diff, r.t_p, r.tost_p, "max", "a", "", r.n, r.mde,
                   r.rope).startswith("practically equivalent")
    # The same differences against a rope they do not fit in: not equivalent.
    assert paired(a, b, rope=0.001).tost_p > 0.05
    with pytest.raises(ValueError, match="rope must be a positive number"):
        paired(a, b, rope=0.0)


def test_identical_arms_read_practically_equivalent() -> None:
    x = [0.61, 0.65, 0.58, 0.70, 0.66]
    r = paired(x, list(x))
    assert r.diff == 0 and r.t_p == 1.0 and r.tost_p == 0.0 and r.mde == 0.0
    said = outcome(r.diff, r.t_p, r.tost_p, "max", "ocfb", r.why, r.n, r.mde, r.rope)
    assert said == "practically equivalent (within +-0.01)"
    assert "no detectable difference" not in said


def test_min_detectable_effect_has_80_percent_power_under_a_paired_t() -> None:
    from statsmodels.stats.power import TTestPower

    sd, n = 0.02, 5
    mde = min_detectable_effect(sd, n)
    assert TTestPower().power(effect_size=mde / sd, nobs=n, alpha=0.05) == pytest.approx(0.8)
    # and from first principles: the noncentral t with df n-1, noncentrality d sqrt(n)
    crit = stats.t.ppf(0.975, n - 1)
    nc = mde / sd * math.sqrt(n)
    power = stats.nct.sf(crit, n - 1, nc) + stats.nct.cdf(-crit, n - 1, nc)
    assert power == pytest.approx(0.8, abs=1e-6)
    r = paired(A, B)
    assert r.mde == pytest.approx(min_detectable_effect(np.std(np.subtract(A, B), ddof=1), 7))
    assert math.isnan(min_detectable_effect(0.02, 1))
