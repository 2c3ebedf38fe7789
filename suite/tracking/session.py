"""W&B's mode, credentials and folders for a sweep, and the one place runs are started.

Shared by the trial runs and the summary run (`suite.tracking`): which mode to use, where
wandb writes, whether online works with the credentials in effect (probed once per process),
and how to keep each run's offline folder the only one that `wandb sync` uploads.
"""

from __future__ import annotations

import configparser
import hashlib
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ocfb.names import WANDB_MODES

# One logger for every W&B warning of the suite, whichever module logs it.
LOG = logging.getLogger("suite.tracking")

_OFFLINE_DIR = re.compile(r"^offline-run-\d{8}_\d{6}-(?P<run_id>.+)$")
# Directories of runs replaced by a later run with the same id (a resumed trial, a re-logged
# summary): moved here so that `wandb sync DIR/wandb/offline-run-*` uploads each run once.
SUPERSEDED = "superseded"
# Whether online W&B works with the credentials in effect (fingerprint -> None or why not):
# probed once per process, so a sweep waits for an unreachable server once, not per trial.
_VERDICTS: dict[str, str | None] = {}

# Asks wandb's public `wandb.login` whether it finds credentials (env var, identity token,
# netrc or settings file, for the server in effect) without a prompt and without the network.
# Exit 0: found; 1: none; 2: present but malformed (counts as configured: the online check
# then names the problem once).
_CREDENTIALS_PROBE = """
import sys, wandb
from wandb.errors import AuthenticationError
try:
    found = wandb.login(verify=False, prompt=False)
except AuthenticationError:
    sys.exit(2)
sys.exit(0 if found else 1)
"""
# Asks the server in effect, through the public `wandb.login(verify=True)`, whether the
# credentials work; prints the error as one line. It leaves with os._exit, skipping wandb's
# teardown: run in the driver itself, a failed login left wandb's service process behind, and
# its teardown at exit hung past 120 s once on a loaded machine (tests/test_dashboard.py in a
# fresh-clone CI run), after the warning had been printed and the work was done.
_ONLINE_PROBE = """
import os, sys, wandb
try:
    code = 0 if wandb.login(verify=True, prompt=False) else 1
except Exception as exc:
    first = str(exc).strip().splitlines()
    print(f"{type(exc).__name__}: {first[0] if first else ''}")
    code = 3
sys.stdout.flush()
os._exit(code)
"""
# The most the online check may take: wandb's own HTTP timeout is 10 s by default.
ONLINE_PROBE_S = 30


# -- mode and environment -----------------------------------------------------------------------


def _user_settings_base_url() -> str | None:
    """The server URL from the user's wandb settings file (`wandb login --host`), if any."""
    cfg_dir = os.environ.get("WANDB_CONFIG_DIR") or str(Path("~/.config/wandb").expanduser())
    parser = configparser.ConfigParser()
    try:
        parser.read(Path(cfg_dir) / "settings")
        return parser.get("default", "base_url", fallback=None) or None
    except (configparser.Error, OSError, UnicodeDecodeError):
        return None


def base_url() -> str:
    """The W&B server in effect: WANDB_BASE_URL, else `wandb login --host`'s, else the default."""
    import wandb

    env_url = os.environ.get("WANDB_BASE_URL")
    return env_url or _user_settings_base_url() or wandb.Settings().base_url


