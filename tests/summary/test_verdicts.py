"""Equal-budget verdicts: pairing on seeds only, Holm across comparisons, the verdict lines,
thresholds against term 0, and the cross-seed (nested) estimate of best-per-model."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from suite.summary.compare import SELECTED, strategy_verdicts, threshold_verdicts, verdict_line
from suite.summary.selection import select
from suite.summary.tables import best_per_model, nested_estimate

SHIFT = {"ocfb": 0.10, "random-replace": 0.03, "resample-all": 0.09, "static": 0.0}


def _value(strategy: str, cfg: int, seed: int, term: int) -> float:
    # Seeds move every arm together (that is what pairing removes); configs differ a little.
    noise = 0.004 * math.sin(7 * seed + 3 * cfg + term + len(strategy))
    return 0.5 + 0.05 * seed + 0.01 * cfg + SHIFT[strategy] * term / 3 + noise


def _frames(seeds: int, strategies=tuple(SHIFT), configs=(0, 1), terms=4):
    trials, rows = [], []
    for s in strategies:
        for c in configs:
            for seed in range(seeds):
                tid = f"{s}-{c}-{seed}"
                trials.append({"trial_id": tid, "status": "completed", "config.model": "neumf",
                               "config.strategy": s, "config.lr": 0.001 * (c + 1),
                               "config.threshold": 0.5, "config.seed": seed})
                for t in range(terms):
                    v = _value(s, c, seed, t)
                    rows.append({"trial_id": tid, "term": t, "val_hr@10": v,
                                 "test_hr@10": v - 0.02, "config.strategy": s,
                                 "config.seed": seed, "config.threshold": 0.5})
    trials, terms_df = pd.DataFrame(trials), pd.DataFrame(rows)
    return select(trials, terms_df, "val_hr@10", "max"), terms_df


def test_pairs_match_on_seed_only_and_average_configurations() -> None:
    sel, terms = _frames(3, strategies=("ocfb", "static"))
    comp, _ = strategy_verdicts(sel, terms, "test_hr@10", "max")
    r = comp[(comp["budget"] == 3) & (comp["b"] == "static")].iloc[0]
    assert r["n_pairs"] == 3  # two configurations per arm and 3 seeds: 3 pairs, not 6
    per_seed = [np.mean([_value("ocfb", c, s, 3) - _value("static", c, s, 3) for c in (0, 1)])
                for s in range(3)]
    assert r["diff"] == pytest.approx(np.mean(per_seed))
    lo, hi = stats.t.interval(0.95, 2, loc=np.mean(per_seed), scale=stats.sem(per_seed))
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((lo, hi))
    ocfb = [np.mean([_value("ocfb", c, s, 3) for c in (0, 1)]) for s in range(3)]
    static = [np.mean([_value("static", c, s, 3) for c in (0, 1)]) for s in range(3)]
    assert r["t_p"] == pytest.approx(stats.ttest_rel(ocfb, static).pvalue)


def test_holm_across_comparisons_per_budget_and_friedman_across_arms() -> None:
    sel, terms = _frames(6)
    comp, fried = strategy_verdicts(sel, terms, "test_hr@10", "max")
    at = comp[comp["budget"] == 3]
    # each vs ocfb (3), and the two others vs resample-all
    assert list(zip(at["a"], at["b"], strict=True)) == [
        ("ocfb", "random-replace"), ("ocfb", "resample-all"), ("ocfb", "static"),
        ("resample-all", "random-replace"), ("resample-all", "static")]
    np.testing.assert_allclose(at["t_p_holm"], multipletests(at["t_p"], method="holm")[1])
    f = fried[fried["budget"] == 3].iloc[0]
    mat = [[np.mean([_value(s, c, seed, 3) - 0.02 for c in (0, 1)]) for s in
            ("ocfb", "random-replace", "resample-all", "static")] for seed in range(6)]
    ref = stats.friedmanchisquare(*np.array(mat).T)
    assert f["p"] == pytest.approx(ref.pvalue) and f["n_seeds"] == 6
    # The selected term is its own budget: each trial at its validation peak (term 3 here).
    assert SELECTED in set(comp["budget"])
    static = at[at["b"] == "static"].iloc[0]
    assert static["verdict"] == "ocfb better"
    line = verdict_line(static, "test_hr@10")
    assert line.startswith("ocfb vs static at term 3: +0.")
    assert "(6 seeds), Holm p " in line and line.endswith(": ocfb better")
    assert at[at["b"] == "random-replace"].iloc[0]["verdict"] == "ocfb better"


def test_one_seed_sweep_gives_no_p_value_and_the_reason() -> None:
    sel, terms = _frames(1, strategies=("ocfb", "static"), configs=(0,))
    comp, fried = strategy_verdicts(sel, terms, "test_hr@10", "max")
    assert comp["t_p"].isna().all() and comp["t_p_holm"].isna().all()
    r = comp[comp["budget"] == 3].iloc[0]
    assert r["verdict"].startswith("no test (only 1 paired seed(s)")
    assert "no test" in verdict_line(r, "test_hr@10") and "Holm p" not in verdict_line(
        r, "test_hr@10")
    assert fried["p"].isna().all()


def test_thresholds_against_their_own_term_zero() -> None:
    rows, trials = [], []
    for th, slope in ((0.3, 0.02), (0.9, -0.01)):
        for seed in range(4):
            tid = f"{th}-{seed}"
            trials.append({"trial_id": tid, "status": "completed", "config.model": "gmf",
                           "config.threshold": th, "config.seed": seed})
            for t in range(3):
                v = 0.5 + 0.1 * seed + slope * t + 0.001 * ((seed * 5 + t) % 3)
                rows.append({"trial_id": tid, "term": t, "val_hr@10": v, "test_hr@10": v,
                             "config.threshold": th, "config.seed": seed})
    terms = pd.DataFrame(rows)
    sel = select(pd.DataFrame(trials), terms, "val_hr@10", "max")
    comp = threshold_verdicts(sel, terms, "test_hr@10", "max")
    r = comp[(comp["budget"] == 2) & (comp["threshold"] == 0.3)].iloc[0]
    gains = [terms[(terms["trial_id"] == f"0.3-{s}") & (terms["term"] == 2)]["test_hr@10"].iat[0]
             - terms[(terms["trial_id"] == f"0.3-{s}") & (terms["term"] == 0)]["test_hr@10"]
             .iat[0] for s in range(4)]
    assert r["diff"] == pytest.approx(np.mean(gains)) and r["n_pairs"] == 4
    assert r["verdict"] == "term 2 better"
    assert comp[(comp["budget"] == 2) & (comp["threshold"] == 0.9)].iloc[0]["verdict"] == (
        "term 2 worse")
    worse = comp[(comp["budget"] == SELECTED) & (comp["threshold"] == 0.9)].iloc[0]
    assert worse["diff"] == pytest.approx(0.0)  # val peaks at term 0: selected = term 0


def test_best_per_model_chooses_on_validation_and_reports_the_nested_estimate() -> None:
    # config A: best validation on seeds 0-1, bad on seed 2; config B: steady.
    val = {"A": [0.9, 0.9, 0.1], "B": [0.6, 0.6, 0.6]}
    test = {"A": [0.3, 0.4, 0.2], "B": [0.6, 0.7, 0.8]}
    trials = pd.DataFrame([
        {"trial_id": f"{c}{s}", "status": "completed", "config.model": "gmf", "config.lr": c,
         "config.seed": s, "best.val_hr@10": val[c][s], "best.test_hr@10": test[c][s],
         "best_term": 1} for c in "AB" for s in range(3)])
    sel = select(trials, None, "val_hr@10", "max")
    best = best_per_model(sel, None, "val_hr@10", "max", "holdout", ["lr", "seed"])
    r = best.iloc[0]
    assert r["lr"] == "A"  # mean val 0.633 > 0.6
    assert r["test_hr@10"] == pytest.approx(0.3) and r["n_seeds"] == 3
    # Held-out seed 0: on seeds 1, 2 A scores 0.5 < B 0.6 -> B's test at seed 0, 0.6;
    # seed 1: likewise B's 0.7; seed 2: A 0.9 > B 0.6 -> A's 0.2.
    mean, _, n = nested_estimate(sel, ["config.lr"], "val_hr@10", "max")
    assert n == 3 and mean == pytest.approx(0.5)
    assert r["nested"] == pytest.approx(0.5) and r["overstates"] == pytest.approx(-0.2)
    # Picking on test needs the per-term history; without it there is no optimistic number.
    assert math.isnan(r["optimistic"])
