"""`ocfb-suite compare`: the same arms on two datasets, ranked per (dataset, seed) block, a
Friedman test equal to scipy's on the same blocks, and a refusal naming the arms that differ."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from suite.cli import main
from suite.summary import compare_dirs

SHIFT = {"ocfb": 0.00, "static": 0.02, "dns": 0.05}
SEEDS = (0, 1, 2, 3)


def _value(dataset: int, arm: str, seed: int, term: int) -> float:
    # Seeds and datasets move every arm together; the arms differ by SHIFT plus a little noise.
    wobble = 0.004 * math.sin(13 * seed + 7 * dataset + len(arm) + term)
    return 0.3 + 0.1 * dataset + 0.02 * seed + SHIFT.get(arm, 0.03) + 0.01 * term + wobble


def _sweep(d: Path, dataset: int, strategies: tuple[str, ...] = tuple(SHIFT),
           models: tuple[str, ...] = ("neumf",)) -> None:
    """A sweep folder in the runner's schema: each neural model (neumf) with each strategy
    (terms 0-2) and an EASE baseline (one record), 4 seeds; full-ranking metrics recorded at
    every term. A model after the first has its strategy shifts reversed."""
    trials, terms = [], []
    arms = [(m, s) for m in models for s in strategies] + [("ease", None)]
    for model, strategy in arms:
        for seed in SEEDS:
            tid = f"{model}-{strategy}-{seed}"
            cfg = {"config.model": model, "config.strategy": strategy, "config.seed": seed}
            last = 0 if model == "ease" else 2
            for term in range(last + 1):
                v = _value(dataset, strategy or "ease", seed, term)
                if model not in ("ease", models[0]):
                    v -= 2 * SHIFT.get(strategy, 0.0)
                terms.append({"trial_id": tid, "term": term, "val_hr@10": v,
                              "test_hr@10": v - 0.01, "test_full_hr@10": v / 4, **cfg})
            trials.append({"trial_id": tid, "status": "completed", "terms_done": last + 1,
                           **cfg})
    d.mkdir(parents=True)
    pd.DataFrame(trials).to_parquet(d / "trials.parquet", index=False)
    pd.DataFrame(terms).to_parquet(d / "terms.parquet", index=False)
    (d / "sweep.json").write_text(json.dumps({
        "name": d.name, "protocol": "holdout", "axes": ["model", "strategy", "seed"],
        "objective": {"metric": "val_hr@10", "mode": "max"}}))


def test_compare_ranks_friedman_and_diagram(tmp_path: Path) -> None:
    _sweep(tmp_path / "synthetic", 0)
    _sweep(tmp_path / "ml100k", 1)
    out = tmp_path / "cmp"
    c = compare_dirs([tmp_path / "synthetic", tmp_path / "ml100k"], out)
    assert c.metric == "test_full_hr@10"  # the verdict metric under holdout
    arms = ["ease", "neumf/dns", "neumf/ocfb", "neumf/static"]
    assert sorted(c.blocks.columns) == arms and len(c.blocks) == 8  # 2 datasets x 4 seeds
    # The blocks, rebuilt here: each trial at its validation-selected term (the last here).
    want = np.array([[_value(ds, "ease", s, 0) / 4, *(_value(ds, a, s, 2) / 4 for a in
                      ("dns", "ocfb", "static"))] for ds in (0, 1) for s in SEEDS])
    np.testing.assert_allclose(c.blocks[arms].to_numpy(), want)
    ref = stats.friedmanchisquare(*want.T)
    assert c.chi2 == pytest.approx(ref.statistic) and c.p == pytest.approx(ref.pvalue)
    ranks = np.mean([stats.rankdata(-row) for row in want], axis=0)
    assert dict(c.ranks) == pytest.approx(dict(zip(arms, ranks, strict=True)))
    assert c.ranks.index[0] == "neumf/dns"  # best on every block: rank 1.0
    assert c.ranks["neumf/dns"] == 1.0
    md = (out / "compare.md").read_text()
    assert "# Across datasets: synthetic, ml100k" in md
    assert "Friedman over the (dataset, seed) blocks: chi2" in md
    assert "| ocfb vs dns | last term |" in md  # each dataset's verdicts side by side
    png = out / "plots" / "critical_difference.png"
    assert png.is_file() and png.stat().st_size > 5_000
    for name in ("blocks", "ranks", "nemenyi", "verdicts"):
        assert (out / "tables" / f"compare_{name}.csv").is_file()


def test_compare_keeps_each_model_groups_strategy_verdicts_apart(tmp_path: Path) -> None:
    # two neural models per folder: their section-5 lines share "ocfb vs static"; each keeps
    # its own row (they overwrote each other, the last model's line winning)
    for i, name in enumerate(("synthetic", "ml100k")):
        _sweep(tmp_path / name, i, models=("neumf", "mlp"))
    c = compare_dirs([tmp_path / "synthetic", tmp_path / "ml100k"], tmp_path / "cmp")
    v = c.verdicts
    assert list(v.columns[:3]) == ["model", "comparison", "budget"]
    pair = v[v["comparison"] == "ocfb vs static"].set_index(["model", "budget"])
    assert sorted(pair.index) == [("mlp", "last term"), ("mlp", "selected term"),
                                  ("neumf", "last term"), ("neumf", "selected term")]
    # static's shift is reversed for mlp: the two models' differences have opposite signs
    neumf, mlp = (pair.loc[(m, "last term"), "synthetic"] for m in ("neumf", "mlp"))
    assert neumf.startswith("-") and mlp.startswith("+"), (neumf, mlp)
    assert "| model | comparison | budget |" in c.markdown


def test_compare_refuses_folders_whose_arms_differ(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    _sweep(tmp_path / "synthetic", 0)
    _sweep(tmp_path / "ml100k", 1, strategies=("ocfb", "static"))
    with pytest.raises(ValueError, match=r"arms differ: ml100k lacks neumf/dns"):
        compare_dirs([tmp_path / "synthetic", tmp_path / "ml100k"], tmp_path / "cmp")
    rc = main(["compare", str(tmp_path / "synthetic"), str(tmp_path / "ml100k"), "--out",
               str(tmp_path / "cmp")])
    err = capsys.readouterr().err
    assert rc == 2 and "ml100k lacks neumf/dns" in err
    assert not (tmp_path / "cmp").exists()  # refused before writing anything
    with pytest.raises(ValueError, match="two or more sweep folders"):
        compare_dirs([tmp_path / "synthetic"], tmp_path / "cmp")


_DIAGRAM = """
import sys
from pathlib import Path
import pandas as pd
from suite.summary.rendering import plot_critical_difference
arms = ["ocfb", "static", "dns", "srns", "pop", "ease"]
ranks = pd.Series([1.2, 2.0, 2.9, 3.6, 4.8, 5.5], index=arms)
close = {("ocfb", "static"), ("static", "dns"), ("dns", "srns"), ("srns", "pop"), ("pop", "ease"),
         ("ocfb", "dns"), ("srns", "ease")}
sig = pd.DataFrame([[1.0 if a == b or (a, b) in close or (b, a) in close else 0.001
                     for b in arms] for a in arms], index=arms, columns=arms)
plot_critical_difference(ranks, sig, 1.5, "t", Path(sys.argv[1]))
"""


@pytest.mark.slow  # two child interpreters, about 3 s each
def test_critical_difference_diagram_has_the_same_bytes_under_any_hash_seed(
        tmp_path: Path) -> None:
    """scikit-posthocs keeps a crossbar's arms in sets: with str's per-process hash the PNG
    differed between two runs of the same comparison."""
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    pngs = []
    for seed in ("1", "2", "3"):
        out = tmp_path / f"cd-{seed}.png"
        subprocess.run([sys.executable, "-c", _DIAGRAM, str(out)], cwd=repo, check=True,
                       env={**os.environ, "PYTHONHASHSEED": seed}, timeout=120)
        pngs.append(out.read_bytes())
    assert pngs[0][:8] == b"\x89PNG\r\n\x1a\n" and pngs[0] == pngs[1] == pngs[2]
