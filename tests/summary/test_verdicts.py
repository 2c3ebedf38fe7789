"""Equal-budget verdicts: pairing on seeds only, Holm across comparisons, the verdict lines,
thresholds against static (or term 0, labelled with its extra epochs), the verdict metric, and
the cross-seed (nested) estimate of best-per-model."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from suite.summary.frames import select
from suite.summary.rendering import verdict_line
from suite.summary.tables import best_per_model, nested_estimate
from suite.summary.verdicts import (
    SELECTED,
    VerdictPlan,
    configs_per_seed,
    key_rows,
    model_pairs,
    model_verdicts,
    strategy_pairs,
    strategy_verdicts,
    threshold_verdicts,
    tunable,
    verdict_plan,
)

PLAN = VerdictPlan("test_hr@10", None, 0.01, "max")

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
    comp, _ = strategy_verdicts(sel, terms, PLAN)
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
    comp, fried = strategy_verdicts(sel, terms, PLAN)
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
    line = verdict_line(static, PLAN)
    assert line.startswith("ocfb vs static at term 3: +0.")
    assert "(6 seeds), Holm p " in line and line.endswith(": ocfb better")
    assert at[at["b"] == "random-replace"].iloc[0]["verdict"] == "ocfb better"


def test_one_seed_sweep_gives_no_p_value_and_the_reason() -> None:
    sel, terms = _frames(1, strategies=("ocfb", "static"), configs=(0,))
    comp, fried = strategy_verdicts(sel, terms, PLAN)
    assert comp["t_p"].isna().all() and comp["t_p_holm"].isna().all()
    r = comp[comp["budget"] == 3].iloc[0]
    assert r["verdict"].startswith("inconclusive: no test (only 1 paired seed(s)")
    assert "no test" in verdict_line(r, PLAN) and "Holm p" not in verdict_line(r, PLAN)
    assert fried["p"].isna().all()


def test_thresholds_against_their_own_term_zero_name_the_extra_epochs() -> None:
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
    comp = threshold_verdicts(sel, terms, PLAN)
    r = comp[(comp["budget"] == 2) & (comp["threshold"] == 0.3)].iloc[0]
    gains = [terms[(terms["trial_id"] == f"0.3-{s}") & (terms["term"] == 2)]["test_hr@10"].iat[0]
             - terms[(terms["trial_id"] == f"0.3-{s}") & (terms["term"] == 0)]["test_hr@10"]
             .iat[0] for s in range(4)]
    assert r["diff"] == pytest.approx(np.mean(gains)) and r["n_pairs"] == 4
    assert r["verdict"] == "threshold 0.3 better" and r["b"] == "term 0"
    assert r["extra_epochs"] == 2  # term 2, one epoch per term (the default)
    line = verdict_line(r, PLAN)
    assert line.startswith("threshold 0.3: term 2 vs term 0 (includes the effect of 2.0 extra "
                           "epochs): +0.0")
    assert comp[(comp["budget"] == 2) & (comp["threshold"] == 0.9)].iloc[0]["verdict"] == (
        "threshold 0.9 worse")
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


def _epochs_history(static: bool, seeds: int = 6, terms: int = 4):
    """ocfb gains 0.02 per term over its term 0, but only because it trains longer: `static`
    (no replacement, same epochs) gains exactly as much, up to seed noise of +-0.001."""
    trials, rows = [], []
    arms = ("ocfb", "static") if static else ("ocfb",)
    for arm in arms:
        for seed in range(seeds):
            tid = f"{arm}-{seed}"
            trials.append({"trial_id": tid, "status": "completed", "config.model": "neumf",
                           "config.strategy": arm, "config.seed": seed, "config.epochs_per_term": 2,
                           "config.threshold": 0.5 if arm == "ocfb" else None})
            for t in range(terms):
                jitter = 0.001 * math.sin(11 * seed + 5 * t + (arm == "ocfb"))
                v = 0.5 + 0.03 * seed + 0.02 * t + jitter
                rows.append({"trial_id": tid, "term": t, "val_hr@10": v, "test_hr@10": v,
                             **{k: v for k, v in trials[-1].items() if k.startswith("config.")}})
    terms_df = pd.DataFrame(rows)
    return select(pd.DataFrame(trials), terms_df, "val_hr@10", "max"), terms_df


def test_threshold_beats_term_zero_but_is_no_better_than_static() -> None:
    sel, terms = _epochs_history(static=False)
    vs_zero = key_rows(threshold_verdicts(sel, terms, PLAN), PLAN)
    last = vs_zero[vs_zero["budget"] == 3].iloc[0]
    assert last["b"] == "term 0" and last["verdict"] == "threshold 0.5 better"
    assert last["extra_epochs"] == 6  # 3 terms x 2 epochs per term
    assert "(includes the effect of 6.0 extra epochs)" in verdict_line(last, PLAN)

    sel, terms = _epochs_history(static=True)
    vs_static = key_rows(threshold_verdicts(sel, terms, PLAN), PLAN)
    assert set(vs_static["b"]) == {"static"}  # no term-0 line once static ran
    for _, r in vs_static.iterrows():
        assert r["verdict"] == "practically equivalent (within +-0.01)"
        line = verdict_line(r, PLAN)
        assert line.endswith("(no better than static)") and "better than static" in line
        assert abs(r["diff"]) < 0.002 and r["n_pairs"] == 6


def test_section_lines_are_one_holm_family_across_both_budgets() -> None:
    sel, terms = _frames(6)
    comp, _ = strategy_verdicts(sel, terms, PLAN)
    key = key_rows(comp, PLAN)
    assert set(key["budget"]) == {3, SELECTED} and len(key) == 10
    np.testing.assert_allclose(key["t_p_holm"], multipletests(key["t_p"], method="holm")[1])
    np.testing.assert_allclose(key["tost_p_holm"],
                               multipletests(key["tost_p"], method="holm")[1])


def test_verdict_plan_prefers_full_ranking_under_holdout_and_reads_the_rope() -> None:
    frame = pd.DataFrame({"sel.test_hr@10": [0.5], "sel.test_full_hr@10": [0.1]})
    plan = verdict_plan({}, "val_hr@10", "holdout", "max", [frame])
    assert (plan.metric, plan.beside, plan.rope) == ("test_full_hr@10", "test_hr@10", 0.01)
    # Only sampled numbers recorded: the sampled metric decides, nothing beside it.
    only = verdict_plan({}, "val_hr@10", "holdout", "max", [frame[["sel.test_hr@10"]]])
    assert (only.metric, only.beside) == ("test_hr@10", None)
    named = verdict_plan({"verdicts": {"metric": "test_hr@10", "rope": 0.02}}, "val_hr@10",
                         "holdout", "max", [frame])
    assert (named.metric, named.beside, named.rope) == ("test_hr@10", "test_full_hr@10", 0.02)
    assert verdict_plan({}, "val_hr@10", "paper", "max", [frame]).metric == "test_hr@10"
    with pytest.raises(ValueError, match=r"verdicts.rope must be a positive number"):
        verdict_plan({"verdicts": {"rope": -1}}, "val_hr@10", "holdout", "max", [frame])
    with pytest.raises(ValueError, match=r"verdicts.metric must be a test metric"):
        verdict_plan({"verdicts": {"metric": "val_hr@10"}}, "val_hr@10", "holdout", "max",
                     [frame])


def test_pairs_with_the_published_rivals_add_dns_and_the_filter_on_pop() -> None:
    arms = ["ocfb", "random-replace", "resample-all", "static", "ocfb-resample", "dns", "pop",
            "pop-ocfb", "srns"]
    pairs = strategy_pairs(arms)
    assert len(pairs) == len(set(pairs)) == 8 + 7 + 2 + 1  # vs ocfb, vs resample-all, vs dns
    assert ("dns", "pop") in pairs and ("dns", "srns") in pairs
    assert ("pop", "pop-ocfb") in pairs  # OCF-B's filter on top of the popularity sampler
    # without the rivals the family is what it was: no dns or pop pairs appear from nowhere
    assert strategy_pairs(["ocfb", "resample-all", "dns"]) == [
        ("ocfb", "resample-all"), ("ocfb", "dns"), ("resample-all", "dns")]


def _model_frames(seeds: int = 6):
    """neumf (two lr configurations), ease (one l2) and popularity on the same seeds."""
    trials, rows = [], []
    cells = [("neumf", 0.001, 0.02), ("neumf", 0.01, 0.0), ("ease", None, 0.01),
             ("popularity", None, -0.2)]
    for i, (model, lr, shift) in enumerate(cells):
        for seed in range(seeds):
            tid = f"{model}-{i}-{seed}"
            base = model != "neumf"
            trials.append({"trial_id": tid, "status": "completed", "config.model": model,
                           "config.lr": lr, "config.seed": seed,
                           "is_baseline": 1.0 if base else 0.0})
            for t in range(1 if base else 3):
                v = 0.5 + 0.03 * seed + shift + 0.01 * t + 0.002 * math.cos(5 * seed + i)
                rows.append({"trial_id": tid, "term": t, "val_hr@10": v, "test_hr@10": v - 0.02,
                             "config.seed": seed, "is_baseline": 1.0 if base else 0.0})
    return select(pd.DataFrame(trials), pd.DataFrame(rows), "val_hr@10", "max")


def test_model_verdicts_pair_each_best_configuration_on_seeds_and_flag_unequal_tuning() -> None:
    sel = _model_frames()
    best = best_per_model(sel, None, "val_hr@10", "max", "holdout")
    comp = model_verdicts(sel, best, PLAN)
    # neural vs each baseline; baselines are never compared among themselves here
    assert list(zip(comp["a"], comp["b"], strict=True)) == [("neumf", "ease"),
                                                            ("neumf", "popularity")]
    # neumf's best configuration is lr 0.001 (shift 0.02), at its selected term (term 2)
    pick = sel[(sel["config.model"] == "neumf") & (sel["config.lr"] == 0.001)]
    ease = sel[sel["config.model"] == "ease"]
    x = pick.sort_values("config.seed")["sel.test_hr@10"].to_numpy()
    y = ease.sort_values("config.seed")["sel.test_hr@10"].to_numpy()
    r = comp.iloc[0]
    assert r["n_pairs"] == 6 and r["diff"] == pytest.approx(np.mean(x - y))
    assert r["t_p"] == pytest.approx(stats.ttest_rel(x, y).pvalue)
    np.testing.assert_allclose(comp["t_p_holm"], multipletests(comp["t_p"], method="holm")[1])
    assert r["verdict"] == "neumf better"
    # neumf was the best of 2 configurations per seed, ease of 1: unequal; popularity has
    # nothing to tune, so its pair is not flagged
    assert configs_per_seed(sel, "neumf") == 2 and configs_per_seed(sel, "ease") == 1
    assert list(comp["budgets_differ"]) == [True, False]
    assert not tunable("popularity") and tunable("ease") and tunable("neumf")
    assert model_pairs(["gmf", "mlp", "ease", "als"], ["gmf", "mlp"]) == [
        ("gmf", "mlp"), ("gmf", "ease"), ("gmf", "als"), ("mlp", "ease"), ("mlp", "als")]


def test_model_verdicts_read_the_recorded_tuning_budget() -> None:
    sel = _model_frames()
    sel = sel[(sel["config.model"] != "neumf") | (sel["config.lr"] == 0.001)].copy()
    sel["config.budget"] = np.where(sel["config.model"] == "neumf", "searched, 24 proposals",
                                    "fixed defaults")
    best = best_per_model(sel, None, "val_hr@10", "max", "holdout")
    comp = model_verdicts(sel, best, PLAN)
    # one configuration each now: only the recorded budgets differ
    assert configs_per_seed(sel, "neumf") == 1
    flags = dict(zip(comp["b"], comp["budgets_differ"], strict=True))
    assert flags == {"ease": True, "popularity": False}
    sel["config.budget"] = "searched, 24 proposals"
    comp = model_verdicts(sel, best_per_model(sel, None, "val_hr@10", "max", "holdout"), PLAN)
    assert not comp["budgets_differ"].any()


def test_a_sweep_that_varies_the_protocol_gets_verdicts_per_protocol_never_pooled() -> None:
    sel, terms = _frames(seeds=5, strategies=("ocfb", "static"))
    # the same trials again under `holdout`, where ocfb gains nothing over static
    hold_sel, hold_terms = sel.copy(), terms.copy()
    for df in (hold_sel, hold_terms):
        df["trial_id"] = "h-" + df["trial_id"]
    ocfb = hold_terms["config.strategy"] == "ocfb"
    hold_terms.loc[ocfb, "test_hr@10"] -= SHIFT["ocfb"] * hold_terms.loc[ocfb, "term"] / 3
    hold_sel = select(hold_sel[[c for c in hold_sel if c.startswith("config.") or c in (
        "trial_id", "status")]], hold_terms, "val_hr@10", "max")
    sel["config.protocol"], hold_sel["config.protocol"] = "paper", "holdout"
    terms["config.protocol"], hold_terms["config.protocol"] = "paper", "holdout"
    both = pd.concat([sel, hold_sel], ignore_index=True)
    comp, _ = strategy_verdicts(both, pd.concat([terms, hold_terms], ignore_index=True), PLAN)
    last = comp[comp["budget"] == 3].set_index("model")
    assert set(last.index) == {"neumf, paper protocol", "neumf, holdout protocol"}
    assert list(last["protocol"]) == [m.split(", ")[1].split()[0] for m in last.index]
    # paper: ocfb's 0.10 shift survives; holdout: the difference is ~0 (pooled, it was ~0.05)
    assert last.loc["neumf, paper protocol", "diff"] == pytest.approx(0.10, abs=0.01)
    assert abs(last.loc["neumf, holdout protocol", "diff"]) < 0.01
    assert set(last["n_pairs"]) == {5}
