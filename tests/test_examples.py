"""The examples in examples/ run as documented."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_python(*args: str) -> subprocess.CompletedProcess[str]:
    """Run Python in a child process from the repository root, as a user would."""
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=EXAMPLES.parent,
    )


@pytest.mark.parametrize("name", ["sessions_sync.py", "sessions_async.py"])
def test_session_examples_run(name: str) -> None:
    result = run_python(str(EXAMPLES / name))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "authenticated: alice ['operator']",
        "refreshed, same session: True",
        "after logout: the session is no longer valid",
    ]


@pytest.mark.parametrize("name", ["protect_flask", "protect_fastapi", "protect_starlette"])
def test_protect_snippets_guard_their_route(name: str, tmp_path: Path) -> None:
    """Each README snippet is a runnable app: it logs in through its own /auth/login and
    guards /reports (operator or admin)."""
    script = f"""
import json, os, sys
from authgate import Gate
from authgate.testing import cheap_hasher
os.environ.update(AUTHGATE_STORE="sqlite:///{tmp_path}/s.db",
                  AUTHGATE_SECRET_KEY="snippet-secret-key-that-is-long-enough-1234")
seed = Gate.from_env(hasher=cheap_hasher())
seed.create_user("olga", "olga password", roles=["operator"])
seed.create_user("vic", "vic password1", roles=["viewer"])
seed.close()
from examples.{name} import app
if "{name}" == "protect_flask":
    import webtest
    client = webtest.TestApp(app)
    def call(method, path, body=None, token=None):
        headers = {{"Authorization": "Bearer " + token}} if token else {{}}
        r = client.request(path, method=method, json=body, headers=headers,
                           expect_errors=True) if body else client.request(
            path, method=method, headers=headers, expect_errors=True)
        return r.status_code, r.json
else:
    from starlette.testclient import TestClient
    client = TestClient(app)
    def call(method, path, body=None, token=None):
        headers = {{"Authorization": "Bearer " + token}} if token else {{}}
        r = client.request(method, path, json=body, headers=headers)
        return r.status_code, r.json()
status, olga = call("POST", "/auth/login", {{"username": "olga", "password": "olga password"}})
assert status == 200, olga
status, vic = call("POST", "/auth/login", {{"username": "vic", "password": "vic password1"}})
assert status == 200, vic
print(call("GET", "/reports", token=olga["access_token"]))
print(call("GET", "/reports", token=vic["access_token"])[0])
print(call("GET", "/reports")[0])
"""
    result = run_python("-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["(200, {'for': 'olga'})", "403", "401"]


def test_fastapi_docs_list_the_bearer_scheme(tmp_path: Path) -> None:
    script = f"""
import os
os.environ.update(AUTHGATE_STORE="sqlite:///{tmp_path}/d.db",
                  AUTHGATE_SECRET_KEY="docs-secret-key-that-is-long-enough-123456",
                  AUTHGATE_SUPERUSER_USERNAME="admin", AUTHGATE_SUPERUSER_PASSWORD="admin pass 1",
                  AUTHGATE_ARGON2_TIME_COST="1", AUTHGATE_ARGON2_MEMORY_COST="8",
                  AUTHGATE_ARGON2_PARALLELISM="1")
from starlette.testclient import TestClient
from examples.fastapi_app import app
client = TestClient(app)
schema = client.get("/openapi.json").json()
print(schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"])
print(sorted({{next(iter(s)) for op in schema["paths"]["/admin"].values()
              for s in op.get("security", [])}}))
print(client.get("/docs").status_code)
"""
    result = run_python("-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["bearer", "['HTTPBearer', 'OAuth2PasswordBearer']", "200"]


SEED_EXAMPLES = {
    "from_haystack.py": [
        "admin > operator > viewer: True",
        "created: operator operator",
        "delete yourself: 409",
    ],
    "from_bluesky.py": [
        "known: True False",
        "roles: ['advanced']",
        'displayed: jdoe "Doe, John <jdoe@gmail.com>"',
        "can read config: True",
        "logged in: jdoe True",
        "nobody: False",
    ],
    "from_amsdal.py": [
        "User:read (not registered): True",
        "User:create (registered): False",
        "read own report: True",
        "update another's: False",
        "transaction: 42",
        "outside a request: NotAuthenticated",
    ],
    "from_plantdb.py": [
        "guest: ['viewer']",
        "locked for 300 s",
        "sessions kept: 2",
        "shared scan: True",
        "files: ['counters.json', 'sessions.json', 'users.json']",
    ],
    "from_iggy.py": [
        "201",
        "send to stream 1 topic 3: True",
        "send to stream 2 topic 8: False",
        "status: inactive",
        "delete root: 409",
        "reset password: 204",
    ],
}


@pytest.mark.parametrize("name", sorted(SEED_EXAMPLES))
def test_coming_from_examples(name: str) -> None:
    """Each "Coming from ..." page's example runs and shows what the page says."""
    result = run_python(str(EXAMPLES / name))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == SEED_EXAMPLES[name]


MOVING_EXAMPLES = {
    "from_fastapi_users.py": [
        "alice: {'email': 'alice@example.com', 'roles': []}",
        "alice at /admin: 403",
        "root at /admin: {'hello': 'root@example.com'}",
        "alice's hash now: argon2id",
    ],
    "from_flask_security.py": [
        "ada@example.com 200 {'for': 'ada@example.com'}",
        "ben@example.com 200 {'for': 'ben@example.com'}",
        "wrong password: 401",
        "hashes now: ['argon2id', 'argon2id']",
    ],
}


@pytest.mark.parametrize("backend", ["postgres", "mariadb"])
@pytest.mark.parametrize("name", sorted(MOVING_EXAMPLES))
def test_moving_from_examples(
    name: str, backend: str, make_store_url: Callable[[str], str]
) -> None:
    """Each "Moving from ..." page's example runs on both databases and shows what the
    page says: the library's users log in unchanged and leave with argon2id hashes."""
    result = run_python(str(EXAMPLES / name), make_store_url(backend))
    assert result.returncode == 0, result.stderr
    shown = [line for line in result.stdout.splitlines() if not line.startswith("20")]
    assert shown == MOVING_EXAMPLES[name]


@pytest.mark.parametrize("raw", ["²", "١٢", "12 ", "-1", "", "1" * 13])
def test_an_item_id_is_ascii_digits_or_a_404(raw: str) -> None:
    from examples.demo import item_id

    from authgate.errors import NotFound

    with pytest.raises(NotFound):
        item_id(raw)
    assert item_id("12") == 12
