"""Tests for ocfb.metrics against plain-loop reference implementations and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import accuracy_score, precision_recall_fscore_support, roc_auc_score

from ocfb import metrics
from ocfb.metrics import (
    KS,
    binary_at_threshold,
    classification_report,
    format_classification_report,
    full_rank_of_positive,
    hit_ndcg,
    rank_of_positive,
    roc_auc,
)

SEEDS = range(40)


# --- brute-force references: deliberately plain Python loops -------------------------------


def ref_rank(pos: float, candidates: list[float]) -> int:
    rank = 0
    for s in candidates:
        if s >= pos:
            rank += 1
    return rank


def ref_full_rank(row: list[float], pos: int, excluded: list[bool]) -> int:
    rank = 0
    for j in range(len(row)):
        if j == pos or excluded[j]:
            continue
        if row[j] >= row[pos]:
            rank += 1
    return rank


def ref_hit_ndcg(ranks: list[int], ks: tuple[int, ...], prefix: str = "") -> dict[str, float]:
    out = {}
    for k in ks:
        hits = 0.0
        ndcg = 0.0
        for r in ranks:
            if r < k:
                hits += 1
                ndcg += 1 / math.log2(r + 2)
        out[f"{prefix}hr@{k}"] = hits / len(ranks)
        out[f"{prefix}ndcg@{k}"] = ndcg / len(ranks)
    return out


def ref_auc(pos: list[float], neg: list[float]) -> float:
    total = 0.0
    for p in pos:
        for q in neg:
            if p > q:
                total += 1
            elif p == q:
                total += 0.5
    return total / (len(pos) * len(neg))


def ref_prf(pos: list[float], neg: list[float], thr: float) -> tuple[float, float, float]:
    tp = sum(1 for s in pos if s >= thr)
    fp = sum(1 for s in neg if s >= thr)
    fn = len(pos) - tp
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(params=list(SEEDS))
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    return np.random.default_rng(request.param)


def tie_scores(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Integer-valued float scores from a tiny range so that ties are frequent."""
    return rng.integers(0, 4, size=shape).astype(np.float64)


@pytest.fixture
def full_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = int(rng.integers(1, 12))
    n_items = int(rng.integers(1, 15))
    scores = tie_scores(rng, (n, n_items))
    pos = rng.integers(0, n_items, size=n)
    exclude = rng.random((n, n_items)) < 0.3
    return scores, pos, exclude


# --- rank_of_positive -------------------------------------------------------------------------


def test_rank_of_positive_matches_reference_with_ties(rng: np.random.Generator) -> None:
    n, m = int(rng.integers(1, 20)), int(rng.integers(1, 10))
    pos = tie_scores(rng, (n,))
    neg = tie_scores(rng, (n, m))
    got = rank_of_positive(pos, neg)
    assert got.dtype == np.int64 and got.shape == (n,)
    assert got.tolist() == [ref_rank(pos[i], neg[i].tolist()) for i in range(n)]


def test_rank_of_positive_single_candidate() -> None:
    pos = np.array([1.0, 1.0, 1.0])
    neg = np.array([[0.0], [1.0], [2.0]])
    assert rank_of_positive(pos, neg).tolist() == [0, 1, 1]


def test_constant_scores_give_zero_hit_ratio() -> None:
    pos = np.full(50, 0.5)
    neg = np.full((50, 99), 0.5)
    ranks = rank_of_positive(pos, neg)
    assert (ranks == 99).all()
    res = hit_ndcg(ranks)
    assert all(v == 0.0 for v in res.values())
    full = full_rank_of_positive(np.zeros((4, 30)), np.arange(4), np.zeros((4, 30), dtype=bool))
    assert (full == 29).all()
    assert hit_ndcg(full)["hr@20"] == 0.0


