"""The sweep spec's one error format: `FILE: key.path: what is wrong (allowed, did you mean)`.

Validators in `schema.py` report problems as lines that already carry their key path, bundled
into one pydantic error (`problems`); `format_problems` turns a `ValidationError` of the spec
into those lines, and pydantic's own errors (types, ranges, unknown keys) into the same shape.
So every problem of a file is reported at once, one per line, in one format.
"""

from __future__ import annotations

import difflib
import re
import typing
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError

# pydantic error type of a bundle of ready-made problem lines (see `problems_error`)
PROBLEMS = "sweep_problems"


class SpecError(ValueError):
    """Bad sweep file; message names the key path(s) and the allowed values."""


def problems_error(lines: list[str]) -> PydanticCustomError:
    """One pydantic error carrying several finished problem lines (raise it in a validator)."""
    return PydanticCustomError(PROBLEMS, "{text}", {"text": "\n".join(lines), "lines": lines})


def hint(word: Any, options: Iterable[str]) -> str:
    """ " (did you mean 'x'?)" for a near miss, else nothing."""
    close = difflib.get_close_matches(str(word), list(options), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}?)" if close else ""


def short(v: Any, limit: int = 60) -> str:
    """repr(v), cut to `limit` characters."""
    s = repr(v)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def got(msg: str, value: Any) -> str:
    """Append the offending input unless the message already says what it got (RunConfig's
    "expected a number, got the boolean True" would otherwise read "got" twice)."""
    return msg if re.search(r"\bgot\b", msg) else f"{msg} (got {short(value)})"


def join(prefix: str, loc: Iterable[Any]) -> str:
    """A key path: `space.model.grid[1]` from a prefix and pydantic's loc tuple."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else str(part)
    return out or "<root>"


def field_names(cls: type[BaseModel]) -> list[str]:
    """The keys a section accepts, as a user writes them (aliases)."""
    return [f.alias or name for name, f in cls.model_fields.items()]


def _owner(cls: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel]:
    """The section model that `loc` (minus its last part) points into, for "allowed keys"."""
    for part in loc[:-1]:
        field = cls.model_fields.get(str(part)) if isinstance(part, str) else None
        sub = getattr(field, "annotation", None) if field is not None else None
        # an optional section (`X | None`) owns the keys of X
        for member in typing.get_args(sub) or (sub,):
            if isinstance(member, type) and issubclass(member, BaseModel):
                cls = member
    return cls


def pydantic_lines(err: ValidationError, prefix: str, cls: type[BaseModel]) -> list[str]:
    """One line per pydantic error: the path, the allowed keys or values, and the input.

    Bundled `problems_error` lines are passed through as they are (they carry their paths).
    """
    out: list[str] = []
    for e in err.errors(include_url=False):
        if e["type"] == PROBLEMS:
            out.extend(e["ctx"]["lines"])
            continue
        loc = tuple(e["loc"])
        path = join(prefix, loc)
        if e["type"] == "extra_forbidden":
            keys = field_names(_owner(cls, loc))
            msg = f"unknown key{hint(loc[-1], keys)}; allowed keys: {', '.join(keys)}"
        elif e["type"] == "missing":
            msg = "required key is missing"
        elif e["type"] in ("model_type", "model_attributes_type", "dict_type") and len(loc) == 1:
            keys = field_names(_owner(cls, (*loc, "")))
            msg = f"expected a mapping with keys {', '.join(keys)} (got {short(e['input'])})"
        else:
            msg = got(e["msg"].removeprefix("Value error, "), e["input"])
        out.append(f"{path}: {msg}")
    return out


def format_problems(lines: list[str], where: str) -> SpecError:
    """The SpecError of a file: every problem on its own line, prefixed with the file."""
    seen: list[str] = []
    for line in lines:
        if line not in seen:
            seen.append(line)
    return SpecError("\n".join(f"{where}: {p}" for p in seen))
