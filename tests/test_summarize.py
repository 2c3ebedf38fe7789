"""Summaries of a sweep: tables against answers computed independently here, baselines as
reference rows, partial sweeps, PNG sizes and summary.md's sections. Statistics, selection and
verdicts have their own tests in tests/summary/."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from suite.summary import (
    HOLDOUT_RANKING_METRICS,
    PAPER_REPORT_METRICS,
    SECTION_TITLES,
    axis_by_term,
    best_per_model,
    lead,
    leaderboard,
    missing_and_failed,
    pivot,
    protocol_gap,
    summarize_dir,
)


def _t_interval(vals: list[float]) -> tuple[float, float]:
    """The reference 95 % interval: scipy's t interval around the mean with the standard error."""
    v = np.asarray(vals, dtype=float)
    lo, hi = stats.t.interval(0.95, len(v) - 1, loc=v.mean(), scale=stats.sem(v))
    return float(lo), float(hi)


def _trial(tid: str, status: str = "completed", metrics: dict | None = None, **cfg) -> dict:
    row = {"trial_id": tid, "status": status, "error": None, "node_id": "n0",
           "wall_time_s": 1.0, "terms_done": 4}
    row.update({f"config.{k}": v for k, v in cfg.items()})
    for k, v in (metrics or {}).items():
        row[k] = v
    return row


# -- leaderboard --------------------------------------------------------------------------------

LB_VALUES = {
    ("gmf", 0.5): [0.60, 0.62, 0.64],
    ("gmf", 0.9): [0.50, 0.55, 0.52],
    ("mlp", 0.5): [0.70, 0.71, 0.75],
    ("mlp", 0.9): [0.58, 0.60, 0.66],
}


@pytest.fixture
def lb_trials() -> pd.DataFrame:
    rows = []
    for (model, th), vals in LB_VALUES.items():
        for seed, v in enumerate(vals):
            rows.append(_trial(f"{model}-{th}-{seed}", model=model, threshold=th, seed=seed,
                               metrics={"best.val_hr@10": v, "best.test_hr@10": v - 0.1,
                                        "best_term": seed + 1}))
    # Neither may count: an errored trial has no metrics; a running one is only partial.
    rows.append(_trial("err", "error", {"best.val_hr@10": np.nan}, model="gmf", threshold=0.5,
                       seed=3))
    rows.append(_trial("run", "running", {"best.val_hr@10": 0.99, "best_term": 1}, model="mlp",
                       threshold=0.5, seed=3))
    return pd.DataFrame(rows)


def test_leaderboard_means_cis_order(lb_trials: pd.DataFrame) -> None:
    board = leaderboard(lb_trials, "val_hr@10", "max", ["model", "threshold", "seed"])
    means = {k: float(np.mean(v)) for k, v in LB_VALUES.items()}
    order = sorted(means, key=means.get, reverse=True)
    assert list(zip(board["model"], board["threshold"], strict=True)) == order
    assert list(board["rank"]) == [1, 2, 3, 4]
    assert board.attrs["n_configs"] == 4
    for _, r in board.iterrows():
        vals = LB_VALUES[(r["model"], r["threshold"])]
        lo, hi = _t_interval(vals)
        assert r["mean"] == pytest.approx(np.mean(vals))
        assert r["ci_low"] == pytest.approx(lo) and r["ci_high"] == pytest.approx(hi)
        assert r["ci95"] == pytest.approx((hi - lo) / 2)
        assert r["n_seeds"] == 3
        assert r["sel_term"] == pytest.approx(2.0)  # mean of 1, 2, 3
        assert r["kind"] == "trained"
        assert r["test_hr@10"] == pytest.approx(np.mean(vals) - 0.1)
    assert "seed" not in board.columns


def test_leaderboard_min_mode_and_top(lb_trials: pd.DataFrame) -> None:
    board = leaderboard(lb_trials, "val_hr@10", "min", ["model", "threshold"], top=2)
    assert list(zip(board["model"], board["threshold"], strict=True)) == [
        ("gmf", 0.9), ("mlp", 0.9)]
    assert board.attrs["n_configs"] == 4
    with pytest.raises(ValueError, match="mode"):
        leaderboard(lb_trials, "val_hr@10", "best", ["model"])


# -- axis x term and pivots ---------------------------------------------------------------------


def _term_value(th: float, model: str, seed: int, term: int) -> float:
    slope = 0.1 if th == 0.3 else -0.05
    return 0.5 + slope * term + 0.01 * seed + (0.02 if model == "mlp" else 0.0)


