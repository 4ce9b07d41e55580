"""The import graph keeps the layering of docs/architecture.md: no cycles, arrows one way.

Read from the source (every import statement, function-local ones included), so an import
added against the arrows fails here before it tangles the code.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ["app", "worker", "beacon", "celeryconfig.py", "wsgi.py"]

# Lower imports nothing higher. Within one rank, only modules of one subsystem meet.
RANKS = [
    ("base", ("app.config", "app.extensions", "app.errors", "app.redis_keys", "app.tokens",
              "app.timeutil", "app.models", "celeryconfig")),
    ("telemetry", ("app.telemetry",)),
    ("history", ("app.history",)),
    ("ingest", ("app.ingest",)),
    ("services", ("app.services",)),
    ("alerts", ("app.alerts",)),
    ("interfaces", ("app.api", "app.cli", "app.dashboard")),
    ("factory", ("app",)),
    ("worker", ("worker", "wsgi")),
]
MAX_LINES = 400
LONG_MODULE_REASON = "Longer than 400 lines because"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_files() -> dict[str, Path]:
    files: dict[str, Path] = {}
    for source in SOURCES:
        path = ROOT / source
        for file in ([path] if path.is_file() else sorted(path.rglob("*.py"))):
            files[module_name(file)] = file
    return files


FILES = project_files()


def _resolve(name: str) -> str | None:
    """The project module `name` denotes (a module, or the package holding the name)."""
    while name:
        if name in FILES:
            return name
        name = name.rpartition(".")[0]
    return None


def _runtime_nodes(tree: ast.AST):
    """Every node except those under `if TYPE_CHECKING:` (annotations only, never run)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            continue
        yield node
        yield from _runtime_nodes(node)


def imports_of(module: str) -> set[str]:
    tree = ast.parse(FILES[module].read_text())
    package = module if FILES[module].name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" for alias in node.names] or [base]
        else:
            continue
        for name in names:
            target = _resolve(name)
            if target is not None and target != module:
                found.add(target)
    return found


GRAPH = {module: imports_of(module) for module in FILES}


def rank_of(module: str) -> tuple[int, str] | None:
    best = None
    for index, (_, prefixes) in enumerate(RANKS):
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and (best is None or len(prefix) > len(best[1])):
                best = (index, prefix)
    return best


def test_no_import_cycles():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:  # Tarjan's strongly connected components
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(GRAPH[module]):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    assert cycles == []


@pytest.mark.parametrize("module", sorted(m for m in FILES if m.startswith(("app", "worker"))))
def test_imports_point_down(module):
    own = rank_of(module)
    assert own is not None, f"{module} belongs to no layer of this test"
    wrong = []
    for target in GRAPH[module]:
        theirs = rank_of(target)
        if theirs is None:
            continue
        if theirs[0] > own[0] or (theirs[0] == own[0] and theirs[1] != own[1]
                                  and own[0] != 0):
            wrong.append(f"{module} ({RANKS[own[0]][0]}) -> {target} ({RANKS[theirs[0]][0]})")
    assert wrong == []


def test_nothing_outside_the_api_imports_it():
    offenders = sorted(f"{m} -> {t}" for m, targets in GRAPH.items() for t in targets
                       if t.startswith("app.api") and not m.startswith("app.api")
                       and m != "app")  # the factory registers the blueprints
    assert offenders == []


def test_the_agent_stands_alone():
    """beacon/ talks to Pulse over HTTP only (SPEC §2)."""
    forbidden = ("app", "worker", "flask", "sqlalchemy", "celery", "redis", "psycopg2")
    offenders = []
    for module, file in FILES.items():
        if not module.startswith("beacon"):
            continue
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            offenders += [f"{module} -> {n}" for n in names if n.split(".")[0] in forbidden]
    assert offenders == []


def test_the_checker_sees_a_wrong_arrow():
    """The rules catch what they are for (a service importing the API, a cycle)."""
    assert rank_of("app.services.probes")[0] < rank_of("app.api.probes.resources")[0]
    assert rank_of("app.history.flush")[0] < rank_of("app.ingest.store")[0]
    assert "app.history.live_cache" in GRAPH["app.ingest.store"]
    assert "app.ingest.node_lookup" in GRAPH["app.services.probes"]


def test_no_module_over_400_lines_without_a_reason():
    long = [f"{m} ({n} lines)" for m, f in FILES.items()
            if (n := len(f.read_text().splitlines())) > MAX_LINES
            and LONG_MODULE_REASON not in f.read_text()]
    assert long == []
