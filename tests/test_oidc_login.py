"""Logging in through a real OpenID provider (oidc-provider under Node.js), over real
HTTP: an example app served by uvicorn, the person's browser played by an httpx client
and the provider's login form filled by `oidc.UserAgent`.  The authorization code flow
with PKCE ends in an authgate cookie session of a local user made at the first login,
with the roles the provider names; the state, the nonce and the code are each checked
(a callback without this browser's login state, with another state, or replayed opens
nothing); logging out ends the session here and sends the browser to the provider's
end-session endpoint."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from authgate import Gate
from authgate.flows.oidc import external_user_id
from authgate.testing import cheap_hasher, free_port
from oidc import Client, OpenIdProvider, User

ROOT = Path(__file__).resolve().parent.parent
SECRET = "oidc-login-tests-secret-Zr5kP8wN2vQ7xT4mB9cL3hJ6"
ALICE = User(
    "alice",
    "alice password 1",
    {"realm_access": {"roles": ["operator"]}, "email": "alice@example.com",
     "email_verified": True, "preferred_username": "alice", "name": "Alice Liddell"},
)  # fmt: skip


class Site:
    """examples/starlette_app.py under uvicorn, logins through the provider on."""

    def __init__(self, provider: OpenIdProvider, port: int, tmp: Path, workers: int = 1) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.store = f"sqlite:///{tmp / 'authgate.db'}"
        env = {
            "PATH": "/usr/bin:/bin",
            "AUTHGATE_STORE": self.store,
            "AUTHGATE_SECRET_KEY": SECRET,
            "AUTHGATE_SUPERUSER_USERNAME": "admin",
            "AUTHGATE_SUPERUSER_PASSWORD": "admin password 1",
            "AUTHGATE_ARGON2_TIME_COST": "1",
            "AUTHGATE_ARGON2_MEMORY_COST": "8",
            "AUTHGATE_ARGON2_PARALLELISM": "1",
            "AUTHGATE_COOKIE_SESSIONS": "true",
            "AUTHGATE_COOKIE_SECURE": "false",  # plain http between two test clients
            "AUTHGATE_LOGIN_URL": "/login",
            "AUTHGATE_PUBLIC_URL": self.url,
            "AUTHGATE_TRUSTED_ISSUERS": json.dumps(
                [
                    {
                        "issuer": provider.issuer,
                        "audience": "https://api.example.test",
                        "name": "op",
                        "preset": "keycloak",
                        "login_client_id": "web",
                        "login_client_secret": "web secret",
                    }
                ]
            ),
        }
        self.log = tmp / "server.log"
        with open(self.log, "wb") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "examples.starlette_app:app",
                 "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                 "--workers", str(workers)],
                cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.url + "/public", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the site did not start: {self.log.read_text()}")
            time.sleep(0.1)

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OpenIdProvider, Site]]:
    port = free_port()
    callback = f"http://127.0.0.1:{port}/auth/oidc/op/callback"
    after_logout = f"http://127.0.0.1:{port}/login"
    web = Client("web", "web secret", (callback,), (after_logout,))
    with OpenIdProvider(clients=[web], users=[ALICE]) as provider:
        site = Site(provider, port, tmp_path_factory.mktemp("site"))
        try:
            yield provider, site
        finally:
            site.close()


def _start(browser: httpx.Client, next_: str = "/operator") -> tuple[str, str]:
    """The browser asks the site to log in: the provider's URL, and the state cookie."""
    begun = browser.get("/auth/oidc/op/login", params={"next": next_})
    assert begun.status_code == 303, begun.text
    kept = browser.cookies.get("authgate_oidc")
    assert kept and "HttpOnly" in begun.headers["set-cookie"]
    assert "SameSite=Lax" in begun.headers["set-cookie"]
    return begun.headers["location"], kept


def test_a_login_through_the_provider_ends_in_a_session_of_a_local_user(
    both: tuple[OpenIdProvider, Site],
) -> None:
    provider, site = both
    with httpx.Client(base_url=site.url, timeout=10) as browser:
        assert browser.get("/operator").status_code == 401
        where, _ = _start(browser)
        asked = parse_qs(urlsplit(where).query)
        assert where.startswith(provider.authorization_endpoint)
        assert asked["code_challenge_method"] == ["S256"] and asked["nonce"] and asked["state"]
        assert asked["redirect_uri"] == [f"{site.url}/auth/oidc/op/callback"]
        callback = provider.login(where, "alice", "alice password 1")
        back = browser.get(callback)
        assert back.status_code == 303 and back.headers["location"] == "/operator"
        assert browser.cookies.get("authgate_session")
        assert not browser.cookies.get("authgate_oidc")  # the login state is spent
        page = browser.get("/operator")
        assert page.status_code == 200, page.text
        me = browser.get("/auth/me").json()
        assert me["username"] == "alice" and me["roles"] == ["operator"]
    gate = Gate(store=site.store, secret_key=SECRET, hasher=cheap_hasher())
    try:
        user = gate.store.get_user("alice")
        assert user is not None and user.id == external_user_id(provider.issuer, "alice")
        assert user.email == "alice@example.com" and user.email_verified
        assert not user.password_hash  # no password: the provider proves who she is
    finally:
        gate.close()


def test_a_second_login_is_the_same_local_user_and_a_local_namesake_is_left_alone(
    both: tuple[OpenIdProvider, Site],
) -> None:
    provider, site = both
    for _ in range(2):
        with httpx.Client(base_url=site.url, timeout=10) as browser:
            where, _ = _start(browser, "/protected")
            browser.get(provider.login(where, "alice", "alice password 1"))
            assert browser.get("/auth/me").json()["username"] == "alice"


