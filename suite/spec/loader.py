"""Reading a sweep file: YAML with duplicate keys refused, CLI overrides, and one validation pass
(`schema.validate`) whose problems come back together as one SpecError (`FILE: key.path: what
is wrong`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from suite.spec.errors import SpecError
from suite.spec.schema import SweepSpec, validate


class _Loader(yaml.SafeLoader):
    """safe_load, plus: duplicate keys are an error (safe_load silently keeps the last one), and
    1e-3 is a float (YAML 1.1 reads it as a string; YAML 1.2 and every user read it as 0.001)."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                dup = key in seen
            except TypeError:
                continue  # unhashable key: the base class reports it
            if dup:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"found duplicate key {key!r}", key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*)?\.?\d+[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def _yaml_problem(err: yaml.YAMLError) -> str:
    """ " at line L, column C: what the parser found" (PyYAML's own text names no file)."""
    mark = getattr(err, "problem_mark", None)
    what = ", ".join(str(x) for x in (getattr(err, "context", None),
                                      getattr(err, "problem", None)) if x)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{where}: {what or ' '.join(str(err).split())}"


def read_yaml(p: Path) -> Any:
    """The parsed YAML of a sweep file; SpecError for a missing, binary or malformed file."""
    if not p.exists():
        raise SpecError(f"{p}: sweep file not found")
    if not p.is_file():
        raise SpecError(f"{p}: not a file (expected a YAML sweep file)")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SpecError(f"{p}: not a text file (expected a YAML sweep file)") from None
    try:
        raw = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: as safe as safe_load
    except yaml.YAMLError as err:
        raise SpecError(f"{p}: not valid YAML{_yaml_problem(err)}") from None
    if raw is None:
        raise SpecError(f"{p}: the file is empty (expected a mapping of sweep keys)")
    return raw


def load_sweep(
    path: str | Path, *, output: str | None = None, data_source: str | None = None,
    drop_duplicates: bool | None = None, data: dict[str, Any] | None = None,
) -> SweepSpec:
    """Read a sweep YAML file, apply CLI overrides (output folder, data source file, the data
    flags as `data` keys, `--drop-duplicates`) and validate it fully; raise SpecError (every
    problem, one per line) before anything runs."""
    p = Path(path)
    raw = read_yaml(p)
    if isinstance(raw, dict):
        if output is not None:
            raw["output"] = output
        data = {**(data or {}), **({"source": data_source} if data_source is not None else {})}
        if data:
            block = raw.get("data")
            if block is None:
                raw["data"] = data
            elif isinstance(block, dict):
                raw["data"] = {**block, **data}
        if drop_duplicates is not None:
            raw["drop_duplicates"] = drop_duplicates
    return validate(raw, str(p))