@pytest.fixture
def th_terms() -> pd.DataFrame:
    rows = []
    for th in (0.6, 0.3):  # out of order on purpose
        for model in ("gmf", "mlp"):
            for seed in (0, 1):
                tid = f"{th}-{model}-{seed}"
                for term in range(4):
                    rows.append({"trial_id": tid, "term": term, "config.threshold": th,
                                 "config.model": model, "config.seed": seed,
                                 "val_hr@10": _term_value(th, model, seed, term)})
    # A diverged term carries NaN: it must not count.
    rows.append({"trial_id": "bad", "term": 3, "config.threshold": 0.3, "config.model": "gmf",
                 "config.seed": 9, "val_hr@10": np.nan})
    return pd.DataFrame(rows)


def test_axis_by_term_means_and_best_cell(th_terms: pd.DataFrame) -> None:
    cells = axis_by_term(th_terms, "threshold", "val_hr@10", "max")
    assert list(cells["threshold"].unique()) == [0.3, 0.6]
    expected = {}
    for th in (0.3, 0.6):
        for term in range(4):
            # Each seed averaged over the models first: n counts seeds, not trials.
            vals = [np.mean([_term_value(th, m, s, term) for m in ("gmf", "mlp")])
                    for s in (0, 1)]
            expected[(th, term)] = vals
            row = cells[(cells["threshold"] == th) & (cells["term"] == term)].iloc[0]
            lo, hi = _t_interval(vals)
            assert row["mean"] == pytest.approx(np.mean(vals))
            assert row["ci_low"] == pytest.approx(lo) and row["ci_high"] == pytest.approx(hi)
            assert row["n"] == 2
    best = max(expected, key=lambda k: np.mean(expected[k]))
    assert best == (0.3, 3)
    assert cells.attrs["best"] == best
    assert cells.attrs["best_value"] == pytest.approx(np.mean(expected[best]))
    worst = axis_by_term(th_terms, "threshold", "val_hr@10", "min").attrs["best"]
    assert worst == min(expected, key=lambda k: np.mean(expected[k])) == (0.6, 3)


def test_pivot_values_order_and_best() -> None:
    values = {}
    rows = []
    k = 0
    for neg, base in (("1000", 0.6), ("4x", 0.7), ("500", 0.5)):
        for model, add in (("gmf", 0.0), ("neumf", 0.05)):
            per_seed: dict[int, list[float]] = {0: [], 1: []}
            for th in (0.5, 0.9):
                for seed in (0, 1):
                    v = base + add + 0.01 * seed - (0.02 if th == 0.9 else 0.0) + 0.003 * k
                    k += 1
                    per_seed[seed].append(v)
                    rows.append(_trial(f"t{k}", negatives=neg, model=model, threshold=th,
                                       seed=seed, metrics={"best.val_hr@10": v}))
            # n = seeds: each seed's two thresholds are averaged first (4 trials, 2 seeds)
            values[(neg, model)] = [float(np.mean(per_seed[s])) for s in (0, 1)]
    rows.append(_trial("p", "pending", {"best.val_hr@10": np.nan}, negatives="500",
                       model="gmf", threshold=0.5, seed=2))
    cells = pivot(pd.DataFrame(rows), "negatives", "model", "val_hr@10", "max")
    # Natural order: absolute counts by value, then ratios.
    assert list(cells["negatives"].unique()) == ["500", "1000", "4x"]
    assert len(cells) == 6
    for _, r in cells.iterrows():
        vals = values[(r["negatives"], r["model"])]
        lo, hi = _t_interval(vals)
        assert r["mean"] == pytest.approx(np.mean(vals))
        assert r["ci_low"] == pytest.approx(lo) and r["ci_high"] == pytest.approx(hi)
        assert r["n"] == 2
    assert cells.attrs["best"] == max(values, key=lambda c: np.mean(values[c])) == ("4x", "neumf")
    with pytest.raises(KeyError, match="config.nope"):
        pivot(pd.DataFrame(rows), "negatives", "nope", "val_hr@10", "max")


# -- best per model and protocol gap ------------------------------------------------------------


