"""The documentation: every code block of docs/ runs, and every test it names exists.

`test_every_code_block_of_the_page_runs` reads each page of docs/ (README.md too) and
tests its fenced code blocks in page order, by these rules:

- A ``python`` block runs, in one namespace per page, in a temporary directory whose
  environment holds ``AUTHGATE_SECRET_KEY``, a SQLite ``AUTHGATE_STORE`` in that
  directory and a cheap argon2 profile.  A page that needs servers or another
  library's tables (PostgreSQL, Redis Sentinel and Cluster) gets them from its entry
  in `SETUPS`: names in its namespace, variables, and text swapped in its blocks (a
  placeholder URL for the real one); none of its blocks is passed over.
- ``text`` blocks that directly follow a ``python`` block show what it prints: its
  standard output must be exactly them.
- A block titled ``Before: ...`` is another library's code (the "Coming from" pages):
  it may not import authgate, it must compile, and it runs, in a namespace of its own,
  when every module it imports is installed.
- A block holding only ``--8<-- "path"`` lines includes files into the page
  (pymdownx.snippets): each must exist and be run by a test (its name in tests/).
- A ``console`` block is a shell session: each ``$`` line that runs ``authgate`` runs
  in the page's directory and environment, must exit 0, and, when lines are shown
  under it, prints exactly those on standard output.  ``sh`` blocks are not run: they install
  things or start servers.
- A ``toml`` block is a file authgate reads: one with a ``roles`` or ``groups`` table
  loads as a role policy (`RolePolicy.from_file`), one with an ``authgate`` table as
  settings (`Settings.from_toml`); any other must parse.
- Every ``app`` a page's blocks bind (ASGI or WSGI) then answers ``GET /auth/me``
  without a 500.
- A page whose blocks use a framework that is not installed (the core's tox env has
  none) is skipped; in the full environment every framework is installed.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import importlib.util
import inspect
import io
import os
import re
import secrets
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from authgate.testing import ClusterSet, SentinelSet

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(p.relative_to(ROOT).as_posix() for p in DOCS.rglob("*.md"))
TESTS_TEXT = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("*.py"))

#: Frameworks a page may use; without one installed, the page is skipped.
FRAMEWORKS = (
    "flask",
    "starlette",
    "fastapi",
    "django",
    "rest_framework",
    "litestar",
    "quart",
    "falcon",
)

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>```+|~~~+)[ \t]*(?P<info>[^\n]*)$")
_TITLE = re.compile(r'title="(?P<title>[^"]*)"')
_SNIPPET = re.compile(r'^--8<--\s+"(?P<path>[^"]+)"\s*$')
_RUNS_AUTHGATE = re.compile(r"(?:^|\|)\s*(?:\w+=\S*\s+)*authgate\s")


@dataclass
class Block:
    """A fenced code block of a page: its language, title, text and where it stands."""

    lang: str
    title: str
    code: str
    line: int  # the line of the block's first line of code, counted from 1
    follows_block: bool  # only blank lines between this block and the one before


def code_blocks(text: str) -> list[Block]:
    """The fenced code blocks of a Markdown text, dedented, in order (fences nested in
    tabs, admonitions and grids included)."""
    lines = text.splitlines()
    blocks: list[Block] = []
    i, last_end = 0, -10
    while i < len(lines):
        opened = _FENCE.match(lines[i])
        if opened is None:
            i += 1
            continue
        indent, fence, info = opened["indent"], opened["fence"], opened["info"].strip()
        end = i + 1
        while end < len(lines) and lines[end].strip() != fence:
            end += 1
        body = [
            line[len(indent) :] if line.startswith(indent) else line.lstrip()
            for line in lines[i + 1 : end]
        ]
        lang = info.split()[0] if info else ""
        title = _TITLE.search(info)
        between = lines[last_end + 1 : i]
        blocks.append(
            Block(
                lang=lang.lstrip("{.").rstrip("}"),
                title=title["title"] if title else "",
                code="\n".join(body) + "\n",
                line=i + 2,
                follows_block=last_end >= 0 and all(not line.strip() for line in between),
            )
        )
        last_end = i = end
        i += 1
    return blocks


def imported_modules(code: str) -> set[str]:
    """The top-level names of the modules a block imports."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _frameworks_used(modules: set[str]) -> set[str]:
    used = set()
    for module in modules:
        parts = module.split(".")
        if parts[0] in FRAMEWORKS:
            used.add(parts[0])
        elif parts[:2] == ["authgate", "integrations"] and len(parts) > 2:
            used.add(parts[2])
    return used


# -- what a page needs besides a directory and a SQLite store --------------------------------


@dataclass
class PageEnv:
    """Names for a page's namespace, environment variables, text swapped in its blocks."""

    namespace: dict[str, object] = field(default_factory=dict)
    environ: dict[str, str] = field(default_factory=dict)
    replace: dict[str, str] = field(default_factory=dict)


