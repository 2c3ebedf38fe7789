"""The one atomic writer, the results writer's disk-full behaviour, the folder lock, the reaper."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from suite import results
from suite.folders import LOCK_NAME, LockHeld, OutputLock
from suite.results import ResultsWriter, applicable_data, atomic_write, write_parquet

REPO = Path(__file__).resolve().parents[1]


def test_atomic_writer_keeps_group_permissions_from_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        write_parquet(pd.DataFrame({"a": [1]}), tmp_path / "x.parquet")
    finally:
        os.umask(old)
    # 0o666 & ~0o027 = 0o640: group-readable, not mkstemp's 0o600
    assert (tmp_path / "x.parquet").stat().st_mode & 0o777 == 0o640


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "trials.parquet"
    write_parquet(pd.DataFrame({"a": [1, 2]}), path)

    def half_then_fail(f) -> None:  # noqa: ANN001
        f.write(b"PAR1 partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        atomic_write(path, half_then_fail)
    assert pd.read_parquet(path)["a"].tolist() == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trials.parquet"]


class _Spec:
    """The parts of a SweepSpec the results writer uses."""

    objective = SimpleNamespace(metric="val_hr@10", mode="max")

    def run_config(self, params: dict):
        from ocfb.config import make_run_config

        return make_run_config({"terms": 1, **params})

    def axes(self) -> list[str]:
        return ["threshold"]

    def expected_trials(self) -> int:
        return 2


def _trial(tid: str, threshold: float) -> SimpleNamespace:
    return SimpleNamespace(trial_id=tid, config={"threshold": threshold})


def test_enospc_part_way_keeps_previous_trials_and_reports_once(tmp_path: Path,
                                                               monkeypatch) -> None:
    w = ResultsWriter(tmp_path, _Spec(), verbose=False)
    seen: list[str] = []
    w.on_write_error = seen.append
    a = _trial("a", 0.3)
    w.on_start(a)
    for term, hr in ((0, 0.1), (1, 0.4)):
        w.on_result(a, {"term": term, "val_hr@10": hr, "node_id": "n1", "training_iteration": 1})
    w.on_end(a)
    w.flush()  # the rewrite that follows within FLUSH_EVERY_S
    before = pd.read_parquet(tmp_path / "trials.parquet")
    assert before.status.tolist() == ["completed"] and before["node_id"].tolist() == ["n1"]
    assert before["best.val_hr@10"].tolist() == [0.4] and before.best_term.tolist() == [1]

    real = results.write_bytes

    def disk_full(data: bytes, path) -> None:  # noqa: ANN001
        def half(f) -> None:  # noqa: ANN001
            f.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

        atomic_write(path, half)

    monkeypatch.setattr(results, "write_bytes", disk_full)
    b = _trial("b", 0.7)
    w.on_start(b)
    w.on_result(b, {"term": 0, "val_hr@10": 0.2})
    w.on_end(b)  # journaled; the parquet files are rewritten within FLUSH_EVERY_S or at exit
    w.flush()
    w.flush()  # later flushes do nothing and report nothing again
    monkeypatch.setattr(results, "write_bytes", real)
    assert len(seen) == 1 and "trials.parquet: [Errno 28 ENOSPC] No space left" in seen[0]
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "trials.parquet"), before)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def _run_trial(w: ResultsWriter, tid: str, threshold: float, hrs: list[float]) -> None:
    t = _trial(tid, threshold)
    w.on_start(t)
    for term, hr in enumerate(hrs):
        w.on_result(t, {"term": term, "val_hr@10": hr, "node_id": "n1"})
    w.on_end(t)


def test_a_trial_end_is_journaled_at_once_and_resume_replays_it(tmp_path: Path) -> None:
    w = ResultsWriter(tmp_path, _Spec(), verbose=False)
    _run_trial(w, "a", 0.3, [0.1, 0.4])  # its first result rewrote the parquet files
    _run_trial(w, "b", 0.7, [0.2, 0.3])  # within FLUSH_EVERY_S: journaled only
    on_disk = pd.read_parquet(tmp_path / "trials.parquet")
    assert on_disk.trial_id.tolist() == ["a"] and on_disk.status.tolist() == ["running"]
    assert results.ended_trials(tmp_path) == {"a": "completed", "b": "completed"}
    # a driver killed here: a resumed writer has both trials, every term, same best
    r = ResultsWriter(tmp_path, _Spec(), verbose=False, resume=True)
    trials, terms = r.frames()
    assert trials.set_index("trial_id")["best.val_hr@10"].to_dict() == {"a": 0.4, "b": 0.3}
    pairs = sorted(zip(terms.trial_id, terms.term, strict=True))
    assert pairs == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    assert trials["config.threshold"].tolist() == [0.3, 0.7]
    r.flush()  # the rewrite holds the journal's trials, so the journal goes
    assert pd.read_parquet(tmp_path / "trials.parquet").trial_id.tolist() == ["a", "b"]
    assert not (tmp_path / results.JOURNAL).exists()


def test_a_torn_journal_line_is_skipped_and_later_lines_win(tmp_path: Path) -> None:
    path = tmp_path / results.JOURNAL
    results.append_line(json.dumps({"trial_id": "a", "status": "error", "terms": []}), path)
    results.append_line(json.dumps({"trial_id": "a", "status": "completed", "terms": []}), path)
    with open(path, "a") as f:
        f.write('{"trial_id": "b", "status": "compl')  # killed mid-append
    assert [(x["trial_id"], x["status"]) for x in results.read_journal(path)] == [
        ("a", "completed")]
    old = os.umask(0o027)
    try:
        results.append_line("{}", tmp_path / "new.journal")
    finally:
        os.umask(old)
    assert (tmp_path / "new.journal").stat().st_mode & 0o777 == 0o640


def test_journal_write_error_stops_the_sweep_once(tmp_path: Path, monkeypatch) -> None:
    w = ResultsWriter(tmp_path, _Spec(), verbose=False)
    seen: list[str] = []
    w.on_write_error = seen.append
    _run_trial(w, "a", 0.3, [0.1])

    def full(text: str, path) -> None:  # noqa: ANN001
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(results, "append_line", full)
    _run_trial(w, "b", 0.7, [0.2])
    _run_trial(w, "c", 0.5, [0.2])
    assert len(seen) == 1 and "results.journal" in seen[0] and "ENOSPC" in seen[0]
    assert pd.read_parquet(tmp_path / "trials.parquet").trial_id.tolist() == ["a"]


def test_saved_data_settings_are_only_those_that_apply() -> None:
    from ocfb.config import DataConfig

    assert applicable_data(DataConfig(data_seed=3)) == {
        "source": "synthetic-influencer", "n_users": 407, "n_items": 462,
        "n_interactions": 2000, "data_seed": 3}
    ml = applicable_data(DataConfig(source="/d/u.data", format="movielens-100k"))
    assert ml == {"source": "/d/u.data", "format": "movielens-100k"}
    csv = applicable_data(DataConfig(source="/d/x.csv", user_col="u"))
    assert csv == {"source": "/d/x.csv", "format": "auto", "user_col": "u", "item_col": "item"}


# -- the folder lock ----------------------------------------------------------------------------

_HOLD = """
import sys, time
from pathlib import Path
from suite.folders import OutputLock
lock = OutputLock(Path(sys.argv[1]), "holder")
lock.acquire()
print("held", flush=True)
time.sleep(60)
"""


@pytest.mark.slow  # starts a child process (make test-fast leaves it to make test)
def test_a_live_holder_refuses_a_second_driver_naming_its_pid(tmp_path: Path) -> None:
    p = subprocess.Popen([sys.executable, "-c", _HOLD, str(tmp_path)], cwd=REPO,
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "held"
        with pytest.raises(LockHeld, match=rf"in use by pid {p.pid} on .*started 20\d\d-"):
            OutputLock(tmp_path, "second").acquire()
    finally:
        p.kill()
        p.wait()


@pytest.mark.slow  # starts a child process (make test-fast leaves it to make test)
def test_a_dead_holders_lock_is_taken_over_with_a_notice(tmp_path: Path, capsys) -> None:
    p = subprocess.Popen([sys.executable, "-c", _HOLD, str(tmp_path)], cwd=REPO,
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    p.kill()  # SIGKILL: no clean release, the file still names it
    p.wait()
    with OutputLock(tmp_path, "next") as lock:
        assert lock.held
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    err = capsys.readouterr().err
    assert f"taking over a stale lock on {tmp_path} left by pid {p.pid}" in err
    # a clean release leaves nothing to take over: no notice the next time
    with OutputLock(tmp_path, "again"):
        pass
    assert "stale" not in capsys.readouterr().err


# -- the reaper ---------------------------------------------------------------------------------

_DRIVER = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
grandchild_parent = subprocess.Popen([sys.executable, "-c",
    "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', "
    "'import time; time.sleep(120)']); time.sleep(120)"])
from suite.folders import descendants, own_children, start_reaper
deadline = time.time() + 30  # until the grandchild exists (a Python start-up, ~0.1 s)
while len(descendants({grandchild_parent.pid})) < 2 and time.time() < deadline:
    time.sleep(0.02)
start_reaper(own_children())
print(child.pid, grandchild_parent.pid, flush=True)
time.sleep(120)
"""


