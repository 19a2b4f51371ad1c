"""The tree's structural rules (issue 10), checked on the source text.

Every check reads the files with ``ast`` and imports none of them: importing would run the
very import-time code these rules forbid, and a cycle can hide behind import order. Each
checker takes the root of a tree so that the tests at the end can run it on small trees
built for the purpose; each returns its offenders as ``path:line: what`` strings, and a
failing test lists them all.
"""
from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Every rule covers these folders (tests are outside them): no import cycles among their
# modules, sizes, environment reads (with the exemptions below).
PACKAGES = ("ledger", "api", "workers", "ledger_sdk", "bench", "migrations")
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80

SERVER_ONLY = ("fastapi", "starlette", "strawberry", "celery", "typer", "kombu")
SERVER_PACKAGES = ("ledger", "api", "workers")
SETTINGS_MODULE = "ledger/settings.py"
# The edges reach the domain only through these modules.
EDGES = ("api", "workers")
LEDGER_DOORS = ("ledger.service", "ledger.settings", "ledger.db", "ledger.errors",
                "ledger.fastjson", "ledger.embedded", "ledger.migrate")
# bench/ is a developer's tool run by hand against a server it is told about, not part of
# the service: it may read its own environment variables.
ENVIRON_EXEMPT = ("bench",)
# Migrations are written once and never change; a long upgrade() is the migration itself.
FUNCTION_SIZE_EXEMPT = ("migrations",)


@dataclass(frozen=True)
class Module:
    name: str  # dotted: ledger.schema.parse; a package is its __init__: ledger.schema
    path: Path
    rel: str  # path relative to the root, for messages
    is_package: bool
    tree: ast.Module
    lines: int


