"""Weights & Biases tracking for sweeps: one run per trial, a summary run, offline-first.

W&B must never prompt, block or fail a sweep: every call into wandb is guarded, the first error is
logged once (one warning line, logger "suite.tracking") and tracking then stops, while the sweep
and its results files go on. Neither wandb nor Ray is imported here (Ray Tune alone costs about
2.3 s at import): wandb is imported when a run starts, and Ray never (`WandbTrialCallback` is
called by the sweep driver's Tune callback, not given to Tune).

Offline runs are never read back here: a resumed trial's rows come from the results files
(`replay`); the readers of W&B's offline files live with the tests (tests/wandb_offline.py).

This is the package's public face; its modules are `session` (mode, credentials, folders,
starting runs), `trials` (the per-trial runs) and `summary_run` (the sweep's summary run).
"""

from suite.tracking.session import (
    SUPERSEDED,
    api_key_configured,
    base_url,
    online_problem,
    prepare_env,
    resolve_mode,
    short_error,
    sync_hint,
)
from suite.tracking.summary_run import (
    SUMMARY_MANIFEST,
    log_summary,
    summary_manifest,
    summary_run_id,
)
from suite.tracking.trials import (
    RAY_RESULT_KEYS,
    SUMMARY_STATS,
    WandbTrialCallback,
    default_metric_keys,
    trial_run_id,
)

__all__ = [
    "RAY_RESULT_KEYS", "SUMMARY_MANIFEST", "SUMMARY_STATS", "SUPERSEDED", "WandbTrialCallback",
    "api_key_configured", "base_url", "default_metric_keys", "log_summary", "online_problem",
    "prepare_env", "resolve_mode", "short_error", "summary_manifest", "summary_run_id",
    "sync_hint", "trial_run_id",
]
