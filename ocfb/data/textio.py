"""Opening text data files: transparent decompression and delimiter sniffing.

Why a module of its own: a gzip file named ``.csv`` used to fail with "not UTF-8 text", and a
comma-separated ``u.data`` with "missing item id". Both are wrong settings, not bad data, so
they are caught here, before parsing, with a message that says what the file looks like and
which CLI flag (``--format``, ``--user-col``, ``--item-col``) fixes it.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
from pathlib import Path
from typing import BinaryIO

from ocfb.data.interactions import DataError

# Compression named by the file suffix -> the magic bytes its content must start with.
# zstd goes through pyarrow (a kept dependency) since pandas would need the zstandard package.
SUFFIX_COMPRESSION: dict[str, str] = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zst": "zstd"}
_MAGIC: dict[str, bytes] = {
    "gzip": b"\x1f\x8b",
    "bz2": b"BZh",
    "xz": b"\xfd7zXZ\x00",
    "zstd": b"\x28\xb5\x2f\xfd",
    "zip": b"PK\x03\x04",
}
_SUFFIX_OF = {name: suffix for suffix, name in SUFFIX_COMPRESSION.items()}

# Delimiters worth recognising, with the words a message uses for them. "::" first: it is
# MovieLens-1M's, and a "::" line would otherwise count as ":"-free.
_DELIMITERS: dict[str, str] = {
    "::": "'::'-separated",
    "\t": "tab-separated",
    ",": "comma-separated",
    ";": "semicolon-separated",
    "|": "pipe-separated",
}
# Bytes read to find the first record when sniffing (a header line is far shorter).
_HEAD_BYTES = 1 << 16


def compression_of(path: Path) -> str | None:
    """The compression the file name announces (None for plain text), checked against its bytes.

    Raises DataError when the content is compressed but the name does not say so (the case
    that used to end in "not UTF-8 text"), or when the name promises a compression the
    content lacks.
    """
    suffix = path.suffix.lower()
    named = SUFFIX_COMPRESSION.get(suffix)
    with open(path, "rb") as handle:
        head = handle.read(8)
    found = next((name for name, magic in _MAGIC.items() if head.startswith(magic)), None)
    if named is None and found == "zip":
        raise DataError(f"{path}: looks like a zip archive, not a text file; unzip it and "
                        "pass the file inside")
    if named is None and found is not None:
        raise DataError(
            f"{path}: looks {found}-compressed, but the name does not say so; rename it to "
            f"{path.name}{_SUFFIX_OF[found]} to have it read transparently, or decompress it"
        )
    if named is not None and found != named:
        raise DataError(f"{path}: named {suffix} but its content is not {named}-compressed; "
                        f"decompressed files must not end in {suffix}")
    return named


def open_binary(path: Path) -> BinaryIO:
    """The file's decompressed bytes as a readable binary stream (caller closes it)."""
    compression = compression_of(path)
    if compression == "gzip":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if compression == "bz2":
        return bz2.open(path, "rb")  # type: ignore[return-value]
    if compression == "xz":
        return lzma.open(path, "rb")  # type: ignore[return-value]
    if compression == "zstd":
        import pyarrow as pa  # only here: importing pyarrow costs about 0.2 s

        return pa.input_stream(str(path), compression="zstd")  # type: ignore[return-value]
    return open(path, "rb")


def first_line(path: Path) -> tuple[int, str] | None:
    """(1-based line number, text) of the first non-blank line, or None if there is none."""
    try:
        with open_binary(path) as stream:
            head = stream.read(_HEAD_BYTES)
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot decompress ({exc})") from exc
    # errors="replace": a multi-byte character cut at the end of the head must not fail here;
    # real encoding errors are reported by the parser with their line.
    for number, line in enumerate(head.decode("utf-8", errors="replace").splitlines(), 1):
        if line.strip():
            return number, line
    return None


def describe_delimiter(sep: str) -> str:
    """Words for a delimiter in messages ("tab-separated", "comma-separated", ...)."""
    return _DELIMITERS.get(sep, f"{sep!r}-separated")


def sniff_delimiter(line: str, expected: str) -> str | None:
    """The delimiter a line uses instead of ``expected``; None when ``expected`` is there.

    Also None when no known delimiter appears (a one-column file: the missing-column message
    says more than a guess would). Ties go to the order of ``_DELIMITERS``.
    """
    if expected in line:
        return None
    counts = {sep: line.count(sep) for sep in _DELIMITERS if sep != expected}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] > 0 else None
