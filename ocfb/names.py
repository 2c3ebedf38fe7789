"""One source for the names the whole project shares: models, strategies, protocols, metrics.

Torch-free and Ray-free on purpose, so the sweep spec, the summaries and the CLI can import it
without paying for torch (about 1 s) or Ray (about 2 s). Anything that means "the list of
strategies" or "the K values" imports it from here; never write the same meaning twice.
"""

from __future__ import annotations

import re
from typing import Literal, get_args

# Each set of names is written once, as a `Literal` (for pydantic and type checkers); its tuple
# is read back from it with `get_args`, so the two cannot drift apart.

# Neural models trained by the OCF-B loop (He et al. 2017).
NeuralModelName = Literal["gmf", "mlp", "neumf"]
NEURAL_MODELS: tuple[str, ...] = get_args(NeuralModelName)
# Reference baselines: fitted once, evaluated by the same protocol code on the same splits.
# popularity = training count; ease = Steck 2019 closed form; als = implicit's ALS.
BaselineName = Literal["popularity", "ease", "als"]
BASELINE_MODELS: tuple[str, ...] = get_args(BaselineName)
ModelName = Literal[NeuralModelName, BaselineName]  # nested Literals flatten
MODELS: tuple[str, ...] = get_args(ModelName)

# Negative strategies. `ocfb` is the paper's; the others are controls and alternatives.
StrategyName = Literal[
    "ocfb", "random-replace", "resample-all", "static", "ocfb-resample", "dns", "pop",
    "pop-ocfb", "srns",
]
STRATEGIES: tuple[str, ...] = get_args(StrategyName)
# Strategies where `threshold` changes nothing (a sweep over threshold is wasted on them).
THRESHOLD_FREE_STRATEGIES: tuple[str, ...] = ("resample-all", "static", "dns", "pop", "srns")

ErrorName = Literal["prob", "loss", "residual"]

ProtocolName = Literal["paper", "holdout"]
PROTOCOLS: tuple[str, ...] = get_args(ProtocolName)

# When full ranking (all items) runs: every term, at the validation-selected term and the final
# term, only at the final term, or never.
FullRankingSchedule = Literal["every", "selected", "final", "off"]

# Weights & Biases modes (`--wandb`, a sweep file's `wandb.mode`, which also takes "auto").
WandbMode = Literal["online", "offline", "disabled"]
WANDB_MODES: tuple[str, ...] = get_args(WandbMode)

# Cut-offs of HR@K / NDCG@K, sampled and full.
K_VALUES: tuple[int, ...] = (5, 10, 20)

# The paper protocol's classification report (Table 2 layout), without the split prefix.
REPORT_KEYS: tuple[str, ...] = (
    "auc", "accuracy",
    "precision_neg", "recall_neg", "f1_neg", "support_neg",
    "precision_pos", "recall_pos", "f1_pos", "support_pos",
    "precision_weighted", "recall_weighted", "f1_weighted",
)

# Loop diagnostics in every per-term record; lower is better for all of them.
LOOP_METRICS: tuple[str, ...] = ("train_loss", "err_mean", "err_max")

# A negatives ratio such as "4x" (of the positives).
RATIO = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*x\s*$")

# `--smoke`: a few seconds of work per run, shared by `train --smoke` and `sweep --smoke`.
SMOKE_SETTINGS: dict[str, int] = {"terms": 2, "epochs": 2, "epochs_per_term": 1, "batch_size": 1024}


def default_objective(protocol: str) -> str:
    """The metric model selection uses: always a validation metric, never a test one.

    holdout: validation HR@10 (NCF's headline metric); paper: validation AUC, on the part carved
    from the labeled training side (`val_fraction`).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    return "val_hr@10" if protocol == "holdout" else "val_auc"


def test_counterpart(metric: str) -> str | None:
    """`val_x` -> `test_x`: the test metric reported at the term the validation metric selects."""
    return "test_" + metric[len("val_"):] if metric.startswith("val_") else None


def is_test_metric(metric: str) -> bool:
    """True for metrics computed on the test part: they may be reported, never selected on."""
    return metric.startswith("test_")
