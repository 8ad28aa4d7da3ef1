"""Audit events for user administration and refusals, from every path, through logging."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import pytest
from click.testing import CliRunner

from authgate import audit
from authgate.api import ApiRequest, HttpApi
from authgate.audit import JSONFormatter, configure_logging
from authgate.cli import main
from authgate.decorators import check, check_object_permission
from authgate.errors import ConfigError, PermissionDenied
from authgate.gate import Gate
from authgate.permissions import HasPermission
from authgate.testing import cheap_hasher
from conftest import SECRET

PW = "correct horse battery"
CHEAP = {
    "AUTHGATE_ARGON2_TIME_COST": "1",
    "AUTHGATE_ARGON2_MEMORY_COST": "8",
    "AUTHGATE_ARGON2_PARALLELISM": "1",
}


def events(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [r.audit for r in caplog.records if r.name == "authgate.audit" and hasattr(r, "audit")]


@pytest.fixture
def gate() -> Gate:
    g = Gate(store="memory://", hasher=cheap_hasher(), secret_key=SECRET)
    g.create_user("root", PW, roles=["admin"])
    return g


def api(gate: Gate, method: str, path: str, body: Any = None, who: str = "root") -> int:
    identity = gate.authenticate(gate.login(who, PW).access_token)
    raw = json.dumps(body).encode() if body is not None else b""
    response = gate.run(HttpApi.for_gate(gate).answer(ApiRequest(method, path, identity, raw)))
    assert response is not None
    return response.status


def test_every_user_change_over_http_says_who_changed_what(
    gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="authgate.audit")
    assert api(gate, "POST", "/api/users", {"username": "bob", "password": PW}) == 201
    assert api(gate, "PATCH", "/api/users/bob", {"role": "operator", "email": "b@x.io"}) == 200
    assert api(gate, "PATCH", "/api/users/bob", {"enabled": False}) == 200
    assert api(gate, "PUT", "/api/users/bob/password", {"password": "another pw 1"}) == 204
    assert api(gate, "DELETE", "/api/users/bob") == 204
    seen = [(e["event"], e["username"], e["actor"], e["detail"]) for e in events(caplog)]
    admin = [s for s in seen if s[1] == "bob"]
    assert admin == [
        ("user_created", "bob", "root", "roles=-"),
        ("user_updated", "bob", "root", "roles: - -> operator; email"),
        ("user_updated", "bob", "root", "enabled: true -> false"),
        ("password_reset", "bob", "root", ""),
        ("user_deleted", "bob", "root", "roles=operator"),
    ]
    text = caplog.text
    assert PW not in text and "another pw 1" not in text and "$argon2" not in text


def test_an_admin_ending_someone_elses_sessions_and_keys_is_the_actor(
    gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    gate.create_user("bob", PW)
    first, second = gate.login("bob", PW), gate.login("bob", PW)
    bob = gate.authenticate(second.access_token)
    _, key = gate.create_api_key(bob, "ci")
    caplog.set_level(logging.INFO, logger="authgate.audit")
    assert api(gate, "DELETE", f"/api/users/bob/sessions/{first.session_id}") == 204
    assert api(gate, "DELETE", f"/api/users/bob/sessions/{key.id}") == 404  # a key, not a login
    assert api(gate, "DELETE", f"/api/users/bob/keys/{key.id}") == 204
    assert api(gate, "DELETE", "/api/users/bob/sessions") == 200
    assert api(gate, "GET", "/api/users/root/sessions", who="bob") == 403
    seen = [
        (e["event"], e["username"], e["actor"])
        for e in events(caplog)
        if e["username"] == "bob" and e["event"].endswith("revoked")
    ]
    assert seen == [
        ("session_revoked", "bob", "root"),
        ("api_key_revoked", "bob", "root"),
        ("session_revoked", "bob", "root"),
    ]


def test_changes_from_python_and_the_cli_are_audited_too(
    gate: Gate, caplog: pytest.LogCaptureFixture, tmp_path: Any
) -> None:
    caplog.set_level(logging.INFO, logger="authgate.audit")
    gate.create_user("carol", PW)
    gate.update_user("carol", roles=["viewer"])
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()
    done = runner.invoke(
        main, ["--store", url, "users", "create", "dan", "--no-password"], env=CHEAP
    )
    assert done.exit_code == 0, done.output
    assert runner.invoke(main, ["--store", url, "users", "delete", "dan", "--yes"]).exit_code == 0
    seen = [(e["event"], e["username"], e["actor"]) for e in events(caplog)]
    assert ("user_created", "carol", "") in seen
    assert ("user_updated", "carol", "") in seen
    assert ("user_created", "dan", "cli") in seen
    assert ("user_deleted", "dan", "cli") in seen


@dataclass
class Doc:
    id: str
    owner: str


def test_refusals_say_what_was_required_of_whom_and_where(
    gate: Gate, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="authgate.audit")  # first: INFO not recorded
    gate.create_user("eve", PW, roles=["viewer"])
    eve = gate.authenticate(gate.login("eve", PW).access_token)
    with pytest.raises(PermissionDenied):
        check(HasPermission("items:delete"), eve)
    with pytest.raises(PermissionDenied):
        check_object_permission(Doc("d7", "root"), "delete", HasPermission("docs:delete"), eve)
    assert api(gate, "GET", "/api/users", who="eve") == 403
    denied = [
        (e["username"], e["detail"]) for e in events(caplog) if e["event"] == "permission_denied"
    ]
    assert denied == [
        ("eve", "requires items:delete permission"),
        ("eve", "requires delete: docs:delete permission on Doc d7"),
        ("eve", "requires the admin role on /api/users"),
    ]
    assert all(r.levelname == "WARNING" for r in caplog.records if r.name == "authgate.audit")


def test_refusals_reach_the_gates_subscribers_through_every_face() -> None:
    """A guard runs without a Gate at hand: the middlewares and ``handle_api`` bind
    theirs, so an alerting subscriber hears of a refused guard too, not only the log."""
    import asyncio

    import httpx
    from webtest import TestApp

    from authgate.decorators import require_permission
    from authgate.gate import AsyncGate
    from authgate.middleware.asgi import AuthGateMiddleware
    from authgate.middleware.wsgi import AuthGateWSGIMiddleware

    sync_gate = Gate(store="memory://", hasher=cheap_hasher(), secret_key=SECRET)
    async_gate = AsyncGate(store="memory://", hasher=cheap_hasher(), secret_key=SECRET)
    heard: list[tuple[str, str, str]] = []
    for g in (sync_gate, async_gate):
        g.audit.subscribe(lambda e: heard.append((e.event, e.username, e.detail)))
    sync_gate.create_user("eve", PW, roles=["viewer"])
    token = sync_gate.login("eve", PW).access_token

    @require_permission("items:delete")
    def wsgi_app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [b"deleted"]

    served = TestApp(AuthGateWSGIMiddleware(wsgi_app, gate=sync_gate))
    assert served.get("/", headers={"Authorization": f"Bearer {token}"}, status=403)
    assert api(sync_gate, "GET", "/api/users", who="eve") == 403

    @require_permission("items:delete")
    async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"deleted"})

    async def over_asgi() -> int:
        await async_gate.create_user("eve", PW, roles=["viewer"])
        pair = await async_gate.login("eve", PW)
        transport = httpx.ASGITransport(app=AuthGateMiddleware(asgi_app, gate=async_gate))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            auth = {"Authorization": f"Bearer {pair.access_token}"}
            return (await client.get("/", headers=auth)).status_code

    assert asyncio.run(over_asgi()) == 403
    denied = [h for h in heard if h[0] == "permission_denied"]
    assert denied == [
        ("permission_denied", "eve", "requires items:delete permission"),
        ("permission_denied", "eve", "requires the admin role on /api/users"),
        ("permission_denied", "eve", "requires items:delete permission"),
    ]


def test_the_json_formatter_writes_one_object_with_time_level_and_fields() -> None:
    record = logging.LogRecord("authgate.audit", logging.WARNING, __file__, 1, "x %s", ("y",), None)
    record.audit = {"event": "user_deleted", "username": "bob", "actor": "root"}
    out = json.loads(JSONFormatter().format(record))
    assert out["level"] == "WARNING" and out["logger"] == "authgate.audit"
    assert out["message"] == "x y" and out["event"] == "user_deleted" and out["actor"] == "root"
    assert out["time"][:2] == "20"


def test_logging_is_configured_only_where_the_application_did_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    package = logging.getLogger("authgate")
    root = logging.getLogger()
    monkeypatch.setattr(audit, "_installed", None)
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(package, "handlers", [])
    assert configure_logging("none") is None and package.handlers == []
    handler = configure_logging("json")
    assert handler is not None and package.handlers == [handler]
    assert isinstance(handler.formatter, JSONFormatter)
    assert configure_logging("text") is handler  # once per process
    monkeypatch.setattr(audit, "_installed", None)
    monkeypatch.setattr(package, "handlers", [])
    monkeypatch.setattr(root, "handlers", [logging.NullHandler()])
    assert configure_logging("text") is None  # the application's own config wins
    with pytest.raises(ConfigError, match="log_format"):
        Gate(store="memory://", secret_key=SECRET, log_format="xml")


def test_an_api_with_no_audit_log_of_its_own_keeps_the_one_bound_around_it() -> None:
    """An `HttpApi` made without an audit log, answering inside a middleware that bound
    its gate's: a guard's refusal still reaches that log's subscribers."""
    gate = Gate(store="memory://", secret_key=SECRET, hasher=cheap_hasher())
    gate.create_user("eve", PW, roles=["viewer"])
    heard: list[str] = []
    gate.audit.subscribe(lambda event: heard.append(event.event))
    api = HttpApi.for_gate(gate)
    api.audit = None
    identity = gate.authenticate(gate.login("eve", PW).access_token)
    bound = audit.bind_audit_log(gate.audit)
    try:
        response = gate.run(api.answer(ApiRequest("GET", "/api/users", identity)))
    finally:
        audit.unbind_audit_log(bound)
    assert response is not None and response.status == 403
    assert heard.count("permission_denied") == 1
    gate.close()
