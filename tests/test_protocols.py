"""The two evaluation protocols: the paper's stratified split and the frozen leave-out holdout."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score
from torch import nn

from ocfb import protocols
from ocfb.algorithm import OCFBRun
from ocfb.config import ConfigError, make_run_config
from ocfb.data import Interactions, from_pairs, synthetic_influencer


@pytest.fixture(scope="module")
def influencer() -> Interactions:
    """The built-in data set at the paper's shape (407 x 462 x 2,000)."""
    return synthetic_influencer()


@pytest.fixture(scope="module")
def small() -> Interactions:
    """100 x 200 grid, 800 positives."""
    return synthetic_influencer(100, 200, 800, seed=1)


def run_cfg(**kw: Any):
    """A tiny, fast run configuration."""
    base: dict[str, Any] = {
        "protocol": "paper", "model": "mlp", "user_dim": 8, "item_dim": 8, "layers": [8],
        "negatives": 600, "threshold": 0.3, "terms": 2, "epochs": 4, "epochs_per_term": 1,
        "batch_size": 128, "lr": 0.01, "n_candidates": 20,
    }
    base.update(kw)
    return make_run_config(base)


def user_positives(data: Interactions) -> dict[int, set[int]]:
    """Every user's positive items (all splits)."""
    out: dict[int, set[int]] = {}
    for u, i in zip(data.users.tolist(), data.items.tolist(), strict=True):
        out.setdefault(u, set()).add(i)
    return out


# -- paper ------------------------------------------------------------------------------------


def test_paper_split_is_stratified_and_seeded(influencer: Interactions) -> None:
    s = protocols.make_paper_split(influencer, 1500, 0.3, seed=0)
    np.testing.assert_array_equal(s.pos_cells, influencer.cells)
    assert s.pos_is_test.sum() == 600  # 30 % of 2,000 positives
    assert s.neg_slot_is_test.sum() == 450  # 30 % of 1,500 negative slots
    again = protocols.make_paper_split(influencer, 1500, 0.3, seed=0)
    np.testing.assert_array_equal(s.pos_is_test, again.pos_is_test)
    np.testing.assert_array_equal(s.neg_slot_is_test, again.neg_slot_is_test)
    other = protocols.make_paper_split(influencer, 1500, 0.3, seed=1)
    assert (s.pos_is_test != other.pos_is_test).any()
    assert protocols.make_paper_split(influencer, 1500, 0.2, seed=0).pos_is_test.sum() == 400


def test_paper_replaced_negative_keeps_its_slot(small: Interactions) -> None:
    run = OCFBRun(run_cfg(threshold=0.2, terms=3), small)
    test_slots = run.paper.neg_slot_is_test
    rec0 = run.step()
    rewritten_test = 0
    for _ in range(3):
        before = run.negatives.copy()
        rec = run.step()
        changed = run.negatives != before
        assert changed.sum() == rec["n_replaced"]
        rewritten_test += int((changed & test_slots).sum())
        # the report set is always the test slots: 30 % of 600 negatives, 30 % of 800 positives
        assert rec["test_support_neg"] == rec0["test_support_neg"] == test_slots.sum() == 180
        assert rec["test_support_pos"] == 240
    assert rewritten_test > 0  # OCF-B rewrites the paper's test negatives too


def test_paper_metrics_match_scikit_learn(small: Interactions) -> None:
    run = OCFBRun(run_cfg(terms=1), small)
    rec = list(run)[-1]
    cells = np.concatenate([run.paper.pos_cells[run.paper.pos_is_test],
                            run.negatives[run.paper.neg_slot_is_test]])
    y = np.r_[np.ones(240), np.zeros(180)]
    p = protocols.score_cells(run.model, cells, small.n_items, run.device)
    assert rec["test_auc"] == pytest.approx(roc_auc_score(y, p))
    pr, rc, f1, sup = precision_recall_fscore_support(y, p >= 0.5, zero_division=0)
    assert [rec["test_precision_neg"], rec["test_precision_pos"]] == pytest.approx(pr)
    assert [rec["test_recall_neg"], rec["test_recall_pos"]] == pytest.approx(rc)
    assert [rec["test_f1_neg"], rec["test_f1_pos"]] == pytest.approx(f1)
    assert rec["test_accuracy"] == pytest.approx(np.mean((p >= 0.5) == y))
    pw, rw, fw, _ = precision_recall_fscore_support(y, p >= 0.5, average="weighted",
                                                    zero_division=0)
    assert [rec["test_precision_weighted"], rec["test_recall_weighted"],
            rec["test_f1_weighted"]] == pytest.approx([pw, rw, fw])


