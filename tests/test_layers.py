"""The layers point one way, and there is no import cycle (docs/architecture.md).

Every module of ``src/authgate`` is placed in one layer below; a module imports only
from its own layer or lower ones, never from a higher one, and the imports within a
layer form no cycle.  Every import counts, the ones inside functions included: a lazy
import is still a dependency, and once hid a cycle (passwords -> scram -> sessions ->
flows -> passwords).  A new module must be given its layer here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

LAYERS: list[tuple[str, set[str]]] = [
    (
        "values: no knowledge of stores, tokens or requests",
        {"types", "errors", "caches", "faces", "documents", "identity", "users"},
    ),
    (
        "core: hashing, configuration, tokens, permissions, stores",
        {
            "passwords",
            "password_formats",
            "config",
            "mail",
            "audit",
            "tokens",
            "permissions",
            "permissions.grants",
            "permissions.roles",
            "permissions.policies",
            "permissions.objects",
            "permissions.sql",
            "permissions.explain",
            "context",
            "registry",
            "decorators",
            "stores",
            "stores.base",
            "stores._codec",
            "stores.cache",
            "stores.memory",
            "stores.threaded",
            "stores.sqlite",
            "stores.jsonfile",
            "stores.redis",
            "stores.urlparams",
            "stores.redis.settings",
            "stores.redis.keys",
            "stores.redis.records",
            "stores.redis.commands",
            "stores.redis.layout",
            "stores.redis.logic",
            "stores.redis.invalidator",
            "stores.redis.faces",
            "stores.sql",
            "stores.sql.schema",
            "stores.sql.logic",
            "stores.sql.feed",
            "stores.sql.migrate",
            "stores.sql.migrations",
            "stores.sql.migrations.env",
            "stores.sql.migrations.versions.0001_initial",
            "stores.sql.migrations.versions.0002_change_log",
            "stores.sql.migrations.versions.0003_user_extras",
            "stores.sql.migrations.versions.0004_email_verified",
            "stores.sql.migrations.versions.0005_factors",
            "stores.sql.usertable",
            "stores.sql.faces",
            "static",
            "browser",
            "factors",
            "passkeys",
            "issuers",
        },
    ),
    (
        "flows: multi-step operations as generators of store calls",
        {
            "flows",
            "flows.ops",
            "flows.drive",
            "flows.users",
            "flows.lockout",
            "flows.throttle",
            "flows.sessions",
            "flows.login",
            "flows.identity",
            "flows.objects",
            "flows.apikeys",
            "flows.scram",
            "flows.browser",
            "flows.accounts",
            "flows.mfa",
            "flows.passkeys",
            "flows.stepup",
            "flows.issuers",
            "flows.oidc",
        },
    ),
    ("gate: the one configured object, two faces", {"gate", "bootstrap"}),
    ("http: credentials, responses, the HTTP API", {"http", "api", "openapi"}),
    (
        "middleware: pure ASGI and WSGI",
        {"middleware", "middleware.handlers", "middleware.asgi", "middleware.wsgi"},
    ),
    (
        "entry points: the CLI, framework adapters, test helpers, the package",
        {
            "cli",
            "__main__",
            "testing",
            "integrations",
            "integrations.flask",
            "integrations.starlette",
            "integrations.fastapi",
            "integrations.django",
            "integrations.django.apps",
            "integrations.django.urls",
            "integrations.django.rest_framework",
            "integrations.django.management",
            "integrations.django.management.commands",
            "integrations.django.management.commands.authgate",
            "",
        },
    ),
]
RANK = {module: rank for rank, (_, modules) in enumerate(LAYERS) for module in modules}


def _name(path: Path) -> str:
    parts = list(path.relative_to(SRC / "authgate").with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_name(p): p for p in (SRC / "authgate").rglob("*.py")}


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The authgate modules `module` imports (relative names, "" for the package)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            elif (node.module or "").split(".")[0] == "authgate":
                target = (node.module or "").removeprefix("authgate").lstrip(".")
            else:
                continue
            for alias in node.names:  # `from . import documents` names a module
                sub = f"{target}.{alias.name}".lstrip(".")
                found.add(sub if sub in known else target)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "authgate":
                    found.add(alias.name.removeprefix("authgate").lstrip("."))
    found.discard(module)
    return found


GRAPH = {m: _imports(m, p, set(_modules())) for m, p in _modules().items()}


def test_every_module_has_a_layer() -> None:
    assert set(GRAPH) - set(RANK) == set(), "place the new module in LAYERS"
    assert set(RANK) - set(GRAPH) == set(), "LAYERS names a module that is gone"


@pytest.mark.parametrize("module", sorted(GRAPH), ids=lambda m: m or "authgate")
def test_a_module_imports_nothing_from_a_higher_layer(module: str) -> None:
    upward = {d for d in GRAPH[module] if RANK.get(d, -1) > RANK[module]}
    assert upward == set(), (
        f"{module or 'authgate'} ({LAYERS[RANK[module]][0]}) imports "
        + ", ".join(f"{d} ({LAYERS[RANK[d]][0]})" for d in sorted(upward))
    )


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state and (found := visit(dep)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_there_is_no_import_cycle() -> None:
    # The package itself ("") re-exports the public API; nothing inside imports it.
    cycle = _cycle({m: deps - {""} for m, deps in GRAPH.items() if m})
    assert cycle is None, " -> ".join(cycle or [])
    assert not [m for m, deps in GRAPH.items() if "" in deps and m != "__main__"]


def test_the_cycle_detector_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_the_architecture_page_draws_every_layer() -> None:
    page = (SRC.parent / "docs" / "architecture.md").read_text()
    for name, _ in LAYERS:
        layer = name.split(":")[0]
        assert f" {layer} " in page, f"docs/architecture.md does not draw the {layer} layer"
