"""Hostile input: nesting that exhausts the stack, ambiguous credentials, outage answers.

Each case here was once a 500 (or a silently chosen credential); now each is a 400 or
401 with a `detail` that says what is wrong, or a 503 that says when to retry and
nothing about where the store lives.  The fuzzing of every parser is in test_fuzz.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
import webtest

from authgate import documents
from authgate.api import ApiRequest, HttpApi
from authgate.errors import (
    AmbiguousCredentials,
    ConfigError,
    MalformedToken,
    PermissionDenied,
    StoreUnavailable,
)
from authgate.gate import AsyncGate, Gate
from authgate.http import CredentialRules, error_response, parse_authorization, read_credential
from authgate.middleware.asgi import AuthGateApi, AuthGateMiddleware
from authgate.middleware.wsgi import AuthGateWSGIMiddleware
from authgate.permissions import RolePolicy
from authgate.registry import PermissionRegistry
from authgate.static import StaticAccess
from authgate.stores import MemoryStore, SyncStoreAsAsync
from authgate.testing import cheap_hasher
from authgate.types import Receive, Scope, Send, StartResponse, WSGIEnviron
from conftest import SECRET

PW = "correct horse battery"
DEEP = "[" * 1000
COOKIES = CredentialRules(cookie_name="session")


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def signed(header: str, payload: str) -> str:
    """A token signed with the gate's own secret around any header and payload text."""
    signing_input = f"{b64(header.encode())}.{b64(payload.encode())}"
    mac = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


@pytest.fixture
def gate() -> Gate:
    g = Gate(store="memory://", hasher=cheap_hasher(), secret_key=SECRET)
    g.create_user("alice", PW, roles=["admin"])
    return g


# -- nesting ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        f"{b64(DEEP.encode())}.e30.c2ln",
        signed('{"alg":"HS256","typ":"at+jwt"}', DEEP),
        signed('{"alg":"HS256","typ":"at+jwt"}', '{"sub": ' + "[" * 40 + "]" * 40 + "}"),
    ],
    ids=["header", "signed-payload", "40-levels"],
)
def test_a_deeply_nested_token_is_malformed_not_a_crash(gate: Gate, token: str) -> None:
    with pytest.raises(MalformedToken, match="not valid JSON"):
        gate.authenticate(token)


def test_nesting_is_bounded_and_strings_do_not_count() -> None:
    assert documents.loads("[" * 32 + "]" * 32) is not None
    with pytest.raises(ValueError, match="deeper than 32"):
        documents.loads("[" * 33 + "]" * 33)
    text = json.dumps({"note": "[" * 500, "q": '"[{' * 50})
    assert documents.loads(text)["note"] == "[" * 500
    with pytest.raises(ValueError, match="deeper than 3"):
        documents.loads(b'{"a": {"b": {"c": []}}}', max_depth=3)


@pytest.mark.parametrize("path", ["/auth/login", "/api/users", "/auth/refresh", "/auth/keys"])
def test_a_deeply_nested_body_is_a_400_on_every_route(gate: Gate, path: str) -> None:
    who = gate.authenticate(gate.login("alice", PW).access_token)
    response = gate.run(HttpApi.for_gate(gate).answer(ApiRequest("POST", path, who, DEEP.encode())))
    assert response is not None
    assert (response.status, response.data()["error"]) == (400, "invalid_request")
    assert "not valid JSON" in response.data()["detail"]


async def test_a_deeply_nested_body_over_asgi_is_a_400() -> None:
    gate = _async_gate()
    app = AuthGateMiddleware(AuthGateApi(None, gate), gate=gate)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        r = await c.post("/auth/login", content=DEEP)
        assert r.status_code == 400
        t = await c.get("/x", headers={"authorization": "Bearer " + b64(DEEP.encode()) + ".e30.x"})
        assert t.status_code == 401
        assert "not valid JSON" in t.json()["detail"]


LOADERS = {
    "policy": RolePolicy.from_file,
    "static-users": StaticAccess.from_file,
    "fixture": PermissionRegistry.from_fixture,
}
#: Policies and static users come as JSON, YAML or TOML; fixtures as JSON only.
FILE_CASES = [(k, s) for k in LOADERS for s in (".json", ".yaml", ".toml")]
FILE_CASES = [(k, s) for k, s in FILE_CASES if k != "fixture" or s == ".json"]


@pytest.mark.parametrize(("kind", "suffix"), FILE_CASES)
def test_a_deeply_nested_or_broken_file_names_itself(
    tmp_path: Path, kind: str, suffix: str
) -> None:
    load: Any = LOADERS[kind]
    text = {".json": DEEP, ".yaml": "a: " + DEEP, ".toml": "a = " + DEEP}[suffix]
    file = tmp_path / f"bad{suffix}"
    file.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(file)
    assert str(file) in str(info.value)


