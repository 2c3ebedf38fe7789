"""Is this a sweep output folder, and can its files be read? One line that says what is wrong.

`summarize`, `resume` and `dashboard` read a folder someone hands them: it may be a foreign
folder, a copy that lost `sweep.json`, or one whose `trials.parquet` was truncated in transit
(the suite itself writes atomically, so a torn file comes from outside). Each used to end in a
traceback (`FileNotFoundError`, `ArrowInvalid: Parquet magic bytes not found`); this module
turns every such case into one line naming the file and what to do, checked before any work.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

# The results files a sweep writes; a folder with any of them is a sweep folder that lost
# sweep.json, not a foreign one.
RESULTS_FILES = ("trials.parquet", "terms.parquet", "results.journal", "summary.md")


class FolderError(ValueError):
    """The folder is not a readable sweep output folder; the message is the one line to print."""


def _rerun(out: Path) -> str:
    return f"rerun the sweep with --out {out}"


def read_sweep_json(out: Path) -> dict[str, Any]:
    """DIR/sweep.json as a dict with a sweep name; FolderError naming the file otherwise."""
    if not out.exists():
        raise FolderError(f"{out}: no such folder; pass the output folder of a sweep "
                          "(its `output`, e.g. runs/quickstart)")
    if not out.is_dir():
        raise FolderError(f"{out}: not a folder; pass the output folder of a sweep "
                          "(its `output`, e.g. runs/quickstart)")
    path = out / "sweep.json"
    if not path.is_file():
        present = [n for n in RESULTS_FILES if (out / n).exists()]
        if present:
            raise FolderError(
                f"{path}: missing, though {out} holds {present[0]}: sweep.json records the "
                f"sweep's settings (objective, axes, data); copy it back from the folder this "
                f"one came from, or {_rerun(out)}")
        raise FolderError(f"{out}: no sweep.json here, so this is not a sweep output folder; "
                          "pass the folder a sweep wrote (its `output`, e.g. runs/quickstart)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise FolderError(f"{path}: cannot read it ({err.strerror or err}); fix its "
                          "permissions") from None
    except (UnicodeDecodeError, ValueError) as err:
        why = "not UTF-8 text" if isinstance(err, UnicodeDecodeError) else f"not JSON: {err}"
        raise FolderError(f"{path}: unreadable ({why}); it records the sweep's settings: "
                          f"restore it from a copy, or {_rerun(out)}") from None
    if not isinstance(meta, dict) or not meta.get("name"):
        raise FolderError(f"{path}: not a sweep's settings (no sweep name in it); restore it "
                          f"from a copy, or {_rerun(out)}")
    return meta


def parquet_problem(path: Path, columns: tuple[str, ...] = ()) -> str | None:
    """Why a results Parquet file cannot be used (None: it reads, with `columns`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        names = pq.read_table(path).column_names  # whole file: a bad page fails here too
    except OSError as err:
        return f"cannot read it ({err.strerror or err})" if err.errno else \
            f"not a readable Parquet file ({_first_line(err)})"
    except (pa.ArrowException, ValueError) as err:
        return f"not a readable Parquet file ({_first_line(err)})"
    missing = [c for c in columns if c not in names]
    return f"no {', '.join(missing)} column(s): not a sweep's results file" if missing else None


def _first_line(err: BaseException) -> str:
    """pyarrow's reason without the path it repeats: "Parquet magic bytes not found in footer"."""
    text = (str(err).strip().splitlines() or [type(err).__name__])[0]
    text = re.sub(r"^Could not open Parquet input source '.*?': ", "", text)
    return text.split(". ")[0].rstrip(".")[:200]


def check_results(out: Path, *, need_trials: bool, need_columns: bool = True) -> None:
    """FolderError when trials.parquet is missing (`need_trials`) or a results Parquet file is
    torn, or lacks its key columns (`need_columns`: the dashboard reads what it finds); the
    message names the file and what to do."""
    trials = out / "trials.parquet"
    if need_trials and not trials.is_file():
        raise FolderError(
            f"{trials}: missing: no trial has ended yet, or the driver was killed before its "
            f"first write; continue the sweep with: ocfb-suite resume {out}")
    for name, columns in (("trials.parquet", ("trial_id", "status")),
                          ("terms.parquet", ("trial_id", "term"))):
        path = out / name
        if not path.is_file():
            continue
        problem = parquet_problem(path, columns if need_columns else ())
        if problem:
            raise FolderError(
                f"{path}: {problem}; the suite writes it atomically, so it was damaged "
                f"outside the sweep (a partial copy?): copy it again from the original "
                f"folder, or {_rerun(out)}")
