"""Every test the feature table names exists (so a green run backs every row)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from authgate.testing import ClusterSet, SentinelSet

ROOT = Path(__file__).resolve().parent.parent


def test_feature_table_names_real_tests() -> None:
    table = (ROOT / "docs" / "features.md").read_text()
    named = re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`", table)
    assert len(named) > 30
    for path, test in named:
        source = (ROOT / path).read_text()
        if test:
            assert f"def {test}(" in source, f"{path}::{test} is not a test"
    # bare names listed after a full reference live in the same file
    for path, rest in re.findall(r"`(tests/[\w/]+\.py)::\w+`, `(\w+)`", table):
        assert f"def {rest}(" in (ROOT / path).read_text(), f"{path}::{rest} is not a test"


def test_every_seed_has_a_coming_from_page_with_a_tested_example() -> None:
    examples = (ROOT / "tests" / "test_examples.py").read_text()
    for seed in ("haystack", "bluesky", "amsdal", "plantdb", "iggy"):
        page = (ROOT / "docs" / f"coming-from-{seed}.md").read_text()
        assert f"examples/from_{seed}.py" in page
        assert f"from_{seed}.py" in examples


def test_the_architecture_pages_example_runs() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "docs/architecture.md", "exec"), {})  # noqa: S102 - our own docs


def _python_blocks(page: str) -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / page).read_text(), re.S)
    assert blocks, f"docs/{page} has no Python block"
    return blocks


def test_the_authorization_pages_examples_run() -> None:
    """docs/authorization.md: filtered lists, the query-side filter, hiding, throttling."""
    namespace: dict[str, object] = {}
    for block in _python_blocks("authorization.md"):
        exec(compile(block, "docs/authorization.md", "exec"), namespace)  # noqa: S102


def test_the_sql_store_pages_examples_run(postgres_base_url: str) -> None:
    """Every block of docs/sql-store.md, in order, in one namespace, on a real
    PostgreSQL (a database made for the page and dropped after)."""
    from authgate.testing import scratch_database

    with scratch_database(postgres_base_url) as url:
        namespace: dict[str, object] = {"DATABASE_URL": url}
        try:
            for block in _python_blocks("sql-store.md"):
                exec(compile(block, "docs/sql-store.md", "exec"), namespace)  # noqa: S102
        finally:
            for name in ("gate", "engine"):
                close = getattr(namespace.get(name), "close", None) or getattr(
                    namespace.get(name), "dispose", None
                )
                if close is not None:
                    close()


def test_the_redis_pages_examples_run(
    redis_sentinel_set: SentinelSet, redis_cluster_set: ClusterSet
) -> None:
    """Every block of docs/redis.md, in order, in one namespace, behind a real Sentinel
    and on a real 3-primary cluster (a key prefix of the page's own)."""
    prefix = f"docs{uuid.uuid4().hex[:8]}"
    namespace: dict[str, object] = {
        "SENTINEL_URL": redis_sentinel_set.url(),
        "CLUSTER_URL": redis_cluster_set.url(),
    }
    for block in _python_blocks("redis.md"):
        block = block.replace("prefix=docs", f"prefix={prefix}")
        exec(compile(block, "docs/redis.md", "exec"), namespace)  # noqa: S102 - our own docs


def test_the_moving_pages_code_runs(postgres_base_url: str, monkeypatch: Any) -> None:
    """The moving-from pages' apps build on their library's tables, configured as shown."""
    pytest.importorskip("fastapi", reason="the core's own env has no framework")
    pytest.importorskip("flask", reason="the core's own env has no framework")
    import sqlalchemy as sa
    from examples.from_fastapi_users import fastapi_users_table
    from examples.from_flask_security import flask_security_tables

    from authgate.stores.sql import parse_sql_url
    from authgate.testing import scratch_database

    monkeypatch.setenv("AUTHGATE_SECRET_KEY", "a-secret-of-at-least-32-bytes-0123456789abcdef")
    for page, make_tables in (
        ("moving-from-fastapi-users.md", lambda e: fastapi_users_table(e, "user")),
        ("moving-from-flask-security.md", flask_security_tables),
    ):
        with scratch_database(postgres_base_url) as url:
            engine = sa.create_engine(parse_sql_url(url).sync_url)
            make_tables(engine)
            engine.dispose()
            monkeypatch.setenv("AUTHGATE_STORE", f"{url}?users={page[12:-3]}&prefix=authgate_")
            monkeypatch.setenv("FLASK_SECURITY_PASSWORD_SALT", "salt")
            for block in _python_blocks(page):
                code = block.replace("postgresql://app@db/app", url)
                namespace: dict[str, object] = {"__name__": "__main__"}
                exec(compile(code, f"docs/{page}", "exec"), namespace)  # noqa: S102
                app: Any = namespace["app"]
                state = getattr(app, "extensions", {}).get("authgate")
                if state is not None:  # Flask: the extension's gate
                    state._gate.close()


def test_every_moving_page_has_a_tested_example() -> None:
    examples = (ROOT / "tests" / "test_examples.py").read_text()
    for library in ("fastapi_users", "flask_security"):
        page = (ROOT / "docs" / f"moving-from-{library.replace('_', '-')}.md").read_text()
        assert f"examples/from_{library}.py" in page
        assert f"from_{library}.py" in examples
