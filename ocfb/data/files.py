"""Reading interaction files: CSV / TSV / Parquet and the MovieLens layouts, fully validated.

Every problem raises :class:`DataError` naming the file, the line or column and what was
expected, with a hint in terms of the CLI flags (``--format``, ``--user-col``, ``--item-col``)
where the likely cause is a wrong setting rather than bad data. Every flag a message names is
a `DataConfig` field, so `train`, `sweep` and `data describe` all have it (tests check this).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd

from ocfb.data.interactions import DataError, Interactions, datetimes_to_seconds, from_pairs
from ocfb.data.synthetic import SYNTHETIC_SOURCE, synthetic_influencer
from ocfb.data.textio import (
    SUFFIX_COMPRESSION,
    describe_delimiter,
    first_line,
    open_binary,
    sniff_delimiter,
)

FileFormat = Literal[
    "auto", "csv", "tsv", "parquet", "movielens-100k", "movielens-1m", "movielens-csv",
]
FORMATS: tuple[str, ...] = get_args(FileFormat)

# Fixed column layout of the MovieLens files: (names in the file, or None when headerless,
# separator, user, item, rating, timestamp).
_MOVIELENS_LAYOUT: dict[str, tuple[list[str] | None, str, str, str, str, str]] = {
    "movielens-100k": (["user", "item", "rating", "timestamp"], "\t",
                       "user", "item", "rating", "timestamp"),
    "movielens-1m": (["user", "item", "rating", "timestamp"], "::",
                     "user", "item", "rating", "timestamp"),
    "movielens-csv": (None, ",", "userId", "movieId", "rating", "timestamp"),
}


# Canonical decimal integers only: "007" or "+7" stay strings so that distinct original ids can
# never collide when converted to int.
_INT_ID = re.compile(r"-?(?:0|[1-9][0-9]{0,17})")

# What a user types to fix a wrong setting: messages name the CLI flags, not the keywords.
_COLUMN_HINT = "name the columns with --user-col and --item-col"
# MovieLens's ratings.csv header: recognised under any file name, since following the column
# hint instead (--user-col userId --item-col movieId) loses its timestamps, and `loo` then holds
# out a random positive instead of the latest.
_MOVIELENS_CSV_HEADER = frozenset({"userId", "movieId", "rating", "timestamp"})
# A column whose values are mostly numbers holds numeric ids; its few words are refused as typos
# ("oops" once in 100k integer ids used to turn every id into a string silently).
_MIXED_IDS_MAX_SHARE = 0.5


@dataclass
class _Table:
    """Raw columns of a file with the location label of every row (file line or parquet row)."""

    frame: pd.DataFrame
    rows: np.ndarray  # 1-based file line (text) or row number (parquet) of each frame row
    unit: str  # "line" or "row"


def _detect_format(path: Path, user_col: str, item_col: str) -> str:
    name = path.name.lower()
    if name == "u.data":
        return "movielens-100k"
    if name == "ratings.dat":
        return "movielens-1m"
    # compressed CSV / TSV are read transparently, so look through a compression suffix
    for compression in SUFFIX_COMPRESSION:
        if name.endswith(compression):
            name = name[: -len(compression)]
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith(".tsv"):
        return "tsv"
    if name.endswith(".csv"):
        if (user_col, item_col) == ("user", "item"):
            # MovieLens's header (any file name; ratings.csv needs only its id columns)
            header = set(_read_header(path, ","))
            if _MOVIELENS_CSV_HEADER <= header or (
                    name == "ratings.csv" and {"userId", "movieId"} <= header):
                return "movielens-csv"
        return "csv"
    raise DataError(
        f"{path}: cannot infer the format from the file name; pass --format, one of "
        f"{FORMATS[1:]}"
    )


def _read_header(path: Path, sep: str) -> list[str]:
    try:
        with open_binary(path) as stream:
            frame = pd.read_csv(stream, sep=sep, nrows=0, dtype=str)
        return [str(c).strip() for c in frame.columns]
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, OSError,
            EOFError, DataError):
        return []


def _check_delimiter(path: Path, sep: str, fmt: str) -> None:
    """DataError when the first record lacks the format's delimiter but uses another one."""
    first = first_line(path)
    found = None if first is None else sniff_delimiter(first[1], sep)
    if first is None or found is None:
        return
    looks = describe_delimiter(found)
    if found == "," and fmt != "csv":
        fix = "pass --format csv"
    elif found == "\t" and fmt != "tsv":
        fix = "pass --format tsv"
    else:
        fix = f"pass --sep {found!r}"
    if fmt in _MOVIELENS_LAYOUT:
        fix = (f"{fmt}'s file is {describe_delimiter(sep)} and headerless: restore the "
               f"original, or add a header line, {fix} and {_COLUMN_HINT}")
    raise DataError(
        f"{path}: line {first[0]} has no {describe_delimiter(sep).split('-')[0]} delimiter "
        f"but looks {looks}; {fix}"
    )


