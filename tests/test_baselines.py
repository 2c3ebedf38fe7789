"""Reference baselines: exact scores on hand-built data, EASE against a direct solve, ALS
determinism and skill, and BaselineRun sharing the neural run's split, negatives and keys."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.linear_model import LogisticRegression

from ocfb import protocols
from ocfb.algorithm import OCFBRun
from ocfb.baselines import ALS, EASE, BaselineRun, Popularity, _csr
from ocfb.config import ConfigError, make_run_config
from ocfb.data import Interactions, from_pairs, synthetic_influencer

CPU = torch.device("cpu")


def cfg(**kw: Any):
    """A small run configuration (neural defaults shrunk so the twin OCFBRun is fast)."""
    base: dict[str, Any] = {
        "model": "popularity", "user_dim": 8, "item_dim": 8, "layers": [8], "mf_dim": 4,
        "negatives": 600, "terms": 0, "epochs": 1, "batch_size": 512, "n_candidates": 20,
    }
    base.update(kw)
    return make_run_config(base)


@pytest.fixture(scope="module")
def small() -> Interactions:
    """100 x 200 grid, 800 positives."""
    return synthetic_influencer(100, 200, 800, seed=1)


# -- the scorers on hand-built data --------------------------------------------------------------


def hand_train() -> sp.csr_matrix:
    """Training positives u0: {0, 1}, u1: {0, 3}, u2: {0} on a 3 x 6 grid."""
    return _csr(np.array([0, 1, 6, 9, 12]), 3, 6)


def test_popularity_scores_are_training_counts() -> None:
    pop = Popularity(3, 6).fit(hand_train())
    np.testing.assert_array_equal(pop.score_all_items(np.array([2, 0])),
                                  [[3, 1, 0, 1, 0, 0]] * 2)
    np.testing.assert_array_equal(pop.score_cells(np.array([1, 2]), np.array([0, 3])), [3, 1])


def test_popularity_holdout_metrics_by_hand() -> None:
    pop = Popularity(3, 6).fit(hand_train())  # counts [3, 1, 0, 1, 0, 0], uncalibrated
    users, items = np.array([0, 1, 2]), np.array([2, 1, 4])
    cands = np.array([[3, 5], [2, 4], [1, 3]])
    known = sp.csr_matrix(_csr(np.array([0, 1, 2, 6, 7, 9, 12, 16]), 3, 6) > 0)
    got = protocols.evaluate_holdout_part(pop, users, items, cands, known, CPU, "t_")
    # sampled ranks (ties count against): u0 0 vs (1, 0) -> 2; u1 1 vs (0, 0) -> 0; u2 -> 2
    assert got["t_hr@5"] == 1.0
    assert got["t_ndcg@5"] == pytest.approx((0.5 + 1 + 0.5) / 3)
    # full ranks, training items excluded but not the target: u0 -> 3, u1 -> 0, u2 -> 4
    assert got["t_full_ndcg@5"] == pytest.approx((1 / math.log2(5) + 1 + 1 / math.log2(6)) / 3)
    # AUC of [0, 1, 0] against [1, 0, 0, 0, 1, 1]: (1.5 + 4.5 + 1.5) / 18
    assert got["t_auc"] == pytest.approx(7.5 / 18)
    # expit(0) = 0.5 >= 0.5: every cell is predicted positive
    assert (got["t_precision"], got["t_recall"], got["t_f1"]) == pytest.approx((1 / 3, 1, 0.5))


def test_ease_matches_a_direct_ridge_solve_per_item() -> None:
    rng = np.random.default_rng(0)
    x = (rng.random((30, 12)) < 0.3).astype(np.float64)
    l2 = 3.0
    ease = EASE(30, 12, l2).fit(sp.csr_matrix(x))
    want = np.zeros((12, 12))
    for j in range(12):  # column j regressed on every other column, ridge l2, b_jj = 0
        others = np.delete(np.arange(12), j)
        a = x[:, others]
        want[others, j] = np.linalg.solve(a.T @ a + l2 * np.eye(11), a.T @ x[:, j])
    # float32 in place (issue 23): agrees with the float64 solve to rtol 1e-4
    assert ease.weights.dtype == np.float32
    np.testing.assert_allclose(ease.weights, want, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ease.score_all_items(np.arange(30)), x @ want, rtol=1e-4,
                               atol=1e-5)
    u, i = rng.integers(0, 30, 50), rng.integers(0, 12, 50)
    np.testing.assert_allclose(ease.score_cells(u, i), (x @ want)[u, i], rtol=1e-4, atol=1e-5)


def test_ease_pair_scores_are_the_same_in_any_block_size(monkeypatch) -> None:
    rng = np.random.default_rng(1)
    x = sp.csr_matrix((rng.random((40, 30)) < 0.25).astype(np.float64))
    ease = EASE(40, 30, 5.0).fit(x)
    u, i = rng.integers(0, 40, 300), rng.integers(0, 30, 300)
    whole = ease.score_cells(u, i)
    np.testing.assert_allclose(whole, ease.score_all_items(np.arange(40))[u, i], rtol=1e-5,
                               atol=1e-6)
    for block in (1, 7, 64):  # 1: one pair per block (a pair never splits)
        monkeypatch.setattr("ocfb.baselines._EASE_PAIR_BLOCK", block)
        np.testing.assert_array_equal(ease.score_cells(u, i), whole)


def _ease64(x: sp.csr_matrix, l2: float) -> np.ndarray:
    """The old float64 `inv` path: B = -P / diag(P), diag(B) = 0."""
    g = (x.T @ x).toarray().astype(np.float64) + l2 * np.eye(x.shape[1])
    p = np.linalg.inv(g)
    p /= -np.diag(p)
    np.fill_diagonal(p, 0.0)
    return p


def test_ease_float32_top_k_equals_float64_on_2k_items() -> None:
    # a seeded 300 x 2,000 matrix with popularity skew (as real data has): the float32
    # Cholesky path ranks every user's top 20 exactly as the float64 inverse does
    rng = np.random.default_rng(7)
    pop = rng.zipf(1.6, 2000).astype(float)
    x = sp.csr_matrix((rng.random((300, 2000)) < np.minimum(0.3, 0.02 * pop / pop.mean()))
                      .astype(np.float64))
    ease = EASE(300, 2000, 200.0).fit(x)
    s32 = np.asarray(x @ ease.weights.astype(np.float64))
    s64 = np.asarray(x @ _ease64(x, 200.0))
    np.testing.assert_allclose(s32, s64, rtol=1e-3, atol=1e-5)
    assert_same_top_k(s32, s64, 20)


def assert_same_top_k(s32: np.ndarray, s64: np.ndarray, k: int) -> None:
    """Each user's float32 top k is a float64 top k: identical, except that items whose
    float64 scores tie exactly at the k-th place may be swapped (their order is arbitrary)."""
    top32 = np.argsort(-s32, axis=1, kind="stable")[:, :k]
    kth = -np.partition(-s64, k - 1, axis=1)[:, k - 1]
    chosen = np.take_along_axis(s64, top32, axis=1)
    assert (chosen >= kth[:, None] - 1e-9).all(), "float32 top-k holds a non-top-k item"
    top64 = np.argsort(-s64, axis=1, kind="stable")[:, :k]
    differs = ~(np.sort(top32, axis=1) == np.sort(top64, axis=1)).all(axis=1)
    ties = (np.isclose(s64, kth[:, None], rtol=0, atol=1e-9).sum(axis=1) > 1)
    assert not (differs & ~ties).any(), "a top-k differs where no float64 tie explains it"


def test_ease_refuses_a_non_positive_definite_system() -> None:
    x = sp.csr_matrix(np.array([[1.0, 1.0], [1.0, 1.0]]))
    with pytest.raises(ConfigError, match=r"^l2: -2\.0 leaves X'X \+ l2 I not positive"):
        EASE(2, 2, -2.0).fit(x)


def planted() -> Interactions:
    """Two taste groups: users 0-29 like items 0-19, users 30-59 like items 20-39 (70 %), and
    each user also has 2 of 200 filler items (noise, and a catalogue with free cells)."""
    rng = np.random.default_rng(3)
    users, items = [], []
    for u in range(60):
        block = np.arange(20) + (0 if u < 30 else 20)
        liked = np.r_[block[rng.random(20) < 0.7], rng.choice(200, 2, replace=False) + 40]
        users += [u] * liked.size
        items += liked.tolist()
    return from_pairs(users, items)


def test_als_is_deterministic_for_a_seed_and_beats_random() -> None:
    data = planted()
    c = cfg(model="als", als_factors=4, als_regularization=0.1, negatives="1x", seed=5)
    a, b = BaselineRun(c, data), BaselineRun(c, data)
    ra, rb = a.step(), b.step()
    np.testing.assert_array_equal(a.model.user_factors, b.model.user_factors)
    assert ra["test_auc"] == rb["test_auc"]
    other = BaselineRun(c.model_copy(update={"seed": 6}), data)
    other.step()
    assert not np.array_equal(other.model.item_factors[:5], a.model.item_factors[:5])
    # random scores give AUC 0.5 and sampled HR@10 about 10 / 21; the planted blocks are easy
    # (about 1 in 8 held-out items is a filler item nobody can predict)
    assert ra["test_auc"] > 0.8 and ra["test_hr@10"] > 0.8, (ra["test_auc"], ra["test_hr@10"])


def test_calibration_is_platt_and_keeps_the_order() -> None:
    rng = np.random.default_rng(1)
    pos, neg = rng.normal(2.0, 1.0, 300), rng.normal(0.0, 1.0, 600)
    pop = Popularity(1, 1)
    pop.calibrate(pos, neg)
    ref = LogisticRegression(C=1e6, max_iter=1000).fit(np.r_[pos, neg][:, None],
                                                        np.r_[np.ones(300), np.zeros(600)])
    assert pop.scale == pytest.approx(ref.coef_[0, 0], rel=1e-3) and pop.scale > 0
    assert pop.offset == pytest.approx(ref.intercept_[0], rel=1e-3, abs=1e-3)
    # a score that does not separate: the slope stays positive (order kept), offset = base rate
    pop.calibrate(neg[:300], neg)
    assert pop.scale > 0


# -- BaselineRun: the neural run's split, negatives, keys and interface ---------------------------


@pytest.mark.parametrize("protocol", ["holdout", "paper"])
def test_baseline_run_shares_split_negatives_and_keys_with_neural_run(
    protocol: str, small: Interactions, tmp_path
) -> None:
    base = BaselineRun(cfg(model="ease", l2=10.0, protocol=protocol), small, cache_dir=tmp_path)
    neural = OCFBRun(cfg(model="gmf", protocol=protocol), small, cache_dir=tmp_path)
    nrec = neural.step()
    np.testing.assert_array_equal(base.negatives, neural.negatives)  # same term-0 draw
    records = list(base)
    assert len(records) == 1 and base.done and base.term == 0
    rec = records[0]
    assert rec["term"] == 0 and rec["is_baseline"] == 1.0
    metric_keys = {k for k in nrec if k.startswith(("val_", "test_", "sel_"))}
    assert metric_keys == {k for k in rec if k.startswith(("val_", "test_", "sel_"))}
    assert set(nrec) | {"is_baseline"} == set(rec)
    if protocol == "holdout":
        assert base.holdout.key() == neural.holdout.key()
        assert len(list(tmp_path.glob("holdout-*.npz"))) == 1
        assert rec["test_full_hr@10"] == rec["sel_test_full_hr@10"]  # one term: selected = final
    else:
        for key in ("val_support_pos", "val_support_neg", "test_support_pos",
                    "test_support_neg"):
            assert rec[key] == nrec[key]
        assert 0.5 < rec["test_auc"] <= 1.0
    with pytest.raises(RuntimeError, match="exactly one record"):
        base.step()


def test_baseline_full_ranking_off_and_schedule(small: Interactions) -> None:
    rec = BaselineRun(cfg(full_ranking="off"), small).step()
    assert not any("_full_" in k for k in rec) and "sel_term" not in rec
    rec = BaselineRun(cfg(full_ranking="final"), small).step()
    assert "test_full_hr@10" in rec and "sel_term" not in rec


@pytest.mark.parametrize("model", ["popularity", "als"])
def test_baseline_state_round_trip_needs_no_refit(
    model: str, small: Interactions, tmp_path, monkeypatch
) -> None:
    c = cfg(model=model, als_factors=8)
    run = BaselineRun(c, small)
    rec = run.step()
    run.save(tmp_path / "ckpt.pt")
    assert (tmp_path / "ckpt.pt").stat().st_mode & 0o777 == 0o666 & ~_umask()
    assert not list(tmp_path.glob("*.tmp"))
    monkeypatch.setattr(type(run.model), "fit", lambda *a: pytest.fail("refitted"))
    again = BaselineRun(c, small)
    again.load(tmp_path / "ckpt.pt")
    assert again.done
    np.testing.assert_equal(again.history, run.history)  # NaN loop diagnostics compare equal
    got = again.evaluate()
    assert {k: got[k] for k in got} == {k: rec[k] for k in got}
    with pytest.raises(ValueError, match="different config"):
        BaselineRun(cfg(model=model, seed=1), small).load(tmp_path / "ckpt.pt")


def _arrays(obj: Any) -> list[np.ndarray]:
    """Every numpy array anywhere in a nested checkpoint state."""
    if isinstance(obj, np.ndarray):
        return [obj]
    if isinstance(obj, dict):
        return [a for v in obj.values() for a in _arrays(v)]
    if isinstance(obj, (list, tuple)):
        return [a for v in obj for a in _arrays(v)]
    return []


def test_ease_checkpoint_holds_no_weights_and_refits_to_the_same_metrics(
    small: Interactions, tmp_path, monkeypatch
) -> None:
    c = cfg(model="ease", l2=10.0)
    run = BaselineRun(c, small)
    rec = run.step()
    run.save(tmp_path / "ckpt.pt")
    state = torch.load(tmp_path / "ckpt.pt", weights_only=False)
    n2 = small.n_items**2
    assert all(a.size < n2 for a in _arrays(state)), "an n_items^2 array was checkpointed"
    fits: list[int] = []
    real_fit = EASE.fit
    monkeypatch.setattr(EASE, "fit", lambda self, x: fits.append(1) or real_fit(self, x))
    again = BaselineRun(c, small)
    again.load(tmp_path / "ckpt.pt")
    assert again.done and fits == []  # loading a finished trial costs no refit
    np.testing.assert_equal(again.history, run.history)
    got = again.evaluate()  # scoring again refits once, to the same weights
    assert fits == [1]
    assert got == {k: rec[k] for k in got}
    np.testing.assert_array_equal(again.model.weights, run.model.weights)
    run.release()
    assert run.model is None and "weights" not in run._restored.__dict__
    assert run.evaluate() == got  # a released run refits on demand


def test_baseline_run_refuses_neural_models_and_too_many_negatives(small: Interactions) -> None:
    with pytest.raises(ConfigError, match="^model: 'gmf' is trained in the OCF-B loop"):
        BaselineRun(cfg(model="gmf"), small)
    with pytest.raises(ConfigError, match=r"^negatives: 100000 resolves to 100000 .* free"):
        BaselineRun(cfg(negatives=100_000), small)


def _umask() -> int:
    import os

    m = os.umask(0)
    os.umask(m)
    return m


def test_als_uses_config_fields(small: Interactions) -> None:
    run = BaselineRun(cfg(model="als", als_factors=3, als_iterations=2), small)
    run.step()
    assert isinstance(run.model, ALS)
    assert run.model.user_factors.shape == (small.n_users, 3)
    assert run.model.item_factors.shape == (small.n_items, 3)