@functools.lru_cache(maxsize=None)
def modules(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, Module]:
    found: dict[str, Module] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root)
            if "__pycache__" in rel.parts:
                continue
            parts = list(rel.with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            source = path.read_text(encoding="utf-8")
            found[".".join(parts)] = Module(".".join(parts), path, rel.as_posix(), is_package,
                                            ast.parse(source, filename=str(rel)),
                                            len(source.splitlines()))
    return found


# ------------------------------------------------------------------------------ imports

def imported_names(module: Module) -> list[tuple[str, int]]:
    """(absolute dotted name, line) of every import in the module, at any depth (function
    bodies and ``if TYPE_CHECKING`` blocks included). ``from pkg import name`` yields
    ``pkg.name``; the caller decides whether that is a module or a name in ``pkg``."""
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    out: list[tuple[str, int]] = []
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            out.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".") if package else []
                base_parts = base_parts[:len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base == "__future__":
                continue
            out.extend((f"{base}.{alias.name}" if base else alias.name, node.lineno)
                       for alias in node.names)
    return out


def _resolve(name: str, known: dict[str, Module]) -> str | None:
    """The project module an imported name lands on: itself when it is a module, else the
    closest enclosing module (``pkg.name`` -> ``pkg``), else None (a library)."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph(root: Path) -> dict[str, dict[str, int]]:
    """module -> {imported project module: line of its first import}.

    ``from pkg import sub`` is an edge to ``pkg.sub`` alone, not also to ``pkg``: the package
    runs first, but counting that would make every package whose ``__init__`` re-exports
    its submodules circular with them. A submodule that imports the package back
    (``from pkg import name`` where ``name`` is no module) has an edge to ``pkg``."""
    known = modules(root)
    graph: dict[str, dict[str, int]] = {}
    for name, module in known.items():
        edges: dict[str, int] = {}
        for imported, line in imported_names(module):
            target = _resolve(imported, known)
            if target is not None and target != name:
                edges[target] = min(line, edges.get(target, line))
        graph[name] = edges
    return graph


def _strongly_connected(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [c for c in components if len(c) > 1]


def _shortest_path(graph, start: str, goal: str, within: set[str]) -> list[str]:
    paths = {start: [start]}
    queue = [start]
    for node in queue:
        for target in sorted(graph[node]):
            if target in within and target not in paths:
                paths[target] = paths[node] + [target]
                if target == goal:
                    return paths[target]
                queue.append(target)
    raise AssertionError(f"{goal} unreachable from {start} inside its component")


def import_cycles(root: Path) -> list[str]:
    """One cycle per import edge that lies on a cycle (the edge, then the shortest way
    back), without repeats: breaking every edge listed breaks every cycle."""
    graph = import_graph(root)
    known = modules(root)
    cycles: dict[tuple[str, ...], str] = {}
    for component in _strongly_connected(graph):
        members = set(component)
        for source in component:
            for target in sorted(graph[source]):
                if target not in members:
                    continue
                path = [source] + _shortest_path(graph, target, source, members)
                ring = path[:-1]
                first = ring.index(min(ring))
                key = tuple(ring[first:] + ring[:first])
                if key in cycles:
                    continue
                path = list(key) + [key[0]]
                hops = ", ".join(f"{known[a].rel}:{graph[a][b]} imports {b}"
                                 for a, b in zip(path, path[1:]))
                cycles[key] = f"{' -> '.join(path)}  ({hops})"
    return sorted(cycles.values())


def forbidden_imports(root: Path, package: str, forbidden: tuple[str, ...]) -> list[str]:
    """Imports, anywhere in ``package``'s files, of a top-level module in ``forbidden``."""
    offenders = []
    for module in modules(root).values():
        if module.name.split(".")[0] != package:
            continue
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                if name.split(".")[0] in forbidden:
                    offenders.append(f"{module.rel}:{node.lineno}: imports {name}")
    return sorted(offenders, key=_by_place)


def ledger_doors(root: Path) -> list[str]:
    """Imports from ``api/`` and ``workers/`` into ``ledger`` past its doors: the façade
    ``ledger.service`` and the shared base (``LEDGER_DOORS``)."""
    known = modules(root)
    offenders = []
    for module in known.values():
        if module.name.split(".")[0] not in EDGES:
            continue
        for imported, line in imported_names(module):
            target = _resolve(imported, known)
            if target is None or target.split(".")[0] != "ledger":
                continue
            if target not in LEDGER_DOORS:
                offenders.append(f"{module.rel}:{line}: imports {target}")
    return sorted(set(offenders), key=_by_place)


def private_imports(root: Path) -> list[str]:
    """``from m import _name`` where ``m`` is a project module outside the importer's own
    package: a private name is its package's business."""
    known = modules(root)
    offenders = []
    for module in known.values():
        own = module.name if module.is_package else module.name.rpartition(".")[0]
        for node in ast.walk(module.tree):
            if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
                continue
            source = _resolve(node.module, known)
            if source is None:
                continue
            source_package = source if known[source].is_package else source.rpartition(".")[0]
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                if private and source_package != own:
                    offenders.append(f"{module.rel}:{node.lineno}: {alias.name} from {source}")
    return sorted(set(offenders), key=_by_place)


# ------------------------------------------------------------------------------ sizes

def long_modules(root: Path, limit: int = MAX_MODULE_LINES) -> list[str]:
    return sorted((f"{m.rel}:1: {m.lines} lines" for m in modules(root).values()
                   if m.lines > limit), key=_by_place)


def long_functions(root: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """Functions and methods (nested ones too) longer than ``limit`` lines, counted from
    the ``def`` line to the last line of the body; decorators do not count."""
    offenders = []
    for module in modules(root).values():
        if module.name.split(".")[0] in FUNCTION_SIZE_EXEMPT:
            continue
        for node in ast.walk(module.tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    offenders.append(f"{module.rel}:{node.lineno}: {node.name}() is "
                                     f"{length} lines")
    return sorted(offenders, key=_by_place)


# ------------------------------------------------------------------------------ environ

def environ_reads(root: Path) -> list[str]:
    """Uses of the process environment outside the settings module: ``os.environ``,
    ``os.getenv`` / ``os.putenv`` (through any alias of ``os``), and ``environ`` /
    ``getenv`` imported from ``os``. A mapping that merely has an ``environ`` attribute
    (``settings.environ``) is the settings' own copy, not a read."""
    offenders = []
    for module in modules(root).values():
        if module.rel == SETTINGS_MODULE or module.name.split(".")[0] in ENVIRON_EXEMPT:
            continue
        os_aliases, direct = set(), set()
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Import):
                os_aliases |= {a.asname or a.name for a in node.names if a.name == "os"}
            elif isinstance(node, ast.ImportFrom) and node.module == "os" and not node.level:
                for alias in node.names:
                    if alias.name in ("environ", "environb", "getenv", "putenv"):
                        direct.add(alias.asname or alias.name)
                        offenders.append(f"{module.rel}:{node.lineno}: from os import "
                                         f"{alias.name}")
        for node in ast.walk(module.tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in os_aliases
                    and node.attr in ("environ", "environb", "getenv", "putenv")):
                offenders.append(f"{module.rel}:{node.lineno}: {node.value.id}.{node.attr}")
            elif (isinstance(node, ast.Name) and node.id in direct
                  and isinstance(node.ctx, ast.Load)):
                offenders.append(f"{module.rel}:{node.lineno}: {node.id}")
    return sorted(set(offenders), key=_by_place)


def _by_place(offender: str) -> tuple[str, int, str]:
    path, line, rest = offender.split(":", 2)
    return path, int(line), rest


def _fail_listing(title: str, offenders: list[str]) -> None:
    if offenders:
        pytest.fail(f"{title} ({len(offenders)}):\n  " + "\n  ".join(offenders), pytrace=False)


# ------------------------------------------------------------------------------ the rules

def test_no_import_cycles():
    _fail_listing("import cycles (break one import of each)", import_cycles(ROOT))


def test_ledger_imports_no_web_or_queue_framework():
    _fail_listing("ledger/ imports a framework of the edges",
                  forbidden_imports(ROOT, "ledger", SERVER_ONLY))


def test_sdk_imports_no_server_code():
    _fail_listing("ledger_sdk/ imports server code",
                  forbidden_imports(ROOT, "ledger_sdk", SERVER_PACKAGES))


def test_ledger_imports_neither_edge():
    _fail_listing("ledger/ imports api/ or workers/", forbidden_imports(ROOT, "ledger", EDGES))


def test_edges_stay_apart():
    _fail_listing("api/ imports workers/", forbidden_imports(ROOT, "api", ("workers",)))
    _fail_listing("workers/ imports api/", forbidden_imports(ROOT, "workers", ("api",)))


def test_edges_enter_ledger_through_its_doors():
    _fail_listing("api/ or workers/ import ledger past ledger.service and the shared base",
                  ledger_doors(ROOT))


def test_no_private_name_crosses_packages():
    _fail_listing("private names imported from another package", private_imports(ROOT))


def test_no_module_over_600_lines():
    _fail_listing(f"modules over {MAX_MODULE_LINES} lines", long_modules(ROOT))


def test_no_function_over_80_lines():
    _fail_listing(f"functions over {MAX_FUNCTION_LINES} lines (def to last line)",
                  long_functions(ROOT))


def test_environment_read_only_by_settings():
    _fail_listing(f"environment read outside {SETTINGS_MODULE} (take a Settings instead)",
                  environ_reads(ROOT))


# ------------------------------------------------------------------------------ the checkers

def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_checker_finds_a_cycle_and_names_its_lines(tmp_path):
    root = _tree(tmp_path, {"api/__init__.py": "",
                            "api/a.py": "import os\nfrom api.b import thing\n",
                            "api/b.py": "from api import a\nthing = 1\n"})
    assert import_cycles(root) == [
        "api.a -> api.b -> api.a  (api/a.py:2 imports api.b, api/b.py:1 imports api.a)"]


def test_checker_passes_a_tree_without_cycles(tmp_path):
    # The package re-exports its submodules; they import each other one way and never the
    # package back: no cycle.
    root = _tree(tmp_path, {"ledger/__init__.py": "from ledger.a import x\nfrom . import b\n",
                            "ledger/a.py": "from ledger import b\nx = b.y\n",
                            "ledger/b.py": "import json\ny = 1\n",
                            "workers/__init__.py": "",
                            "workers/t.py": "from ledger import x\nimport ledger.a\n"})
    assert import_cycles(root) == []


def test_checker_finds_a_lazy_import_cycle(tmp_path):
    root = _tree(tmp_path, {"ledger_sdk/__init__.py": "",
                            "ledger_sdk/client.py": "from .mixin import Mixin\n",
                            "ledger_sdk/mixin.py": ("class Mixin:\n    def run(self):\n"
                                                    "        from ledger_sdk.client import Op\n"
                                                    "        return Op\n")})
    assert import_cycles(root) == [
        "ledger_sdk.client -> ledger_sdk.mixin -> ledger_sdk.client  "
        "(ledger_sdk/client.py:1 imports ledger_sdk.mixin, "
        "ledger_sdk/mixin.py:3 imports ledger_sdk.client)"]


def test_checker_counts_a_submodule_importing_its_package_back(tmp_path):
    root = _tree(tmp_path, {"ledger/__init__.py": "",
                            "ledger/jobs/__init__.py": "from .outbox import submit\n",
                            "ledger/jobs/outbox.py": "from ..jobs import claim\nsubmit = 1\n",
                            "ledger/jobs/claims.py": "from .. import jobs\n"})
    assert [c.split("  ")[0] for c in import_cycles(root)] == [
        "ledger.jobs -> ledger.jobs.outbox -> ledger.jobs"]


def test_checker_lists_every_edge_of_a_tangle(tmp_path):
    root = _tree(tmp_path, {"api/__init__.py": "",
                            "api/types.py": "from api.reconcile import r\n",
                            "api/reconcile.py": ("from api.resolvers import s\n"
                                                 "from api.types import t\n"),
                            "api/resolvers.py": "from api.types import t\n"})
    assert [c.split("  ")[0] for c in import_cycles(root)] == [
        "api.reconcile -> api.resolvers -> api.types -> api.reconcile",
        "api.reconcile -> api.types -> api.reconcile"]


def test_checker_finds_forbidden_imports_anywhere_in_the_file(tmp_path):
    root = _tree(tmp_path, {"ledger/__init__.py": "",
                            "ledger/x.py": ("import json\ndef f():\n    import celery.app\n"
                                            "    from fastapi import FastAPI\n"),
                            "ledger_sdk/__init__.py": "from ledger_sdk.c import C\n",
                            "ledger_sdk/c.py": ("import ledger.errors\nfrom workers import app\n"
                                                "C = 1\n")})
    assert forbidden_imports(root, "ledger", SERVER_ONLY) == [
        "ledger/x.py:3: imports celery.app", "ledger/x.py:4: imports fastapi"]
    assert forbidden_imports(root, "ledger_sdk", SERVER_PACKAGES) == [
        "ledger_sdk/c.py:1: imports ledger.errors", "ledger_sdk/c.py:2: imports workers"]


def test_checker_measures_modules_and_functions(tmp_path):
    body = "".join(f"    x{i} = {i}\n" for i in range(79))
    method_body = body.replace("    ", "        ")
    root = _tree(tmp_path, {
        "api/__init__.py": "",
        "api/ok.py": "x = 1\n" * 600,
        "api/big.py": "x = 1\n" * 601,
        "api/f.py": (f"@decorator\n@another\ndef fits():\n{body}\n"
                     f"class C:\n    async def too_long(self):\n{method_body}        pass\n"),
        "migrations/versions/0001.py": f"def upgrade():\n{body}{body}",
        "tests/test_big.py": "x = 1\n" * 700})
    assert long_modules(root) == ["api/big.py:1: 601 lines"]
    assert long_functions(root) == ["api/f.py:85: too_long() is 81 lines"]


def test_checker_finds_environment_reads(tmp_path):
    root = _tree(tmp_path, {
        "ledger/__init__.py": "",
        "ledger/settings.py": "import os\nENV = os.environ\n",
        "ledger/a.py": ("import os\nimport os as system\nfrom os import environ, getenv as ge\n"
                        "A = os.environ.get('A')\nB = system.getenv('B')\nC = environ.get('C')\n"
                        "D = ge('D')\nos.environ['E'] = '1'\n"),
        "ledger/b.py": ("def f(settings, environ):\n"
                        "    return settings.environ.get('X'), environ['Y']\n"),
        "bench/run.py": "import os\nURL = os.environ['URL']\n"})
    assert environ_reads(root) == [
        "ledger/a.py:3: from os import environ", "ledger/a.py:3: from os import getenv",
        "ledger/a.py:4: os.environ", "ledger/a.py:5: system.getenv", "ledger/a.py:6: environ",
        "ledger/a.py:7: ge", "ledger/a.py:8: os.environ"]


def test_checker_finds_doors_and_private_names(tmp_path):
    root = _tree(tmp_path, {"ledger/__init__.py": "", "ledger/service.py": "x = 1\n",
                            "ledger/jobs/__init__.py": "", "ledger/jobs/outbox.py": "_y = 1\n",
                            "ledger/jobs/claims.py": "from ledger.jobs.outbox import _y\n",
                            "ledger/posting.py": "from ledger.jobs.outbox import _y\n",
                            "api/__init__.py": "",
                            "api/v1.py": "from ledger import service\nfrom ledger.jobs import outbox\n"})
    assert ledger_doors(root) == ["api/v1.py:2: imports ledger.jobs.outbox"]
    assert private_imports(root) == ["ledger/posting.py:1: _y from ledger.jobs.outbox"]
