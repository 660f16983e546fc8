"""Count import cycles between gridfactor's modules (every import, at any depth in a file).

Usage: python scripts/import_cycles.py [--list] [SRC]; exits 1 when there is a cycle. Counts
cycles between modules, then between the stage packages (gridfactor.<package>: a module of one
importing a module of the other, both ways). Uses only the stdlib ``ast`` so it measures the
source tree as written, without importing it. ``lint-imports`` enforces the same in CI.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(
    next((a for a in sys.argv[1:] if not a.startswith("-")), None)
    or Path(__file__).resolve().parents[1] / "src"
)
PACKAGE = "gridfactor"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the gridfactor modules it imports (a `from pkg import name` counts the
    submodule `pkg.name` when that is a module, else `pkg`)."""
    files = {module_name(p): p for p in (ROOT / PACKAGE).rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = mod.split(".")
                    anchor = anchor[: len(anchor) - node.level + (1 if is_pkg else 0)]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in files else base)
            for target in targets:
                while target and target not in files:  # `import a.b.c` of a name: its module
                    target = target.rpartition(".")[0]
                if target.startswith(PACKAGE) and target != mod:
                    graph[mod].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def packages(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The same graph between gridfactor's top-level modules and packages."""

    def top(module: str) -> str:
        return ".".join(module.split(".")[:2])

    out: dict[str, set[str]] = {top(m): set() for m in graph}
    for a, bs in graph.items():
        out[top(a)] |= {top(b) for b in bs if top(b) != top(a) and top(a) != PACKAGE}
    return out


def report(what: str, graph: dict[str, set[str]], listing: bool) -> int:
    found = cycles(graph)
    edges = [(a, b) for comp in found for a in comp for b in sorted(graph[a]) if b in comp]
    print(
        f"{len(found)} import cycles between {what} (strongly connected groups), "
        f"{sum(map(len, found))} {what} in them, {len(edges)} import edges inside them"
    )
    if listing:
        for comp in found:
            print("cycle:", ", ".join(comp))
            for a, b in edges:
                if a in comp:
                    print(f"    {a} -> {b}")
    return len(found)


def main() -> int:
    graph = import_graph()
    listing = "--list" in sys.argv
    n = report("modules", graph, listing) + report("packages", packages(graph), listing)
    return 1 if n else 0


if __name__ == "__main__":
    sys.exit(main())