def _read_text(path: Path, sep: str, names: list[str] | None, fmt: str) -> _Table:
    """Read a delimited text file as strings; row k of the frame is file line rows[k].

    Compressed files (.gz, .bz2, .xz, .zst) are decompressed on the fly. Line numbers assume
    one record per line (a quoted field spanning lines shifts them).
    """
    _check_delimiter(path, sep, fmt)
    try:
        with open_binary(path) as stream:
            source: Any = stream
            if len(sep) > 1:
                # Multi-character separators (MovieLens-1M's "::") would force pandas' slow
                # Python engine; swapping them for a tab keeps the C engine and the line numbers.
                source = io.StringIO(stream.read().decode("utf-8").replace(sep, "\t"))
                sep = "\t"
            frame = pd.read_csv(
                source,
                sep=sep,
                header=None if names is not None else 0,
                names=names,
                dtype=str,
                na_filter=False,
                skip_blank_lines=False,
                encoding="utf-8",
            )
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: file is empty; expected a header and data rows") from exc
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: malformed file: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc})") from exc
    except (OSError, EOFError) as exc:  # truncated or corrupt compressed stream
        raise DataError(f"{path}: cannot decompress ({exc})") from exc
    return _drop_blank_lines(frame, first_line=1 if names is not None else 2)


def _drop_blank_lines(frame: pd.DataFrame, first_line: int) -> _Table:
    """Strip every field and drop blank lines, keeping each record's file line number."""
    frame.columns = [str(c).strip() for c in frame.columns]
    rows = np.arange(first_line, first_line + len(frame), dtype=np.int64)
    for col in frame.columns:
        frame[col] = frame[col].str.strip()
    if len(frame.columns):
        blank = (frame == "").all(axis=1).to_numpy()
        if blank.any():  # blank lines (e.g. a trailing one) are not records
            frame, rows = frame.loc[~blank].reset_index(drop=True), rows[~blank]
    return _Table(frame=frame, rows=rows, unit="line")


def _read_parquet(path: Path) -> _Table:
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many types for a corrupt or non-parquet file
        raise DataError(f"{path}: cannot read as Parquet: {exc}") from exc
    frame.columns = [str(c) for c in frame.columns]
    return _Table(frame=frame.reset_index(drop=True),
                  rows=np.arange(1, len(frame) + 1, dtype=np.int64), unit="row")


def _where(path: Path, table: _Table, k: int, column: str) -> str:
    return f"{path}: {table.unit} {int(table.rows[k])}, column {column!r}"


def _first_bad(path: Path, table: _Table, bad: np.ndarray, column: str) -> tuple[int, str]:
    k = int(np.flatnonzero(bad)[0])
    return k, _where(path, table, k, column)


def _parse_ids(
    path: Path, table: _Table, column: str, what: str, string_ids: bool = False
) -> np.ndarray:
    """The id column as int64 (numeric ids) or as text (string ids, or `string_ids`)."""
    series = table.frame[column]
    missing = series.isna().to_numpy()
    if series.dtype.kind not in "iufb":
        missing = missing | (series.astype(str).str.strip() == "").to_numpy()
    if missing.any():
        _, where = _first_bad(path, table, missing, column)
        raise DataError(f"{where}: missing {what} id; expected a value")
    if string_ids:  # as written: "007" stays "007", 7 becomes "7"
        return series.astype(str).str.strip().to_numpy(dtype=object)
    kind = series.dtype.kind
    if kind in "iu":
        return series.to_numpy(dtype=np.int64)
    if kind == "f":
        values = series.to_numpy(dtype=np.float64)
        bad = ~np.isfinite(values) | (values != np.round(values))
        if bad.any():
            k, where = _first_bad(path, table, bad, column)
            raise DataError(f"{where}: {what} id {float(values[k])!r} is not an integer; expected "
                            "integer or string ids")
        return values.astype(np.int64)
    strings = series.astype(str).str.strip()
    if strings.str.fullmatch(_INT_ID).all():
        return strings.astype(np.int64).to_numpy()
    _refuse_mixed_ids(path, table, strings, column, what)
    _refuse_fractional_ids(path, table, strings, column, what)
    return strings.to_numpy(dtype=object)