def api_key_configured() -> bool:
    """True when wandb finds credentials without prompting (env var, identity token, netrc or
    settings file, for the server in effect), asked through the public `wandb.login`.

    No network and no prompt. The question runs in a child process (about 0.6 s, once per
    sweep): in this one `wandb.login` would keep what it found as the process's credentials
    and read the server once, so a later change of key or server would go unseen.
    """
    try:
        proc = _run_probe(_CREDENTIALS_PROBE, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode in (0, 2)


def _run_probe(script: str, timeout: float) -> subprocess.CompletedProcess:
    """One of the W&B questions above, in a child process with no stdin: silent (no "logged
    in as" network lookup) and without WANDB_MODE, since both ask about the credentials, not
    the mode (WANDB_MODE=offline made `wandb.login` answer "no credentials")."""
    env = {**os.environ, "WANDB_SILENT": "true"}
    env.pop("WANDB_MODE", None)
    return subprocess.run([sys.executable, "-c", script], env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def resolve_mode(cli_mode: str | None, spec_mode: str = "auto") -> str:
    """The W&B mode to use: "online", "offline" or "disabled".

    `--wandb` (cli_mode) overrides the sweep file (spec_mode); "auto" honours a valid WANDB_MODE
    and is otherwise online when an API key is configured, offline when not.
    """
    for name, value in (("--wandb", cli_mode), ("wandb.mode", spec_mode)):
        if value is not None and value not in (*WANDB_MODES, "auto"):
            raise ValueError(f"{name}: {value!r} is not one of auto, {', '.join(WANDB_MODES)}")
    mode = cli_mode or spec_mode or "auto"
    if mode != "auto":
        return mode
    env_mode = {"online": "online", "run": "online", "offline": "offline", "dryrun": "offline",
                "disabled": "disabled"}.get(os.environ.get("WANDB_MODE", "").strip().lower())
    if env_mode:
        return env_mode
    return "online" if api_key_configured() else "offline"


def check_mode(mode: str) -> None:
    """ValueError naming the allowed modes unless `mode` is one ("auto" is resolved earlier)."""
    if mode not in WANDB_MODES:
        raise ValueError(f"mode: {mode!r} is not one of {', '.join(WANDB_MODES)}")


def prepare_env(out_dir: Path) -> Path:
    """Point all of wandb's folders inside the sweep folder and make it silent; return DIR/wandb.

    Runs then land in DIR/wandb/{offline-,}run-*, caches/staged artifacts in DIR/wandb/.cache and
    .data. Only environment variables change here: nothing is written until a run starts.
    """
    out_dir = Path(out_dir).resolve()
    wandb_dir = out_dir / "wandb"
    # The user's settings file is hidden once WANDB_CONFIG_DIR moves: keep its server (self-hosted
    # W&B) so that online runs still go where `wandb login --host` pointed.
    if not os.environ.get("WANDB_BASE_URL") and (url := _user_settings_base_url()):
        os.environ["WANDB_BASE_URL"] = url
    os.environ["WANDB_DIR"] = str(out_dir)
    os.environ["WANDB_CACHE_DIR"] = str(wandb_dir / ".cache")
    os.environ["WANDB_CONFIG_DIR"] = str(wandb_dir / ".config")
    os.environ["WANDB_DATA_DIR"] = str(wandb_dir / ".data")
    os.environ["WANDB_SILENT"] = "true"
    # Belt and braces: the callback never goes online without credentials, but should wandb
    # still reach its login prompt, it gives up after this many seconds instead of waiting.
    os.environ.setdefault("WANDB_LOGIN_TIMEOUT", "10")
    return wandb_dir


def sync_hint(out_dir: Path) -> str:
    """The one line telling the user how to upload a sweep's offline runs."""
    wandb_dir = shlex.quote(str(Path(out_dir) / "wandb"))
    return f"W&B runs were saved offline; upload them with: wandb sync {wandb_dir}/offline-run-*"


# -- small helpers ------------------------------------------------------------------------------


def sanitize_id(text: str) -> str:
    """A W&B run or artifact id made from text: safe characters only, at most 64 of them."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "run"
    if len(clean) > 64:
        clean = f"{clean[:55]}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"
    return clean


def redact(text: str) -> str:
    """Text with the API key's value blanked out, so that no log line can ever carry it."""
    key = os.environ.get("WANDB_API_KEY")
    return text.replace(key, "***") if key else text


def short_error(exc: BaseException) -> str:
    """An exception as one line for a warning, the API key blanked out."""
    first = str(exc).strip().splitlines()
    return redact(f"{type(exc).__name__}: {first[0] if first else ''}")


def plain(value: Any) -> Any:
    """A plain Python value for W&B: NumPy scalars unwrapped (NaN stays NaN, as in the records)."""
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        return value.item()
    return value


def offline_dirs(out_dir: Path, run_id: str) -> list[Path]:
    """Offline run folders of one run id in DIR/wandb, oldest first."""
    wandb_dir = Path(out_dir) / "wandb"
    if not wandb_dir.is_dir():
        return []
    found = [p for p in wandb_dir.iterdir()
             if p.is_dir() and (m := _OFFLINE_DIR.match(p.name)) and m["run_id"] == run_id]
    return sorted(found, key=lambda p: (p.name, p.stat().st_mtime))


def supersede(dirs: Iterable[Path], keep: Path | None) -> None:
    """Move older offline folders of a run out of the sync glob (they are kept, not deleted)."""
    for d in dirs:
        if keep is not None and d.resolve() == keep.resolve():
            continue
        target = d.parent / SUPERSEDED / d.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        d.rename(target)


# -- online or not, and starting runs -----------------------------------------------------------


def _credentials_fingerprint() -> str:
    """Identifies the credentials in effect, without keeping the key itself anywhere."""
    parts = [os.environ.get(k, "") for k in ("WANDB_BASE_URL", "WANDB_API_KEY",
                                             "WANDB_IDENTITY_TOKEN_FILE", "NETRC")]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _online_problem() -> tuple[str | None, bool]:
    """Why online runs cannot work here (None: they can), and whether that is news.

    Checked once per process and credentials with `wandb.login(verify=True, prompt=False)` in
    a child process (`_ONLINE_PROBE`): no prompt, about 10 s at most without network, at most
    ONLINE_PROBE_S in all, and it creates no run. Probing per run instead would be worse: a
    failed online `wandb.init` keeps its run id taken for the rest of the process, so that
    trial could not even fall back to an offline run.
    """
    fingerprint = _credentials_fingerprint()
    if fingerprint not in _VERDICTS:
        why = _probe_online()
        _VERDICTS[fingerprint] = why
        return why, why is not None
    return _VERDICTS[fingerprint], False


def _probe_online() -> str | None:
    """`_ONLINE_PROBE`'s answer: None when the credentials work, else why not (key blanked)."""
    try:
        proc = _run_probe(_ONLINE_PROBE, timeout=ONLINE_PROBE_S)
    except subprocess.TimeoutExpired:
        return f"cannot use W&B online (no answer within {ONLINE_PROBE_S} s)"
    except OSError as exc:
        return f"cannot use W&B online ({short_error(exc)})"
    if proc.returncode == 0:
        return None
    if proc.returncode == 1:
        return "no W&B credentials found (WANDB_API_KEY or `wandb login`)"
    lines = proc.stdout.strip().splitlines()
    return f"cannot use W&B online ({redact(lines[-1] if lines else f'exit {proc.returncode}')})"


def online_problem() -> str | None:
    """Why online W&B cannot work with the credentials in effect (None: it can); see below."""
    return _online_problem()[0]


class RunStarter:
    """Starts runs in the requested mode; online turns offline when credentials do not work.

    `mode` is the mode runs actually get (it may turn offline after the first start); `notice`
    is set when that happened and the reason is news in this process: the caller logs it once.
    """

    def __init__(self, mode: str, out_dir: Path, init_timeout: float, finish_timeout: float):
        self.mode = mode
        self.out_dir = Path(out_dir).resolve()
        self.init_timeout = init_timeout
        self.finish_timeout = finish_timeout
        self.notice: str | None = None

    def start(self, **init_kwargs: Any) -> Any:
        """`wandb.init(**init_kwargs)` in this starter's mode, folder and settings."""
        import wandb

        prepare_env(self.out_dir)
        # wandb warns (and skips git info) when its root folder does not exist yet.
        (self.out_dir / "wandb").mkdir(parents=True, exist_ok=True)
        if self.mode == "online":
            why, news = _online_problem()
            if why is not None:
                self.mode = "offline"
                if news:
                    self.notice = f"W&B: {why}; logging offline instead. {sync_hint(self.out_dir)}"
        return wandb.init(
            mode=self.mode, dir=str(self.out_dir), reinit="create_new", resume="allow",
            settings=self._settings(wandb), **init_kwargs)

    def _settings(self, wandb: Any) -> Any:
        # The API key stays in the environment only: settings are written to the run's debug
        # logs. System metrics (CPU, memory) stay on: W&B's public way to turn them off is
        # experimental.
        kwargs: dict[str, Any] = dict(silent=True, quiet=True, console="off",
                                      finish_timeout=self.finish_timeout)
        if self.mode == "online":
            kwargs["init_timeout"] = self.init_timeout
        return wandb.Settings(**kwargs)