@pytest.mark.slow  # starts a child process (make test-fast leaves it to make test)
def test_reaper_kills_what_a_killed_driver_started_and_nothing_else(tmp_path: Path) -> None:
    from suite.folders import _stat, descendants

    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    driver = subprocess.Popen([sys.executable, "-c", _DRIVER], cwd=REPO,
                              stdout=subprocess.PIPE, text=True)
    try:
        roots = {int(x) for x in driver.stdout.readline().split()}
        started = descendants(roots)
        assert len(started) == 3  # two children and one grandchild
        # no wait for the reaper's first look: a reaper that finds the driver already gone
        # still reads the tree below the roots it was given, which outlive the driver
        driver.kill()
        driver.wait()
        deadline = time.time() + 10
        while time.time() < deadline and any(_stat(p) for p in started):
            time.sleep(0.2)
        assert not [p for p in started if _stat(p)], "the driver's processes outlived it"
        assert bystander.poll() is None  # a process the driver did not start is untouched
    finally:
        bystander.kill()
        for pid in descendants({driver.pid}):
            os.kill(pid, 9)


def test_truncated_ray_state_is_found_and_pickled_searcher_state_is_not(tmp_path: Path) -> None:
    from suite.folders import unreadable_state_files
    from suite.tuner import experiment_path

    spec = SimpleNamespace(storage_path=None, name="x")
    d = Path(experiment_path(spec, tmp_path))
    d.mkdir(parents=True)
    (d / "experiment_state-1.json").write_text('{"trial_data": [')  # cut off mid-write
    (d / "experiment_state-2.json").write_text('{"trial_data": []}')
    (d / "basic-variant-state-1.json").write_bytes(b"\x80\x05\x95")  # a pickle, by Ray's design
    assert unreadable_state_files(str(d)) == [d / "experiment_state-1.json"]


