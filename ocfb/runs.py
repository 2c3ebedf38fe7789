"""One factory for every run: the OCF-B loop for neural models, a fitted baseline otherwise.

The suite's trainable (`suite/tuner.py`) and `ocfb-suite train` call `make_run`, never a run
class directly, so a new kind of model is added here once. Both run kinds share one interface:
iterate (or `step()`) for per-term records with "term", `done`, `term`, `history`,
`state_dict()` / `load_state_dict()`, `save(path)` / `load(path)`, `cfg`. A checkpoint folder
holds `save`'s file as STATE_FILE; `load_history` reads its records without building the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ocfb.config import RunConfig
from ocfb.data import Interactions

if TYPE_CHECKING:
    from ocfb.algorithm import OCFBRun
    from ocfb.baselines import BaselineRun

# The file a run's `save` writes into a checkpoint folder (the suite's trainable and readers)
STATE_FILE = "ocfb_state.pt"


def make_run(
    cfg: RunConfig, data: Interactions, *, cache_dir: str | Path | None = None
) -> OCFBRun | BaselineRun:
    """The run for `cfg`: `BaselineRun` for popularity / ease / als, else `OCFBRun`.

    `cache_dir` is where the frozen holdout split is written and reused (callers pass
    `<out>/splits/`); the two kinds of run read the same file for the same data and seed.
    """
    if cfg.is_baseline:
        from ocfb.baselines import BaselineRun

        return BaselineRun(cfg, data, cache_dir=cache_dir)
    # imported lazily: the loop pulls in its strategies and models only when needed
    from ocfb.algorithm import OCFBRun

    return OCFBRun(cfg, data, cache_dir=cache_dir)


def load_history(checkpoint_dir: str | Path) -> list[dict[str, Any]]:
    """The per-term records saved in a checkpoint folder (`run.save(dir / STATE_FILE)`), in
    term order; callers recover terms that were reported but never written elsewhere."""
    import torch

    state = torch.load(Path(checkpoint_dir) / STATE_FILE, map_location="cpu",
                       weights_only=False)
    return list(state.get("history", []))
