"""W&B tracking: real offline runs read back with W&B's own reader (`wandb leet inspect`)."""

from __future__ import annotations

import logging
import math
import os
import pickle
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from suite import tracking
from suite.tracking import (
    WandbTrialCallback,
    log_summary,
    prepare_env,
    resolve_mode,
    summary_manifest,
    sync_hint,
)
from tests.wandb_offline import inspect_records, offline_run_dirs, read_offline_run, read_table

REPO = Path(__file__).resolve().parents[1]
CANARY = "canary-" + "k" * 40
WANDB_VARS = ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL", "WANDB_IDENTITY_TOKEN_FILE",
              "WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "WANDB_SILENT",
              "WANDB_LOGIN_TIMEOUT", "NETRC")


@pytest.fixture
def wenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No W&B credentials or settings from the machine; env restored after the test."""
    for name in WANDB_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "user-config"))
    monkeypatch.chdir(tmp_path)  # a stray ./wandb would show up here
    return tmp_path


def flat(config: dict) -> dict:
    """Stands in for the lead's RunConfig flattener: nested keys joined by dots."""
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in flat(value).items()})
        else:
            out[key] = value
    return out


def trial(trial_id: str, **config) -> SimpleNamespace:
    return SimpleNamespace(trial_id=trial_id, config=config, status="RUNNING")


def record(term: int, scale: float) -> dict:
    """One OCF-B record as the trainable reports it, with Ray's bookkeeping keys added."""
    rec = {"term": term, "n_negatives": 100 + term, "train_loss": scale / (term + 1),
           "err_max": np.float64(0.25 * scale), "test_auc": 0.5 + scale * term / 10,
           "val_hr@10": math.nan if term == 0 else 0.1 * term}
    ray_keys = {"training_iteration": term + 1, "time_this_iter_s": 0.1, "done": False,
                "timestamp": 1700000000 + term, "date": "2026-01-01", "hostname": "h",
                "node_ip": "127.0.0.1", "pid": 1, "time_total_s": 1.0, "time_since_restore": 1.0,
                "iterations_since_restore": term + 1, "checkpoint_dir_name": None,
                "config": {"model": "gmf"}, "trial_id": "x", "experiment_tag": "0_model=gmf",
                "should_checkpoint": True}
    return {**rec, **ray_keys}


def own_keys(result: dict) -> dict:
    return {k: (v.item() if isinstance(v, np.generic) else v)
            for k, v in result.items() if k in {"term", "n_negatives", "train_loss", "err_max",
                                                "test_auc", "val_hr@10"}}


def same_rows(got: list[dict], want: list[dict]) -> bool:
    if len(got) != len(want):
        return False
    for g, w in zip(got, want, strict=True):
        if g.keys() != w.keys():
            return False
        for k in g:
            if not (g[k] == w[k] or (math.isnan(g[k]) and math.isnan(w[k]))):
                return False
    return True


def files_containing(root: Path, needle: str) -> list[Path]:
    data = needle.encode()
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()
            and data in p.read_bytes()]


def callback(out: Path, mode: str = "offline", **kw) -> WandbTrialCallback:
    return WandbTrialCallback(sweep_name="demo-sweep", project="ocfb-test", entity=None,
                              tags=["ocfb", "paper"], mode=mode, out_dir=out,
                              flatten_config=flat, **kw)


def next_second() -> None:
    """Wait (polling, at most 1 s) until the wall clock's second changes: W&B names run folders
    by the second, so a run started after this gets a folder name of its own."""
    start = int(time.time())
    deadline = time.monotonic() + 2.0
    while int(time.time()) == start and time.monotonic() < deadline:
        time.sleep(0.01)


def by_name(out: Path) -> dict:
    return {r.name: r for r in map(read_offline_run, offline_run_dirs(out))}


# -- mode and environment -----------------------------------------------------------------------


