"""OCF-B (One-Class problem Free Boosting, Song & Song 2022) for neural collaborative filtering.

The core library: data, negative sampling, GMF / MLP / NeuMF (He et al. 2017), training, the
OCF-B loop and its evaluation protocols. It never imports Ray or W&B; `suite` adapts it.

The public face, for notebooks and scripts: a config, its data, a run that yields one record
(a dict with "term" and that term's metrics) per OCF-B term::

    from ocfb import load_data, make_run, make_run_config

    cfg = make_run_config({"model": "gmf", "terms": 2, "epochs": 2, "seed": 0})
    for record in make_run(cfg, load_data(cfg)):
        print(record["term"], record[cfg.selection_metric])

Importing this package costs about 0.45 s (pandas and pydantic, which every caller needs);
torch is imported only when a neural run is made.
"""

from __future__ import annotations

from ocfb.config import ConfigError, DataConfig, RunConfig, load_run_config, make_run_config
from ocfb.data import DataError, Interactions, load_source
from ocfb.runs import make_run

__version__ = "0.1.0"

__all__ = [
    "ConfigError", "DataConfig", "DataError", "Interactions", "RunConfig", "load_data",
    "load_run_config", "load_source", "make_run", "make_run_config",
]


def load_data(cfg: RunConfig | DataConfig) -> Interactions:
    """The interactions a run config (or its `data` block) names: the seeded synthetic set or a
    file, loaded as `ocfb-suite train` and every sweep trial load them."""
    data = cfg.data if isinstance(cfg, RunConfig) else cfg
    return load_source(data.source, **data.load_kwargs())
