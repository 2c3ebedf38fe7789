"""GMF, MLP and NeuMF (He et al. 2017): shapes, initialisation, and that each one learns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ocfb.algorithm import OCFBRun
from ocfb.config import make_run_config
from ocfb.data import synthetic_influencer
from ocfb.models import GMF, MLP, NeuMF, build_model


@pytest.fixture(scope="module")
def influencer():
    """The default synthetic-influencer set (407 x 462 x 2,000)."""
    return synthetic_influencer()


@pytest.mark.parametrize("name,cls", [("gmf", GMF), ("mlp", MLP), ("neumf", NeuMF)])
def test_build_by_name_gives_logits_per_pair(name: str, cls: type) -> None:
    model = build_model(name, 10, 7, mf_dim=3, user_dim=4, item_dim=5, layers=(6, 2),
                        generator=torch.Generator().manual_seed(0))
    assert isinstance(model, cls)
    out = model(torch.tensor([0, 9, 3]), torch.tensor([6, 0, 2]))
    assert out.shape == (3,)
    assert torch.isfinite(out).all()


def test_unknown_model_name() -> None:
    with pytest.raises(ValueError, match="unknown model 'svd'.*'gmf', 'mlp', 'neumf'"):
        build_model("svd", 3, 3)


def test_embeddings_initialised_n_0_001() -> None:
    model = build_model("neumf", 2000, 2000, mf_dim=16, generator=torch.Generator().manual_seed(1))
    for emb in (model.gmf.user, model.gmf.item, model.mlp.user, model.mlp.item):
        w = emb.weight.detach()
        assert abs(float(w.mean())) < 1e-3
        assert float(w.std()) == pytest.approx(0.01, rel=0.05)


def test_mlp_user_and_item_sizes_are_separate() -> None:
    m = build_model("mlp", 5, 6, user_dim=3, item_dim=11, layers=(4,))
    assert m.user.weight.shape == (5, 3)
    assert m.item.weight.shape == (6, 11)
    assert m.tower[0].in_features == 14


def _held_out_auc(data, model: str, seed: int, **kw) -> float:
    # paper protocol with terms=0 = plain random negatives, AUC on the held-out 30 %
    cfg = make_run_config({"model": model, "protocol": "paper", "terms": 0, "seed": seed, **kw})
    return list(OCFBRun(cfg, data))[-1]["test_auc"]


@pytest.mark.parametrize("model", ["mlp", "neumf"])
def test_mlp_and_neumf_learn(influencer, model: str) -> None:
    aucs = [_held_out_auc(influencer, model, s) for s in range(3)]
    assert min(aucs) > 0.7, aucs


@pytest.mark.parametrize("mf_dim", [2, 3, 4, 5, 8])
def test_gmf_learns_at_small_latent_sizes(influencer, mf_dim: int) -> None:
    # The paper reports GMF "did not converge" at sizes 2-5; ours must learn at every size.
    # GMF starts at the saddle of p*q near 0 (N(0, 0.01) embeddings): at lr 1e-3 it barely
    # leaves it in 20 epochs, so it gets a larger step. Measured over 6 seeds since the paper
    # protocol carves 10 % validation from the training side: AUC 0.53-0.63 (mf_dim 2, seed 0
    # is the low one, 0.529; 40 epochs give 0.533, so it is the data, not the budget).
    aucs = [_held_out_auc(influencer, "gmf", s, mf_dim=mf_dim, lr=1e-2) for s in range(3)]
    assert min(aucs) > 0.52, aucs
    assert np.mean(aucs) > 0.56, aucs


@pytest.mark.parametrize("name", ["gmf", "mlp", "neumf"])
def test_score_matrix_equals_pairwise_scores(name: str) -> None:
    from ocfb.models import predict_proba, score_matrix

    g = torch.Generator().manual_seed(3)
    m = build_model(name, 9, 7, mf_dim=3, user_dim=4, item_dim=5, layers=(6, 4, 2), generator=g)
    for p in m.parameters():  # move away from the near-zero initialisation
        torch.nn.init.normal_(p, 0, 0.5, generator=g)
    users, items = torch.tensor([0, 4, 8]), torch.arange(7)
    mat = score_matrix(m, users, items)
    pairs = predict_proba(m, users.repeat_interleave(7), items.repeat(3)).view(3, 7)
    torch.testing.assert_close(mat, pairs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["gmf", "mlp", "neumf"])
@pytest.mark.parametrize("chunk", [None, 5])
def test_predict_logits_factored_path_equals_the_forward(name: str, chunk: int | None) -> None:
    from ocfb.models import predict_cell_logits, predict_logits

    g = torch.Generator().manual_seed(4)
    m = build_model(name, 11, 13, mf_dim=3, user_dim=4, item_dim=6, layers=(5, 3), generator=g)
    for p in m.parameters():  # away from the near-zero initialisation: logits of several units
        torch.nn.init.normal_(p, 0, 0.7, generator=g)
    users = torch.randint(0, 11, (57,), generator=g)
    items = torch.randint(0, 13, (57,), generator=g)
    m.train()
    with torch.no_grad():
        ref = m(users, items)
    got = predict_logits(m, users, items, chunk)
    assert float(ref.abs().max()) > 1.0
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    assert m.training  # the mode is restored
    cells = (users * 13 + items).numpy()
    torch.testing.assert_close(predict_cell_logits(m, cells, 13, "cpu", chunk), got)


def test_predict_logits_scores_any_pair_module_by_its_forward() -> None:
    from ocfb.models import predict_logits

    class Sum(torch.nn.Module):
        def forward(self, u: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
            return (u * 10 + i).float()

    out = predict_logits(Sum(), torch.arange(5), torch.arange(5), 2)
    torch.testing.assert_close(out, torch.tensor([0.0, 11.0, 22.0, 33.0, 44.0]))


@pytest.mark.parametrize("name", ["mlp", "neumf"])
def test_predict_logits_factored_path_with_one_hidden_layer(name: str) -> None:
    from ocfb.models import predict_logits

    g = torch.Generator().manual_seed(5)
    m = build_model(name, 7, 9, mf_dim=2, user_dim=3, item_dim=4, layers=(6,), generator=g)
    for p in m.parameters():
        torch.nn.init.normal_(p, 0, 0.7, generator=g)
    users, items = torch.randint(0, 7, (23,), generator=g), torch.randint(0, 9, (23,), generator=g)
    with torch.no_grad():
        ref = m(users, items)
    torch.testing.assert_close(predict_logits(m, users, items, 4), ref, rtol=1e-5, atol=1e-5)


def test_predict_cell_logits_beyond_int32_cell_ids() -> None:
    """Cell ids of a grid over 2**31 cells are split in int64, not the int32 fast path."""
    from ocfb.models import predict_cell_logits, predict_logits

    g = torch.Generator().manual_seed(6)
    m = build_model("neumf", 5, 9, mf_dim=2, user_dim=3, item_dim=4, layers=(4, 2), generator=g)
    users, items = torch.arange(5).repeat(3), torch.arange(15) % 9
    n_items = 2**30  # only items < 9 occur, but the ids reach 4 * 2**30
    cells = (users * n_items + items).numpy()
    assert int(cells.max()) >= 2**31
    torch.testing.assert_close(predict_cell_logits(m, cells, n_items, "cpu", 4),
                               predict_logits(m, users, items))