@contextlib.contextmanager
def _sql_store_page(request: pytest.FixtureRequest) -> Iterator[PageEnv]:
    """docs/sql-store.md: a real PostgreSQL database, made for the page, dropped after."""
    from authgate.testing import scratch_database

    with scratch_database(request.getfixturevalue("postgres_base_url")) as url:
        yield PageEnv(namespace={"DATABASE_URL": url})


@contextlib.contextmanager
def _redis_page(request: pytest.FixtureRequest) -> Iterator[PageEnv]:
    """docs/redis.md: a real Sentinel set and a real 3-primary cluster, a key prefix of
    the page's own."""
    sentinels: SentinelSet = request.getfixturevalue("redis_sentinel_set")
    cluster: ClusterSet = request.getfixturevalue("redis_cluster_set")
    yield PageEnv(
        namespace={"SENTINEL_URL": sentinels.url(), "CLUSTER_URL": cluster.url()},
        replace={"prefix=docs": f"prefix=docs{uuid.uuid4().hex[:8]}"},
    )


def _library_tables_page(library: str) -> Callable[[pytest.FixtureRequest], Any]:
    """A page whose app runs on another library's tables: a PostgreSQL database holding
    them (as the library made them), for the URL the page writes as postgresql://app@db/app."""

    @contextlib.contextmanager
    def setup(request: pytest.FixtureRequest) -> Iterator[PageEnv]:
        import sqlalchemy as sa
        from examples.from_fastapi_users import fastapi_users_table
        from examples.from_flask_security import flask_security_tables

        from authgate.stores.sql import parse_sql_url
        from authgate.testing import scratch_database

        make_tables = {
            "fastapi-users": lambda engine: fastapi_users_table(engine, "user"),
            "flask-security": flask_security_tables,
        }[library]
        with scratch_database(request.getfixturevalue("postgres_base_url")) as url:
            engine = sa.create_engine(parse_sql_url(url).sync_url)
            make_tables(engine)
            engine.dispose()
            yield PageEnv(
                environ={
                    "AUTHGATE_STORE": f"{url}?users={library}&prefix=authgate_",
                    "FLASK_SECURITY_PASSWORD_SALT": "salt",
                },
                replace={"postgresql://app@db/app": url},
            )

    return setup


SETUPS: dict[str, Callable[[pytest.FixtureRequest], Any]] = {
    "docs/sql-store.md": _sql_store_page,
    "docs/redis.md": _redis_page,
    "docs/coming-from-fastapi-users.md": _library_tables_page("fastapi-users"),
    "docs/coming-from-flask-security.md": _library_tables_page("flask-security"),
}


@contextlib.contextmanager
def _no_setup(request: pytest.FixtureRequest) -> Iterator[PageEnv]:
    yield PageEnv()


# -- running a page ---------------------------------------------------------------------------


def _run_python(block: Block, page: str, namespace: dict[str, Any], env: PageEnv) -> str:
    code = block.code
    for placeholder, real in env.replace.items():
        code = code.replace(placeholder, real)
    compiled = compile("\n" * (block.line - 1) + code, str(ROOT / page), "exec")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compiled, namespace)  # noqa: S102 - our own docs
    return out.getvalue()