def test_malformed_yaml_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    file = tmp_path / "policy.yaml"
    file.write_text("roles:\n  viewer: [items:read\n  admin: '*:*'\n")
    with pytest.raises(ConfigError) as info:
        RolePolicy.from_file(file)
    assert str(file) in str(info.value)
    assert "\n" not in str(info.value)


# -- ambiguous credentials ----------------------------------------------------------------


def read(authorization: str | None = None, cookie: str | None = None, **kw: Any) -> str | None:
    return read_credential(
        authorization=authorization,
        cookie=cookie,
        csrf=kw.get("csrf"),
        method=kw.get("method", "GET"),
        query="",
        websocket=False,
        rules=COOKIES,
    )


@pytest.mark.parametrize(
    "value",
    [
        "Bearer aaa, Bearer bbb",
        "Bearer aaa,bearer aaa",
        "ApiKey agk_1_x, Bearer b",
        "Bearer a, apikey b",
    ],
)
def test_two_authorization_values_joined_by_a_server_are_refused(value: str) -> None:
    with pytest.raises(AmbiguousCredentials):
        parse_authorization(value)


def test_a_haystack_header_with_parameters_is_not_mistaken_for_two() -> None:
    assert parse_authorization("BEARER authToken=abc.def, other=1") == "abc.def"


@pytest.mark.parametrize(
    "cookie",
    [
        "session=a; session=b",
        "session=a; x=1; session=a",
        "authgate_csrf=1; session=a; authgate_csrf=2",
    ],
)
def test_a_session_or_csrf_cookie_sent_twice_is_refused(cookie: str) -> None:
    with pytest.raises(AmbiguousCredentials, match="more than once"):
        read(cookie=cookie)


def test_other_cookies_may_repeat() -> None:
    assert read(cookie="theme=dark; session=tok; theme=light") == "tok"


def test_a_header_and_a_cookie_that_disagree_are_refused() -> None:
    with pytest.raises(AmbiguousCredentials, match="different credentials"):
        read("Bearer one", "session=two")
    # the same credential twice is one credential (and the header needs no CSRF token)
    assert read("Bearer one", "session=one", method="POST") == "one"
    # a cookie-only POST still needs its CSRF token
    with pytest.raises(PermissionDenied, match="CSRF"):
        read(None, "session=one", method="POST")


def test_a_lone_surrogate_in_a_cookie_or_csrf_header_is_refused_not_a_crash() -> None:
    with pytest.raises(PermissionDenied, match="CSRF"):
        read(None, "session=a; authgate_csrf=\udcff", csrf="\udcfe", method="POST")
    with pytest.raises(AmbiguousCredentials):
        read("Bearer one", "session=\udcff")


def _async_gate() -> AsyncGate:
    return AsyncGate(
        store=SyncStoreAsAsync(MemoryStore()), hasher=cheap_hasher(), secret_key=SECRET
    )


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": scope["user"].username.encode()})


async def test_two_authorization_headers_over_asgi_are_a_400() -> None:
    gate = _async_gate()
    await gate.create_user("alice", PW)
    token = (await gate.login("alice", PW)).access_token
    app = AuthGateMiddleware(echo, gate=gate, rules=COOKIES)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as c:
        one = await c.get("/", headers={"authorization": f"Bearer {token}"})
        assert (one.status_code, one.text) == (200, "alice")
        twice = [("authorization", f"Bearer {token}")] * 2
        r = await c.get("/", headers=twice)
        assert r.status_code == 400
        assert r.json()["error"] == "ambiguous_credentials"
        assert 'error="invalid_request"' in r.headers["www-authenticate"]
        r = await c.get("/", headers=[("cookie", "session=a"), ("cookie", "session=b")])
        assert (r.status_code, r.json()["error"]) == (400, "ambiguous_credentials")


def test_a_joined_authorization_header_over_wsgi_is_a_400(gate: Gate) -> None:
    def app(environ: WSGIEnviron, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [])
        return [b"ok"]

    token = gate.login("alice", PW).access_token
    client = webtest.TestApp(AuthGateWSGIMiddleware(app, gate, rules=COOKIES))
    assert client.get("/", headers={"Authorization": f"Bearer {token}"}).text == "ok"
    r = client.get("/", headers={"Authorization": f"Bearer {token},Bearer {token}"}, status=400)
    assert r.json["error"] == "ambiguous_credentials"


# -- outages --------------------------------------------------------------------------------


def test_an_outage_answer_says_when_to_retry_and_not_where_the_store_is(
    caplog: pytest.LogCaptureFixture,
) -> None:
    err = StoreUnavailable("cannot reach Redis at 10.1.2.3:6390: Connection refused")
    with caplog.at_level(logging.WARNING, logger="authgate.store"):
        rendered = error_response(err)
    assert rendered.status == 503
    assert ("retry-after", "1") in rendered.headers
    body = json.loads(rendered.body)
    assert body == {
        "error": "store_unavailable",
        "detail": "the authentication store is unavailable; retry shortly",
    }
    assert "10.1.2.3" not in rendered.body.decode()
    assert "10.1.2.3:6390" in caplog.text  # the operator's log has it
    assert str(err) == err.reason and "10.1.2.3" in str(err)