@pytest.mark.slow  # each answer asks wandb.login in a child process (about 0.6 s)
def test_resolve_mode_auto_follows_credentials(wenv: Path, monkeypatch: pytest.MonkeyPatch):
    assert resolve_mode(None) == "offline"
    assert resolve_mode(None, "auto") == "offline"
    monkeypatch.setenv("WANDB_API_KEY", CANARY)
    assert resolve_mode(None) == "online"
    monkeypatch.delenv("WANDB_API_KEY")
    netrc = wenv / "netrc"
    netrc.write_text("machine example.org login u password p\n")
    monkeypatch.setenv("NETRC", str(netrc))
    assert resolve_mode(None) == "offline"  # a netrc entry for another host is no W&B key
    netrc.write_text("machine api.wandb.ai login user password " + "a" * 40 + "\n")
    assert resolve_mode(None) == "online"
    assert resolve_mode("auto", "disabled") == "online"  # --wandb auto overrides the file
    monkeypatch.setenv("WANDB_API_KEY", "short")  # malformed: configured, online check says why
    assert resolve_mode(None) == "online"
    monkeypatch.delenv("WANDB_API_KEY")
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.org")
    assert resolve_mode(None) == "offline"  # a self-hosted server needs its own entry


def test_resolve_mode_cli_overrides_sweep_file(wenv: Path, monkeypatch: pytest.MonkeyPatch):
    assert resolve_mode(None, "disabled") == "disabled"
    assert resolve_mode("online", "disabled") == "online"
    assert resolve_mode("disabled", "online") == "disabled"
    monkeypatch.setenv("WANDB_API_KEY", CANARY)
    assert resolve_mode("offline", "auto") == "offline"
    assert resolve_mode(None, "offline") == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")  # the user's standard W&B switch, under auto
    assert resolve_mode(None) == "disabled"
    assert resolve_mode("offline") == "offline"
    with pytest.raises(ValueError, match="--wandb: 'upload'"):
        resolve_mode("upload")
    with pytest.raises(ValueError, match="wandb.mode: 'on'"):
        resolve_mode(None, "on")


def test_prepare_env_points_inside_out_dir_and_writes_nothing(wenv: Path):
    out = wenv / "results" / "demo"
    wandb_dir = prepare_env(out)
    assert wandb_dir == out.resolve() / "wandb"
    assert os.environ["WANDB_DIR"] == str(out.resolve())
    for name in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        assert Path(os.environ[name]).parent == wandb_dir
    assert os.environ["WANDB_SILENT"] == "true"
    assert not out.exists()
    hint = sync_hint(out)
    assert hint.endswith(f"wandb sync {out}/wandb/offline-run-*")
    assert "\n" not in hint


def test_prepare_env_keeps_the_users_server(wenv: Path):
    settings = wenv / "user-config" / "settings"
    settings.parent.mkdir()
    settings.write_text("[default]\nbase_url = https://wandb.example.org\n")
    prepare_env(wenv / "out")
    assert os.environ["WANDB_BASE_URL"] == "https://wandb.example.org"


# -- one run per trial --------------------------------------------------------------------------