def test_best_per_model_paper_report_columns() -> None:
    rows = []
    for model, th, base in (("gmf", 0.5, 0.70), ("gmf", 0.9, 0.80), ("mlp", 0.5, 0.75)):
        for seed in range(3):
            m = {f"best.{k}": base + 0.01 * seed + 0.001 * i
                 for i, k in enumerate(PAPER_REPORT_METRICS)}
            m["best.test_support_neg"] = 600.0 + seed
            m["best.val_auc"] = base + 0.01 * seed  # validation chooses the configuration
            m["best_term"] = seed
            rows.append(_trial(f"{model}{th}{seed}", model=model, threshold=th, seed=seed,
                               metrics=m))
    trials = pd.DataFrame(rows)
    best = best_per_model(trials, None, "val_auc", "max", "paper")
    assert list(best["model"]) == ["gmf", "mlp"]
    assert list(best["threshold"]) == [0.9, 0.5]
    gmf = best.iloc[0]
    for i, k in enumerate(PAPER_REPORT_METRICS):
        if k == "test_support_neg":
            assert gmf[k] == pytest.approx(601.0)
        else:
            assert gmf[k] == pytest.approx(np.mean([0.80 + 0.01 * s + 0.001 * i
                                                    for s in range(3)]))
    lo, hi = _t_interval([0.80, 0.81, 0.82])
    assert gmf["mean"] == pytest.approx(0.81) and gmf["ci95"] == pytest.approx((hi - lo) / 2)
    assert gmf["n_seeds"] == 3 and gmf["sel_term"] == pytest.approx(1.0)
    assert set(gmf["trials"].split(",")) == {"gmf0.90", "gmf0.91", "gmf0.92"}
    with pytest.raises(ValueError, match="test metric"):
        best_per_model(trials, None, "test_auc", "max", "paper")


def test_best_per_model_reads_the_history_and_keeps_baselines_apart() -> None:
    rows, term_rows = [], []
    for model in ("neumf", "gmf", "popularity"):
        for seed in range(2):
            tid = f"{model}{seed}"
            rows.append(_trial(tid, model=model, seed=seed))
            terms = range(1) if model == "popularity" else range(4)
            for term in terms:
                # val peaks at term 2 for the trained models; test keeps rising to term 3.
                val = 0.6 + 0.1 * (model == "neumf") + 0.01 * seed - 0.05 * abs(term - 2)
                rec = {"trial_id": tid, "term": term, "val_hr@10": val,
                       "test_hr@10": 0.5 + 0.1 * term + 0.01 * seed}
                if model == "popularity":
                    rec["is_baseline"] = 1.0
                term_rows.append(rec)
    best = best_per_model(pd.DataFrame(rows), pd.DataFrame(term_rows), "val_hr@10", "max",
                          "holdout")
    assert list(best["model"]) == ["gmf", "neumf", "popularity"]
    assert list(best["kind"]) == ["trained", "trained", "baseline"]
    assert best.iloc[1]["mean"] == pytest.approx(0.705)
    assert best.iloc[0]["test_hr@10"] == pytest.approx(0.705)  # term 2, not the test peak
    assert best.iloc[0]["final_test_hr@10"] == pytest.approx(0.805)
    assert best.iloc[2]["sel_term"] == 0 and best.iloc[2]["test_hr@10"] == pytest.approx(0.505)
    with pytest.raises(ValueError, match="protocol"):
        best_per_model(pd.DataFrame(rows), None, "val_hr@10", "max", "nope")


def test_leaderboard_shows_baselines_as_unranked_reference_rows(lb_trials: pd.DataFrame) -> None:
    base = [_trial(f"{m}-{l2}-{s}", model=m, threshold=0.5, seed=s, l2=l2,
                   metrics={"best.val_hr@10": v + 0.01 * s, "best.test_hr@10": v,
                            "best_term": 0, "is_baseline": 1.0})
            for m, l2, v in (("popularity", 500.0, 0.65), ("ease", 100.0, 0.80),
                             ("ease", 500.0, 0.75)) for s in range(3)]
    trials = pd.concat([lb_trials, pd.DataFrame(base)], ignore_index=True)
    board = leaderboard(trials, "val_hr@10", "max", ["model", "threshold", "l2", "seed"], top=2)
    assert board.attrs["n_configs"] == 4  # trained configurations only
    trained, ref = board[board["kind"] == "trained"], board[board["kind"] == "baseline"]
    assert list(trained["rank"]) == [1, 2] and ref["rank"].isna().all()
    # With `top`, one row per baseline model: its configuration with the best validation.
    assert list(ref["model"]) == ["ease", "popularity"] and ref["l2"].iat[0] == 100.0
    # Baselines ignore the loop's keys (threshold), popularity also EASE's l2: blank.
    assert ref["threshold"].isna().all() and pd.isna(ref["l2"].iat[1])
    full = leaderboard(trials, "val_hr@10", "max", ["model", "threshold", "l2", "seed"], top=None)
    assert (full["kind"] == "baseline").sum() == 3


def _gap_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    trials, terms = [], []
    spec = {  # protocol -> (term-0 AUC, last-term AUC) per seed
        "paper": [(0.60, 0.80), (0.62, 0.84)],
        "holdout": [(0.70, 0.75), (0.71, 0.76)],
    }
    for protocol, pairs in spec.items():
        for strategy in ("ocfb", "static"):
            for seed, (first, last) in enumerate(pairs):
                tid = f"{protocol}-{strategy}-{seed}"
                trials.append(_trial(tid, model="neumf", seed=seed, protocol=protocol,
                                     strategy=strategy))
                for term in range(3):
                    v = first + (last - first) * term / 2
                    if strategy == "static":
                        v = first  # static never moves: it must not dilute OCF-B's gain
                    terms.append({"trial_id": tid, "term": term, "test_auc": v})
    trials.append(_trial("dead", "error", model="neumf", seed=9, protocol="paper",
                         strategy="ocfb"))
    return pd.DataFrame(trials), pd.DataFrame(terms)