def test_an_outage_is_a_line_in_the_log_every_ten_seconds_not_one_per_request(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from authgate import http

    now = [1000.0]
    monkeypatch.setattr(http, "_outages", http._Throttle(10.0, clock=lambda: now[0]))
    down = StoreUnavailable("cannot reach Redis at 10.9.9.9:6379: Connection refused")
    other = StoreUnavailable("SQLite database '/srv/a.db' is busy: database is locked")
    with caplog.at_level(logging.WARNING, logger="authgate.store"):
        for _ in range(500):  # five seconds of an outage at 100 requests a second
            assert error_response(down).status == 503
            now[0] += 0.01
        error_response(other)  # another reason is news: logged at once
        now[0] += 5.5
        error_response(down)  # ten seconds and a half after the first line
    lines = [r.getMessage() for r in caplog.records if r.name == "authgate.store"]
    assert lines == [
        "answering 503: cannot reach Redis at 10.9.9.9:6379: Connection refused",
        "answering 503: SQLite database '/srv/a.db' is busy: database is locked",
        "answering 503: cannot reach Redis at 10.9.9.9:6379: Connection refused"
        " (499 more since the last such line)",
    ]


def test_an_unreachable_redis_is_a_503_with_retry_after_through_the_gate() -> None:
    from authgate.testing import free_port

    with pytest.raises(StoreUnavailable) as info:
        Gate(store=f"redis://127.0.0.1:{free_port()}/0", secret_key=SECRET)
    rendered = error_response(info.value)
    assert rendered.status == 503 and ("retry-after", "1") in rendered.headers
    assert "127.0.0.1" not in rendered.body.decode()


# -- policy files ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"roles": {"viewer": "items:read"}}, "role 'viewer': permissions must be a list"),
        ({"roles": {"viewer": None}}, "role 'viewer': permissions must be a list"),
        ({"roles": {"viewer": [1]}}, "every permission must be a string"),
        ({"roles": {"order": "viewer"}}, "'roles.order' must be a list"),
        ({"roles": {"order": [None]}}, "role name"),
        ({"role": {"viewer": ["items:read"]}}, "unknown table 'role'"),
        ({"groups": ["lab"]}, "'groups' must be a table"),
        ({"groups": {"lab": "plants:read"}}, "group 'lab': permissions must be a list"),
        ({"roles": {"permissions": {"viewer": ["items"]}}}, "items"),
        ({"roles": {"veiwer": ["items:read"]}}, "unknown role 'veiwer': the roles are"),
        ({"roles": {"order": ["a", "b"], "c": ["x:y"]}}, "unknown role 'c': the roles are a, b"),
    ],
)
def test_a_malformed_policy_is_a_config_error_saying_what(data: Any, message: str) -> None:
    with pytest.raises(ConfigError, match="invalid role policy") as info:
        RolePolicy.from_dict(data)
    assert message in str(info.value)


def test_a_policy_file_error_names_the_file(tmp_path: Path) -> None:
    file = tmp_path / "policy.toml"
    file.write_text('[roles]\nviewer = "items:read"\n')
    with pytest.raises(ConfigError) as info:
        RolePolicy.from_file(file)
    assert str(info.value).startswith(f"{file}: invalid role policy: role 'viewer'")


def test_the_python_api_refuses_unknown_roles_too(gate: Gate) -> None:
    from authgate.errors import ValidationError

    with pytest.raises(ValidationError, match="unknown role 'superadmin'"):
        gate.create_user("mallory", PW, roles=["superadmin"])
    assert gate.store.get_user("mallory") is None
    with pytest.raises(ValidationError, match="unknown role 'root'"):
        gate.update_user("alice", roles=["admin", "root"])
    alice = gate.store.get_user("alice")
    assert alice is not None and alice.roles == {"admin"}


@pytest.mark.parametrize("scheme", ["json", "sqlite"])
def test_three_slashes_before_an_absolute_looking_path_is_an_error_with_the_fix(
    scheme: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``json:///srv/x`` is the relative ``srv/x``: when no ``srv`` is here but ``/srv``
    exists, it was meant absolute; creating ``./srv/x`` would lose the data silently."""
    from authgate.stores import open_store

    monkeypatch.chdir(tmp_path)
    target = tmp_path / "store"
    relative_looking = str(target).lstrip("/")
    with pytest.raises(ConfigError, match="four slashes") as info:
        open_store(f"{scheme}:///{relative_looking}")
    assert f"{scheme}:////{relative_looking}" in str(info.value)
    assert not (tmp_path / relative_looking.split("/")[0]).exists()
    (tmp_path / "here").mkdir()
    suffix = ".db" if scheme == "sqlite" else ""
    open_store(f"{scheme}:///here/store{suffix}").close()  # a real relative path still works
    open_store(f"{scheme}:////{relative_looking}{suffix}").close()