@pytest.mark.slow  # real W&B runs (wandb-core starts): seconds each
def test_offline_one_run_per_trial_interleaved(wenv: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("WANDB_API_KEY", CANARY)  # present, but offline: must never be written
    out = wenv / "out"
    prepare_env(out)
    cb = callback(out)
    a = trial("ab12_00000", model="gmf", seed=0, data={"source": "synthetic"})
    b = trial("ab12_00001", model="mlp", seed=1, data={"source": "synthetic"})
    trials = [a, b]
    sent: dict[str, list[dict]] = {"ab12_00000": [], "ab12_00001": []}
    cb.on_trial_start(iteration=0, trials=trials, trial=a)
    cb.on_trial_start(iteration=0, trials=trials, trial=b)
    for term in range(4):
        for t, scale in ((a, 1.0), (b, 3.0)):
            result = record(term, scale)
            cb.on_trial_result(iteration=term, trials=trials, trial=t, result=result)
            sent[t.trial_id].append(own_keys(result))
    # a trial restored from its last checkpoint re-reports term 3: W&B must not see it twice
    cb.on_trial_result(iteration=9, trials=trials, trial=a, result=record(3, 100.0))
    cb.on_trial_complete(iteration=9, trials=trials, trial=a)
    cb.on_trial_error(iteration=9, trials=trials, trial=b)
    cb.on_experiment_end(trials=trials)
    assert not cb.disabled

    runs = by_name(out)
    assert set(runs) == {"ab12_00000", "ab12_00001"}
    for t, exit_code in ((a, 0), (b, 1)):
        run = runs[t.trial_id]
        assert run.run_id == f"demo-sweep-{t.trial_id}"
        assert (run.group, run.job_type, run.project) == ("demo-sweep", "trial", "ocfb-test")
        assert run.tags == ["ocfb", "paper"]
        assert run.config == flat(t.config)
        assert same_rows(run.history, sent[t.trial_id])
        assert [r["_step"] for r in run.raw_history] == [0, 1, 2, 3]
        assert run.exit_code == exit_code
    assert not (wenv / "wandb").exists()  # nothing in the working directory
    assert files_containing(wenv, CANARY) == []


@pytest.mark.slow  # real W&B runs (wandb-core starts): seconds each
def test_leet_inspect_record_format(wenv: Path):
    """Pin the reader's input: W&B's JSON lines, term as the step axis, the run's group."""
    out = wenv / "out"
    prepare_env(out)
    cb = callback(out)
    t = trial("t_00000", model="gmf")
    cb.on_trial_result(iteration=0, trials=[t], trial=t, result={"term": 0, "auc": 0.5})
    cb.on_trial_complete(iteration=0, trials=[t], trial=t)
    records = inspect_records(offline_run_dirs(out)[0])
    kinds = [r["type"] for r in records]
    assert kinds[0] == "header" and kinds[-1] == "exit"
    run = next(r["run"] for r in records if r["type"] == "run")
    assert run["run_group"] == "demo-sweep" and run["config"]["update"]["model"] == "gmf"
    assert {"glob_name": "*", "options": {"defined": True, "step_sync": True},
            "step_metric": "term", "summary": {"last": True, "max": True, "min": True}} in [
        r["metric"] for r in records if r["type"] == "metric"]
    (history,) = [r["history"] for r in records if r["type"] == "history"]
    assert history["item"]["auc"] == 0.5 and history["step"] == {"num": 0}


@pytest.mark.slow  # real W&B runs (wandb-core starts): seconds each
@pytest.mark.parametrize("with_replay", [False, True], ids=["no-replay", "from-replay"])
def test_resumed_trial_continues_in_one_syncable_run(wenv: Path, with_replay: bool):
    """Tuner.restore in a new process: the trial goes on from its term-2 checkpoint, and the
    sweep folder still holds one offline run for it, each term once.

    from-replay: the earlier run lost its last row (wandb-core buffers; a killed process never
    writes it) and `replay` (terms.parquet) supplies terms 0-2. no-replay: W&B's own files are
    never read back, so the new run holds only what the resumed trial reported.
    """
    out = wenv / "out"
    prepare_env(out)
    cb = callback(out)
    blob = pickle.dumps(cb)  # Tune pickles its callbacks into tuner.pkl
    t = trial("rz_00000", model="neumf")
    for term in range(2 if with_replay else 3):
        cb.on_trial_result(iteration=term, trials=[t], trial=t, result=record(term, 1.0))
    cb.close()  # the sweep was interrupted
    next_second()

    restored = pickle.loads(blob)
    if with_replay:
        restored.replay = lambda tid: [own_keys(record(term, 1.0)) for term in range(3)]
    restored.on_trial_start(iteration=0, trials=[t], trial=t)
    for term in range(2, 5):  # resumed from the term-2 checkpoint: term 2 comes again
        restored.on_trial_result(iteration=term, trials=[t], trial=t, result=record(term, 1.0))
    restored.on_trial_complete(iteration=5, trials=[t], trial=t)

    (run_dir,) = offline_run_dirs(out)
    run = read_offline_run(run_dir)
    first = 0 if with_replay else 2
    assert [r["term"] for r in run.history] == list(range(first, 5))
    assert same_rows(run.history, [own_keys(record(term, 1.0)) for term in range(first, 5)])
    assert run.exit_code == 0
    assert len(list((out / "wandb" / tracking.SUPERSEDED).iterdir())) == 1


@pytest.mark.slow  # real W&B runs (wandb-core starts): seconds each
def test_metric_keys_can_skip_a_result(wenv: Path):
    """An empty row from metric_keys (the lead's divergence marker) is not logged."""
    out = wenv / "out"
    prepare_env(out)
    cb = callback(out, metric_keys=lambda r: {} if r.get("diverged") else own_keys(r))
    t = trial("t_00000", model="gmf")
    cb.on_trial_result(iteration=0, trials=[t], trial=t, result=record(0, 1.0))
    cb.on_trial_result(iteration=1, trials=[t], trial=t,
                       result={"term": 1, "test_auc": math.nan, "diverged": 1.0})
    cb.on_trial_complete(iteration=1, trials=[t], trial=t)
    (run,) = by_name(out).values()
    assert same_rows(run.history, [own_keys(record(0, 1.0))])


@pytest.mark.slow  # real W&B runs (wandb-core starts): seconds each
def test_wandb_error_is_logged_once_and_disables(wenv: Path, caplog: pytest.LogCaptureFixture):
    out = wenv / "out"
    prepare_env(out)
    cb = WandbTrialCallback(sweep_name="s", project="bad/project", entity=None, tags=[],
                            mode="offline", out_dir=out, flatten_config=flat)
    a, b = trial("t_00000", model="gmf"), trial("t_00001", model="mlp")
    with caplog.at_level(logging.WARNING, logger="suite.tracking"):
        for t in (a, b):
            cb.on_trial_start(iteration=0, trials=[a, b], trial=t)
            cb.on_trial_result(iteration=0, trials=[a, b], trial=t, result=record(0, 1.0))
            cb.on_trial_complete(iteration=0, trials=[a, b], trial=t)
        cb.on_experiment_end(trials=[a, b])
    assert cb.disabled
    lines = [r.getMessage() for r in caplog.records if r.name == "suite.tracking"]
    assert len(lines) == 1
    assert "disabled for the rest of the sweep" in lines[0] and "project" in lines[0]
    assert offline_run_dirs(out) == []


@pytest.mark.slow  # real W&B runs (wandb-core starts): seconds each
def test_finish_hitting_its_timeout_stops_tracking(wenv: Path, caplog: pytest.LogCaptureFixture):
    """A finish() that waits out finish_timeout (uploads stuck) must not repeat per trial."""
    out = wenv / "out"
    prepare_env(out)
    cb = callback(out, finish_timeout=1e-4)
    a, b = trial("t_00000", model="gmf"), trial("t_00001", model="mlp")
    with caplog.at_level(logging.WARNING, logger="suite.tracking"):
        for t in (a, b):
            cb.on_trial_result(iteration=0, trials=[a, b], trial=t, result=record(0, 1.0))
        cb.on_trial_complete(iteration=0, trials=[a, b], trial=a)
        cb.on_trial_complete(iteration=0, trials=[a, b], trial=b)
    assert cb.disabled
    (line,) = [r.getMessage() for r in caplog.records if r.name == "suite.tracking"]
    assert "did not finish within" in line
    assert len(offline_run_dirs(out)) == 2


def test_disabled_writes_no_wandb_files(wenv: Path):
    out = wenv / "out"
    cb = callback(out, mode="disabled")
    t = trial("t_00000", model="gmf")
    cb.on_trial_start(iteration=0, trials=[t], trial=t)
    cb.on_trial_result(iteration=0, trials=[t], trial=t, result=record(0, 1.0))
    cb.on_trial_complete(iteration=0, trials=[t], trial=t)
    cb.on_experiment_end(trials=[t])
    log_summary(out_dir=out, sweep_name="demo-sweep", project="p", entity=None, mode="disabled",
                tables={"t": pd.DataFrame({"a": [1]})}, images=[], files=[])
    assert not out.exists()
    assert not (wenv / "wandb").exists()


# -- the summary run ----------------------------------------------------------------------------


@pytest.fixture
def summary_inputs(wenv: Path) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = wenv / "out"
    out.mkdir()
    leaderboard = pd.DataFrame({
        "trial_id": pd.Series(["t0", "t1", "t2"], dtype="str"),
        "config.model": ["gmf", "mlp", None],
        "best.test_auc": [0.81, np.nan, 0.62],
        "terms_done": pd.Series([5, 4, None], dtype="Int64"),
        "budget": [5, "final", 2],  # numbers and words in one column (W&B infers one type)
    })
    pivot = pd.DataFrame({"gmf": [0.7, 0.8], "mlp": [0.6, 0.75]},
                         index=pd.Index(["1:1", "1:4"], name="negatives"))
    fig, ax = plt.subplots()
    ax.plot([0, 1, 2], [0.5, 0.6, 0.7])
    fig.savefig(out / "auc_vs_term.png")
    plt.close(fig)
    files = leaderboard.drop(columns="budget")  # parquet wants one type per column
    files.to_parquet(out / "trials.parquet")
    files.to_parquet(out / "terms.parquet")
    return dict(out_dir=out, sweep_name="demo-sweep", project="ocfb-test", entity=None,
                tables={"leaderboard": leaderboard, "negatives_x_model": pivot},
                images=[out / "auc_vs_term.png"], files=[out / "trials.parquet",
                                                        out / "terms.parquet"])


@pytest.mark.slow  # real W&B runs (wandb-core starts): seconds each
def test_log_summary_offline_holds_tables_plots_and_artifact(
        summary_inputs: dict, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("WANDB_API_KEY", CANARY)
    out = summary_inputs["out_dir"]
    prepare_env(out)
    log_summary(mode="offline", **summary_inputs)
    log_summary(mode="offline", **summary_inputs)  # again after `summarize`: still one run

    (run,) = by_name(out).values()
    assert (run.run_id, run.group, run.job_type) == ("demo-sweep-summary", "demo-sweep",
                                                     "summary")
    assert run.exit_code == 0
    board = read_table(run, "leaderboard")
    want = summary_inputs["tables"]["leaderboard"]
    assert list(board.columns) == list(want.columns)
    assert board["trial_id"].tolist() == ["t0", "t1", "t2"]
    assert board["config.model"].tolist()[:2] == ["gmf", "mlp"]
    assert board["best.test_auc"].iloc[0] == 0.81 and pd.isna(board["best.test_auc"].iloc[1])
    assert board["terms_done"].iloc[:2].tolist() == [5, 4] and pd.isna(board["terms_done"][2])
    assert board["budget"].tolist() == [5, "final", 2]
    pivot = read_table(run, "negatives_x_model")
    assert pivot.to_dict("list") == {"negatives": ["1:1", "1:4"], "gmf": [0.7, 0.8],
                                     "mlp": [0.6, 0.75]}
    assert run.history[0]["plots/auc_vs_term._type"] == "image-file"
    assert (run.path / "files" / run.history[0]["plots/auc_vs_term.path"]).is_file()
    (results,) = [a for a in run.artifacts if a["type"] == "results"]
    assert results["name"] == "demo-sweep-results"
    assert sorted(results["files"]) == ["terms.parquet", "trials.parquet"]
    assert files_containing(out, CANARY) == []


@pytest.mark.slow  # real W&B runs (wandb-core starts): seconds each
def test_summary_manifest_and_skip_if_logged(summary_inputs: dict):
    """The manifest names exactly the tables and plots the run holds; a resume of a finished
    sweep (skip_if_logged) logs no second summary run."""
    out = summary_inputs["out_dir"]
    prepare_env(out)
    assert summary_manifest(out) is None
    log_summary(mode="offline", **summary_inputs)
    manifest = summary_manifest(out)
    assert manifest == {"run_id": "demo-sweep-summary", "project": "ocfb-test", "entity": None,
                        "group": "demo-sweep", "mode": "offline",
                        "tables": ["leaderboard", "negatives_x_model"],
                        "images": ["plots/auc_vs_term"]}
    before = sorted(p.name for p in (out / "wandb").rglob("offline-run-*"))
    next_second()  # a second summary run would get a folder of its own
    log_summary(mode="offline", skip_if_logged=True, **summary_inputs)
    assert sorted(p.name for p in (out / "wandb").rglob("offline-run-*")) == before
    assert len(before) == 1


# -- no key, no network -------------------------------------------------------------------------

ONLINE_SCRIPT = """
import logging, sys, time
from pathlib import Path
from types import SimpleNamespace
import pandas as pd
from suite.tracking import WandbTrialCallback, log_summary, prepare_env
logging.basicConfig(format="%(name)s %(levelname)s %(message)s")
out = Path(sys.argv[1])
prepare_env(out)
start = time.monotonic()
cb = WandbTrialCallback(sweep_name="s", project="p", entity=None, tags=[], mode="online",
                        out_dir=out, flatten_config=dict, init_timeout=5)
trials = [SimpleNamespace(trial_id=f"t_{i}", config={"seed": i}) for i in range(2)]
for term in range(3):
    for t in trials:
        cb.on_trial_result(iteration=term, trials=trials, trial=t,
                           result={"term": term, "auc": 0.5 + term, "training_iteration": 1})
for t in trials:
    cb.on_trial_complete(iteration=3, trials=trials, trial=t)
cb.on_experiment_end(trials=trials)
log_summary(out_dir=out, sweep_name="s", project="p", entity=None, mode="online",
            tables={"t": pd.DataFrame({"a": [1.0]})}, images=[], files=[])
print(f"ELAPSED {time.monotonic() - start:.1f}")
"""


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # a subprocess waiting out W&B's HTTP timeout: about 8 s
@pytest.mark.parametrize("key", [CANARY, None], ids=["invalid-key", "no-key"])
def test_online_without_working_credentials_never_blocks(wenv: Path, key: str | None):
    """`--wandb online`, stdin closed, no network, a bad key or none: no prompt, bounded time,
    one warning line, and the runs kept offline (the key nowhere in the files)."""
    out = wenv / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    # a closed local port stands for "no network" and never sends the canary anywhere
    env.update(WANDB_BASE_URL=f"http://127.0.0.1:{closed_port()}", PYTHONPATH=str(REPO),
               HOME=str(wenv), NETRC=str(wenv / "no-netrc"))
    if key:
        # wandb's probe waits WANDB_HTTP_TIMEOUT (default 10 s) for the server: shortened here
        # to keep the test fast; the bound itself is what is checked
        env.update(WANDB_API_KEY=key, WANDB_HTTP_TIMEOUT="1")
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(ONLINE_SCRIPT), str(out)],
                          env=env, cwd=wenv, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started < 60
    ours = [line for line in proc.stderr.splitlines() if line.startswith("suite.tracking")]
    assert len(ours) == 1, proc.stderr
    why = "cannot use W&B online" if key else "no W&B credentials found"
    assert why in ours[0] and "logging offline instead" in ours[0] and "wandb sync" in ours[0]
    runs = by_name(out)
    assert set(runs) == {"t_0", "t_1", "s-summary"}
    assert [r["auc"] for r in runs["t_1"].history] == [0.5, 1.5, 2.5]
    assert runs["t_0"].config == {"seed": 0}
    assert CANARY not in proc.stdout + proc.stderr
    assert files_containing(wenv, CANARY) == []


@pytest.mark.slow  # a child interpreter: about 1 s
def test_import_is_cheap_and_callback_has_the_tune_hooks_the_driver_forwards():
    """`import suite.tracking` imports neither Ray nor wandb (Ray Tune alone is about 2 s); the
    callback has every Tune hook the driver's callback forwards, and pickle finds it by name."""
    code = ("import sys, suite.tracking as t; print(sorted(m for m in ('ray', 'ray.tune', 'wandb')"
            " if m in sys.modules)); import pickle; C = t.WandbTrialCallback; "
            "print(pickle.loads(pickle.dumps(C)) is C, C.__module__)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=120, check=True)
    assert proc.stdout.split("\n")[:2] == ["[]", "True suite.tracking"]
    from ray.tune import Callback

    hooks = ("setup", "on_trial_start", "on_trial_restore", "on_trial_result",
             "on_trial_complete", "on_trial_error", "on_experiment_end")
    for hook in hooks:
        assert callable(getattr(Callback, hook)), hook  # a real Tune hook name
        assert callable(getattr(WandbTrialCallback, hook)), hook


def test_no_module_getattr_and_no_private_name_crosses_a_module():
    """One public face: no module-level `__getattr__`, and no `from x import _private`."""
    import ast

    for path in (REPO / "suite" / "tracking").glob("*.py"):
        tree = ast.parse(path.read_text())
        assert not [f for f in tree.body if isinstance(f, ast.FunctionDef)
                    and f.name == "__getattr__"], path
        private = [a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                   for a in node.names if a.name.startswith("_")]
        assert private == [], (path, private)


@pytest.mark.slow  # the check runs in a child process (about 2 s with a 1 s HTTP timeout)
def test_online_check_asks_about_credentials_whatever_wandb_mode_says(
        wenv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--wandb online` with WANDB_MODE=offline in the environment: the check still verifies
    the key (here against a closed port), instead of wandb.login's offline "no credentials"."""
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("WANDB_API_KEY", CANARY)
    monkeypatch.setenv("WANDB_HTTP_TIMEOUT", "1")
    monkeypatch.setenv("WANDB_MODE", "offline")
    why = tracking.online_problem()
    assert why is not None and why.startswith("cannot use W&B online"), why
    assert CANARY not in why
    assert tracking.api_key_configured()  # the credentials probe ignores the mode too
