"""Browser logins end to end, over the plain WSGI and ASGI middlewares: the session
cookie and its attributes, CSRF (header, form field, another session's token, a form
from another site), login rotation, logout, redirects of page requests, stale cookies,
and the form endpoints' redirects."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from http.cookies import SimpleCookie
from typing import Any

import httpx
import pytest

from authgate import AsyncGate, Gate, current_identity
from authgate.context import csrf_token
from authgate.decorators import check
from authgate.middleware.asgi import AuthGateMiddleware
from authgate.middleware.wsgi import AuthGateWSGIMiddleware
from authgate.permissions import IsAuthenticated
from authgate.testing import cheap_hasher
from authgate.types import Receive, Scope, Send, StartResponse, WSGIEnviron

SECRET = "browser-tests-secret-0123456789-abcdefghijklmnop"
BASE = "https://testserver"
HTML = {"accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"}


def _settings(**extra: Any) -> dict[str, Any]:
    return {
        "store": "memory://",
        "secret_key": SECRET,
        "cookie_sessions": True,
        "login_url": "/login",
        "max_failures_per_address": 0,
        **extra,
    }


# -- two apps, one per middleware, with the same routes ------------------------------------


class Notes:
    """What the apps' protected form writes: the test checks nothing was written."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []


def _wsgi_app(notes: Notes) -> Callable[..., Iterable[bytes]]:
    def app(environ: WSGIEnviron, start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ["PATH_INFO"], environ["REQUEST_METHOD"]
        if path == "/public":
            body = {"public": True, "user": current_identity.username}
        elif path == "/page":
            check(IsAuthenticated())
            body = {"user": current_identity.username, "csrf": csrf_token()}
        elif path == "/login":
            body = {"csrf": csrf_token()}
        elif path == "/notes" and method == "POST":
            check(IsAuthenticated())
            length = int(environ.get("CONTENT_LENGTH") or 0)
            notes.items.append(
                (current_identity.username, environ["wsgi.input"].read(length).decode())
            )
            body = {"created": True}
        else:
            start_response("404 Not Found", [("content-type", "text/plain")])
            return [b"no"]
        raw = json.dumps(body).encode()
        start_response("200 OK", [("content-type", "application/json")])
        return [raw]

    return app


def _asgi_app(notes: Notes) -> Callable[..., Any]:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": f"{message['type']}.complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        path, method = scope["path"], scope["method"]
        status = 200
        if path == "/public":
            body: Any = {"public": True, "user": current_identity.username}
        elif path == "/page":
            check(IsAuthenticated())
            body = {"user": current_identity.username, "csrf": csrf_token()}
        elif path == "/login":
            body = {"csrf": csrf_token()}
        elif path == "/notes" and method == "POST":
            check(IsAuthenticated())
            raw = b""
            while True:
                message = await receive()
                raw += message.get("body", b"")
                if not message.get("more_body"):
                    break
            notes.items.append((current_identity.username, raw.decode()))
            body = {"created": True}
        else:
            status, body = 404, {"no": True}
        data = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": data})

    return app


class Browser:
    """A client with a cookie jar, over one of the two middlewares."""

    def __init__(self, client: httpx.Client, admin: Gate) -> None:
        self.client = client
        self.admin = admin  # a sync gate over the same store, for setting up and checking

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def set_cookies(self, response: httpx.Response) -> dict[str, str]:
        """Each Set-Cookie of a response, by name: the raw header value."""
        found = {}
        for value in response.headers.get_list("set-cookie"):
            found[value.split("=", 1)[0]] = value
        return found

    def login(
        self,
        username: str = "alice",
        password: str = "correct horse 1",  # noqa: S107
        **extra: Any,
    ) -> httpx.Response:
        """A JSON login (with the CSRF token of the session the browser is in, if any:
        a logged-in browser logging in again sends it like any other unsafe request)."""
        token = self.__dict__.get("token")
        reply = self.client.post(
            "/auth/session",
            json={"username": username, "password": password, **extra},
            headers={"x-csrf-token": token} if token else {},
        )
        assert reply.status_code == 200, reply.text
        self.token = reply.json()["csrf_token"]
        return reply


@pytest.fixture(params=["wsgi", "asgi"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _browser(kind: str, notes: Notes, **extra: Any) -> Iterator[Browser]:
    settings = _settings(**extra)
    if kind == "wsgi":
        gate: Gate | AsyncGate = Gate(hasher=cheap_hasher(), **settings)
        assert isinstance(gate, Gate)
        gate.create_user("alice", "correct horse 1", roles=["viewer"])
        gate.create_user("bob", "correct horse 2", roles=["viewer"])
        app = AuthGateWSGIMiddleware(_wsgi_app(notes), gate, api=True)
        client = httpx.Client(transport=httpx.WSGITransport(app=app), base_url=BASE)
        with client:
            yield Browser(client, gate)
    else:
        agate = AsyncGate(hasher=cheap_hasher(), **settings)
        del settings["store"]
        sync = Gate(hasher=cheap_hasher(), store=agate.store.sync, **settings)  # type: ignore[attr-defined]
        sync.create_user("alice", "correct horse 1", roles=["viewer"])
        sync.create_user("bob", "correct horse 2", roles=["viewer"])
        asgi = AuthGateMiddleware(_asgi_app(notes), agate, api=True)
        # Starlette's test client drives an ASGI app from sync code (the core's tox env,
        # without Starlette, runs the WSGI half of this file).
        TestClient = pytest.importorskip("starlette.testclient").TestClient
        with TestClient(
            asgi, base_url=BASE, raise_server_exceptions=False, follow_redirects=False
        ) as test_client:
            yield Browser(test_client, sync)


@pytest.fixture
def notes() -> Notes:
    return Notes()


@pytest.fixture
def browser(kind: str, notes: Notes) -> Iterator[Browser]:
    yield from _browser(kind, notes)


def _attributes(set_cookie: str) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    jar.load(set_cookie)
    (morsel,) = jar.values()
    return {k: str(v) for k, v in morsel.items() if v}


# -- the cookie ---------------------------------------------------------------------------


def test_login_sets_a_host_only_httponly_secure_lax_session_cookie(browser: Browser) -> None:
    reply = browser.login()
    cookies = browser.set_cookies(reply)
    session = cookies["__Host-authgate_session"]
    attributes = _attributes(session)
    assert attributes["httponly"] and attributes["secure"]
    assert attributes["samesite"] == "Lax" and attributes["path"] == "/"
    assert "domain" not in attributes
    assert "max-age" not in attributes  # no "remember me": it ends with the browser
    assert "__Host-authgate_csrf" in cookies  # a new CSRF binding at login
    body = reply.json()
    assert body["username"] == "alice" and body["csrf_token"]
    assert "access_token" not in body and "refresh_token" not in body
    assert "ags_" not in reply.text  # the credential is in the cookie only


def test_remember_me_is_a_persistent_cookie_on_a_longer_session(browser: Browser) -> None:
    reply = browser.login(remember=True)
    session = browser.set_cookies(reply)["__Host-authgate_session"]
    assert _attributes(session)["max-age"] == str(2_592_000)
    assert reply.json()["remember"] is True


def test_cookie_names_and_attributes_are_configurable(kind: str, notes: Notes) -> None:
    for b in _browser(
        kind, notes, cookie_name="sid", cookie_domain="example.test", cookie_samesite="strict"
    ):
        cookies = b.set_cookies(b.login())
        attributes = _attributes(cookies["sid"])  # no __Host- with a Domain
        assert attributes["domain"] == "example.test" and attributes["samesite"] == "Strict"


def test_the_session_cookie_authenticates_pages(browser: Browser) -> None:
    browser.login()
    assert browser.get("/page").json()["user"] == "alice"
    assert browser.get("/auth/me").json()["username"] == "alice"
    listed = browser.get("/auth/sessions").json()["items"]
    assert len(listed) == 1 and listed[0]["current"] is True


def test_each_login_is_a_new_session_and_a_new_csrf_binding(browser: Browser) -> None:
    first = browser.set_cookies(browser.login())
    second = browser.set_cookies(browser.login())
    assert first["__Host-authgate_session"] != second["__Host-authgate_session"]
    assert first["__Host-authgate_csrf"] != second["__Host-authgate_csrf"]


# -- CSRF -------------------------------------------------------------------------------


def test_unsafe_request_without_csrf_token_is_403_and_changes_nothing(
    browser: Browser, notes: Notes
) -> None:
    browser.login()
    reply = browser.post("/notes", data={"text": "hello"})
    assert reply.status_code == 403 and reply.json()["error"] == "csrf_failed"
    assert notes.items == []
    sessions_before = browser.get("/auth/sessions").json()["items"]
    assert browser.post("/auth/logout").status_code == 403  # logout CSRF too
    assert browser.get("/auth/sessions").json()["items"] == sessions_before


def test_csrf_token_in_header_or_form_field_is_accepted(browser: Browser, notes: Notes) -> None:
    token = browser.login().json()["csrf_token"]
    assert browser.post("/notes", data={"text": "a", "csrf_token": token}).status_code == 200
    assert browser.post("/notes", content=b"b", headers={"x-csrf-token": token}).status_code == 200
    multipart = browser.post("/notes", data={"csrf_token": token}, files={"f": ("f.txt", b"x")})
    assert multipart.status_code == 200
    assert [who for who, _ in notes.items] == ["alice", "alice", "alice"]
    assert "text=a" in notes.items[0][1]  # the app still reads the whole form


def test_a_token_of_another_session_is_refused(kind: str, notes: Notes) -> None:
    for bob in _browser(kind, notes):
        bobs_token = bob.login("bob", "correct horse 2").json()["csrf_token"]
        bob.cookies.clear()
        alices_token = bob.login().json()["csrf_token"]
        assert bobs_token != alices_token
        reply = bob.post("/notes", data={"text": "x", "csrf_token": bobs_token})
        assert reply.status_code == 403 and notes.items == []
        reply = bob.post("/notes", content=b"x", headers={"x-csrf-token": bobs_token})
        assert reply.status_code == 403 and notes.items == []


def test_a_token_from_before_the_login_is_refused_after_it(browser: Browser, notes: Notes) -> None:
    before = browser.get("/auth/csrf").json()["csrf_token"]
    after = browser.login().json()["csrf_token"]
    assert before != after
    assert browser.post("/notes", data={"csrf_token": before}).status_code == 403
    assert notes.items == []


def test_a_json_body_posted_as_text_cannot_log_in(browser: Browser) -> None:
    # A cross-site form can send text/plain; only JSON or a form with the token logs in.
    body = json.dumps({"username": "alice", "password": "correct horse 1"})
    reply = browser.post("/auth/session", content=body, headers={"content-type": "text/plain"})
    assert reply.status_code == 415
    assert "__Host-authgate_session" not in browser.set_cookies(reply)


def test_login_form_needs_the_pre_login_csrf_token(browser: Browser) -> None:
    form = {"username": "alice", "password": "correct horse 1"}
    reply = browser.post("/auth/session", data={**form, "next": "/page"})
    # Refused, nothing done: back to the login page, which renders a fresh token.
    assert reply.status_code == 303
    assert reply.headers["location"] == "/login?error=csrf_failed&next=%2Fpage"
    assert "__Host-authgate_session" not in browser.set_cookies(reply)
    other = browser.post("/auth/session", data={**form, "csrf_token": "x" * 86})
    assert other.headers["location"] == "/login?error=csrf_failed"
    token = browser.get("/login", headers=HTML).json()["csrf"]
    reply = browser.post("/auth/session", data={**form, "csrf_token": token, "next": "/page"})
    assert reply.status_code == 303 and reply.headers["location"] == "/page"
    assert browser.get("/page").json()["user"] == "alice"


@pytest.mark.parametrize(
    "target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "/ok\r\nx"]
)
def test_form_login_never_redirects_off_site(browser: Browser, target: str) -> None:
    token = browser.get("/auth/csrf").json()["csrf_token"]
    form = {"username": "alice", "password": "correct horse 1", "csrf_token": token, "next": target}
    reply = browser.post("/auth/session", data=form)
    assert reply.status_code == 303 and reply.headers["location"] == "/"


def test_a_wrong_password_on_the_form_goes_back_with_the_error(browser: Browser) -> None:
    token = browser.get("/auth/csrf").json()["csrf_token"]
    form = {"username": "alice", "password": "wrong password", "csrf_token": token, "next": "/page"}
    reply = browser.post("/auth/session", data=form)
    assert reply.status_code == 303
    assert reply.headers["location"] == "/login?error=invalid_credentials&next=%2Fpage"
    unknown = {**form, "username": "nobody"}
    assert (
        browser.post("/auth/session", data=unknown).headers["location"] == reply.headers["location"]
    )


# -- pages, redirects and stale cookies ----------------------------------------------------


def test_a_page_request_without_a_session_goes_to_the_login_page(browser: Browser) -> None:
    reply = browser.get("/page?tab=2", headers=HTML)
    assert reply.status_code == 302
    assert reply.headers["location"] == "/login?next=/page%3Ftab%3D2"
    assert "accept" in reply.headers["vary"].lower()
    api = browser.get("/page", headers={"accept": "application/json"})
    assert api.status_code == 401 and api.headers["www-authenticate"].startswith("Bearer")
    assert browser.get("/page").status_code == 401  # no Accept: an API client


def test_an_ended_session_cookie_counts_as_none_and_is_cleared(browser: Browser) -> None:
    browser.login()
    session = browser.get("/auth/sessions").json()["items"][0]["id"]
    assert browser.admin.revoke_session("alice", session)
    reply = browser.get("/public")
    assert reply.status_code == 200 and reply.json()["user"] == ""
    cleared = browser.set_cookies(reply)["__Host-authgate_session"]
    assert _attributes(cleared)["max-age"] == "0"
    assert browser.get("/page", headers=HTML).status_code == 302


def test_a_forged_session_cookie_is_anonymous(browser: Browser) -> None:
    browser.login()
    real = browser.cookies.get("__Host-authgate_session")
    assert real is not None
    forged = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
    browser.cookies.set("__Host-authgate_session", forged, domain="testserver")
    browser.cookies.delete("__Host-authgate_session", domain="testserver.local")
    client = browser.client
    reply = client.get("/page", headers={**HTML, "cookie": f"__Host-authgate_session={forged}"})
    assert reply.status_code == 302


def test_logout_clears_both_cookies_and_ends_the_session(browser: Browser) -> None:
    token = browser.login().json()["csrf_token"]
    cookie = browser.cookies.get("__Host-authgate_session")
    reply = browser.post("/auth/logout", data={"csrf_token": token, "next": "/public"})
    assert reply.status_code == 303 and reply.headers["location"] == "/public"
    cookies = browser.set_cookies(reply)
    assert _attributes(cookies["__Host-authgate_session"])["max-age"] == "0"
    assert "__Host-authgate_csrf" in cookies
    replayed = browser.get("/page", headers={"cookie": f"__Host-authgate_session={cookie}"})
    assert replayed.status_code == 401  # the old cookie is dead in the store, not just forgotten


def test_json_logout_with_the_header_token(browser: Browser) -> None:
    token = browser.login().json()["csrf_token"]
    reply = browser.post("/auth/logout", headers={"x-csrf-token": token})
    assert reply.status_code == 204
    assert browser.get("/page").status_code == 401


def test_bearer_clients_are_unaffected(browser: Browser) -> None:
    reply = browser.post("/auth/login", json={"username": "alice", "password": "correct horse 1"})
    access = reply.json()["access_token"]
    browser.cookies.clear()
    assert (
        browser.post(
            "/notes", content=b"x", headers={"authorization": f"Bearer {access}"}
        ).status_code
        == 200
    )


def test_cookie_sessions_off_serves_no_cookie_login() -> None:
    gate = Gate(hasher=cheap_hasher(), store="memory://", secret_key=SECRET)
    app = AuthGateWSGIMiddleware(_wsgi_app(Notes()), gate, api=True)
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url=BASE) as client:
        reply = client.post("/auth/session", json={"username": "a", "password": "b"})
        assert reply.status_code == 404
        assert client.get("/auth/csrf").status_code == 404


# -- what the security review of the first version found -----------------------------------


def test_a_new_login_over_a_dead_cookie_keeps_its_new_cookie(browser: Browser) -> None:
    """The clearing of a dead session cookie must not come after the new one (browsers
    apply Set-Cookie in order), and a dead cookie needs no CSRF token: it authenticates
    nothing."""
    browser.login()
    session = browser.get("/auth/sessions").json()["items"][0]["id"]
    assert browser.admin.revoke_session("alice", session)
    reply = browser.client.post(
        "/auth/session", json={"username": "alice", "password": "correct horse 1"}
    )
    assert reply.status_code == 200, reply.text
    set_cookies = reply.headers.get_list("set-cookie")
    sessions = [c for c in set_cookies if c.startswith("__Host-authgate_session=")]
    assert len(sessions) == 1 and "Max-Age=0" not in sessions[0]
    assert browser.get("/page").json()["user"] == "alice"


def test_a_logged_in_browser_logging_in_again_ends_its_old_session(browser: Browser) -> None:
    browser.login()
    first = browser.get("/auth/sessions").json()["items"][0]["id"]
    browser.login("bob", "correct horse 2")
    assert [s.id for s in browser.admin.list_sessions("alice")] == []
    assert first not in [s.id for s in browser.admin.list_sessions("bob")]


def test_a_session_cookie_is_never_a_header_and_a_token_never_the_cookie(
    browser: Browser,
) -> None:
    reply = browser.login()
    cookie = browser.cookies.get("__Host-authgate_session")
    browser.cookies.clear()
    header = browser.get("/page", headers={"authorization": f"Bearer {cookie}"})
    assert header.status_code == 401
    pair = browser.post("/auth/login", json={"username": "alice", "password": "correct horse 1"})
    access = pair.json()["access_token"]
    slot = browser.get("/public", headers={"cookie": f"__Host-authgate_session={access}"})
    assert slot.status_code == 200 and slot.json()["user"] == ""  # not a credential
    assert reply.status_code == 200


def test_csrf_tokens_are_masked_afresh_and_all_verify(browser: Browser, notes: Notes) -> None:
    browser.login()
    tokens = {browser.get("/page").json()["csrf"] for _ in range(3)}
    assert len(tokens) == 3  # no two pages carry the same bytes (BREACH)
    for i, token in enumerate(sorted(tokens)):
        assert browser.post("/notes", data={"n": str(i), "csrf_token": token}).status_code == 200
    assert len(notes.items) == 3


def test_a_large_upload_with_the_token_first_passes_and_reaches_the_app_whole(
    browser: Browser, notes: Notes
) -> None:
    token = browser.login().json()["csrf_token"]
    blob = b"x" * (300 * 1024)  # past the head the middleware reads
    reply = browser.post("/notes", data={"csrf_token": token}, files={"f": ("f.bin", blob)})
    assert reply.status_code == 200
    assert len(notes.items[0][1]) > len(blob)  # the app read every byte
    late = browser.post("/notes", files={"f": ("f.bin", blob)}, data={"z_csrf": "x"})
    assert late.status_code == 403


@pytest.mark.parametrize(
    "body",
    [
        b"--B\r\nContent-Type: multipart/mixed; boundary=C\r\n\r\n" + b"--C\r\n" * 20000,
        b"--B\r\n\r\n\r\n" * 8000,
        b"--B" + b"\r\n" * 30000,
        b"\xff\xfe" * 30000,
    ],
)
def test_hostile_form_bodies_are_a_missing_token_not_an_error(
    browser: Browser, notes: Notes, body: bytes
) -> None:
    browser.login()
    reply = browser.post(
        "/notes", content=body, headers={"content-type": "multipart/form-data; boundary=B"}
    )
    assert reply.status_code == 403 and notes.items == []


def test_a_next_outside_ascii_is_encoded_not_a_500(browser: Browser) -> None:
    token = browser.get("/auth/csrf").json()["csrf_token"]
    form = {
        "username": "alice",
        "password": "correct horse 1",
        "csrf_token": token,
        "next": "/caf\u00e9?q=\u2028x",
    }
    reply = browser.post("/auth/session", data=form)
    assert reply.status_code == 303
    assert reply.headers["location"] == "/caf%C3%A9?q=%E2%80%A8x"


def test_forms_are_refused_when_cookie_sessions_are_off() -> None:
    from authgate.mail import MemorySender, Outbox

    gate = Gate(
        hasher=cheap_hasher(),
        store="memory://",
        secret_key=SECRET,
        public_url="https://app.example",
        mail_url="memory://",
        outbox=Outbox(MemorySender()),
    )
    app = AuthGateWSGIMiddleware(_wsgi_app(Notes()), gate, api=True)
    with httpx.Client(transport=httpx.WSGITransport(app=app), base_url=BASE) as client:
        reply = client.post("/auth/password/forgot", data={"username": "alice"})
        assert reply.status_code == 415  # another site could post it: no CSRF check here
        assert client.post("/auth/password/forgot", json={"username": "a"}).status_code == 202
