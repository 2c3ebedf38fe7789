"""ocfb-suite orchestration: Ray Tune sweeps, W&B tracking, summaries and the CLI around `ocfb`.

From Python, `run_sweep_file` runs a sweep file exactly as `ocfb-suite sweep` does and returns
its results folder. Importing this package imports nothing else (no Ray, W&B or pandas).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SweepFailed", "run_sweep_file"]


class SweepFailed(RuntimeError):
    """`ocfb-suite sweep` exited non-zero; its own message (what is wrong) is on stderr."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def run_sweep_file(path: str | Path, *, out: str | Path | None = None,
                   wandb: str | None = "disabled", smoke: bool = False) -> Path:
    """Run the sweep file at `path` (the CLI's code: validation, pre-flight, Ray Tune, results,
    summary) and return its results folder.

    out: the results folder (default: the file's `output`, with "-smoke" appended under smoke,
    as the CLI does). wandb: "online", "offline" or "disabled" (`--wandb`), or None for the
    sweep file's own mode. smoke: shrink every run to a few seconds (`--smoke`). Raises
    SweepFailed with the CLI's exit code (2: bad input, found before any work starts).
    """
    from ocfb.names import WANDB_MODES
    from suite.cli import main

    if wandb is not None and wandb not in WANDB_MODES:
        raise ValueError(f"wandb: {wandb!r} is not one of {', '.join(WANDB_MODES)} or None")
    if out is None:
        from suite.spec import SpecError, load_sweep

        try:
            out = load_sweep(path).output.rstrip("/") + ("-smoke" if smoke else "")
        except SpecError as err:
            raise SweepFailed(f"{path}: {err}", 2) from None
    argv = ["sweep", str(path), "--out", str(out)]
    argv += ["--wandb", wandb] if wandb is not None else []
    argv += ["--smoke"] if smoke else []
    code = main(argv)
    if code != 0:
        raise SweepFailed(f"ocfb-suite {' '.join(argv)} exited {code} (its message is above)",
                          code)
    return Path(out)
