"""`ocfb-suite bench --scale small --smoke` runs in seconds and writes well-formed results:
every section present, every measured number finite and positive, the table next to it.
Timings themselves are not asserted (they depend on the machine and its load)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from suite import bench, bench_timings
from suite.cli import main as cli_main


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("bench")
    assert cli_main(["bench", "--scale", "small", "--smoke", "--out", str(out)]) == 0
    return out, json.loads((out / "bench.json").read_text())


def _positive(x: float, what: str) -> None:
    assert isinstance(x, (int, float)) and math.isfinite(x) and x > 0, f"{what} = {x!r}"


@pytest.mark.slow  # the bench smoke measures baselines in child processes
def test_smoke_writes_every_section(smoke_report) -> None:
    out, r = smoke_report
    assert {"machine", "loops", "term", "per_million", "sweep", "peak_rss_mib", "sizes",
            "bench_wall_s"} <= set(r)
    assert r["scale"] == "small" and r["smoke"] is True
    assert r["machine"]["cpus"] >= 1 and r["machine"]["device"] == "cpu"
    assert r["machine"]["torch_threads"] == 1
    assert r["sweep"] == {"skipped": "--smoke"}
    md = (out / "bench.md").read_text()
    assert md.startswith("# ocfb-suite bench: scale small (smoke)")
    assert "| trainer_b256 samples/s" in md and "| peak RSS MiB |" in md


@pytest.mark.slow  # the bench smoke measures baselines in child processes
def test_smoke_numbers_are_positive_and_consistent(smoke_report) -> None:
    _, r = smoke_report
    rates = r["loops"]["samples_per_s"]
    expected = {"trainer_b256", "bare_b256", "dataloader_b256", "trainer_b1024",
                "trainer_b4096", "trainer_b65536"}
    assert set(rates) == expected
    for k, v in rates.items():
        _positive(v, k)
    assert r["loops"]["trainer_over_bare_b256"] == pytest.approx(
        rates["trainer_b256"] / rates["bare_b256"])
    for k in ("time_train", "time_score", "time_resample", "time_eval", "wall_s"):
        _positive(r["term"][k], f"term.{k}")
    # the term's phases happen inside its wall time
    phases = sum(r["term"][k] for k in ("time_train", "time_score", "time_resample",
                                          "time_eval"))
    assert phases <= r["term"]["wall_s"] * 1.01
    assert r["term"]["positives"] == 2_000
    t2 = r["term"]["term2"]  # the steady-state term, measured in a run of its own
    for k in ("time_train", "time_score", "time_resample", "time_eval", "wall_s"):
        _positive(t2[k], f"term2.{k}")
    assert t2["overhead_over_train"] == pytest.approx(
        (t2["time_score"] + t2["time_resample"]) / t2["time_train"])
    rows = r["per_million"]["rows"]
    assert [row["positives"] for row in rows] == list(bench.SMOKE.series)
    for row in rows:
        assert row["cells"] == 5 * row["positives"]
        _positive(row["term_s_per_m"], "term_s_per_m")
    assert r["per_million"]["spread"] >= 1.0
    _positive(r["peak_rss_mib"], "peak_rss_mib")


def test_fixed_grid_data_is_distinct_cells_on_the_whole_grid() -> None:
    data = bench._grid_data((50, 40), 300, seed=3)
    cells = data.users * 40 + data.items
    assert (data.n_users, data.n_items) == (50, 40) and len(cells) == 300
    assert len(set(cells.tolist())) == 300


def test_cuda_without_a_gpu_and_bad_threads_exit_2(tmp_path: Path, capsys) -> None:
    import torch

    assert cli_main(["bench", "--threads", "0", "--out", str(tmp_path)]) == 2
    assert "--threads 0: must be >= 1" in capsys.readouterr().err
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert cli_main(["bench", "--device", "cuda", "--smoke", "--out", str(tmp_path)]) == 2
    assert "no CUDA device here" in capsys.readouterr().err
    assert not (tmp_path / "bench.json").exists()


def _fake_sweeps(monkeypatch, tmp_path: Path, runs: dict[int, dict],
                 seen: list[str | None] | None = None) -> Path:
    """Stand-in sweeps returning `runs` by seed count (recording each address in `seen`) on a
    2-CPU host; returns the sweep file to pass to bench_sweep."""
    def fake_run(cfg: Path, out: Path, address: str | None = None) -> dict:
        if seen is not None:
            seen.append(address)
        return runs[int(cfg.stem.split("-")[1])]

    monkeypatch.setattr(bench_timings, "_run_sweep", fake_run)
    monkeypatch.setattr(bench_timings.os, "cpu_count", lambda: 2)
    # Ray Tune's floor at the same trial counts: 12.7 s for 57 trials, 14.9 s for 114
    monkeypatch.setattr(bench_timings, "bench_floor", lambda work, counts: {
        "runs": {}, "per_trial_s": 2.2 / 57, "fixed_cost_s": 12.7 - 2.2})
    cfg = tmp_path / "q.yaml"
    cfg.write_text("name: q\nseeds: [0]\n")
    return cfg


def test_sweep_arithmetic_from_two_runs(monkeypatch, tmp_path: Path) -> None:
    # 3 seeds: 30 s wall for 20 s compute; 6 seeds: 46 s wall for 50 s compute, 2 CPUs:
    # marginal use 30 / (2 x 16) = 93.75 %, fixed cost 30 - 20 / (2 x 0.9375) = 19.33 s
    runs = {3: {"wall_s": 30.0, "compute_s": 20.0, "trials": 57},
            6: {"wall_s": 46.0, "compute_s": 50.0, "trials": 114}}
    got = bench.bench_sweep(tmp_path, _fake_sweeps(monkeypatch, tmp_path, runs))
    assert got["marginal_cpu_use"] == pytest.approx(0.9375)
    assert got["fixed_cost_s"] == pytest.approx(30 - 20 / 1.875)
    import yaml

    six = yaml.safe_load((tmp_path / "sweep-6.yaml").read_text())
    assert six["seeds"] == [0, 1, 2, 3, 4, 5] and six["wandb"] == {"mode": "disabled"}
    assert six["output"] == str(tmp_path / "sweep-6seeds")
    # the suite's fixed cost against Ray Tune's: 19.33 / 10.5
    assert bench_timings.floor_ratio(got) == pytest.approx((30 - 20 / 1.875) / 10.5)


@pytest.mark.slow  # the bench smoke measures baselines in child processes
def test_floor_is_the_intercept_of_two_bare_sweeps(monkeypatch, tmp_path: Path,
                                                   smoke_report) -> None:
    walls = {57: 12.7, 114: 14.9}

    class Done:
        def __init__(self, n: int) -> None:
            self.returncode, self.stderr = 0, ""
            self.stdout = f'{{"wall_s": {walls[n]}, "trials": {n}}}\n'

    monkeypatch.setattr(bench_timings.subprocess, "run", lambda cmd, **kw: Done(int(cmd[3])))
    floor = bench_timings.bench_floor(tmp_path, (57, 114))
    # wall = fixed + n x per-trial: per-trial 2.2 / 57 s, fixed 12.7 - 2.2 = 10.5 s
    assert floor["per_trial_s"] == pytest.approx(2.2 / 57)
    assert floor["fixed_cost_s"] == pytest.approx(10.5)
    sweep = {"runs": {}, "cpus": 2, "fixed_cost_s": 10.8, "marginal_cpu_use": 0.9,
             "floor": floor}
    md = bench.markdown({**smoke_report[1], "sweep": sweep})
    assert "| sweep fixed cost / Ray Tune's floor | 1.03x |" in md


@pytest.mark.slow  # the bench smoke measures baselines in child processes
def test_baseline_rows_in_the_table(smoke_report) -> None:
    _, report = smoke_report
    rows = report["baselines"]["models"]
    assert set(rows) == {"popularity", "ease", "als"}
    for row in rows.values():  # each fit in its own process: its peak covers its start
        assert row["peak_rss_gib"] >= row["rss_before_fit_gib"] > 0 and row["fit_s"] > 0
    md = bench.markdown(report)
    assert re.search(r"\| ease: fit s / eval s / peak RSS GiB \(407 x 462, 2,000 positives; "
                     r"before fit \d\.\d\d\) \| \d+\.\d / \d+\.\d / \d\.\d\d \|", md)


@pytest.mark.slow  # the bench smoke measures baselines in child processes
def test_sweep_on_a_running_cluster_uses_its_address_and_cpus(
    monkeypatch, tmp_path: Path, smoke_report
) -> None:
    # both sweeps join the given cluster, and the arithmetic uses the cluster's 4 CPUs, not
    # this host's 2: 30 / (4 x 16) = 46.875 %
    runs = {3: {"wall_s": 30.0, "compute_s": 20.0, "trials": 57},
            6: {"wall_s": 46.0, "compute_s": 50.0, "trials": 114}}
    seen: list[str | None] = []
    cfg = _fake_sweeps(monkeypatch, tmp_path, runs, seen)
    monkeypatch.setattr(bench_timings, "_cluster_cpus", lambda address: 4)
    got = bench.bench_sweep(tmp_path, cfg, "10.0.0.1:6379")
    assert seen == ["10.0.0.1:6379", "10.0.0.1:6379"]
    assert got["cpus"] == 4 and got["ray"] == "joined 10.0.0.1:6379"
    assert got["marginal_cpu_use"] == pytest.approx(30 / 64)
    md = bench.markdown({**smoke_report[1], "sweep": got})
    assert "| sweep fixed cost s (Ray joined 10.0.0.1:6379) |" in md
    assert "not a possible value" not in md  # 46.9 % is a possible use


@pytest.mark.slow  # the bench smoke measures baselines in child processes
def test_an_impossible_two_run_estimate_is_flagged(monkeypatch, tmp_path: Path,
                                                   smoke_report) -> None:
    # the 6-seed sweep ran on a faster host: 30 s more compute in 12 s more wall on 2 CPUs
    # is a use of 125 %, which no sweep can reach; the table says so instead of printing it bare
    runs = {3: {"wall_s": 40.0, "compute_s": 30.0, "trials": 57},
            6: {"wall_s": 52.0, "compute_s": 60.0, "trials": 114}}
    got = bench.bench_sweep(tmp_path, _fake_sweeps(monkeypatch, tmp_path, runs))
    assert got["marginal_cpu_use"] == pytest.approx(1.25)
    md = bench.markdown({**smoke_report[1], "sweep": got})
    assert "| sweep marginal CPU use (2 CPUs) | 125.0% (not a possible value" in md


@pytest.mark.parametrize("extra", [["--skip-sweep"], ["--smoke"]])
def test_ray_address_without_sweeps_is_refused_before_any_work(
    tmp_path: Path, capsys, extra: list[str]
) -> None:
    argv = ["bench", "--ray-address", "127.0.0.1:6379", *extra, "--out", str(tmp_path)]
    assert cli_main(argv) == 2
    assert "--ray-address" in capsys.readouterr().err
    assert not (tmp_path / "bench.json").exists()


def test_sweep_phases_from_marker_files(tmp_path: Path) -> None:
    # two slots; trial a runs 12-14 (and was restored once: its earliest start counts), b 12-15,
    # c 14-16; the process ran 10-17
    m = tmp_path / "m"
    m.mkdir()
    for name, when in (("a-from0-1.start", 12), ("a-from2-2.start", 13), ("a-from2-2.end", 14),
                       ("b-from0-3.start", 12), ("b-from0-3.end", 15),
                       ("c-from0-4.start", 14), ("c-from0-4.end", 16),
                       ("d-from0-5.start", 16)):  # d never ended: left out
        (m / name).write_text(f"{when}\n")
    got = bench_timings.sweep_phases(m, 10.0, 17.0, 2)
    assert got["startup_s"] == 2.0 and got["close_s"] == 1.0 and got["trials_span_s"] == 4.0
    assert got["slot_occupancy"] == pytest.approx((2 + 3 + 2) / (2 * 4))
    assert bench_timings.sweep_phases(tmp_path / "none", 0.0, 1.0, 2) == {}


def test_long_sweep_is_a_valid_sweep_of_eight_minute_scale_trials() -> None:
    from suite.spec import SweepSpec

    spec = SweepSpec.from_dict({**bench_timings.LONG_SWEEP, "output": "unused"}, "LONG_SWEEP")
    assert spec.expected_trials() == 8
    cfg = spec.run_config({"threshold": 0.3, "seed": 0})
    # 100,000 generated positives x 5 cells, 10 + 5 x 5 epochs: the work behind "a minute"
    assert cfg.data.n_interactions == 100_000 and cfg.epochs + cfg.terms * cfg.epochs_per_term == 35


def test_long_sweep_refuses_smoke_and_skip_sweep(tmp_path: Path, capsys) -> None:
    assert cli_main(["bench", "--smoke", "--long-sweep", "--out", str(tmp_path)]) == 2
    assert "--long-sweep runs with the quickstart sweeps" in capsys.readouterr().err
    assert not (tmp_path / "bench.json").exists()


@pytest.mark.parametrize("marker", [None, "/tmp/markers"])
def test_joining_a_cluster_forwards_only_the_bench_marker_folder(monkeypatch, marker) -> None:
    # workers of an already-running cluster do not inherit the driver's environment, so the
    # bench's per-trial marker folder travels in the job's runtime env; in normal use (unset)
    # the driver passes no runtime env at all
    import ray

    from suite import tuner
    from suite.tuner import START_MARKER_ENV

    seen: dict = {}
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: seen.update(kw))
    if marker:
        monkeypatch.setenv(START_MARKER_ENV, marker)
    else:
        monkeypatch.delenv(START_MARKER_ENV, raising=False)
    assert tuner.init_ray("10.0.0.1:6379") is False
    assert seen["address"] == "10.0.0.1:6379"
    if marker:
        assert seen["runtime_env"] == {"env_vars": {START_MARKER_ENV: marker}}
    else:
        assert "runtime_env" not in seen