def _refuse_mixed_ids(
    path: Path, table: _Table, strings: pd.Series, column: str, what: str
) -> None:
    """DataError for a column of numbers with a few words in it, naming the first word's line.

    Mostly numbers means numeric ids with typos; text ids that happen to be mostly numbers
    (e.g. some screen names) are read as text with --string-ids.
    """
    words = pd.to_numeric(strings, errors="coerce").isna().to_numpy()
    n_words = int(words.sum())
    if n_words == 0 or n_words >= _MIXED_IDS_MAX_SHARE * len(strings):
        return
    k, where = _first_bad(path, table, words, column)
    n = len(strings)
    raise DataError(
        f"{where}: {what} id {strings.iloc[k]!r} is not a number, but {n - n_words:,} of "
        f"{n:,} {what} ids are ({n_words:,} are not); fix the line, or pass --string-ids "
        "if the ids are text"
    )


def _refuse_fractional_ids(
    path: Path, table: _Table, strings: pd.Series, column: str, what: str
) -> None:
    """DataError for a numeric id column holding a fraction such as 1.5.

    An id column whose every value is a number is numeric ids; "1.5" there is an error in the
    data (or a rating column passed as the id), not a separate item named "1.5". Columns with
    any non-numeric value stay string ids, and integral spellings like "007" stay as written.
    """
    numbers = pd.to_numeric(strings, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    if np.isnan(numbers).any():
        return
    bad = ~np.isfinite(numbers) | (numbers != np.round(numbers))
    if bad.any():
        k, where = _first_bad(path, table, bad, column)
        raise DataError(f"{where}: {what} id {strings.iloc[k]!r} is not an integer; numeric ids "
                        "must be whole numbers (is this the right column? see --user-col and "
                        "--item-col)")


def _shown(raw: Any) -> str:
    if raw is None or raw is pd.NA or (isinstance(raw, float) and np.isnan(raw)):
        return "a missing value"
    if str(raw).strip() == "":
        return "an empty value"
    return f"value {raw!r}"


def _parse_numbers(path: Path, table: _Table, column: str) -> np.ndarray:
    series = table.frame[column]
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.isnan(values)
    if bad.any():
        k, where = _first_bad(path, table, bad, column)
        raise DataError(f"{where}: bad rating, {_shown(series.iloc[k])}; expected a number")
    return values


def _integral_if_possible(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "f" and np.all(values == np.round(values)) and (
        len(values) == 0 or np.abs(values).max() < 2**53
    ):
        return values.astype(np.int64)
    return values


def _parse_timestamps(path: Path, table: _Table, column: str) -> np.ndarray:
    """Numeric timestamps as they are; ISO-8601 datetime strings to epoch seconds (UTC)."""
    series = table.frame[column]
    if series.dtype.kind == "M":
        bad = series.isna().to_numpy()
        expected = "a date/time"
        parsed = series
    else:
        numeric = pd.to_numeric(series, errors="coerce")
        numbers = numeric.to_numpy(dtype=np.float64, na_value=np.nan)
        # The first value decides the column's kind: numbers, or datetime strings.
        if not np.isnan(numbers[0]):
            bad = np.isnan(numbers)
            if bad.any():
                k, where = _first_bad(path, table, bad, column)
                raise DataError(f"{where}: bad timestamp, {_shown(series.iloc[k])}; expected "
                                "a number (epoch seconds) like the first row")
            if numeric.dtype.kind in "iu":  # exact, even beyond float64's 2**53
                return numeric.to_numpy(dtype=np.int64)
            return _integral_if_possible(numbers)
        parsed = pd.to_datetime(series.astype(str), format="ISO8601", utc=True, errors="coerce")
        bad = parsed.isna().to_numpy()
        expected = "an ISO-8601 date/time like the first row"
    if bad.any():
        k, where = _first_bad(path, table, bad, column)
        raise DataError(f"{where}: bad timestamp, {_shown(series.iloc[k])}; expected {expected}")
    return _integral_if_possible(datetimes_to_seconds(parsed))


def _require_columns(path: Path, table: _Table, needed: dict[str, str]) -> None:
    found = list(table.frame.columns)
    for role, column in needed.items():
        if column not in found:
            flag = {"user": "--user-col", "item": "--item-col", "rating": "--rating-col",
                    "timestamp": "--timestamp-col"}[role]
            hint = _column_hint(found) if role in ("user", "item") else f"check {flag}"
            raise DataError(
                f"{path}: {role} column {column!r} not found; columns found: {found}; {hint}"
            )


def _column_hint(found: list[str]) -> str:
    """What to pass when the id columns are not found: MovieLens's own format when the header
    is MovieLens's, else the column flags (with --timestamp-col when a column looks like one)."""
    if _MOVIELENS_CSV_HEADER <= set(found):
        return ("the header is MovieLens's: pass --format movielens-csv (it keeps the "
                f"timestamps, so 'loo' holds out each user's latest), or {_COLUMN_HINT}")
    hint = _COLUMN_HINT
    if {"userId", "movieId"} <= set(found):
        hint = "pass --user-col userId --item-col movieId"
    stamp = next((c for c in found if c.lower() in ("timestamp", "time", "ts", "date")), None)
    if stamp is not None:
        return f"{hint} (and --timestamp-col {stamp} to keep the times)"
    return hint


def load_file(
    path: str | Path,
    *,
    format: FileFormat | str = "auto",
    user_col: str = "user",
    item_col: str = "item",
    timestamp_col: str | None = None,
    rating_col: str | None = None,
    min_rating: float | None = None,
    sep: str | None = None,
    string_ids: bool = False,
) -> Interactions:
    """Load positive pairs from a CSV / TSV / Parquet / MovieLens file, fully validated.

    A row is a positive when ``rating >= min_rating`` (all rows when min_rating is None).
    MovieLens formats use their fixed columns (the *_col arguments are ignored) and always keep
    timestamps. Text files may be compressed (.gz, .bz2, .xz, .zst). Repeated (user, item)
    rows merge into one positive and are counted in ``n_duplicates_dropped``. An id column of
    numbers with a few words in it is refused unless ``string_ids`` reads every id as text.
    Any problem raises DataError naming the file, the line or column and what was expected;
    nothing is returned half-loaded.
    """
    path = Path(path)
    _check_file(path, format)
    fmt = _detect_format(path, user_col, item_col) if format == "auto" else format
    if fmt in _MOVIELENS_LAYOUT:
        names, ml_sep, user_col, item_col, ml_rating, timestamp_col = _MOVIELENS_LAYOUT[fmt]
        rating_col = ml_rating if min_rating is not None else None
        table = _read_text(path, sep or ml_sep, names, fmt)
    else:
        if min_rating is not None and rating_col is None:
            raise DataError(f"{path}: --min-rating {min_rating} needs --rating-col (rating_col: "
                            "which column holds the rating?)")
        if fmt == "parquet":
            table = _read_parquet(path)
        else:
            table = _read_text(path, sep or ("\t" if fmt == "tsv" else ","), None, fmt)
    needed = {"user": user_col, "item": item_col}
    if rating_col is not None:
        needed["rating"] = rating_col
    if timestamp_col is not None:
        needed["timestamp"] = timestamp_col
    _require_columns(path, table, needed)
    if len(table.frame) == 0:
        raise DataError(f"{path}: no data rows (only a header or blank lines); expected pairs")
    return _pairs(path, table, needed, min_rating,
                  name=fmt if fmt in _MOVIELENS_LAYOUT else path.name, string_ids=string_ids)


def _check_file(path: Path, format: str) -> None:
    """DataError for an unknown format or a path that is not a non-empty regular file."""
    if format not in FORMATS:
        raise DataError(f"{path}: unknown format {format!r}; --format takes one of {FORMATS}")
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty (0 bytes); expected data rows")


def _pairs(
    path: Path, table: _Table, columns: dict[str, str], min_rating: float | None, name: str,
    string_ids: bool = False,
) -> Interactions:
    """Parse the id, rating and timestamp columns and keep the positive rows."""
    users = _parse_ids(path, table, columns["user"], "user", string_ids)
    items = _parse_ids(path, table, columns["item"], "item", string_ids)
    timestamps = (None if "timestamp" not in columns
                  else _parse_timestamps(path, table, columns["timestamp"]))
    what = f"{len(users):,} rows"
    if "rating" in columns:
        ratings = _parse_numbers(path, table, columns["rating"])
        if min_rating is not None:
            keep = ratings >= float(min_rating)
            what = (f"{int(keep.sum()):,} of {len(users):,} rows with {columns['rating']} >= "
                    f"{min_rating}")
            users, items = users[keep], items[keep]
            timestamps = None if timestamps is None else timestamps[keep]
    n_users, n_items = len(pd.unique(users)), len(pd.unique(items))
    if n_users < 2 or n_items < 2:
        raise DataError(
            f"{path}: {what} leave {n_users} distinct users and {n_items} distinct items; "
            "expected at least 2 of each"
        )
    return from_pairs(users, items, timestamps, name=name)


def load_source(source: str, **kwargs: Any) -> Interactions:
    """Load a named source: "synthetic-influencer" (generator kwargs) or a file path."""
    if str(source) == SYNTHETIC_SOURCE:
        return synthetic_influencer(**kwargs)
    return load_file(source, **kwargs)


