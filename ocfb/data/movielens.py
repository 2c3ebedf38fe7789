"""MovieLens download: fetch a GroupLens archive once, verify its MD5, unpack it safely.

The one module that touches the network; tests replace :func:`_download`.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import urllib.request
import zipfile
from pathlib import Path

from ocfb.data.interactions import DataError

_GROUPLENS = "https://files.grouplens.org/datasets/movielens"

# name -> (url, md5 of the archive, ratings file inside the archive). ml-latest-small is
# re-issued by GroupLens from time to time, so no constant can pin it: its md5 is read from the
# `.md5` file GroupLens publishes next to the archive (None below).
MOVIELENS_ARCHIVES: dict[str, tuple[str, str | None, str]] = {
    "ml-100k": (f"{_GROUPLENS}/ml-100k.zip", "0e33842e24a9c977be4e0107933c0723", "ml-100k/u.data"),
    "ml-1m": (f"{_GROUPLENS}/ml-1m.zip", "c4d9eecfca2ab87c1945afe126590906", "ml-1m/ratings.dat"),
    "ml-latest-small": (f"{_GROUPLENS}/ml-latest-small.zip", None,
                        "ml-latest-small/ratings.csv"),
}
_MOVIELENS_ALIASES = {
    "100k": "ml-100k", "movielens-100k": "ml-100k",
    "1m": "ml-1m", "movielens-1m": "ml-1m",
    "latest-small": "ml-latest-small", "movielens-latest-small": "ml-latest-small",
}


def _download(url: str, dest: Path) -> None:
    """Stream url to dest (the one network call; tests replace it)."""
    with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as out:
        shutil.copyfileobj(response, out, length=1 << 20)


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _published_md5(url: str, cache_dir: Path) -> str:
    md5_path = cache_dir / (url.rsplit("/", 1)[-1] + ".md5.part")
    try:
        _download(url + ".md5", md5_path)
        text = md5_path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DataError(f"could not download {url}.md5: {exc}") from exc
    finally:
        md5_path.unlink(missing_ok=True)
    match = re.search(r"\b[0-9a-fA-F]{32}\b", text)
    if match is None:
        raise DataError(f"{url}.md5 holds no MD5 checksum")
    return match.group(0).lower()


def fetch_movielens(name: str, cache_dir: Path) -> Path:
    """Download, verify (MD5) and unpack a MovieLens archive once; return its ratings file.

    ``name`` is ml-100k, ml-1m or ml-latest-small (aliases: 100k, movielens-100k, ...). A
    cached, verified copy is reused without network access. Failures raise DataError naming
    the URL.
    """
    key = _MOVIELENS_ALIASES.get(name, name)
    if key not in MOVIELENS_ARCHIVES:
        raise DataError(f"unknown MovieLens archive {name!r}; expected one of "
                        f"{tuple(MOVIELENS_ARCHIVES)}")
    url, expected, member = MOVIELENS_ARCHIVES[key]
    cache_dir = Path(cache_dir)
    target = cache_dir / member
    marker = cache_dir / key / ".ocfb-verified"
    if target.is_file() and marker.is_file():
        return target

    cache_dir.mkdir(parents=True, exist_ok=True)
    archive = cache_dir / f"{key}.zip.part"
    try:
        _download(url, archive)
    except OSError as exc:  # URLError, timeouts and HTTP errors are all OSErrors
        archive.unlink(missing_ok=True)
        raise DataError(
            f"could not download {url}: {exc}; without a network, place the archive's "
            f"{member} under {cache_dir} and pass it as --data"
        ) from exc
    try:
        if expected is None:
            expected = _published_md5(url, cache_dir)
        got = _md5(archive)
        if got != expected:
            raise DataError(
                f"checksum mismatch for {url}: expected md5 {expected}, got {got}; the "
                "download is corrupt or the archive changed, so it was discarded"
            )
        staging = cache_dir / f".{key}.extracting"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    # Never write outside the staging folder (zip-slip).
                    if info.filename.startswith(("/", "\\")) or ".." in Path(info.filename).parts:
                        raise DataError(f"{url}: unsafe path in archive: {info.filename!r}")
                zf.extractall(staging)
        except zipfile.BadZipFile as exc:
            raise DataError(f"{url}: downloaded file is not a zip archive ({exc})") from exc
        if not (staging / member).is_file():
            shutil.rmtree(staging, ignore_errors=True)
            raise DataError(f"{url}: archive has no {member}")
        shutil.rmtree(cache_dir / key, ignore_errors=True)
        (staging / key).rename(cache_dir / key)
        shutil.rmtree(staging, ignore_errors=True)
        marker.write_text(f"md5 {expected}\n", encoding="utf-8")
    finally:
        archive.unlink(missing_ok=True)
    return target
