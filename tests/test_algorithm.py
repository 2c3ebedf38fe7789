"""The OCF-B loop: the paper's trend, each strategy's replacement rule, determinism and resume."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from ocfb.algorithm import OCFBRun, negative_errors, torch_seed
from ocfb.config import ConfigError, RunConfig, make_run_config
from ocfb.data import Interactions, synthetic_influencer
from ocfb.metrics import format_classification_report
from ocfb.names import STRATEGIES
from ocfb.strategies import replace_negatives
from ocfb.train import DivergedError, NonFiniteLossError


@pytest.fixture(scope="module")
def small() -> Interactions:
    """100 x 200 grid, 800 positives: no user owns so many items that candidates run out."""
    return synthetic_influencer(100, 200, 800, seed=1)


@pytest.fixture(scope="module")
def influencer() -> Interactions:
    """The built-in data set at the paper's shape (407 x 462 x 2,000)."""
    return synthetic_influencer()


def small_cfg(**kw: Any) -> RunConfig:
    """A run that trains in a fraction of a second on `small` and learns something."""
    base: dict[str, Any] = {
        "protocol": "paper",
        "model": "mlp",
        "user_dim": 8,
        "item_dim": 8,
        "layers": [8],
        "negatives": 600,
        "threshold": 0.3,
        "terms": 3,
        "epochs": 4,
        "epochs_per_term": 1,
        "batch_size": 128,
        "lr": 0.01,
        "n_candidates": 20,
    }
    base.update(kw)
    return make_run_config(base)


def strip_times(rec: dict[str, Any]) -> dict[str, Any]:
    """A record without its wall-time keys, which legitimately differ between runs."""
    return {k: v for k, v in rec.items() if not k.startswith("time_")}