def test_protocol_gap_fraction_surviving() -> None:
    trials, terms = _gap_frames()
    gap = protocol_gap(trials, terms)
    auc = gap[gap["metric"] == "auc"].iloc[0]
    assert auc["model"] == "all"
    paper_gains, holdout_gains = [0.20, 0.22], [0.05, 0.05]
    assert auc["paper_gain"] == pytest.approx(np.mean(paper_gains))
    assert auc["holdout_gain"] == pytest.approx(np.mean(holdout_gains))
    assert auc["n_paper"] == 2 and auc["n_holdout"] == 2
    assert auc["survives"] == pytest.approx(np.mean(holdout_gains) / np.mean(paper_gains))
    lo, hi = _t_interval(paper_gains)
    assert auc["paper_ci95"] == pytest.approx((hi - lo) / 2)
    only_paper = trials[trials["config.protocol"] == "paper"]
    assert protocol_gap(only_paper, terms) is None


# -- notes ------------------------------------------------------------------------------------


def test_missing_and_failed_names_each_trial_and_why() -> None:
    trials = pd.DataFrame([
        _trial("ok", model="gmf", seed=0, metrics={"best.val_hr@10": 0.5}),
        {**_trial("boom", "error", model="mlp", seed=1, metrics={"best.val_hr@10": np.nan}),
         "error": "ValueError: negatives exceed free cells\nTraceback ..."},
        _trial("nan", "diverged", model="neumf", seed=0, metrics={"best.val_hr@10": np.nan}),
        _trial("later", "pending", model="gmf", seed=1),
        _trial("cut", "running", model="mlp", seed=0),
        _trial("asha", "stopped", model="neumf", seed=1, metrics={"best.val_hr@10": 0.4}),
    ])
    notes = missing_and_failed(trials, expected=8, objective="val_hr@10")
    text = "\n".join(notes)
    assert "boom (model=mlp, seed=1) errored" in text
    assert "negatives exceed free cells" in text and "Traceback" not in text
    assert "nan (model=neumf, seed=0) diverged (non-finite training loss)" in text
    assert "later (model=gmf, seed=1) is pending" in text
    assert "cut (model=mlp, seed=0) is still marked running" in text
    assert "stopped early by the scheduler" in text and "asha" in text
    assert "2 of 8 expected trial(s) are absent" in text
    assert not any("ok (" in n for n in notes)
    assert missing_and_failed(trials.iloc[:1], expected=1) == []


# -- summarize_dir ------------------------------------------------------------------------------

PNG_SHAPE = (800, 1200)  # 12 x 8 inches at 100 dpi


