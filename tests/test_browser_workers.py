"""Browser logins in production shape: the Flask example under ``gunicorn -w 4`` and the
FastAPI example under ``uvicorn --workers 4``, from a fresh SQLite store, over real HTTP
with a connection per request (so requests spread over the workers), and mail through a
real SMTP server on loopback (each worker's outbox thread starts after the fork)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from authgate.testing import MailCatcher, free_port

pytest.importorskip("flask")
pytest.importorskip("fastapi")

ROOT = Path(__file__).resolve().parent.parent
SECRET = "workers-browser-secret-0123456789-abcdefghijklm"
ADMIN, ADMIN_PW = "admin", "admin password 1"
WORKERS = 4


def _command(server: str, port: int) -> list[str]:
    if server == "uvicorn":
        return [sys.executable, "-m", "uvicorn", "examples.fastapi_app:app", "--host",
                "127.0.0.1", "--port", str(port), "--workers", str(WORKERS),
                "--log-level", "warning"]  # fmt: skip
    return [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers",
            str(WORKERS), "--log-level", "warning", "examples.flask_app:app"]  # fmt: skip


@pytest.fixture(params=["gunicorn", "uvicorn"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, MailCatcher]]:
    server = str(request.param)
    port = free_port()
    with MailCatcher() as catcher:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")},
            "AUTHGATE_STORE": f"sqlite:///{tmp_path / 'authgate.db'}",
            "AUTHGATE_SECRET_KEY": SECRET,
            "AUTHGATE_SUPERUSER_USERNAME": ADMIN,
            "AUTHGATE_SUPERUSER_PASSWORD": ADMIN_PW,
            "AUTHGATE_ARGON2_TIME_COST": "1",
            "AUTHGATE_ARGON2_MEMORY_COST": "8",
            "AUTHGATE_ARGON2_PARALLELISM": "1",
            "AUTHGATE_COOKIE_SESSIONS": "true",
            "AUTHGATE_LOGIN_URL": "/login",
            "AUTHGATE_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "AUTHGATE_MAIL_URL": catcher.url,
            "AUTHGATE_LOG_FORMAT": "none",
        }
        # Seed the admin before the workers start, as a deployment runs
        # `authgate bootstrap`: four workers seeding a fresh store at once race.
        subprocess.run([sys.executable, "-m", "authgate", "bootstrap"], cwd=ROOT, env=env,
                       check=True, capture_output=True, timeout=60)  # fmt: skip
        log = tmp_path / "server.log"
        with open(log, "wb") as sink:
            proc = subprocess.Popen(
                _command(server, port), cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT
            )
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        try:
            while True:
                try:
                    if httpx.get(f"{base}/public", timeout=5).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{server} did not start: {log.read_text()[-2000:]}")
                time.sleep(0.05)
            yield base, catcher
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _client(base: str) -> httpx.Client:
    """A browser-like client over plain HTTP on loopback: its cookie jar sends the
    Secure cookies there, as browsers do for http://127.0.0.1.  One connection per
    request, so the requests spread over the workers."""
    return httpx.Client(base_url=base, timeout=30, limits=httpx.Limits(max_keepalive_connections=0))


def _cookie(reply: httpx.Response, name: str) -> str:
    for value in reply.headers.get_list("set-cookie"):
        if value.startswith(f"{name}="):
            return value.split(";")[0].split("=", 1)[1]
    raise AssertionError(f"no {name} cookie set")


def test_browser_sessions_csrf_and_reset_across_workers(site: tuple[str, MailCatcher]) -> None:
    base, catcher = site
    with _client(base) as admin:
        login = admin.post("/auth/login", json={"username": ADMIN, "password": ADMIN_PW})
        bearer = {"authorization": f"Bearer {login.json()['access_token']}"}
        made = admin.post(
            "/api/users/",
            json={
                "username": "alice",
                "password": "old password 1",
                "role": "operator",
                "email": "alice@example.com",
            },
            headers=bearer,
        )
        assert made.status_code == 201, made.text

    with _client(base) as browser:
        reply = browser.post(
            "/auth/session", json={"username": "alice", "password": "old password 1"}
        )
        assert reply.status_code == 200, reply.text
        cookie = _cookie(reply, "__Host-authgate_session")
        token = reply.json()["csrf_token"]
        headers = {"cookie": f"__Host-authgate_session={cookie}"}
        for _ in range(2 * WORKERS):  # every worker knows the session
            assert browser.get("/protected", headers=headers).status_code == 200
        refused = browser.post("/items", json={"title": "forged"}, headers=headers)
        assert refused.status_code == 403 and refused.json()["error"] == "csrf_failed"
        made_item = browser.post(
            "/items", json={"title": "mine"}, headers={**headers, "x-csrf-token": token}
        )
        assert made_item.status_code == 201

        asked = browser.post("/auth/password/forgot", json={"username": "alice"})
        assert asked.status_code == 202
        mail = catcher.wait_for("alice@example.com", timeout=30)
        [link] = [u for u in catcher.links(mail) if "token=" in u]
        assert link.startswith(f"{base}/reset-password?token=")
        reset_token = parse_qs(urlsplit(link).query)["token"][0]
        done = browser.post(
            "/auth/password/reset", json={"token": reset_token, "new_password": "new password 2"}
        )
        assert done.status_code == 204
        for _ in range(2 * WORKERS):  # the old session is dead in every worker
            page = browser.get("/protected", headers={**headers, "accept": "text/html"})
            assert page.status_code == 302 and page.headers["location"] == "/login?next=/protected"
        again = browser.post(
            "/auth/password/reset", json={"token": reset_token, "new_password": "third one 3"}
        )
        assert again.status_code == 400
        old = browser.post(
            "/auth/session", json={"username": "alice", "password": "old password 1"}
        )
        assert old.status_code == 401
        new = browser.post(
            "/auth/session", json={"username": "alice", "password": "new password 2"}
        )
        assert new.status_code == 200