# -- holdout: which positives are held out ------------------------------------------------------


def tiny_timed() -> Interactions:
    """Users with 5, 3, 2 and 1 positives (timestamps known) plus one user padding the items."""
    pairs = [
        ("a", "i0", 50), ("a", "i1", 10), ("a", "i2", 40), ("a", "i3", 30), ("a", "i4", 20),
        ("b", "i0", 7), ("b", "i5", 9), ("b", "i2", 8),
        ("c", "i3", 100), ("c", "i1", 200),
        ("d", "i4", 5),
        ("e", "i6", 1), ("e", "i7", 1), ("e", "i8", 1), ("e", "i9", 1), ("e", "i10", 1),
        ("e", "i11", 1),
    ]
    u, i, t = zip(*pairs, strict=True)
    return from_pairs(list(u), list(i), list(t))


def held(data: Interactions, users: np.ndarray, items: np.ndarray) -> dict[str, str]:
    """Held-out pairs by original ids."""
    return {str(data.user_ids[u]): str(data.item_ids[i]) for u, i in zip(users, items,
                                                                         strict=True)}


def test_leave_one_out_takes_latest_then_next(small: Interactions) -> None:
    data = tiny_timed()
    h = protocols.make_holdout_split(data, seed=0, n_candidates=3)
    test = held(data, h.test_users, h.test_items)
    val = held(data, h.val_users, h.val_items)
    assert test == {"a": "i0", "b": "i5", "c": "i1", "e": test["e"]}
    assert test["e"] in {f"i{k}" for k in range(6, 12)}  # all tied: any one of them
    assert val == {"a": "i2", "b": "i2", "e": val["e"]}
    assert val["e"] != test["e"]
    # nobody loses all training positives: d (1 positive) and c (2) keep theirs
    train_users = data.user_ids[h.train_cells // data.n_items]
    counts = dict(zip(*np.unique(train_users, return_counts=True), strict=True))
    assert counts == {"a": 3, "b": 1, "c": 1, "d": 1, "e": 4}
    assert len(h.train_cells) + len(h.val_users) + len(h.test_users) == len(data)
    assert np.unique(np.concatenate([
        h.train_cells, h.val_users * data.n_items + h.val_items,
        h.test_users * data.n_items + h.test_items])).size == len(data)


def test_leave_one_out_without_timestamps_is_seeded_random(small: Interactions) -> None:
    data = from_pairs(small.users, small.items)  # same pairs, no timestamps
    a = protocols.make_holdout_split(data, seed=0, n_candidates=20)
    b = protocols.make_holdout_split(data, seed=0, n_candidates=20)
    c = protocols.make_holdout_split(data, seed=1, n_candidates=20)
    assert a.key() == b.key() != c.key()
    counts = np.bincount(data.users, minlength=data.n_users)
    assert np.array_equal(np.sort(a.test_users), np.flatnonzero(counts >= 2))
    assert np.array_equal(np.sort(a.val_users), np.flatnonzero(counts >= 3))
    assert (np.bincount(a.train_cells // data.n_items, minlength=data.n_users) >= 1).all()


def test_fraction_split_holds_out_about_the_fraction_per_user() -> None:
    rng = np.random.default_rng(0)
    sizes = {0: 10, 1: 20, 2: 50, 3: 3, 4: 1}
    users, items = [], []
    for u, k in sizes.items():
        users += [u] * k
        items += sorted(rng.choice(100, size=k, replace=False).tolist())
    # two users covering half the catalogue each keep the id space at 100 items
    users += [5] * 50 + [6] * 50
    items += list(range(100))
    data = from_pairs(users, items)
    h = protocols.make_holdout_split(data, seed=0, split="fraction", fraction=0.2,
                                     n_candidates=5)
    test = np.bincount(h.test_users, minlength=7)
    val = np.bincount(h.val_users, minlength=7)
    train = np.bincount(h.train_cells // data.n_items, minlength=7)
    # test = floor(0.2 * count), validation = floor(0.2 * what is left), capped at count - 1
    assert test[:5].tolist() == [2, 4, 10, 0, 0]
    assert val[:5].tolist() == [1, 3, 8, 0, 0]
    assert train[:5].tolist() == [7, 13, 32, 3, 1]
    assert test[:3].sum() / 80 == pytest.approx(0.2)


def test_holdout_too_sparse_or_too_dense_is_a_clear_error() -> None:
    sparse = from_pairs([0, 0, 1, 1], [0, 1, 0, 1])  # two positives each: no validation
    with pytest.raises(ConfigError, match="^split:"):
        protocols.make_holdout_split(sparse, seed=0, n_candidates=1)
    data = tiny_timed()  # user e has 12 - 6 = 6 unobserved items
    with pytest.raises(ConfigError, match=r"^n_candidates: 8 .* only 6 items"):
        protocols.make_holdout_split(data, seed=0, n_candidates=8)


# -- holdout: frozen candidates ----------------------------------------------------------------


def test_candidates_frozen_across_runs_models_and_strategies(influencer: Interactions) -> None:
    a = protocols.make_holdout_split(influencer, seed=0)
    b = protocols.make_holdout_split(influencer, seed=0)
    for f in ("train_cells", "val_users", "val_items", "val_candidates", "test_users",
              "test_items", "test_candidates"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    assert a.test_candidates.shape == (a.test_users.size, 99)
    keys = {
        OCFBRun(make_run_config({"protocol": "holdout", "model": m, "strategy": s,
                                 "threshold": t, "refit": r}), influencer).holdout.key()
        for m, s, t, r in [("neumf", "ocfb", 0.5, "warm"), ("gmf", "static", 0.1, "fresh"),
                           ("mlp", "resample-all", 0.9, "warm"),
                           ("mlp", "random-replace", 0.3, "fresh")]
    }
    assert keys == {a.key()}
    assert protocols.make_holdout_split(influencer, seed=1).key() != a.key()


def test_candidates_contain_no_positive_and_are_distinct(influencer: Interactions) -> None:
    h = protocols.make_holdout_split(influencer, seed=0)
    pos = user_positives(influencer)
    for users, cands in ((h.test_users, h.test_candidates), (h.val_users, h.val_candidates)):
        for u, row in zip(users.tolist(), cands, strict=True):
            assert not pos[u] & set(row.tolist())
            assert len(set(row.tolist())) == row.size
        assert cands.min() >= 0 and cands.max() < influencer.n_items
    # not a fixed list of items: the candidates spread over most of the catalogue
    assert np.unique(h.test_candidates).size > 0.9 * influencer.n_items


def test_candidates_cached_with_data_hash(tmp_path, monkeypatch) -> None:
    data = synthetic_influencer(100, 200, 800, seed=1)
    first = protocols.make_holdout_split(data, seed=0, n_candidates=20, cache_dir=tmp_path)
    files = sorted(tmp_path.glob("holdout-*.npz"))
    assert len(files) == 1
    with np.load(files[0]) as z:
        assert str(z["data_hash"]) == data.content_hash()
        np.testing.assert_array_equal(z["test_candidates"], first.test_candidates)

    def no_sampling(*a: Any, **k: Any) -> None:
        raise AssertionError("candidates were drawn again instead of loaded")

    monkeypatch.setattr(protocols, "_candidates", no_sampling)
    loaded = protocols.make_holdout_split(data, seed=0, n_candidates=20, cache_dir=tmp_path)
    assert loaded.key() == first.key()
    assert loaded.data_hash == first.data_hash == data.content_hash()
    monkeypatch.undo()

    other = synthetic_influencer(100, 200, 800, seed=2)
    protocols.make_holdout_split(other, seed=0, n_candidates=20, cache_dir=tmp_path)
    protocols.make_holdout_split(data, seed=1, n_candidates=20, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("holdout-*.npz"))) == 3


def test_run_writes_candidates_next_to_it(tmp_path, small: Interactions) -> None:
    run = OCFBRun(run_cfg(protocol="holdout"), small, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("holdout-*.npz"))) == 1
    again = OCFBRun(run_cfg(protocol="holdout", model="gmf"), small, cache_dir=tmp_path)
    assert again.holdout.key() == run.holdout.key()
    assert len(list(tmp_path.glob("holdout-*.npz"))) == 1


# -- holdout metrics against a brute-force reference -------------------------------------------


class TableModel(nn.Module):
    """A model whose logit for (u, i) is a fixed table entry: scores with many ties."""

    def __init__(self, logits: np.ndarray) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.as_tensor(logits, dtype=torch.float32))

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Logits of the pairs."""
        return self.table[users, items]


def brute_force(
    scores: np.ndarray, users: np.ndarray, items: np.ndarray, cands: np.ndarray,
    known: np.ndarray, prefix: str,
) -> dict[str, float]:
    """HR/NDCG (pessimistic ties), AUC and P/R/F1 at 0.5, one user at a time."""
    out: dict[str, float] = {}
    sampled, full = [], []
    for u, i, row in zip(users, items, cands, strict=True):
        s = scores[u, i]
        sampled.append(sum(scores[u, j] >= s for j in row))
        full.append(sum(scores[u, j] >= s for j in range(scores.shape[1])
                        if j != i and not known[u, j]))
    for name, ranks in (("", sampled), ("full_", full)):
        for k in (5, 10, 20):
            out[f"{prefix}{name}hr@{k}"] = np.mean([r < k for r in ranks])
            out[f"{prefix}{name}ndcg@{k}"] = np.mean(
                [1 / np.log2(r + 2) if r < k else 0.0 for r in ranks])
    pos = scores[users, items]
    neg = scores[users[:, None], cands].ravel()
    y = np.r_[np.ones(pos.size), np.zeros(neg.size)]
    p = np.r_[pos, neg]
    out[f"{prefix}auc"] = roc_auc_score(y, p)
    pr, rc, f1, _ = precision_recall_fscore_support(y, p >= 0.5, average="binary",
                                                    zero_division=0)
    out.update({f"{prefix}precision": pr, f"{prefix}recall": rc, f"{prefix}f1": f1})
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_holdout_metrics_match_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_users, n_items, k = 7, 40, 12
    logits = rng.integers(-2, 3, size=(n_users, n_items)).astype(np.float64)  # heavy ties
    known = rng.random((n_users, n_items)) < 0.2
    known[0] = False
    known[0, 3] = True  # user 0 has a single positive, which is held out
    rows_u, rows_i = [], []
    for u in range(n_users):
        for i in np.flatnonzero(known[u])[:2]:  # up to two held-out rows per user
            rows_u.append(u)
            rows_i.append(int(i))
    users, items = np.array(rows_u), np.array(rows_i)
    cands = np.stack([rng.choice(np.flatnonzero(~known[u]), size=k, replace=False)
                      for u in users])
    model = TableModel(logits)
    got = protocols.evaluate_holdout_part(model, users, items, cands, sp.csr_matrix(known),
                                          torch.device("cpu"), "test_")
    all_cells = np.arange(n_users * n_items)
    scores = protocols.score_cells(model, all_cells, n_items, torch.device("cpu"))
    want = brute_force(scores.reshape(n_users, n_items), users, items, cands, known, "test_")
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-12), key
    no_full = protocols.evaluate_holdout_part(model, users, items, cands, sp.csr_matrix(known),
                                              torch.device("cpu"), "v_", full_ranking=False)
    assert not any("full" in key for key in no_full)
    assert no_full["v_hr@10"] == got["test_hr@10"]


def test_confident_scores_are_ranked_on_logits_not_saturated_probabilities() -> None:
    # float32 sigmoid is exactly 1.0 above a logit of ~17: ranking on it would tie these
    logits = np.array([[30.0, 20.0, 25.0, 18.0, -40.0]])
    model = TableModel(logits)
    known = sp.csr_matrix(np.array([[True, False, False, False, False]]))
    got = protocols.evaluate_holdout_part(model, np.array([0]), np.array([0]),
                                          np.array([[1, 2, 3]]), known, torch.device("cpu"),
                                          "t_")
    assert got["t_hr@5"] == 1.0 and got["t_ndcg@5"] == 1.0  # rank 0, not 3
    assert got["t_full_ndcg@5"] == 1.0
    assert got["t_auc"] == 1.0
    assert float(torch.sigmoid(torch.tensor(20.0))) == 1.0  # the trap this avoids


# -- paper: the validation part --------------------------------------------------------------


def old_test_masks(n_pos: int, n_neg: int, frac: float, seed: int) -> tuple[Any, Any]:
    """The test assignment as drawn before validation existed (same stream, same order)."""
    rng = np.random.default_rng([seed, protocols.SPLIT_STREAM])

    def mask(n: int) -> np.ndarray:
        m = np.zeros(n, dtype=bool)
        m[rng.permutation(n)[: int(round(frac * n))]] = True
        return m

    return mask(n_pos), mask(n_neg)


@pytest.mark.parametrize("seed", [0, 3])
def test_paper_validation_is_stratified_seeded_and_keeps_test(
    influencer: Interactions, seed: int
) -> None:
    s = protocols.make_paper_split(influencer, 1500, 0.3, 0.1, seed)
    pos_test, neg_test = old_test_masks(2000, 1500, 0.3, seed)
    np.testing.assert_array_equal(s.pos_is_test, pos_test)  # unchanged by the val carve
    np.testing.assert_array_equal(s.neg_slot_is_test, neg_test)
    assert s.pos_is_val.sum() == 140 and s.neg_slot_is_val.sum() == 105  # 10 % of 1,400 / 1,050
    assert not (s.pos_is_val & s.pos_is_test).any()
    assert not (s.neg_slot_is_val & s.neg_slot_is_test).any()
    assert s.train_pos.size == 2000 - 600 - 140 and s.train_slots.size == 1500 - 450 - 105
    again = protocols.make_paper_split(influencer, 1500, 0.3, 0.1, seed)
    np.testing.assert_array_equal(again.pos_is_val, s.pos_is_val)
    other = protocols.make_paper_split(influencer, 1500, 0.3, 0.1, seed + 1)
    assert (other.pos_is_val != s.pos_is_val).any()
    with pytest.raises(ConfigError, match="^val_fraction: must lie strictly between 0 and 1"):
        protocols.make_paper_split(influencer, 1500, 0.3, 1.0, seed)


def test_evaluate_paper_reports_val_and_test(small: Interactions) -> None:
    run = OCFBRun(run_cfg(terms=0), small)
    rec = run.step()
    s = run.paper
    for prefix, p, n in (("val_", s.pos_is_val, s.neg_slot_is_val),
                         ("test_", s.pos_is_test, s.neg_slot_is_test)):
        cells = np.concatenate([s.pos_cells[p], run.negatives[n]])
        y = np.r_[np.ones(p.sum()), np.zeros(n.sum())]
        z = protocols.score_cells(run.model, cells, small.n_items, run.device, logits=True)
        assert rec[f"{prefix}auc"] == pytest.approx(roc_auc_score(y, z), abs=1e-12)
        assert rec[f"{prefix}support_pos"] == p.sum() and rec[f"{prefix}support_neg"] == n.sum()
        assert rec[f"{prefix}accuracy"] == pytest.approx(np.mean((z >= 0) == y))


# -- scoring a baseline, block sizes, frozen split files -----------------------------------------


class TableScorer:
    """A non-torch scorer (the baseline interface) over a fixed score table."""

    def __init__(self, table: np.ndarray) -> None:
        self.table = table

    def score_cells(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Table entries of the pairs."""
        return self.table[users, items]

    def score_all_items(self, users: np.ndarray) -> np.ndarray:
        """Table rows."""
        return self.table[users]


def test_baseline_scorer_gives_the_torch_model_metrics_at_any_block_size() -> None:
    rng = np.random.default_rng(5)
    n_users, n_items = 9, 30
    logits = rng.integers(-3, 4, size=(n_users, n_items)).astype(np.float64)  # ties
    known = rng.random((n_users, n_items)) < 0.2
    users = np.arange(n_users)
    items = np.array([int(rng.choice(np.flatnonzero(known[u]))) if known[u].any() else 0
                      for u in users])
    known[users, items] = True
    cands = np.stack([rng.choice(np.flatnonzero(~known[u]), 8, replace=False) for u in users])
    k = sp.csr_matrix(known)
    torch_got = protocols.evaluate_holdout_part(TableModel(logits), users, items, cands, k,
                                                torch.device("cpu"), "t_")
    table_got = protocols.evaluate_holdout_part(TableScorer(logits), users, items, cands, k,
                                                torch.device("cpu"), "t_")
    assert table_got == pytest.approx(torch_got, abs=1e-12)
    want = protocols.full_ranks(TableScorer(logits), users, items, k, torch.device("cpu"))
    for block in (1, n_items, 7 * n_items, 10**9):  # one row, a row, several rows, everything
        got = protocols.full_ranks(TableModel(logits), users, items, k, torch.device("cpu"),
                                   block_cells=block)
        np.testing.assert_array_equal(got, want)
    with pytest.raises(TypeError, match="torch model or have score_cells"):
        protocols.score_cells(object(), np.array([0]), n_items, torch.device("cpu"))


def string_ids() -> Interactions:
    """Users and items with text ids, 3+ positives per user."""
    rng = np.random.default_rng(2)
    users, items = [], []
    for u in range(12):
        for i in rng.choice(40, 6, replace=False):
            users.append(f"user-{u}")
            items.append(f"item-{i}")
    return from_pairs(users, items)


def test_frozen_split_file_has_ids_grid_and_loads(tmp_path) -> None:
    data = string_ids()
    old = os.umask(0o002)
    try:
        h = protocols.make_holdout_split(data, seed=4, n_candidates=10, cache_dir=tmp_path)
    finally:
        os.umask(old)
    (path,) = tmp_path.glob("holdout-*.npz")
    assert path.stat().st_mode & 0o777 == 0o664  # group-readable, not mkstemp's 0600
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left
    frozen = protocols.load_frozen_split(path)
    assert frozen.split.key() == h.key() and frozen.split.data_hash == data.content_hash()
    assert (frozen.n_users, frozen.n_items) == (data.n_users, data.n_items)
    np.testing.assert_array_equal(frozen.user_ids, data.user_ids.astype(str))
    np.testing.assert_array_equal(frozen.item_ids, data.item_ids.astype(str))
    assert frozen.settings == {"seed": 4, "split": "loo", "holdout_fraction": 0.2,
                               "n_candidates": 10}
    assert (frozen.known() != protocols.known_matrix(data)).nnz == 0
    # original ids of a held-out pair and its candidates name real, unobserved items
    u = frozen.split.test_users[0]
    seen = set(data.item_ids[data.items[data.users == u]])
    assert str(frozen.item_ids[frozen.split.test_items[0]]) in seen
    assert not seen & {str(x) for x in frozen.item_ids[frozen.split.test_candidates[0]]}


def test_frozen_split_write_failure_keeps_old_file_and_no_temp(tmp_path, monkeypatch) -> None:
    data = string_ids()
    protocols.make_holdout_split(data, seed=0, n_candidates=10, cache_dir=tmp_path)
    (path,) = tmp_path.glob("holdout-*.npz")
    before = path.read_bytes()
    path.unlink()

    def full_disk(*a: Any, **k: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(protocols.np, "savez", full_disk)
    with pytest.raises(OSError, match="No space"):
        protocols.make_holdout_split(data, seed=0, n_candidates=10, cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    protocols.make_holdout_split(data, seed=0, n_candidates=10, cache_dir=tmp_path)
    assert path.read_bytes() == before  # deterministic content


def test_old_split_files_are_rewritten_and_refused_by_the_loader(tmp_path) -> None:
    data = string_ids()
    h = protocols.make_holdout_split(data, seed=0, n_candidates=10, cache_dir=tmp_path)
    (path,) = tmp_path.glob("holdout-*.npz")
    with np.load(path) as z:  # an older file: the split and the hash only
        np.savez(path, **{k: z[k] for k in (*protocols._FIELDS, "data_hash")})
    with pytest.raises(ValueError, match=r"not a complete frozen split: missing \['user_ids'"):
        protocols.load_frozen_split(path)
    again = protocols.make_holdout_split(data, seed=0, n_candidates=10, cache_dir=tmp_path)
    assert again.key() == h.key()
    assert protocols.load_frozen_split(path).n_items == data.n_items
    with pytest.raises(FileNotFoundError, match="does not exist"):
        protocols.load_frozen_split(tmp_path / "nope.npz")


@pytest.mark.parametrize("name", ["gmf", "mlp", "neumf"])
def test_block_logits_equal_the_forward_and_full_ranking_scores(name: str, monkeypatch) -> None:
    from ocfb import scoring
    from ocfb.models import build_model

    model = build_model(name, 50, 80, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(30)  # away from the near-zero init, so differences would show
    users = np.arange(50)
    items = np.random.default_rng(0).integers(0, 80, (50, 11))
    monkeypatch.setattr(scoring, "_BLOCK_ROWS", 7)  # several row blocks
    got = protocols.block_logits(model, users, items, 80, torch.device("cpu"))
    forward = protocols.score_cells(model, (users[:, None] * 80 + items).ravel(), 80,
                                    torch.device("cpu"), logits=True).reshape(items.shape)
    full = protocols.score_all_items(model, users, 80, torch.device("cpu"))
    scale = np.abs(forward).max()
    np.testing.assert_allclose(got, forward, atol=1e-6 * scale)
    np.testing.assert_allclose(got, np.take_along_axis(full, items, 1), atol=1e-6 * scale)
    assert model.training  # the caller's mode is restored
