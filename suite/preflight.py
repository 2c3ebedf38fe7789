"""Checks that run before Ray starts: each problem exits 2 with a message naming the key.

Every check here needs the data, the machine or the file system, and is a mistake that used to
pass validation, start Ray and then fail every trial (issue 12, point 4): too many candidates
for the data, too few positives per user for the protocol, a trial bigger than the machine, too
little disk, an unwritable storage path or output folder (the file's own rules, seeds and URIs
included, are checked once, in `suite.spec`). The data is
loaded here once, and the same objects are shipped to the trials through Ray's object store
(`suite.tuner`), so a trial never reloads it and a worker node never needs the file.

Its last part turns the data block's command-line flags into settings (`data_overrides`) and a
data loader's flag names into settings keys (`flags_as_keys`, for `resume`, which has no data
flags): `suite.cli` builds the flags and `suite.commands` reads them; they live here because
commands must not import cli (cli imports commands to dispatch).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np

from ocfb.config import DataConfig

if TYPE_CHECKING:
    from suite.spec import SweepSpec

def _spec_error(msg: str) -> Exception:
    from suite.spec import SpecError

    return SpecError(msg)


def absolute_data_path(spec: SweepSpec) -> SweepSpec:
    """A data file path made absolute: trials run in their own working directories."""
    if spec.data.is_synthetic or "://" in spec.data.source:
        return spec
    source = str(Path(spec.data.source).expanduser().resolve())
    return spec.model_copy(update={"data": spec.data.model_copy(update={"source": source})})


def check_local_resources(spec: SweepSpec) -> None:
    """On local Ray, a trial this machine can never place would wait forever: refuse it."""
    cpus = os.cpu_count() or 1
    if spec.resources.cpus > cpus:
        raise _spec_error(f"resources.cpus: {spec.resources.cpus} per trial, but this machine "
                          f"has {cpus} CPUs; allowed: 0 < cpus <= {cpus} (or --address a "
                          "cluster)")
    if spec.resources.gpus > 0:
        import torch

        if not torch.cuda.is_available():
            raise _spec_error(f"resources.gpus: {spec.resources.gpus} per trial, but this "
                              "machine has no CUDA GPU; allowed: 0 (or --address a cluster "
                              "with GPUs)")


def check_storage_path(storage: str | None) -> None:
    """A local folder (or file:// URI) must be creatable and writable, else Ray fails with a
    pyarrow traceback at the first checkpoint; the URI itself was checked with the sweep file."""
    if not storage:
        return
    if "://" in storage:
        parts = urlsplit(storage)
        if parts.scheme != "file":
            return
        storage = parts.path
    problem = writable_problem(Path(storage))
    if problem:
        raise _spec_error(f"storage_path: {problem}")


def writable_problem(folder: Path) -> str | None:
    """Why files cannot be written in `folder` (created if missing), or None if they can."""
    if folder.exists() and not folder.is_dir():
        return f"{folder} is a file, not a folder"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return f"{folder} is not writable: {err.strerror or err}"
    reason = _write_error(folder)
    return None if reason is None else f"{folder} is not writable: {reason}"


def _write_error(folder: Path) -> str | None:
    """Why a file cannot be created in the existing `folder`, or None (creates nothing)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        return str(err.strerror or err)
    return None


def check_output(out: Path, flag: str = "--out") -> None:
    """The output folder must be a folder we can write into (checked last: it creates it)."""
    problem = writable_problem(out)
    if problem:
        raise _spec_error(f"{flag}: {problem}")


# -- data ---------------------------------------------------------------------------------------


def load_datasets(spec: SweepSpec) -> dict[tuple, Any]:
    """Every distinct dataset the sweep's trials use, loaded once, keyed by `DataConfig.key()`.

    Synthetic data follows the run's seed unless `data_seed` is set, so there is one dataset
    per seed then; a file is one dataset.
    """
    from ocfb import load_data
    from ocfb.data import DataError

    out: dict[tuple, Any] = {}
    for seed in spec.seeds:
        dc = spec.run_config({"seed": seed}).data
        key = dc.key()
        if key in out:
            continue
        try:
            out[key] = load_data(dc)
        except (DataError, ValueError) as err:
            raise _spec_error(f"data.source: {err}") from None
        dup = getattr(out[key], "n_duplicates_dropped", 0) or 0
        if dup:
            print(f"note: {dc.source}: {dup:,} duplicate (user, item) rows merged; "
                  f"{len(out[key]):,} distinct interactions remain", file=sys.stderr)
    return out


def check_data(spec: SweepSpec, datasets: dict[tuple, Any]) -> None:
    """Negatives, candidates and positives per user against the loaded data, every value."""
    data = next(iter(datasets.values()))
    problems = _negative_problems(spec, data)
    if "holdout" in [v for _, v in spec.values_of("protocol")]:
        problems += _candidate_problems(spec, data) + _positives_problems(spec, data)
    if problems:
        raise _spec_error("\n".join(problems))


def _negative_problems(spec: SweepSpec, data: Any) -> list[str]:
    free = data.n_users * data.n_items - len(data)
    # a ratio scales the training positives: at least all positives minus two held out per user
    fewest_positives = max(1, len(data) - 2 * data.n_users)
    problems = []
    for where, value in spec.values_of("negatives"):
        cfg = spec.run_config({"negatives": value})
        if cfg.is_baseline:
            continue
        basis = fewest_positives if cfg.protocol == "holdout" else len(data)
        need = cfg.n_negatives(basis)
        if need > free:
            problems.append(f"{where}: {value!r} means {need} negatives, but only {free} "
                            f"unobserved (user, item) cells exist in {spec.data.source}")
    return problems


def _user_counts(data: Any) -> np.ndarray:
    return np.bincount(np.asarray(data.users), minlength=data.n_users)


def _candidate_problems(spec: SweepSpec, data: Any) -> list[str]:
    # every held-out positive gets n_candidates items its user never interacted with
    most = int(_user_counts(data).max())
    room = data.n_items - most
    return [f"{where}: {value} sampled candidates per held-out positive, but the most active "
            f"user has interacted with {most} of {data.n_items} items, leaving {room}; "
            f"allowed: n_candidates <= {room}"
            for where, value in spec.values_of("n_candidates") if int(value) > room]


def positives_needed(split: str, fraction: float) -> int:
    """The fewest positives a user needs to give the holdout split one test and one validation
    positive and keep one to train on (the rules of ocfb.protocols' per-user hold-out)."""
    if split == "loo":
        return 3
    for c in range(2, 10_000):
        n_test = min(int(np.floor(fraction * c)), c - 1)
        rest = c - n_test
        if n_test >= 1 and min(int(np.floor(fraction * rest)), rest - 1) >= 1:
            return c
    return 10_000


def _positives_problems(spec: SweepSpec, data: Any) -> list[str]:
    most = int(_user_counts(data).max())
    problems = []
    for where_s, split in spec.values_of("split"):
        fractions = spec.values_of("holdout_fraction") if split == "fraction" else [("", 0)]
        for where_f, fraction in fractions:
            need = positives_needed(split, float(fraction))
            if most < need:
                at = f"{where_s}={split!r}" + (f", {where_f}={fraction}" if where_f else "")
                problems.append(
                    f"{at}: the holdout split needs users with at least {need} positives (one "
                    f"test, one validation, one to train on), but every user in "
                    f"{spec.data.source} has at most {most}; use protocol: paper, or more data")
    return problems


# -- memory -------------------------------------------------------------------------------------

# Trial memory requests are rounded up to this step: trials of one sweep then share a request
# (and so reuse each other's Ray workers) unless they truly differ in size.
MEMORY_STEP = 2**29  # 0.5 GiB


def shape_lookup(datasets: dict[tuple, Any]) -> Callable[[Any], tuple[int, int, int]]:
    """A run config's (users, items, positives), all a memory estimate needs of its data, from
    the loaded datasets (keyed by `DataConfig.key()`); a config whose data was not loaded gets
    the first dataset's shape."""
    shapes = {key: (int(d.n_users), int(d.n_items), len(d)) for key, d in datasets.items()}
    return lambda cfg: shapes.get(cfg.data.key()) or next(iter(shapes.values()))


def trial_memory(cfg: Any, shape: tuple[int, int, int]) -> tuple[int, str]:
    """The memory a trial asks Ray for (bytes, rounded up to MEMORY_STEP) and why."""
    from ocfb.footprint import estimate

    est = estimate(cfg, *shape)
    return -(-est.bytes // MEMORY_STEP) * MEMORY_STEP, est.detail


def sampled_configs(spec: SweepSpec) -> list[Any]:
    """The RunConfigs whose memory bounds the sweep's: every grid point, or, for a sampled
    search, each model with each listed `negatives` value (the two things memory grows with;
    sampled sizes are taken at their defaults)."""
    if spec.enumerates_grid():
        return [spec.run_config(p) for p in spec.distinct_configs()]
    models = [v for _, v in spec.values_of("model")] or [None]
    negatives = [v for _, v in spec.values_of("negatives")] or [None]
    out = []
    for m in models:
        for n in negatives:
            params = {k: v for k, v in (("model", m), ("negatives", n)) if v is not None}
            try:
                out.append(spec.run_config(params))
            except Exception:  # a combination the space never draws (per-model blocks)
                continue
    return out


def check_memory(spec: SweepSpec, datasets: dict[tuple, Any], limit: int, where: str) -> None:
    """Exit 2 (SpecError) when one trial alone needs more memory than the largest node has:
    Ray would leave it pending forever, or its memory monitor would kill it mid-sweep."""
    shape = shape_lookup(datasets)
    worst: dict[str, tuple[int, str]] = {}
    for cfg in sampled_configs(spec):
        need, detail = trial_memory(cfg, shape(cfg))
        if need > worst.get(cfg.model, (0, ""))[0]:
            worst[cfg.model] = (need, detail)
    over = [f"model {m}: one trial needs an estimated {need / 2**30:.1f} GiB ({detail}), but "
            f"{where} offers at most {limit / 2**30:.1f} GiB per trial"
            for m, (need, detail) in sorted(worst.items()) if need > limit]
    if over:
        raise _spec_error("\n".join(over) + "; use a machine or cluster node with more "
                          "memory, or fewer items (EASE needs n_items^2 x 4 B)")


def object_store_bytes() -> int:
    """The object store a local Ray gets: 5 % of memory, within 0.25-2 GiB (it holds the
    sweep's datasets once and small results)."""
    from ocfb.footprint import host_memory_bytes

    return int(min(2 * 2**30, max(2**28, host_memory_bytes() * 0.05)))


def local_memory_limit(store_bytes: int) -> int:
    """What a local Ray node will offer trials: available memory less the object store (Ray's
    own `memory` resource is computed the same way: 20.6 of 23.5 GiB measured here)."""
    from ocfb.footprint import host_memory_bytes

    available = host_memory_bytes()
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = min(available, int(line.split()[1]) * 1024)
    except OSError:
        pass
    return max(0, available - store_bytes)


# -- disk ---------------------------------------------------------------------------------------

# Per trial, besides its checkpoints: Ray's experiment state (4.6 MB at quickstart's 57 trials,
# kept twice while it is rewritten), the results rows and, unless disabled, a W&B offline run
TRIAL_STATE_BYTES = 2 * 85 * 1024
TRIAL_RESULTS_BYTES = 64 * 1024
TRIAL_WANDB_BYTES = 512 * 1024


def cluster_memory_limit() -> int:
    """The largest `memory` resource of any alive node of the connected cluster."""
    import ray

    return int(max((n.get("Resources", {}).get("memory", 0) for n in ray.nodes()
                    if n.get("Alive")), default=0))


# Ray saves its experiment state about once a second (TUNE_GLOBAL_CHECKPOINT_S, set by the
# driver; an object-store upload takes longer) and deletes a trial's older checkpoints as soon
# as a newer one is registered. With checkpoints seconds apart, the state a kill leaves can name
# a checkpoint already deleted, and resume fails that trial ("Could not recover from checkpoint
# as it does not exist on storage anymore": the S3 kill/resume test, a checkpoint per term, once
# in CI). Below this spacing every checkpoint is kept.
KEEP_ALL_BELOW_S = 10.0


def checkpoints_kept(spec: SweepSpec) -> int | None:
    """Ray's `CheckpointConfig.num_to_keep` for the sweep: two, or every one (None) when its
    checkpoints may come less than KEEP_ALL_BELOW_S apart."""
    return None if spec.checkpoint_interval_s < KEEP_ALL_BELOW_S else 2


def sweep_disk_bytes(spec: SweepSpec, datasets: dict[tuple, Any]) -> tuple[int, str]:
    """What a sweep writes, upper side (bytes), and how that was counted (for the message):
    per trial, the checkpoints of the largest configuration (three where Ray keeps two, as it
    writes the next before deleting the oldest; one a term and the last where it keeps all),
    plus its share of Ray's state, results and W&B."""
    from ocfb.footprint import checkpoint_bytes

    shape = shape_lookup(datasets)
    kept, configs = checkpoints_kept(spec), sampled_configs(spec)
    ckpt = max((checkpoint_bytes(c, *shape(c)) for c in configs), default=64 * 1024)
    copies = kept + 1 if kept else max((c.terms + 1 for c in configs), default=1)
    trials = spec.expected_trials() or spec.tune_num_samples()
    per_trial = copies * ckpt + TRIAL_STATE_BYTES + TRIAL_RESULTS_BYTES
    if spec.wandb.mode != "disabled":
        per_trial += TRIAL_WANDB_BYTES
    return trials * per_trial, f"{trials} trials x {per_trial / 2**20:.2f} MiB, checkpoints " \
                               f"of up to {ckpt / 2**20:.2f} MiB included"


def _existing_ancestor(path: Path) -> Path:
    """`path` itself, or its nearest parent that exists."""
    p = path.expanduser().resolve()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _free_bytes(path: Path) -> tuple[int, int]:
    """(free bytes, device id) of the filesystem that holds `path` or its nearest parent."""
    import shutil

    p = _existing_ancestor(path)
    return shutil.disk_usage(p).free, os.stat(p).st_dev


def check_disk(spec: SweepSpec, datasets: dict[tuple, Any], out: Path) -> None:
    """Exit 2 when the output folder (or a local storage_path) has less free space than the
    sweep will write: a nearly full disk otherwise fails every trial in turn, for minutes."""
    need, how = sweep_disk_bytes(spec, datasets)
    places = [("--out", out)]
    storage = spec.storage_path
    if storage and "://" not in storage or (storage or "").startswith("file://"):
        places.append(("storage_path", Path(urlsplit(storage).path if "://" in storage
                                            else storage)))
    seen: dict[int, int] = {}
    for flag, path in places:
        free, dev = _free_bytes(path)
        if dev in seen:  # one filesystem for both: its free space is shared, checked once
            continue
        seen[dev] = free
        if free < need:
            # an unwritable place (e.g. /proc, 0 bytes free) is reported as such, not as full
            parent = _existing_ancestor(path)
            reason = _write_error(parent)
            if reason is not None:
                where = "" if parent == path.expanduser().resolve() else f" (in {parent})"
                raise _spec_error(f"{flag}: {path} is not writable{where}: {reason}")
            raise _spec_error(
                f"{flag}: {path} has {free / 2**20:.1f} MiB free, but this sweep writes an "
                f"estimated {need / 2**20:.1f} MiB ({how}); free space there or choose "
                f"another {flag}")


# -- the data block as command-line flags (train, sweep, data describe; resume has none) --------

# What a shell makes hard to type as a delimiter.
_SEP_NAMES = {"\\t": "\t", "tab": "\t", "\\s": " ", "space": " "}


def data_flag(key: str) -> str:
    """The CLI flag of a DataConfig field (`user_col` -> `--user-col`)."""
    return "--" + key.replace("_", "-")


def data_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The data settings given as flags (text; pydantic validates them as it validates a file)."""
    out: dict[str, Any] = {}
    for key in DataConfig.model_fields:
        v = getattr(args, key, None)
        if v is not None:
            out[key] = _SEP_NAMES.get(v, v) if key == "sep" else v
    return out


def flags_as_keys(text: str) -> str:
    """A data loader's message for a command without data flags (`resume`): each data flag it
    names becomes its settings key (`--format tsv` -> `data.format tsv`)."""
    keys = {data_flag(k): f"data.{k}" for k in DataConfig.model_fields} | {"--data": "data.source"}
    return re.sub(r"--[a-z][a-z-]*", lambda m: keys.get(m.group(0), m.group(0)), text)