def test_rank_of_positive_errors() -> None:
    with pytest.raises(ValueError, match="NaN"):
        rank_of_positive(np.array([0.1, np.nan]), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="neg_scores contains 1 NaN"):
        rank_of_positive(np.zeros(2), np.array([[0.0, np.nan], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="one row of candidates per held-out positive"):
        rank_of_positive(np.zeros(2), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="2-dimensional"):
        rank_of_positive(np.zeros(2), np.zeros(2))


# --- full_rank_of_positive --------------------------------------------------------------------


def test_full_rank_matches_reference_dense_and_sparse(full_case) -> None:
    scores, pos, exclude = full_case
    expected = [
        ref_full_rank(scores[i].tolist(), int(pos[i]), exclude[i].tolist()) for i in range(len(pos))
    ]
    assert full_rank_of_positive(scores, pos, exclude).tolist() == expected
    assert full_rank_of_positive(scores, pos, sp.csr_matrix(exclude)).tolist() == expected
    assert full_rank_of_positive(scores, pos, sp.csr_array(exclude)).tolist() == expected
    # float32 scores (what a model emits) give the same ranks.
    assert full_rank_of_positive(scores.astype(np.float32), pos, exclude).tolist() == expected


def test_full_rank_positive_is_never_excluded(full_case) -> None:
    scores, pos, exclude = full_case
    with_pos = exclude.copy()
    with_pos[np.arange(len(pos)), pos] = True
    without_pos = exclude.copy()
    without_pos[np.arange(len(pos)), pos] = False
    a = full_rank_of_positive(scores, pos, with_pos)
    b = full_rank_of_positive(scores, pos, without_pos)
    c = full_rank_of_positive(scores, pos, sp.csr_matrix(with_pos))
    assert a.tolist() == b.tolist() == c.tolist()


def test_full_rank_multiple_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    scores = tie_scores(rng, (37, 9))
    pos = rng.integers(0, 9, size=37)
    exclude = rng.random((37, 9)) < 0.25
    expected = [
        ref_full_rank(scores[i].tolist(), int(pos[i]), exclude[i].tolist()) for i in range(37)
    ]
    monkeypatch.setattr(metrics, "_CHUNK_ELEMS", 20)  # 2 rows per chunk
    assert full_rank_of_positive(scores, pos, exclude).tolist() == expected
    assert full_rank_of_positive(scores, pos, sp.csr_matrix(exclude)).tolist() == expected


def test_full_rank_single_item_and_single_row() -> None:
    # The positive is the only item: nothing can outrank it.
    only = full_rank_of_positive(np.array([[0.3]]), np.array([0]), np.array([[True]]))
    assert only.tolist() == [0]
    scores = np.array([[0.9, 0.5, 0.5, 0.1, 0.7]])
    exclude = np.array([[True, False, False, False, False]])
    # Item 0 (0.9) excluded; item 4 (0.7) above; item 2 ties (pessimistic) -> rank 2.
    assert full_rank_of_positive(scores, np.array([1]), exclude).tolist() == [2]


def test_full_rank_sparse_with_duplicates_and_explicit_zeros() -> None:
    scores = np.array([[0.5, 0.9, 0.8, 0.1]])
    # Item 1 stored twice, item 2 stored as an explicit zero (i.e. not excluded).
    ex = sp.csr_matrix(
        (np.array([1, 1, 0], dtype=np.int8), np.array([1, 1, 2]), np.array([0, 3])), shape=(1, 4)
    )
    assert full_rank_of_positive(scores, np.array([0]), ex).tolist() == [1]


def test_full_rank_errors() -> None:
    scores = np.zeros((2, 3))
    ok = np.zeros((2, 3), dtype=bool)
    with pytest.raises(ValueError, match=r"NaN value\(s\), first at index \(1, 2\)"):
        bad = scores.copy()
        bad[1, 2] = np.nan
        full_rank_of_positive(bad, np.array([0, 0]), ok)
    with pytest.raises(ValueError, match=r"pos_items must lie in \[0, 3\)"):
        full_rank_of_positive(scores, np.array([0, 3]), ok)
    with pytest.raises(ValueError, match="pos_items must have shape"):
        full_rank_of_positive(scores, np.array([0]), ok)
    with pytest.raises(ValueError, match="exclude has shape"):
        full_rank_of_positive(scores, np.array([0, 1]), np.zeros((2, 4), dtype=bool))
    with pytest.raises(ValueError, match="exclude has shape"):
        full_rank_of_positive(scores, np.array([0, 1]), sp.csr_matrix((3, 3), dtype=bool))
    with pytest.raises(TypeError, match="integer item indices"):
        full_rank_of_positive(scores, np.array([0.0, 1.0]), ok)


# --- hit_ndcg ---------------------------------------------------------------------------------


def test_hit_ndcg_matches_reference(rng: np.random.Generator) -> None:
    ranks = rng.integers(0, 30, size=int(rng.integers(1, 40)))
    got = hit_ndcg(ranks, prefix="test/")
    ref = ref_hit_ndcg(ranks.tolist(), KS, prefix="test/")
    assert got.keys() == ref.keys()
    for key, value in ref.items():
        assert got[key] == pytest.approx(value, abs=1e-12)
        assert type(got[key]) is float


def test_ndcg_of_rank_zero_and_one() -> None:
    assert hit_ndcg(np.array([0]), ks=(1,)) == {"hr@1": 1.0, "ndcg@1": 1.0}
    res = hit_ndcg(np.array([1]), ks=(1, 2))
    assert res["hr@1"] == 0.0 and res["ndcg@1"] == 0.0
    assert res["hr@2"] == 1.0
    assert res["ndcg@2"] == pytest.approx(1 / math.log2(3))
    assert list(hit_ndcg(np.array([0])).keys()) == [
        "hr@5",
        "ndcg@5",
        "hr@10",
        "ndcg@10",
        "hr@20",
        "ndcg@20",
    ]


def test_hit_ndcg_errors() -> None:
    with pytest.raises(ValueError, match="ranks is empty"):
        hit_ndcg(np.array([], dtype=np.int64))
    with pytest.raises(ValueError, match="must be >= 0"):
        hit_ndcg(np.array([0, -1]))
    with pytest.raises(ValueError, match="positive integers"):
        hit_ndcg(np.array([0]), ks=(0,))


# --- roc_auc ----------------------------------------------------------------------------------


def test_roc_auc_matches_reference_and_sklearn(rng: np.random.Generator) -> None:
    n, m = int(rng.integers(1, 25)), int(rng.integers(1, 25))
    pos = tie_scores(rng, (n,)) + rng.integers(0, 2)  # sometimes shifted, to vary the AUC
    neg = tie_scores(rng, (m,))
    got = roc_auc(pos, neg)
    assert got == pytest.approx(ref_auc(pos.tolist(), neg.tolist()), abs=1e-12)
    y = np.r_[np.ones(n), np.zeros(m)]
    assert got == pytest.approx(roc_auc_score(y, np.r_[pos, neg]), abs=1e-12)
    # Continuous scores (no ties) too.
    cp, cn = rng.random(n), rng.random(m)
    assert roc_auc(cp, cn) == pytest.approx(roc_auc_score(y, np.r_[cp, cn]), abs=1e-12)


def test_roc_auc_edge_values() -> None:
    assert roc_auc(np.array([1.0]), np.array([0.0])) == 1.0
    assert roc_auc(np.array([0.0]), np.array([1.0])) == 0.0
    assert roc_auc(np.full(3, 0.5), np.full((2, 4), 0.5)) == 0.5  # 2-D negatives are flattened


def test_roc_auc_errors() -> None:
    with pytest.raises(ValueError, match="0 positive"):
        roc_auc(np.array([]), np.array([0.1]))
    with pytest.raises(ValueError, match="0 negative"):
        roc_auc(np.array([0.1]), np.array([]))
    with pytest.raises(ValueError, match="pos_scores contains 1 NaN"):
        roc_auc(np.array([np.nan]), np.array([0.1]))


# --- classification_report --------------------------------------------------------------------


REPORT_KEYS = [
    "auc",
    "accuracy",
    "precision_neg",
    "recall_neg",
    "f1_neg",
    "support_neg",
    "precision_pos",
    "recall_pos",
    "f1_pos",
    "support_pos",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
]


def test_classification_report_matches_sklearn(rng: np.random.Generator) -> None:
    size = int(rng.integers(2, 60))
    y = rng.integers(0, 2, size=size)
    y[0], y[1] = 0, 1  # both classes present so AUC is defined
    prob = rng.integers(0, 5, size=size) / 4.0  # 0, .25, .5, .75, 1: ties and exact-threshold hits
    threshold = float(rng.choice([0.5, 0.25, 0.75, 1.1]))  # 1.1: nothing predicted positive
    rep = classification_report(y, prob, threshold=threshold)
    assert list(rep.keys()) == REPORT_KEYS
    assert all(type(v) is float for v in rep.values())

    pred = (prob >= threshold).astype(int)
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=[0, 1], zero_division=0)
    pw, rw, fw, _ = precision_recall_fscore_support(
        y, pred, labels=[0, 1], average="weighted", zero_division=0
    )
    expected = {
        "auc": roc_auc_score(y, prob),
        "accuracy": accuracy_score(y, pred),
        "precision_neg": p[0],
        "recall_neg": r[0],
        "f1_neg": f[0],
        "support_neg": s[0],
        "precision_pos": p[1],
        "recall_pos": r[1],
        "f1_pos": f[1],
        "support_pos": s[1],
        "precision_weighted": pw,
        "recall_weighted": rw,
        "f1_weighted": fw,
    }
    for key, value in expected.items():
        assert rep[key] == pytest.approx(float(value), abs=1e-12), key


def test_classification_report_errors() -> None:
    with pytest.raises(ValueError, match="empty"):
        classification_report(np.array([]), np.array([]))
    with pytest.raises(ValueError, match="binary labels"):
        classification_report(np.array([0, 2]), np.array([0.1, 0.9]))
    with pytest.raises(ValueError, match="y_prob contains 1 NaN"):
        classification_report(np.array([0, 1]), np.array([0.1, np.nan]))
    with pytest.raises(ValueError, match="shape"):
        classification_report(np.array([0, 1]), np.array([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match="0 negative"):  # AUC undefined with one class
        classification_report(np.array([1, 1]), np.array([0.1, 0.9]))


# --- format_classification_report -------------------------------------------------------------


def test_format_reproduces_paper_table_2_layout() -> None:
    report = {
        "auc": 0.9,
        "accuracy": 0.83,
        "precision_neg": 0.84,
        "recall_neg": 0.81,
        "f1_neg": 0.82,
        "support_neg": 592.0,
        "precision_pos": 0.82,
        "recall_pos": 0.85,
        "f1_pos": 0.83,
        "support_pos": 608.0,
        "precision_weighted": 0.83,
        "recall_weighted": 0.83,
        "f1_weighted": 0.83,
    }
    expected = (
        "              pre   rec   f1    sup\n"
        "negative(0)   0.84  0.81  0.82  592\n"
        "positive(1)   0.82  0.85  0.83  608\n"
        "accuracy                  0.83\n"
        "average       0.83  0.83  0.83  1200"
    )
    assert format_classification_report(report) == expected
    titled = format_classification_report(report, title="(a) negative cases=2,000")
    assert titled == "(a) negative cases=2,000\n" + expected


def test_format_hand_computed_case() -> None:
    # 4 negatives (3 predicted negative, 1 positive); 6 positives (5 predicted positive).
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    prob = np.array([0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9, 0.95, 0.5])
    text = format_classification_report(classification_report(y, prob))
    lines = text.split("\n")
    assert [line.split()[0] for line in lines] == [
        "pre",
        "negative(0)",
        "positive(1)",
        "accuracy",
        "average",
    ]
    # neg: p = 3/4, r = 3/4, f1 = 3/4; pos: p = 5/6, r = 5/6, f1 = 5/6; acc = 8/10;
    # weighted: (0.75 * 4 + 5/6 * 6) / 10 = 0.8 for all three.
    assert lines[1].split() == ["negative(0)", "0.75", "0.75", "0.75", "4"]
    assert lines[2].split() == ["positive(1)", "0.83", "0.83", "0.83", "6"]
    assert lines[3].split() == ["accuracy", "0.80"]
    assert lines[4].split() == ["average", "0.80", "0.80", "0.80", "10"]
    assert lines[3].index("0.80") == lines[1].rindex("0.75")  # accuracy sits in the f1 column


def test_format_missing_key() -> None:
    with pytest.raises(ValueError, match="missing key"):
        format_classification_report({"accuracy": 1.0})


# --- binary_at_threshold ----------------------------------------------------------------------


def test_binary_at_threshold_matches_reference_and_sklearn(rng: np.random.Generator) -> None:
    n, m = int(rng.integers(1, 20)), int(rng.integers(0, 20))
    pos = rng.integers(0, 5, size=n) / 4.0
    neg = rng.integers(0, 5, size=m) / 4.0
    res = binary_at_threshold(pos, neg, threshold=0.5, prefix="val/")
    assert list(res.keys()) == ["val/precision", "val/recall", "val/f1"]
    ref = ref_prf(pos.tolist(), neg.tolist(), 0.5)
    assert [res["val/precision"], res["val/recall"], res["val/f1"]] == pytest.approx(ref)
    y = np.r_[np.ones(n, dtype=int), np.zeros(m, dtype=int)]
    pred = (np.r_[pos, neg] >= 0.5).astype(int)
    p, r, f, _ = precision_recall_fscore_support(
        y, pred, labels=[1], average="binary", zero_division=0
    )
    assert [res["val/precision"], res["val/recall"], res["val/f1"]] == pytest.approx([p, r, f])


def test_binary_at_threshold_errors() -> None:
    with pytest.raises(ValueError, match="at least one held-out positive"):
        binary_at_threshold(np.array([]), np.array([0.3]))
    with pytest.raises(ValueError, match="NaN"):
        binary_at_threshold(np.array([0.3]), np.array([np.nan]))