def _make_sweep(
    d: Path,
    protocols: tuple[str, ...] = ("holdout",),
    strategies: tuple[str, ...] = ("ocfb",),
    n_terms: int = 4,
    seeds: int = 3,
    extra_expected: int = 0,
    baselines: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A hand-made sweep folder in the runner's schema (suite/results.py); with `baselines`,
    one popularity trial per protocol and seed (one record, term 0, is_baseline 1.0)."""
    rng = np.random.default_rng(0)
    trials, terms = [], []
    k = 0
    for protocol in protocols:
        objective = "val_hr@10" if protocol == "holdout" else "val_auc"
        for model in ("gmf", "mlp", *(("popularity",) if baselines else ())):
            for th in (0.5, 0.8):
                for neg in ("500", "1000"):
                    for strategy in strategies:
                        for seed in range(seeds):
                            tid = f"t{k:03d}"
                            k += 1
                            hist = []
                            last = 0 if model == "popularity" else n_terms
                            if model == "popularity" and (th, neg, strategy) != (
                                    0.5, "500", strategies[0]):
                                continue  # a baseline ignores the loop's keys: one per seed
                            cfg = {"model": model, "threshold": th, "negatives": neg,
                                   "strategy": strategy, "seed": seed,
                                   "protocol": protocol, "layers": "32,16,8"}
                            for term in range(last + 1):
                                v = (0.5 + 0.05 * (model == "mlp") + 0.01 * term * (1 - th)
                                     + 0.02 * (strategy == "ocfb") + rng.normal(0, 0.005))
                                hist.append(_record(tid, term, v, cfg))
                            h = pd.DataFrame(hist)
                            bi = int(h[objective].idxmax())
                            row = _trial(tid, **cfg)
                            row.update(terms_done=last + 1, best_term=int(h["term"].iat[bi]))
                            for c in h.columns:
                                if c not in ("trial_id", "term") and not c.startswith("config."):
                                    row[f"final.{c}"] = h[c].iat[-1]
                                    row[f"best.{c}"] = h[c].iat[bi]
                            trials.append(row)
                            terms += hist
    tr, te = pd.DataFrame(trials), pd.DataFrame(terms)
    axes = ["model", "threshold", "negatives", "seed"]
    axes += ["strategy"] if len(strategies) > 1 else []
    axes += ["protocol"] if len(protocols) > 1 else []
    d.mkdir(parents=True, exist_ok=True)
    spec = {"name": "unit-sweep", "protocol": protocols[0],
            "objective": {"metric": "val_hr@10" if protocols[0] == "holdout" else "val_auc",
                          "mode": "max"},
            "axes": axes, "pivots": [["negatives", "model"], ["threshold", "model"]],
            "expected_trials": len(tr) + extra_expected}
    (d / "sweep.json").write_text(json.dumps(spec))
    return tr, te


def _record(tid: str, term: int, v: float, cfg: dict) -> dict:
    """One terms.parquet row of value `v` under the config's protocol (a baseline flagged)."""
    rec = {"trial_id": tid, "term": term, "train_loss": 0.3,
           "n_negatives": int(cfg["negatives"]), "n_replaced": 10 * term}
    if cfg["protocol"] == "holdout":
        rec.update({"val_hr@10": v, "test_auc": v + 0.1, "test_precision": v,
                    "test_recall": v, "test_f1": v})
        rec.update({m: v - 0.01 for m in HOLDOUT_RANKING_METRICS if m != "test_auc"})
    else:
        rec.update({m: v + 0.04 * term for m in PAPER_REPORT_METRICS})
        rec["val_auc"] = v + 0.03 * term
        rec["test_support_neg"] = rec["test_support_pos"] = 300.0
    if cfg["model"] == "popularity":
        rec["is_baseline"] = 1.0
    rec.update({f"config.{c}": x for c, x in cfg.items()})
    return rec


def _write(d: Path, trials: pd.DataFrame, terms: pd.DataFrame) -> None:
    trials.to_parquet(d / "trials.parquet", index=False)
    terms.to_parquet(d / "terms.parquet", index=False)


def _section_positions(md: str) -> list[int]:
    return [md.index(f"## {title}\n") for title in SECTION_TITLES]


def _check_pngs(summary, names: set[str]) -> None:  # noqa: ANN001 - a Summary
    from matplotlib.image import imread

    assert {p.name for p in summary.plots} == names
    for p in summary.plots:
        assert p.is_file() and p.stat().st_size > 10_000
        img = imread(p)
        assert img.shape[:2] == PNG_SHAPE
        assert float(np.std(img)) > 0.01  # something was drawn
    assert not list(summary.plots[0].parent.glob(".*.tmp"))  # no leftover temporary file


def test_summarize_dir_partial_holdout_sweep(tmp_path: Path) -> None:
    trials, terms = _make_sweep(tmp_path, strategies=("ocfb", "random-replace"), extra_expected=1)
    metric_cols = [c for c in trials.columns if c.startswith(("best.", "final."))]
    trials.loc[0, ["status", "error"]] = ["error", "RuntimeError: CUDA out of memory\nmore"]
    trials.loc[1, ["status", "error"]] = ["diverged", "training loss became nan at epoch 3"]
    trials.loc[[0, 1], metric_cols] = np.nan
    trials.loc[[0, 1], "terms_done"] = [0, 2]
    terms = terms[~((terms["trial_id"] == "t001") & (terms["term"] > 2))]
    _write(tmp_path, trials, terms)

    s = summarize_dir(tmp_path)
    md = (tmp_path / "summary.md").read_text()
    assert md == s.markdown
    assert md.startswith("# Sweep summary: unit-sweep\n")
    assert f"{len(trials)} present of {len(trials) + 1} expected" in md
    assert "`val_hr@10` (maximize)" in md
    pos = _section_positions(md)
    assert pos == sorted(pos)
    notes = "\n".join(s.notes)
    assert "t000" in notes and "errored" in notes and "CUDA out of memory" in notes
    assert "t001" in notes and "diverged" in notes
    assert "1 of" in notes and "absent" in notes
    for n in s.notes:
        assert n in md
    assert "t000" not in md.split("## 1. Leaderboard")[1]
    assert set(s.tables) == {"leaderboard", "best_per_model", "model_verdicts", "threshold_x_terms",
                             "negatives_x_model", "threshold_x_model", "strategies",
                             "strategies_by_term", "strategies_friedman", "threshold_verdicts",
                             "threshold_verdicts_by_term"}
    for name, df in s.tables.items():
        csv = pd.read_csv(tmp_path / "tables" / f"{name}.csv")
        assert len(csv) == len(df) and list(csv.columns) == [str(c) for c in df.columns]
    # 2 models x 2 thresholds x 2 negatives x 2 strategies: all in the CSV, top 10 in the text
    assert len(s.tables["leaderboard"]) == 16
    assert "Top 10 of 16 configuration(s)" in md
    # Equal budget: the verdict at the last term, with effect size, CI and Holm p.
    line = next(x for x in md.splitlines()
                if x.startswith("- ocfb vs random-replace at term 4 (gmf)"))
    # Decided on full ranking (the records hold it), the sampled metric beside it.
    assert ": +0.0" in line and "test_full_hr@10 (3 seeds), Holm p" in line
    assert ": ocfb better; beside it, +0.0" in line and "test_hr@10" in line
    assert line.endswith("ocfb better (agrees)")
    assert "- ocfb vs random-replace at the validation-selected term (gmf)" in md
    # The passing verdicts reach the Findings section, with their numbers.
    findings = md.split("## Findings")[1].split("## 1.")[0]
    assert ("- ocfb is better than random-replace at term 4 (gmf) on `test_full_hr@10`: "
            "difference +0.0") in findings and "Holm p" in findings and "3 seeds" in findings
    assert s.findings and all(f in findings for f in s.findings)
    assert "_Not applicable: the sweep has no completed OCF-B trials under both" in md
    _check_pngs(s, {"metrics_vs_term_holdout.png", "threshold_x_terms.png",
                    "strategy_differences.png"})
    # Summarizing again (as `resume` does) replaces every file in place.
    again = summarize_dir(tmp_path)
    assert again.markdown == s.markdown


def test_summarize_dir_paper_protocol_report_layout(tmp_path: Path) -> None:
    trials, terms = _make_sweep(tmp_path, protocols=("paper",), n_terms=2, seeds=2)
    _write(tmp_path, trials, terms)
    s = summarize_dir(tmp_path)
    sec2 = s.markdown.split("## 2. Best per model type")[1].split("## 3.")[0]
    for line in ("negative(0)", "positive(1)", "accuracy", "average", "AUC "):
        assert line in sec2
    best = s.tables["best_per_model"]
    assert set(PAPER_REPORT_METRICS) <= set(best.columns)
    assert "_Not applicable: the completed trials do not vary `strategy`._" in s.markdown
    assert "- Every trial completed, none is missing." in s.markdown
    _check_pngs(s, {"metrics_vs_term_paper.png", "threshold_x_terms.png"})


def test_summarize_dir_both_protocols_reports_the_gap(tmp_path: Path) -> None:
    trials, terms = _make_sweep(tmp_path, protocols=("holdout", "paper"), n_terms=2, seeds=2)
    _write(tmp_path, trials, terms)
    s = summarize_dir(tmp_path)
    gap = s.tables["protocol_gap"]
    auc = gap[(gap["metric"] == "auc") & (gap["model"] == "all")].iloc[0]
    # paper trials gain 0.04 / term more than holdout trials over 2 terms
    assert auc["paper_gain"] - auc["holdout_gain"] == pytest.approx(0.08, abs=0.01)
    sec7 = s.markdown.split("## 7. Protocol gap")[1]
    assert "survives" in sec7
    assert {"best_per_model_paper", "best_per_model_holdout"} <= set(s.tables)
    # paper trials have no val_hr@10: one note says so instead of one per trial
    assert sum("have no finite val_hr@10" in n for n in s.notes) == 1


def test_summarize_dir_with_nothing_finished(tmp_path: Path) -> None:
    trials, _ = _make_sweep(tmp_path, seeds=1, extra_expected=3)
    trials = trials[["trial_id", "status", "error", "node_id", "wall_time_s", "terms_done",
                     *[c for c in trials.columns if c.startswith("config.")]]].copy()
    trials["status"] = "pending"
    trials.to_parquet(tmp_path / "trials.parquet", index=False)  # no terms.parquet yet
    s = summarize_dir(tmp_path)
    assert s.plots == [] and s.tables == {}
    assert "terms.parquet is missing" in "\n".join(s.notes)
    assert "3 of 11 expected trial(s) are absent" in s.markdown
    assert "is pending" in s.markdown
    pos = _section_positions(s.markdown)
    assert pos == sorted(pos)


def test_summarize_dir_needs_sweep_json(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="sweep.json"):
        summarize_dir(tmp_path)


def test_per_term_table_leaves_out_early_stopped_trials(tmp_path: Path) -> None:
    # An ASHA-stopped trial has only early terms; mixing it in would make later terms average
    # the survivors only. Give stopped trials an absurd value: it must not reach the table.
    trials, terms = _make_sweep(tmp_path)
    stopped = trials["trial_id"].iloc[:4].tolist()
    trials.loc[trials["trial_id"].isin(stopped), "status"] = "stopped"
    terms = terms[~(terms["trial_id"].isin(stopped) & (terms["term"] > 1))].copy()
    terms.loc[terms["trial_id"].isin(stopped), "val_hr@10"] = 100.0
    _write(tmp_path, trials, terms)
    table = summarize_dir(tmp_path).tables["threshold_x_terms"]
    assert table["mean"].max() < 1.0
    full = terms[~terms["trial_id"].isin(stopped)]
    # each seed averaged first, then the mean over seeds
    want = (full[full["config.threshold"] == 0.5].groupby(["term", "config.seed"])["val_hr@10"]
            .mean().groupby("term").mean())
    got = table[table["threshold"] == 0.5].set_index("term")["mean"]
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy())


