"""When a trial checkpoints (suite.tuner.checkpoint_due)."""

from __future__ import annotations

from suite.tuner import checkpoint_due


def _terms_checkpointed(n_terms: int, every: int, interval_s: float, term_s: float) -> list[int]:
    """The terms (0..n_terms-1) a trial whose terms take `term_s` seconds each checkpoints."""
    out, since = [], 0.0
    for term in range(n_terms):
        since += term_s
        if checkpoint_due(term, term == n_terms - 1, every, since, interval_s):
            out.append(term)
            since = 0.0
    return out


def test_short_trials_checkpoint_only_their_last_term() -> None:
    # quickstart: 6 terms of ~0.1 s under the 30 s default: one checkpoint, at the end
    assert _terms_checkpointed(6, 1, 30.0, 0.1) == [5]


def test_no_time_floor_checkpoints_every_kth_term_and_the_last() -> None:
    assert _terms_checkpointed(6, 1, 0.0, 0.1) == [0, 1, 2, 3, 4, 5]
    assert _terms_checkpointed(7, 3, 0.0, 0.1) == [2, 5, 6]


def test_long_terms_checkpoint_once_the_interval_has_passed() -> None:
    # 12 s terms, 30 s floor: after the 3rd term (36 s), the 6th, ... and always the last
    assert _terms_checkpointed(8, 1, 30.0, 12.0) == [2, 5, 7]
    # the floor and `every` both hold: every 2nd term, at least 30 s apart
    assert _terms_checkpointed(9, 2, 30.0, 12.0) == [3, 7, 8]
