"""Atomic writers for results files: a crash never leaves a truncated file behind."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd


def _atomic(path: Path, write) -> None:  # noqa: ANN001 - a callable taking a temp path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_parquet(df: pd.DataFrame, path: str | Path) -> None:
    """Write a data frame to parquet atomically (temporary file, then rename)."""
    # zstd: results files are read rarely and committed, so small beats fast
    _atomic(Path(path), lambda tmp: df.to_parquet(tmp, index=False, compression="zstd"))


def write_csv(df: pd.DataFrame, path: str | Path) -> None:
    """Write a data frame to CSV atomically."""
    _atomic(Path(path), lambda tmp: df.to_csv(tmp, index=False))


def write_text(text: str, path: str | Path) -> None:
    """Write text atomically."""
    _atomic(Path(path), lambda tmp: Path(tmp).write_text(text))


def write_json(obj: Any, path: str | Path) -> None:
    """Write JSON atomically (NaN allowed, as pandas and W&B read it)."""
    write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", path)
