"""The layers of wgns, kept: imports point down only (cli -> admin ->
render -> core, runtime -> core), imports made inside functions included,
and no two modules import each other, however indirectly. What the units
run (runtime) never imports what the CLI runs (admin, cli, render)."""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import REPO

PACKAGE = REPO / "wgns"
# Which layers each layer may import (itself included).
ALLOWED = {
    "cli": {"cli", "admin", "render", "core"},
    "admin": {"admin", "render", "core"},
    "render": {"render", "core"},
    "runtime": {"runtime", "core"},
    "core": {"core"},
    "helper": {"runtime", "core"},       # the entry point the units call
    "__main__": {"cli"},
    "__init__": set(),
}
MAX_LINES, MAX_FUNCTION_LINES = 300, 60


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "__init__"
    return parts[1] if parts[1] in ALLOWED else "(no layer)"


def imports(path: Path) -> set[str]:
    """Every wgns module PATH imports, anywhere in it (functions too)."""
    tree = ast.parse(path.read_text())
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "wgns"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "wgns":
                continue
            for alias in node.names:   # `from .x import y`: y may be a module
                candidate = f"{target}.{alias.name}"
                found.add(candidate if module_path(candidate) else target)
    return {m for m in found if module_path(m)}


def module_path(module: str) -> Path | None:
    p = REPO.joinpath(*module.split("."))
    for candidate in (p.with_suffix(".py"), p / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) - {module_name(p)} for p in PACKAGE.rglob("*.py")}


def test_imports_point_down_only():
    wrong = []
    for module, targets in graph().items():
        for target in targets:
            if target == "wgns":   # the package's own __init__ (__version__)
                continue
            if layer(target) not in ALLOWED.get(layer(module), set()):
                wrong.append(f"{module} -> {target}")
    assert not wrong, wrong


def test_no_cycles():
    g = graph()
    index, low, stack, on, sccs = {}, {}, [], set(), []

    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    for v in g:
        if v not in index:
            visit(v)
    assert not sccs, sccs


def test_every_module_is_in_a_layer_and_small():
    for p in PACKAGE.rglob("*.py"):
        m = module_name(p)
        assert layer(m) in ALLOWED, f"{m} is in no layer"
        lines = len(p.read_text().splitlines())
        assert lines <= MAX_LINES, f"{m}: {lines} lines"


def test_no_function_is_long():
    long = []
    for p in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{module_name(p)}.{node.name}: {n} lines")
    assert not long, long