def test_a_callback_that_is_not_this_browsers_login_opens_nothing(
    both: tuple[OpenIdProvider, Site],
) -> None:
    provider, site = both
    with httpx.Client(base_url=site.url, timeout=10) as attacker:
        where, _ = _start(attacker)
        stolen = provider.login(where, "alice", "alice password 1")
    # Another browser (the victim's, lured to the attacker's callback): no login state.
    with httpx.Client(base_url=site.url, timeout=10) as victim:
        refused = victim.get(stolen)
        assert refused.status_code == 303
        assert refused.headers["location"] == "/login?error=invalid_token"
        assert not victim.cookies.get("authgate_session")
    # The right browser, but the state changed: nothing either.
    with httpx.Client(base_url=site.url, timeout=10) as browser:
        where, _ = _start(browser)
        callback = provider.login(where, "alice", "alice password 1")
        forged = callback.replace("state=", "state=x")
        assert browser.get(forged).headers["location"] == "/login?error=invalid_token"
        assert not browser.cookies.get("authgate_session")
    # A callback replayed after it was used: its login state is gone with it.
    with httpx.Client(base_url=site.url, timeout=10) as browser:
        where, kept = _start(browser)
        callback = provider.login(where, "alice", "alice password 1")
        assert browser.get(callback).status_code == 303
        browser.cookies.set("authgate_oidc", kept)  # the old state cookie, kept by an attacker
        again = browser.get(callback)
        assert again.status_code == 303, (again.status_code, again.text)
        assert again.headers["location"].startswith("/login?error=")


def test_the_provider_refusing_is_a_login_error_not_a_500(
    both: tuple[OpenIdProvider, Site],
) -> None:
    _, site = both
    with httpx.Client(base_url=site.url, timeout=10) as browser:
        where, _ = _start(browser)
        state = parse_qs(urlsplit(where).query)["state"][0]
        denied = browser.get(
            "/auth/oidc/op/callback", params={"error": "access_denied", "state": state}
        )
        assert denied.status_code == 303
        assert denied.headers["location"] == "/login?error=login_refused"
        assert browser.get("/auth/oidc/nobody/login").status_code == 404


def test_logging_out_ends_the_session_here_and_goes_to_the_provider(
    both: tuple[OpenIdProvider, Site],
) -> None:
    provider, site = both
    with httpx.Client(base_url=site.url, timeout=10) as browser:
        where, _ = _start(browser)
        browser.get(provider.login(where, "alice", "alice password 1"))
        token = browser.get("/auth/csrf").json()["csrf_token"]
        out = browser.post("/auth/oidc/op/logout", headers={"X-CSRF-Token": token})
        assert out.status_code == 303, out.text
        target = out.headers["location"]
        assert target.startswith(provider.end_session_endpoint)
        assert parse_qs(urlsplit(target).query)["post_logout_redirect_uri"] == [f"{site.url}/login"]
        assert browser.get("/operator").status_code == 401


def test_a_user_made_at_a_provider_login_proves_it_again_by_logging_in_again(
    both: tuple[OpenIdProvider, Site],
) -> None:
    provider, site = both
    with httpx.Client(base_url=site.url, timeout=10) as browser:
        where, _ = _start(browser)
        browser.get(provider.login(where, "alice", "alice password 1"))
        assert browser.get("/auth/reauth").json()["methods"] == ["login"]
        token = browser.get("/auth/csrf").json()["csrf_token"]
        refused = browser.post(
            "/auth/reauth", json={"password": ""}, headers={"X-CSRF-Token": token}
        )
        assert refused.status_code == 401 and "log in again" in refused.json()["detail"]


def test_first_logins_at_once_on_four_workers_make_one_local_user(
    tmp_path: Path,
) -> None:
    """uvicorn --workers 4 on a fresh store: the same person's first login finishing in
    four browsers at once makes one local user, and every browser is signed in as it."""
    from concurrent.futures import ThreadPoolExecutor

    port = free_port()
    web = Client("web", "web secret", (f"http://127.0.0.1:{port}/auth/oidc/op/callback",))
    with OpenIdProvider(clients=[web], users=[ALICE]) as provider:
        # The admin first, as `authgate bootstrap` before a server's workers.
        seed = Gate(
            store=f"sqlite:///{tmp_path / 'authgate.db'}",
            secret_key=SECRET,
            hasher=cheap_hasher(),
            superuser_username="admin",
            superuser_password="admin password 1",
        )
        seed.ensure_superuser()
        seed.close()
        site = Site(provider, port, tmp_path, workers=4)
        try:
            browsers = [
                httpx.Client(base_url=site.url, timeout=20, limits=httpx.Limits(
                    max_keepalive_connections=0)) for _ in range(4)
            ]  # fmt: skip
            callbacks = []
            for browser in browsers:
                where, _ = _start(browser)
                callbacks.append(provider.login(where, "alice", "alice password 1"))
            with ThreadPoolExecutor(4) as pool:
                answers = list(pool.map(lambda pair: pair[0].get(pair[1]),
                                        zip(browsers, callbacks, strict=True)))  # fmt: skip
            assert [a.status_code for a in answers] == [303] * 4, [a.text for a in answers]
            names = {b.get("/auth/me").json()["username"] for b in browsers}
            assert names == {"alice"}
            for browser in browsers:
                browser.close()
        finally:
            site.close()
        gate = Gate(store=site.store, secret_key=SECRET, hasher=cheap_hasher())
        try:
            made = [u for u in gate.store.list_users().items if u.id.startswith("ext-")]
            assert [u.username for u in made] == ["alice"]
        finally:
            gate.close()
