"""The two floors: `ocfb/` (the library) never imports Ray, W&B or `suite/`; no module of
either imports itself back through a cycle."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import ocfb


@pytest.mark.slow  # starts a child process (make test-fast leaves it to make test)
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


# -- no import cycles -----------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent


def _module_names() -> dict[str, Path]:
    """Every module of `ocfb` and `suite` by dotted name (a package by its own name)."""
    out = {}
    for top in ("ocfb", "suite"):
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return getattr(test, "id", None) == "TYPE_CHECKING" or \
        getattr(test, "attr", None) == "TYPE_CHECKING"


def _imported(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules `name` imports anywhere in its file (module level, classes and
    functions), except under `if TYPE_CHECKING:`. `from pkg import x` counts as importing
    `pkg.x` when that is a module, else `pkg`."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {id(n) for block in ast.walk(tree)
                   if isinstance(block, ast.If) and _is_type_checking(block)
                   for stmt in block.body for n in ast.walk(stmt)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.update(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                         for a in node.names)
    out = set()
    for mod in found:
        while mod and mod not in modules:  # `import ocfb.data.files` -> that module
            mod = mod.rpartition(".")[0]
        if mod and mod != name:
            out.add(mod)
    return out


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a, b, ..., a) per strongly connected group of the graph."""
    cycles, done = [], set()
    for start in sorted(graph):
        stack, path, on_path = [(start, iter(sorted(graph[start])))], [start], {start}
        while stack:
            node, nexts = stack[-1]
            nxt = next(nexts, None)
            if nxt is None:
                stack.pop()
                on_path.discard(path.pop())
                done.add(node)
            elif nxt in on_path:
                cycle = path[path.index(nxt):] + [nxt]
                if not any(set(cycle) <= set(c) for c in cycles):
                    cycles.append(cycle)
            elif nxt not in done and nxt in graph:
                stack.append((nxt, iter(sorted(graph[nxt]))))
                path.append(nxt)
                on_path.add(nxt)
    return cycles


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [
        ["a", "b", "c", "a"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_among_ocfb_and_suite_modules() -> None:
    """Static: every module's imports, read with `ast`, form no cycle. Imports inside
    functions count too: deferring one (for import cost, or to dodge a cycle) still ties the
    two modules together, so neither can be read or moved without the other. Imports under
    `if TYPE_CHECKING:` do not count: they never run, and type checkers resolve cycles.
    A package's implicit import of its parent is not an edge either (a submodule always
    needs its package)."""
    modules = _module_names()
    assert {"ocfb.algorithm", "suite.cli", "suite.spec.schema"} <= set(modules)
    graph = {name: _imported(name, path, modules) for name, path in modules.items()}
    assert "suite.commands" in graph["suite.cli"]  # function-level imports are read
    cycles = import_cycles(graph)
    assert cycles == [], "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)