def test_summary_with_baselines_lists_them_as_reference_rows(tmp_path: Path) -> None:
    trials, terms = _make_sweep(tmp_path, seeds=3, baselines=True)
    _write(tmp_path, trials, terms)
    s = summarize_dir(tmp_path)
    board = s.tables["leaderboard"]
    ref = board[board["kind"] == "baseline"]
    assert list(ref["model"]) == ["popularity"] and ref["rank"].isna().all()
    assert int(ref["n_seeds"].iat[0]) == 3
    sec1 = s.markdown.split("## 1. Leaderboard")[1].split("## 2.")[0]
    ref_lines = [x for x in sec1.splitlines() if x.startswith("| ref | popularity")]
    assert len(ref_lines) == 1 and "fitted once" in ref_lines[0]
    best = s.tables["best_per_model"]
    assert list(best["kind"]) == ["trained", "trained", "baseline"]
    assert "popularity (baseline)" in s.markdown.split("## 2.")[1].split("## 3.")[0]
    # A baseline never looks trained for N terms: no row of it in the per-term tables.
    assert "popularity" not in s.markdown.split("## 3.")[1].split("## 4.")[0]


def test_one_seed_sweep_states_why_no_test_ran(tmp_path: Path) -> None:
    trials, terms = _make_sweep(tmp_path, strategies=("ocfb", "static"), seeds=1)
    _write(tmp_path, trials, terms)
    s = summarize_dir(tmp_path)
    sec5 = s.markdown.split("## 5.")[1].split("## 6.")[0]
    # gmf and mlp are never pooled: each model has its own lines
    assert "- ocfb vs static at term 4 (gmf): +0.0" in sec5
    assert ("inconclusive: no test (only 1 paired seed(s); a test needs >= 3 independent "
            "seeds)") in sec5
    lines = [x for x in sec5.splitlines() if x.startswith("- ocfb vs static")]
    assert len(lines) == 4  # the last term and the validation-selected term, per model
    assert all("Holm p" not in x and "better" not in x and "n/a" not in x for x in lines)
    assert s.tables["strategies_by_term"]["t_p"].isna().all()
    assert "Friedman" in sec5 and "not run" in sec5


