"""Compatibility shim: the summaries moved to the `suite.summary` package.

Kept only until suite/sweep.py (and any other caller) imports `suite.summary` directly; new code
must import from `suite.summary`.
"""

from __future__ import annotations

from suite.summary import *  # noqa: F403 - re-export of the package's public names
from suite.summary import __all__  # noqa: F401
