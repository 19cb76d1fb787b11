"""The shape of the code, held by tests: layers, no import circles, SQL only in storage/.

Layers, bottom up (a package may import only packages on lower floors, or itself):

    0  models, config          the contract's vocabulary; settings and topic names
    1  domain                  pure rules
    2  storage, mail, devstack adapters: PostgreSQL, SMTP and rendering, the embedded stack
    3  services                use cases
    4  streams                 Faust building blocks: guard, runtime, web, topics admin
    5  agents, producers       what runs on a worker; what writes input to the broker
    6  seatflow                entrypoints: CLI, worker, the composition root

Every import counts, also one inside a function. Tests, the chaos suite and the benchmarks
are tooling around the service and are not held to the layers (they read PostgreSQL and
topics directly to check the service from outside).
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAYERS: list[set[str]] = [
    {"models", "config"},
    {"domain"},
    {"storage", "mail", "devstack"},
    {"services"},
    {"streams"},
    {"agents", "producers"},
    {"seatflow"},
]
FLOOR = {package: floor for floor, packages in enumerate(LAYERS) for package in packages}
SQL = re.compile(
    r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+(TABLE|INDEX)"
    r"|ALTER\s+TABLE)\b",
    re.IGNORECASE | re.DOTALL,
)


def modules() -> dict[str, Path]:
    """Every module of the service's packages: dotted name -> file."""
    out = {}
    for package in FLOOR:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def imports_of(path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules a file imports (a `from pkg import name` naming a submodule
    counts as importing that submodule)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            # The longest known module the name starts with: `a.b.C` -> `a.b`.
            parts = name.split(".")
            for cut in range(len(parts), 0, -1):
                candidate = ".".join(parts[:cut])
                if candidate in known:
                    found.add(candidate)
                    break
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(path, known) - {name} for name, path in known.items()}


def test_no_import_runs_up_a_layer_or_sideways_between_packages() -> None:
    wrong = []
    for module, imported in graph().items():
        package = module.split(".")[0]
        for target in imported:
            other = target.split(".")[0]
            if other != package and FLOOR[other] >= FLOOR[package]:
                wrong.append(f"{module} (floor {FLOOR[package]}) imports {target} "
                             f"(floor {FLOOR[other]})")
    assert not wrong, "imports that break the layers:\n" + "\n".join(sorted(wrong))


def test_no_import_circle_between_files() -> None:
    edges = graph()
    # Tarjan's strongly connected components: any of more than one module is a circle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    assert not circles, f"import circles: {circles}"


def test_no_sql_outside_storage() -> None:
    found = defaultdict(list)
    for module, path in modules().items():
        if module.split(".")[0] == "storage":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if SQL.search(node.value):
                    found[module].append(node.value[:60])
    assert not found, f"SQL text outside storage/: {dict(found)}"


def test_the_detectors_can_fail(tmp_path: Path) -> None:
    """The detectors themselves, on text they must flag."""
    assert SQL.search("SELECT status FROM bookings WHERE booking_id = $1")
    assert SQL.search("DELETE FROM outbox WHERE id = ANY($1)")
    assert not SQL.search("select a table for the party, then update the plan")
    sample = tmp_path / "sample.py"
    sample.write_text("from storage import outbox\nimport config.topics\n"
                      "def f():\n    from agents.emails import EmailSender\n")
    known = {name: Path() for name in ("storage", "storage.outbox", "config.topics",
                                       "agents.emails", "services.outbox")}
    assert imports_of(sample, known) == {"storage", "storage.outbox", "config.topics",
                                         "agents.emails"}


def test_every_top_level_package_has_a_floor() -> None:
    """A new top-level package must be placed in LAYERS (and the README says why it exists)."""
    ignored = {"tests", "bench", "docs", "build"}
    packages = {p.parent.name for p in REPO.glob("*/__init__.py")} - ignored
    assert packages == set(FLOOR), packages ^ set(FLOOR)