def test_tune_then_confirm_tables_read_confirmation_trials_with_their_budget(
        tmp_path: Path) -> None:
    trials, terms = _make_sweep(tmp_path, seeds=4, baselines=True)
    # seeds 0-1 searched, seeds 2-3 confirm; the search trials get an absurd value that must
    # not reach any table.
    stage = np.where(trials["config.seed"] < 2, "search", "confirm")
    trials["config.stage"] = stage
    trials["config.budget"] = np.where(trials["config.model"] == "popularity",
                                       "fixed defaults", "searched, 8 proposals")
    search_ids = set(trials.loc[stage == "search", "trial_id"])
    terms.loc[terms["trial_id"].isin(search_ids), "val_hr@10"] = 50.0
    _write(tmp_path, trials, terms)
    s = summarize_dir(tmp_path)
    board = s.tables["leaderboard"]
    assert board["mean"].max() < 1.0 and set(board["n_seeds"]) == {2}
    assert "stage" not in board.columns and "budget" not in board.columns  # not axes
    assert set(board.loc[board["kind"] == "trained", "tuning_budget"]) == {
        "searched, 8 proposals"}
    assert list(board.loc[board["kind"] == "baseline", "tuning_budget"]) == ["fixed defaults"]
    assert "every table reads the" in s.markdown and "confirmation trial(s)" in s.markdown
    sec1 = s.markdown.split("## 1. Leaderboard")[1].split("## 2.")[0]
    assert "| selected term (mean) | tuning budget |" in sec1 and "fixed defaults" in sec1