def _run_console(block: Block, page: str, workdir: Path) -> None:
    commands: list[tuple[str, list[str]]] = []
    for line in block.code.splitlines():
        if line.startswith("$ "):
            commands.append((line[2:], []))
        elif commands and line.strip():
            commands[-1][1].append(line)
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    for command, shown in commands:
        if not _RUNS_AUTHGATE.search(command):
            continue
        done = subprocess.run(  # noqa: S602 - our own docs' commands
            command,
            shell=True,
            cwd=workdir,
            env={**os.environ, "PATH": path},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        where = f"{page}:{block.line}: $ {command}"
        assert done.returncode == 0, f"{where}\n{done.stdout}{done.stderr}"
        printed = [" ".join(line.split()) for line in done.stdout.splitlines() if line.strip()]
        assert not shown or printed == [" ".join(line.split()) for line in shown], (
            f"{where} printed:\n{done.stdout}"
        )


def _load_toml(block: Block, page: str, workdir: Path) -> None:
    from authgate import RolePolicy, Settings

    path = workdir / "block.toml"
    path.write_text(block.code)
    with path.open("rb") as file:
        data = tomllib.load(file)
    if "roles" in data or "groups" in data:
        RolePolicy.from_file(path)
    elif "authgate" in data:
        Settings.from_toml(path)


def _is_asgi(app: Any) -> bool:
    """An ASGI app is called with ``await``: its ``__call__`` (or itself) is async."""
    if inspect.isfunction(app):
        return inspect.iscoroutinefunction(app)
    return inspect.iscoroutinefunction(type(app).__call__)


def _status_of_a_request(app: Any) -> int:
    """What `app` answers to ``GET /auth/me`` with no credentials."""
    if _is_asgi(app):
        from starlette.testclient import TestClient

        status: int = TestClient(app, raise_server_exceptions=False).get("/auth/me").status_code
        return status
    import httpx

    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://docs") as web:
        return web.get("/auth/me").status_code


def _close(namespace: dict[str, Any]) -> None:
    """Close what a page opened: gates (a Flask extension's too) and SQL engines."""
    from authgate import AsyncGate, Gate

    for value in list(namespace.values()):
        gate = getattr(value, "_gate", None) if type(value).__name__ == "AuthGate" else value
        if isinstance(gate, Gate):
            gate.close()
        elif isinstance(gate, AsyncGate):
            asyncio.run(gate.close())
        elif type(value).__name__ == "Engine" and hasattr(value, "dispose"):
            value.dispose()


#: What the page's directory holds for the page's code: every run starts with these.
def _environment(workdir: Path) -> dict[str, str]:
    return {
        "AUTHGATE_SECRET_KEY": secrets.token_urlsafe(48),
        "AUTHGATE_STORE": f"sqlite:///{workdir / 'authgate.db'}",
        "AUTHGATE_ARGON2_TIME_COST": "1",
        "AUTHGATE_ARGON2_MEMORY_COST": "8",
        "AUTHGATE_ARGON2_PARALLELISM": "1",
    }


@pytest.mark.parametrize("page", [*PAGES, "README.md"])
def test_every_code_block_of_the_page_runs(
    page: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    needs = frameworks_of(page)
    for framework in sorted(needs):
        pytest.importorskip(framework, reason=f"{page} uses {framework}")
    if "django" in needs:  # Django's settings are one per process: a process of its own
        assert page not in SETUPS, f"{page}: a page run apart takes no setup"
        environ = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        done = subprocess.run(
            [sys.executable, "-c", f"import test_docs; test_docs.run_page({page!r})"],
            cwd=tmp_path,
            env={**environ, **_environment(tmp_path), "PYTHONPATH": _python_path()},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, f"{page}:\n{done.stdout}\n{done.stderr}"
        return
    monkeypatch.chdir(tmp_path)
    saved_environ = dict(os.environ)
    os.environ.update(_environment(tmp_path))
    try:
        with SETUPS.get(page, _no_setup)(request) as env:
            os.environ.update(env.environ)
            run_page(page, env)
    finally:
        os.environ.clear()
        os.environ.update(saved_environ)


def _python_path() -> str:
    parts = [str(ROOT / "tests"), str(ROOT), os.environ.get("PYTHONPATH", "")]
    return os.pathsep.join(part for part in parts if part)


def frameworks_of(page: str) -> set[str]:
    """The frameworks a page's own code imports."""
    needs: set[str] = set()
    for block in code_blocks((ROOT / page).read_text()):
        ours = block.lang == "python" and not block.title.startswith("Before")
        if ours and not _SNIPPET.match(block.code.strip()):
            needs |= _frameworks_used(imported_modules(block.code))
    return needs


def run_page(page: str, env: PageEnv | None = None) -> None:
    """Test the code blocks of `page` by the rules above, in the current directory (the
    page's own) and environment."""
    env = env or PageEnv()
    workdir = Path.cwd()
    sys.path.insert(0, str(workdir))  # the project files a page writes are importable
    namespace: dict[str, Any] = {"__name__": "__main__", **env.namespace}
    opened: list[dict[str, Any]] = [namespace]
    apps: list[object] = []
    foreign: list[Block] = []
    try:
        printed: str | None = None
        shown: list[str] = []
        for block in code_blocks((ROOT / page).read_text()):
            if block.lang == "text" and block.follows_block and printed is not None:
                shown.append(block.code)
                continue
            _check_printed(page, printed, shown)
            printed, shown = None, []
            if block.lang == "console":
                _run_console(block, page, workdir)
            elif block.lang == "toml":
                _load_toml(block, page, workdir)
            if block.lang != "python":
                continue
            included = [_SNIPPET.match(line) for line in block.code.strip().splitlines()]
            if all(included):
                for match in included:
                    assert match is not None
                    _check_included(page, match["path"])
            elif block.title.startswith("Before"):
                foreign.append(block)
            elif _project_file(block.title):
                _write_project_file(workdir, _project_file(block.title), block.code)
            else:
                printed = _run_python(block, page, namespace, env)
                app = namespace.get("app")
                if app is not None and all(app is not seen for seen in apps):
                    apps.append(app)
        _check_printed(page, printed, shown)
        for block in foreign:  # each in a namespace of its own: their place does not matter
            apps += _run_foreign(block, page, env, opened)
        for app in apps:
            assert _status_of_a_request(app) < 500, f"{page}: {app!r} answered a 500"
        for space in opened:
            _close(space)
    finally:
        sys.path.remove(str(workdir))
        for name, module in list(sys.modules.items()):
            if str(getattr(module, "__file__", None) or "").startswith(str(workdir)):
                del sys.modules[name]


def _project_file(title: str) -> str:
    """The path a block titled ``myproject/settings.py`` (or ``After: ...``) stands for."""
    path = title.removeprefix("After:").strip()
    return path if re.fullmatch(r"[\w./-]+\.py", path) else ""


def _write_project_file(workdir: Path, path: str, code: str) -> None:
    target = workdir / path
    target.parent.mkdir(parents=True, exist_ok=True)
    for package in list(target.relative_to(workdir).parents)[:-1]:
        (workdir / package / "__init__.py").touch()
    target.write_text(code)


def _check_printed(page: str, printed: str | None, shown: list[str]) -> None:
    if shown:
        assert printed == "".join(shown), f"{page}: the block printed\n{printed}"


def _check_included(page: str, path: str) -> None:
    included = ROOT / path
    assert included.is_file(), f"{page} includes {path}, which does not exist"
    assert included.stem in TESTS_TEXT, f"{page} includes {path}, which no test runs"


def _run_foreign(
    block: Block, page: str, env: PageEnv, opened: list[dict[str, Any]]
) -> list[object]:
    """Another library's code: compiled; run when its modules are installed."""
    modules = imported_modules(block.code)
    where = f"{page}:{block.line}"
    assert not any(m.split(".")[0] == "authgate" for m in modules), f"{where} imports authgate"
    compile(block.code, where, "exec")
    if not all(_installed(m.split(".")[0]) for m in modules):
        return []
    namespace: dict[str, Any] = {"__name__": "__main__"}
    opened.append(namespace)
    _run_python(block, page, namespace, env)
    return [namespace["app"]] if "app" in namespace else []


# -- what the pages say of the tests ------------------------------------------------------------

_CITED = re.compile(r"`(tests/[\w/]+\.py)(?:::(\w+))?(?:\[[^\]]*\])?`")
_CITED_OR_BARE = re.compile(r"`(?:(tests/[\w/]+\.py)(?:::(\w+))?(?:\[[^\]]*\])?|(test_\w+))`")


def test_every_test_the_docs_name_exists() -> None:
    """Each ``tests/file.py::test_name`` a page cites is a test of that file, and so is
    each bare ``test_name`` after it (until a page cites another file)."""
    cited = 0
    for page in [*PAGES, "README.md"]:
        current = ""
        for path, test, bare in _CITED_OR_BARE.findall((ROOT / page).read_text()):
            if path:
                assert (ROOT / path).is_file(), f"{page} cites {path}, which does not exist"
                current = path
            name = test or bare
            if not name:
                continue
            assert current, f"{page} names {name} before citing any test file"
            cited += 1
            source = (ROOT / current).read_text()
            assert re.search(rf"def {name}\(", source), f"{page}: {current}::{name} is not a test"
    assert cited > 100


def test_the_feature_table_names_real_tests() -> None:
    table = (DOCS / "features.md").read_text()
    assert len(_CITED.findall(table)) > 30


def test_every_seed_has_a_coming_from_page_with_a_tested_example() -> None:
    examples = (ROOT / "tests" / "test_examples.py").read_text()
    seeds = ("haystack", "bluesky", "amsdal", "plantdb", "iggy")
    for seed in (*seeds, "fastapi_users", "flask_security"):
        page = (DOCS / f"coming-from-{seed.replace('_', '-')}.md").read_text()
        assert f"examples/from_{seed}.py" in page
        assert f"from_{seed}.py" in examples


def test_the_reference_lists_every_public_name() -> None:
    import authgate

    index = (DOCS / "reference" / "index.md").read_text()
    missing = [name for name in authgate.__all__ if f"`{name}`" not in index]
    assert not missing, f"docs/reference/index.md does not list {missing}"


def test_every_page_is_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in PAGES:
        assert page.removeprefix("docs/") in nav, f"{page} is not in mkdocs.yml's nav"


def test_the_configuration_page_names_every_setting() -> None:
    from dataclasses import fields

    from authgate import Settings

    page = (DOCS / "configuration.md").read_text()
    # a row may name the variables after its first by their tail: `_MEMORY_COST`
    missing = [
        f.name
        for f in fields(Settings)
        if f"AUTHGATE_{f.name.upper()}" not in page
        and f"`_{f.name.upper().split('_', 1)[-1]}`" not in page
    ]
    assert not missing, f"docs/configuration.md does not name {missing}"