def test_every_restored_experiment_sets_its_truncated_state_aside_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """`tuner.fit(restore=True)` moves a truncated state file aside before Ray reads it, for
    whichever experiment it restores: a tune-then-confirm stage's too (the resume command
    checked only the sweep's own name, under which a staged sweep keeps no state)."""
    from suite import tuner

    stage = SimpleNamespace(storage_path=None, name="s-search-neumf")
    d = Path(tuner.experiment_path(stage, tmp_path))
    d.mkdir(parents=True)
    cut, good = d / "experiment_state-1.json", d / "experiment_state-2.json"
    cut.write_text('{"trial_data": [')
    good.write_text('{"trial_data": []}')
    seen = []
    restored = SimpleNamespace(fit=lambda: seen.append(sorted(p.name for p in d.iterdir())))
    monkeypatch.setattr(tuner, "build_tuner", lambda *a, **k: restored)
    tuner.fit(stage, tmp_path, {}, writer=None, restore=True)
    assert seen == [["experiment_state-1.json.truncated", "experiment_state-2.json"]]
    assert "experiment_state-1.json is truncated" in capsys.readouterr().err


def test_unflushed_counts_journaled_trials_the_parquet_files_lack(tmp_path: Path) -> None:
    write_parquet(pd.DataFrame({"trial_id": ["a", "b"], "status": ["completed", "running"]}),
                  tmp_path / "trials.parquet")
    assert results.unflushed_trials(tmp_path) == 0
    for tid, status in (("a", "completed"), ("b", "completed"), ("c", "error")):
        results.append_line(json.dumps({"trial_id": tid, "status": status, "terms": []}),
                            tmp_path / results.JOURNAL)
    # b ended after the last rewrite; c is not there at all
    assert results.unflushed_trials(tmp_path) == 2


def test_the_tail_hook_fires_once_when_the_last_expected_trial_starts(tmp_path: Path) -> None:
    w = ResultsWriter(tmp_path, _Spec(), verbose=False)  # _Spec expects 2 trials
    calls: list[int] = []
    w.on_all_started = lambda: calls.append(len(w.trials))
    w.on_start(_trial("a", 0.3))
    assert calls == []
    w.on_start(_trial("b", 0.7))
    w.on_start(_trial("b", 0.7))  # restored: no second call
    assert calls == [2]