def test_under_paper_every_test_comparison_says_each_arm_has_its_own_test_set(
        tmp_path: Path) -> None:
    for protocol in ("paper", "holdout"):
        d = tmp_path / protocol
        d.mkdir()
        _write(d, *_make_sweep(d, protocols=(protocol,), baselines=True))
        md = summarize_dir(d).markdown
        sec1 = md.split("## 1. Leaderboard")[1].split("## 2.")[0]
        findings = [ln for ln in md.split("## Findings")[1].split("\n## ")[0].splitlines()
                    if ln.startswith("- ")]
        tagged = [f for f in findings if f.endswith(
            "); under `paper` each arm is scored on the test set its own replacements "
            "rewrote (`static` and baselines keep term 0's), so the difference includes that "
            "protocol's artefact.")]
        if protocol == "holdout":  # frozen test candidates: one test set for every row
            assert "own replacements rewrote" not in md and not tagged
            continue
        assert "while `static` and baselines (fitted once) keep term 0's" in sec1
        # the trained models' test_auc climbs 0.04 a term (the rewritten test set): each beats
        # popularity; every Finding under paper carries the caveat
        assert len([f for f in findings if "popularity" in f]) == 2, findings
        assert findings and tagged == findings, findings


def _lead_frames(a: dict[int, float], b: dict[int, float]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two leaderboard rows over seeds {seed: value}; b's trials listed in reverse seed order."""
    sel = pd.DataFrame([{"trial_id": f"{arm}{s}", "config.seed": s, "sel.val_hr@10": v}
                        for arm, vals in (("a", a), ("b", b)) for s, v in vals.items()])
    board = pd.DataFrame([
        {"model": "gmf", "kind": "trained", "mean": np.mean(list(a.values())),
         "trials": ",".join(f"a{s}" for s in a)},
        {"model": "mlp", "kind": "trained", "mean": np.mean(list(b.values())),
         "trials": ",".join(f"b{s}" for s in reversed(list(b)))}])
    return board, sel


def test_the_lead_pairs_the_top_two_rows_on_seed_not_on_position() -> None:
    a = {0: 0.70, 1: 0.61, 2: 0.55, 3: 0.66}
    b = {3: 0.60, 2: 0.50, 1: 0.60, 0: 0.64}
    board, sel = _lead_frames(a, b)
    best, runner_up, p = lead(board, sel, "val_hr@10", "max", rope=0.01)
    assert (best["model"], runner_up["model"]) == ("gmf", "mlp")
    assert p.n == 4 and p.diff == pytest.approx(np.mean([a[s] - b[s] for s in a]))
    assert p.sd == pytest.approx(np.std([a[s] - b[s] for s in a], ddof=1))
    # only the seeds both rows ran are paired; under 3 there is no test, and it says why
    board, sel = _lead_frames({0: 0.7, 1: 0.6, 2: 0.5}, {1: 0.5, 2: 0.4, 5: 0.3})
    p = lead(board, sel, "val_hr@10", "max", rope=0.01)[2]
    assert p.n == 2 and math.isnan(p.t_p) and "only 2 paired seed(s)" in p.why
    assert lead(board.head(1), sel, "val_hr@10", "max", rope=0.01) is None


def test_winner_line_races_baselines_and_pivots_never_pool_them(tmp_path: Path) -> None:
    trials, terms = _make_sweep(tmp_path, seeds=3, baselines=True)
    # popularity far ahead on validation: the winner line must name it.
    pop = trials.loc[trials["config.model"] == "popularity", "trial_id"]
    terms.loc[terms["trial_id"].isin(pop), "val_hr@10"] = 0.95
    _write(tmp_path, trials, terms)
    s = summarize_dir(tmp_path)
    board = s.tables["leaderboard"].sort_values("mean", ascending=False)
    runner_up = board.iloc[1]
    # a paired verdict on the 3 seeds, not CI overlap: every seed matched, so the paired mean
    # difference is the difference of the two rows' means
    assert (f"The best row (model=popularity, baseline) against the runner-up "
            f"(model={runner_up['model']}, threshold={runner_up['threshold']:g}, "
            f"negatives={runner_up['negatives']}) on `val_hr@10`, paired on 3 seed(s): "
            f"+{0.95 - runner_up['mean']:.4f} [") in s.markdown
    assert "p <0.001: the best row better. Both rows were picked on this metric" in s.markdown
    # model is a pivot axis: each baseline is a column of its own, never pooled
    assert "popularity" in set(s.tables["threshold_x_model"]["model"])
    assert set(s.tables["threshold_x_model"]["n"]) == {3}  # n = seeds, not 2 x 3 trials
    # without model as an axis, the baselines are left out and named
    cells = pivot(trials, "threshold", "negatives", "val_hr@10", "max")
    assert cells.attrs["left_out"] == ["popularity"]
    assert not cells["threshold"].isna().any() and set(cells["n"]) == {3}