def same_records(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    """Exact equality of two histories (NaN equal to NaN, e.g. term 0's err_mean)."""
    if len(a) != len(b):
        return False
    for ra, rb in zip(a, b, strict=True):
        ra, rb = strip_times(ra), strip_times(rb)
        if ra.keys() != rb.keys():
            return False
        for k in ra:
            x, y = ra[k], rb[k]
            if isinstance(x, float) and isinstance(y, float) and np.isnan(x) and np.isnan(y):
                continue
            if x != y:
                return False
    return True


def current_errors(run: OCFBRun) -> np.ndarray:
    """Each current negative's error, computed here from the model (not via the run)."""
    cells = torch.as_tensor(run.negatives)
    n_items = run.data.n_items
    run.model.eval()
    with torch.no_grad():
        err = negative_errors(run.model(cells // n_items, cells % n_items), run.cfg.error)
    run.model.train()
    return err.numpy().astype(np.float64)


def open_slots(run: OCFBRun) -> np.ndarray:
    """Mask of the slots a strategy may rewrite: all under holdout; under paper all but the
    validation slots, which stay frozen at term 0."""
    if run.paper is None:
        return np.ones(run.negatives.size, dtype=bool)
    return ~run.paper.neg_slot_is_val


# -- the paper's trend ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def paper_histories(influencer: Interactions) -> list[list[dict[str, Any]]]:
    """MLP under `paper` on synthetic-influencer, 15 terms, five seeds (short epochs)."""
    out = []
    for seed in range(5):
        cfg = make_run_config({
            "protocol": "paper", "model": "mlp", "seed": seed, "terms": 15,
            "epochs": 5, "epochs_per_term": 2, "batch_size": 512,
        })
        out.append(list(OCFBRun(cfg, influencer)))
    return out


@pytest.mark.slow  # the fixture trains 5 seeds x 16 terms: 16 s idle, 100 s on a busy machine
def test_paper_auc_rises_from_term_0_to_term_15(paper_histories: list) -> None:
    # Measured: +0.11 to +0.14 AUC on every seed (static negatives lose ~0.03 instead).
    gains = [h[15]["test_auc"] - h[0]["test_auc"] for h in paper_histories]
    assert all(len(h) == 16 for h in paper_histories)
    assert sum(g > 0 for g in gains) >= 4, gains
    assert np.mean(gains) > 0.05, gains


@pytest.mark.slow
def test_table2_layout_of_final_record(paper_histories: list) -> None:
    final = paper_histories[0][-1]
    rep = {k.removeprefix("test_"): v for k, v in final.items() if k.startswith("test_")}
    text = format_classification_report(rep, title="MLP at term 15")
    lines = text.splitlines()
    assert lines[0] == "MLP at term 15"
    assert lines[1].split() == ["pre", "rec", "f1", "sup"]
    assert [ln.split()[0] for ln in lines[2:]] == ["negative(0)", "positive(1)", "accuracy",
                                                   "average"]
    # 30 % of 2,000 positives and of 2,000 negative slots, and their total
    assert lines[2].split()[-1] == "600" and lines[3].split()[-1] == "600"
    assert lines[5].split()[-1] == "1200"
    assert lines[4].split()[-1] == f"{final['test_accuracy']:.2f}"
    assert lines[3].split()[1] == f"{final['test_precision_pos']:.2f}"


# -- the replacement rule of each strategy ---------------------------------------------------


@pytest.mark.parametrize("protocol", ["paper", "holdout"])
def test_ocfb_replaces_exactly_the_negatives_at_or_above_threshold(
    small: Interactions, protocol: str
) -> None:
    run = OCFBRun(small_cfg(protocol=protocol), small)
    run.step()
    before = run.negatives.copy()
    err = current_errors(run)
    can = open_slots(run)
    suspects = (err >= run.cfg.threshold) & can
    assert 0 < suspects.sum() < before.size  # a meaningful case, not all or nothing
    rec = run.step()
    after = run.negatives
    assert set(before) - set(after) == set(before[suspects])
    assert after.size == before.size == rec["n_negatives"]
    assert rec["n_replaced"] == int(suspects.sum()) == len(set(after) - set(before))
    # kept negatives keep their slot; fresh ones take the removed slots
    np.testing.assert_array_equal(after[~suspects], before[~suspects])
    assert not np.isin(after[suspects], before).any()
    assert rec["err_mean"] == pytest.approx(err[can].mean(), rel=1e-5)
    assert rec["err_max"] == pytest.approx(err[can].max(), rel=1e-5)
    assert rec["n_removed_total"] == int(suspects.sum())


def test_exclude_removed_never_redraws_a_suspect(small: Interactions) -> None:
    run = OCFBRun(small_cfg(threshold=0.15, terms=5), small)
    removed: set[int] = set()
    run.step()
    for _ in range(5):
        before = run.negatives.copy()
        rec = run.step()
        newly = set(before) - set(run.negatives)
        assert rec["n_replaced"] == len(newly)
        removed |= newly
        assert not removed & set(run.negatives.tolist())
        assert rec["n_removed_total"] == len(removed)
    assert len(removed) > 600  # the pool of suspects grew well past one negative set
    assert set(run.removed.tolist()) == removed


def test_exclude_removed_off_keeps_no_suspect_set(small: Interactions) -> None:
    run = OCFBRun(small_cfg(threshold=0.15, terms=4, exclude_removed=False), small)
    hist = list(run)
    assert sum(r["n_replaced"] for r in hist) > 0
    assert run.removed.size == 0
    assert all(r["n_removed_total"] == 0 for r in hist)


def test_random_replace_matches_ocfb_count_from_same_model(small: Interactions) -> None:
    a = OCFBRun(small_cfg(strategy="ocfb"), small)
    b = OCFBRun(small_cfg(strategy="random-replace"), small)
    assert same_records([a.step()], [b.step()])  # term 0 is the same run
    np.testing.assert_array_equal(current_errors(a), current_errors(b))
    expected = int((current_errors(a)[open_slots(a)] >= 0.3).sum())
    neg_a, neg_b = a.negatives.copy(), b.negatives.copy()
    ra, rb = a.step(), b.step()
    assert ra["n_replaced"] == rb["n_replaced"] == expected > 0
    gone_a, gone_b = set(neg_a) - set(a.negatives), set(neg_b) - set(b.negatives)
    assert len(gone_b) == expected
    assert gone_a != gone_b  # random-replace chose other negatives than the suspects
    assert rb["n_removed_total"] == 0  # random choices are not suspects


def test_random_replace_counts_follow_its_own_model_each_term(small: Interactions) -> None:
    run = OCFBRun(small_cfg(strategy="random-replace", terms=4), small)
    run.step()
    counts = []
    for _ in range(4):
        expected = int((current_errors(run)[open_slots(run)] >= 0.3).sum())
        before = run.negatives.copy()
        rec = run.step()
        assert rec["n_replaced"] == expected
        assert int((run.negatives != before).sum()) == expected
        counts.append(expected)
    assert sum(counts) > 0


def test_random_replace_fixed_fraction(small: Interactions) -> None:
    run = OCFBRun(small_cfg(strategy="random-replace", replace_fraction=0.25), small)
    run.step()
    before = run.negatives.copy()
    rec = run.step()
    # a quarter of the 558 open slots (600 minus 42 frozen validation slots)
    assert open_slots(run).sum() == 558
    assert rec["n_replaced"] == 140 == int((run.negatives != before).sum())


def test_static_never_changes_negatives(small: Interactions) -> None:
    run = OCFBRun(small_cfg(strategy="static", threshold=0.0), small)
    run.step()
    first = run.negatives.copy()
    for rec in run:
        np.testing.assert_array_equal(run.negatives, first)
        assert rec["n_replaced"] == 0
        assert np.isfinite(rec["err_mean"])  # still scored and reported


def test_resample_all_draws_a_whole_new_set(small: Interactions) -> None:
    run = OCFBRun(small_cfg(strategy="resample-all", threshold=1.0), small)
    run.step()
    for _ in range(3):
        before = run.negatives.copy()
        rec = run.step()
        assert rec["n_replaced"] == open_slots(run).sum() == 558 and run.negatives.size == 600
        # an independent uniform draw: overlap only by chance (expected 558 * 558 / 19,200),
        # besides the 42 frozen validation negatives
        assert np.intersect1d(before, run.negatives).size < 42 + 0.1 * before.size
        assert np.unique(run.negatives).size == run.negatives.size


@pytest.mark.parametrize("protocol", ["paper", "holdout"])
def test_terms_0_is_the_same_run_for_every_strategy(small: Interactions, protocol: str) -> None:
    hists = [list(OCFBRun(small_cfg(protocol=protocol, terms=0, strategy=s), small))
             for s in STRATEGIES]
    assert len(hists[0]) == 1
    for h in hists[1:]:
        assert same_records(hists[0], h)


def test_strategies_diverge_after_term_0(small: Interactions) -> None:
    finals = [list(OCFBRun(small_cfg(terms=1, strategy=s), small))[-1]["test_auc"]
              for s in STRATEGIES]
    assert len(set(finals)) == len(STRATEGIES)


def test_refit_fresh_and_warm_both_run_and_differ(small: Interactions) -> None:
    warm = list(OCFBRun(small_cfg(refit="warm", terms=2), small))
    fresh = list(OCFBRun(small_cfg(refit="fresh", terms=2), small))
    assert same_records(warm[:1], fresh[:1])
    assert warm[1]["n_replaced"] == fresh[1]["n_replaced"]  # same model state at scoring
    assert warm[2]["test_auc"] != fresh[2]["test_auc"]
    assert warm[1]["train_loss"] != fresh[1]["train_loss"]
    assert all(np.isfinite(r["test_auc"]) for r in warm + fresh)


# -- error types ------------------------------------------------------------------------------


def test_error_types_relationship() -> None:
    logits = torch.linspace(-12.0, 12.0, 101)
    p = torch.sigmoid(logits.double())
    loss = negative_errors(logits, "loss").double()
    np.testing.assert_allclose(loss, -torch.log1p(-p), rtol=1e-4)
    np.testing.assert_allclose(negative_errors(logits, "prob"), p, rtol=1e-6)
    np.testing.assert_allclose(negative_errors(logits, "residual"), p, rtol=1e-6)
    assert torch.isfinite(negative_errors(torch.tensor([100.0]), "loss")).all()  # stable
    with pytest.raises(ValueError, match="error type"):
        negative_errors(logits, "hinge")


def test_loss_error_at_matching_threshold_gives_the_same_run(small: Interactions) -> None:
    # loss = -log(1 - p) is increasing in p, so thresholds theta and -log(1 - theta) pick the
    # same negatives and the runs agree everywhere except the reported errors.
    theta = 0.3
    prob = list(OCFBRun(small_cfg(error="prob", threshold=theta), small))
    loss = list(OCFBRun(small_cfg(error="loss", threshold=-np.log1p(-theta)), small))
    resid = list(OCFBRun(small_cfg(error="residual", threshold=theta), small))
    assert same_records(prob, resid)
    drop = ("err_mean", "err_max")
    assert same_records([{k: v for k, v in r.items() if k not in drop} for r in prob],
                        [{k: v for k, v in r.items() if k not in drop} for r in loss])
    assert loss[1]["err_max"] == pytest.approx(-np.log1p(-prob[1]["err_max"]), rel=1e-4)
    assert loss[1]["err_mean"] > prob[1]["err_mean"]  # -log(1-p) > p for p in (0, 1)


# -- determinism and resume -------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["paper", "holdout"])
def test_same_seed_same_records(small: Interactions, protocol: str) -> None:
    a = list(OCFBRun(small_cfg(protocol=protocol), small))
    b = list(OCFBRun(small_cfg(protocol=protocol), small))
    c = list(OCFBRun(small_cfg(protocol=protocol, seed=1), small))
    assert same_records(a, b)
    assert not same_records(a, c)


@pytest.mark.parametrize("protocol", ["paper", "holdout"])
@pytest.mark.parametrize("strategy", ["ocfb", "random-replace", "ocfb-resample", "dns"])
@pytest.mark.parametrize("refit", ["warm", "fresh"])
def test_resume_after_term_k_equals_uninterrupted_run(
    small: Interactions, protocol: str, strategy: str, refit: str, tmp_path
) -> None:
    cfg = small_cfg(protocol=protocol, strategy=strategy, refit=refit, terms=4, threshold=0.2)
    full = list(OCFBRun(cfg, small))

    first = OCFBRun(cfg, small)
    for _ in range(2):  # terms 0 and 1
        first.step()
    state = first.state_dict()
    first.save(tmp_path / "run.pt")
    # the original keeps going: the snapshot must not change under it
    list(first)
    assert same_records(full, first.history)

    from_state = OCFBRun(cfg, small)
    from_state.load_state_dict(state)
    assert from_state.term == 1 and not from_state.done
    list(from_state)
    assert same_records(full, from_state.history)

    from_file = OCFBRun(cfg, small)
    from_file.load(tmp_path / "run.pt")
    rest = list(from_file)
    assert [r["term"] for r in rest] == [2, 3, 4]
    assert same_records(full, from_file.history)
    np.testing.assert_array_equal(from_file.negatives, from_state.negatives)
    np.testing.assert_array_equal(from_file.removed, from_state.removed)


def test_resume_refuses_other_config_or_data(small: Interactions) -> None:
    run = OCFBRun(small_cfg(terms=1), small)
    run.step()
    state = run.state_dict()
    with pytest.raises(ValueError, match="different config"):
        OCFBRun(small_cfg(terms=1, seed=3), small).load_state_dict(state)
    other = synthetic_influencer(100, 200, 800, seed=2)
    with pytest.raises(ValueError, match="different data"):
        OCFBRun(small_cfg(terms=1), other).load_state_dict(state)


# -- negatives never touch positives ----------------------------------------------------------


@pytest.mark.parametrize("protocol", ["paper", "holdout"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_negatives_never_contain_a_positive_of_any_split(
    small: Interactions, protocol: str, strategy: str
) -> None:
    run = OCFBRun(small_cfg(protocol=protocol, strategy=strategy, threshold=0.1), small)
    positives = small.cells
    if protocol == "holdout":
        h = run.holdout
        held = np.concatenate([h.val_users * small.n_items + h.val_items,
                               h.test_users * small.n_items + h.test_items])
        assert held.size > 0 and not np.isin(held, h.train_cells).any()
    for _ in run:
        assert not np.isin(run.negatives, positives).any()
        assert np.unique(run.negatives).size == run.negatives.size == 600
        assert run.negatives.min() >= 0 and run.negatives.max() < small.n_users * small.n_items


# -- configuration errors at construction -----------------------------------------------------


@pytest.mark.parametrize("protocol", ["paper", "holdout"])
@pytest.mark.parametrize("negatives", [19_201, "40x"])
def test_too_many_negatives_is_a_config_error_before_training(
    small: Interactions, protocol: str, negatives: int | str, monkeypatch
) -> None:
    import ocfb.algorithm as alg

    def no_training(*a: Any, **k: Any) -> None:
        raise AssertionError("trained before validating the negative count")

    monkeypatch.setattr(alg, "train_epochs", no_training)
    free = small.n_users * small.n_items - len(small)  # 19,200
    with pytest.raises(ConfigError) as exc:
        OCFBRun(small_cfg(protocol=protocol, negatives=negatives), small)
    msg = str(exc.value)
    assert msg.startswith("negatives:")
    assert str(free) in msg


def test_exactly_all_free_cells_is_allowed() -> None:
    tiny = synthetic_influencer(10, 12, 40, seed=0)
    free = 10 * 12 - 40
    run = OCFBRun(small_cfg(negatives=free, terms=0, epochs=1), tiny)
    run.step()
    assert np.unique(run.negatives).size == free


@pytest.mark.parametrize("strategy", ["ocfb", "resample-all"])
def test_holdout_negatives_avoid_frozen_candidates(small: Interactions, strategy: str) -> None:
    # Held-out positives are never negatives; if their candidates could be, the model would
    # learn that "never a negative" marks the held-out item (a leak in the sampled metrics).
    run = OCFBRun(small_cfg(protocol="holdout", strategy=strategy, threshold=0.2, terms=3), small)
    h = run.holdout
    n_items = small.n_items
    cands = np.concatenate([(h.val_users[:, None] * n_items + h.val_candidates).ravel(),
                            (h.test_users[:, None] * n_items + h.test_candidates).ravel()])
    held = np.concatenate([h.val_users * n_items + h.val_items,
                           h.test_users * n_items + h.test_items])
    for _ in run:
        assert not np.isin(run.negatives, cands).any()
        assert not np.isin(run.negatives, held).any()


# -- the two newer strategies inside the loop ----------------------------------------------------


def test_ocfb_resample_and_dns_records_and_exclusions(small: Interactions) -> None:
    for strategy in ("ocfb-resample", "dns"):
        run = OCFBRun(small_cfg(protocol="holdout", strategy=strategy, threshold=0.2), small)
        hist = list(run)
        for rec in hist[1:]:
            assert rec["n_replaced"] == 600 == rec["n_negatives"]
            assert np.unique(run.negatives).size == 600
        if strategy == "ocfb-resample":
            assert sum(r["n_suspects"] for r in hist[1:]) > 0
            assert all(0 <= r["n_redraw_rounds"] <= 3 and r["time_redraw"] >= 0 for r in hist[1:])
            # every suspect that was redrawn went to the removed set
            assert hist[-1]["n_removed_total"] == run.removed.size > 0
            assert not np.isin(run.negatives, run.removed).any()
        else:
            assert run.removed.size == 0 and all(r["n_dns_fallback"] == 0 for r in hist[1:])
        assert "n_suspects" not in hist[0] and "n_dns_fallback" not in hist[0]


def test_dns_negatives_score_higher_than_uniform_ones(small: Interactions) -> None:
    # same term-0 model; dns's kept negatives are the hard ones, so their mean error is larger
    dns_run = OCFBRun(small_cfg(strategy="dns", terms=1), small)
    uni_run = OCFBRun(small_cfg(strategy="resample-all", terms=1), small)
    dns_run.step(), uni_run.step()
    for run in (dns_run, uni_run):
        replace_negatives(run.cfg, run.pool, run.rng, run._errors(run.pool.negatives),
                          run._errors, run._logits)
    # measured: 0.76 (best of 5 candidates) against 0.58 (uniform) with this seed; the pool's
    # negatives, i.e. without the paper protocol's frozen validation slots
    dns_err = dns_run._errors(dns_run.pool.negatives)
    uni_err = uni_run._errors(uni_run.pool.negatives)
    assert dns_err.mean() > uni_err.mean() + 0.1


# -- full-ranking schedule and selection ----------------------------------------------------------


def holdout_cfg(**kw: Any) -> RunConfig:
    """A holdout run with enough terms for the validation metric to move."""
    return small_cfg(protocol="holdout", terms=4, threshold=0.2, **kw)


@pytest.fixture(scope="module")
def every_history(small: Interactions) -> list[dict[str, Any]]:
    """The `every` schedule's records: full ranking at each term."""
    return list(OCFBRun(holdout_cfg(full_ranking="every"), small))


def test_selected_reports_the_every_metrics_of_the_selected_term(
    small: Interactions, every_history: list
) -> None:
    sel = list(OCFBRun(holdout_cfg(full_ranking="selected"), small))
    vals = [r["val_hr@10"] for r in every_history]
    best = int(np.argmax(vals))  # first maximum: ties keep the earliest term
    final = sel[-1]
    assert final["sel_term"] == best
    ref = every_history[best]
    metric_keys = [k for k in ref if k.startswith(("val_", "test_"))]
    assert any("_full_" in k for k in metric_keys)
    for k in metric_keys:
        assert final[f"sel_{k}"] == ref[k], k
    # sampled metrics identical every term; full ones only in the final record
    for a, b in zip(every_history, sel, strict=True):
        assert a["test_hr@10"] == b["test_hr@10"] and a["val_ndcg@10"] == b["val_ndcg@10"]
    assert all(not any("_full_" in k for k in r) for r in sel[:-1])
    assert final["test_full_hr@10"] == every_history[-1]["test_full_hr@10"]


def test_final_and_off_schedules(small: Interactions, every_history: list) -> None:
    final = list(OCFBRun(holdout_cfg(full_ranking="final"), small))
    off = list(OCFBRun(holdout_cfg(full_ranking="off"), small))
    assert all(not any("_full_" in k for k in r) for r in final[:-1] + off)
    assert final[-1]["test_full_ndcg@10"] == every_history[-1]["test_full_ndcg@10"]
    assert not any(k.startswith("sel_") for r in final + off for k in r)
    assert same_records(off, [{k: v for k, v in r.items() if "_full_" not in k}
                              for r in every_history])


def test_selected_resumes_with_its_kept_weights(small: Interactions, tmp_path) -> None:
    cfg = holdout_cfg(full_ranking="selected", strategy="dns")
    full = list(OCFBRun(cfg, small))
    first = OCFBRun(cfg, small)
    for _ in range(3):
        first.step()
    first.save(tmp_path / "run.pt")
    resumed = OCFBRun(cfg, small)
    resumed.load(tmp_path / "run.pt")
    list(resumed)
    assert same_records(full, resumed.history)


def test_selection_metric_errors(small: Interactions) -> None:
    with pytest.raises(ConfigError, match=r"'val_full_hr@10' is a full-ranking metric.*every"):
        OCFBRun(holdout_cfg(select_metric="val_full_hr@10"), small)
    OCFBRun(holdout_cfg(select_metric="val_full_hr@10", full_ranking="every"), small)
    run = OCFBRun(holdout_cfg(select_metric="val_hr@11"), small)
    with pytest.raises(ConfigError, match=r"'val_hr@11' is not a metric.*'val_hr@10'"):
        run.step()


def test_paper_protocol_trains_only_on_non_test_non_val_slots(small: Interactions) -> None:
    run = OCFBRun(small_cfg(protocol="paper", terms=0), small)
    p = run.paper
    rec = run.step()
    assert {"val_auc", "test_auc"} <= rec.keys()
    assert not (p.pos_is_test & p.pos_is_val).any() and p.pos_is_val.sum() > 0
    assert not (p.neg_slot_is_test & p.neg_slot_is_val).any() and p.neg_slot_is_val.sum() > 0
    train_slots = ~(p.neg_slot_is_test | p.neg_slot_is_val)
    np.testing.assert_array_equal(run.train_slots, np.flatnonzero(train_slots))
    held = p.pos_cells[p.pos_is_test | p.pos_is_val]
    assert not np.isin(run.train_pos, held).any()
    assert run.train_pos.size + held.size == len(small)


# -- divergence and seeds -------------------------------------------------------------------------


def test_lr_1e3_diverges_and_a_normal_run_does_not(small: Interactions) -> None:
    with pytest.raises(DivergedError, match=r"loss [0-9.e+]+ in epoch \d+ is above "
                                            r"(the bound \()?max_loss 6\.931"):
        list(OCFBRun(small_cfg(lr=1e3, terms=1), small))
    hist = list(OCFBRun(small_cfg(terms=1), small))
    assert max(r["train_loss"] for r in hist) < 0.7
    with pytest.raises(DivergedError, match="max_loss 0.01"):
        list(OCFBRun(small_cfg(terms=0, max_loss=0.01), small))
    assert issubclass(DivergedError, NonFiniteLossError)


def test_largest_seed_runs_and_small_seeds_keep_their_torch_stream(small: Interactions) -> None:
    assert [torch_seed(s) for s in (0, 1, 7)] == [s * 1_000_003 + 2 for s in (0, 1, 7)]
    big = [torch_seed(2**63 - 1 - i) for i in range(3)]
    assert len(set(big)) == 3 and all(0 <= b < 2**64 for b in big)
    rec = OCFBRun(small_cfg(seed=2**63 - 1, terms=0, epochs=1), small).step()
    assert np.isfinite(rec["test_auc"])
