"""suite.summary.stats against scipy and statsmodels on fixed inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from suite.summary.stats import MIN_SEEDS, friedman, holm, mean_ci, paired, verdict

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
        assert verdict(r.diff, math.nan, "max", "ocfb", r.why).startswith("no test (only")
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
    assert math.isnan(p2) and "only 2 seed(s)" in why2


def test_verdict_wording_follows_mode_and_holm() -> None:
    assert verdict(0.1, 0.004, "max", "ocfb", "") == "ocfb better"
    assert verdict(-0.1, 0.004, "max", "ocfb", "") == "ocfb worse"
    assert verdict(-0.1, 0.004, "min", "ocfb", "") == "ocfb better"
    assert verdict(0.1, 0.2, "max", "ocfb", "") == "no detectable difference"
