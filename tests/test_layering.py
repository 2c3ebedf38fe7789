"""The two floors: `ocfb/` (the library) never imports Ray, W&B or `suite/`."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import ocfb


def test_the_library_imports_neither_ray_nor_wandb_nor_the_suite():
    modules = sorted(m.name for m in pkgutil.walk_packages(ocfb.__path__, "ocfb."))
    assert "ocfb.algorithm" in modules and "ocfb.data.synthetic" in modules
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'wandb', 'suite'))\n"
        "print(' '.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"ocfb pulled in: {out.stdout.strip()}"
