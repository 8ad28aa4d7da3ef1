"""Iggy's user management through the HTTP API: per-resource permissions, status, admin
password resets and a protected root user."""

from __future__ import annotations

import json
from typing import Any

import pytest

from authgate.api import ApiRequest, ApiResponse, HttpApi
from authgate.errors import BadCredentials, ProtectedUser, SessionRevoked
from authgate.gate import Gate
from authgate.identity import ANONYMOUS, Identity
from authgate.testing import cheap_hasher

PW = "user password 1"


@pytest.fixture
def gate() -> Gate:
    g = Gate(
        store="memory://",
        hasher=cheap_hasher(),
        protect_root=True,
        superuser_username="root",
        superuser_password="root password 1",
        secret_key="iggy-style-secret-key-that-is-long-enough",
    )
    g.ensure_superuser()
    g.create_user("second", PW, roles=["admin"])
    g.create_user("ivy", PW, roles=["viewer"])
    return g


def call(gate: Gate, method: str, path: str, who: Identity, body: Any = None) -> ApiResponse:
    raw = json.dumps(body).encode() if body is not None else b""
    response = gate.run(HttpApi.for_gate(gate).answer(ApiRequest(method, path, who, raw)))
    assert response is not None
    return response


def me(gate: Gate, name: str, password: str = PW) -> Identity:
    return gate.authenticate(gate.login(name, password).access_token)


def test_per_resource_permissions(gate: Gate) -> None:
    admin = me(gate, "second")
    grants = ["streams:read", "streams/1:send", "streams/2/topics/7:poll"]
    r = call(gate, "PUT", "/api/users/ivy/permissions", admin, {"permissions": grants})
    assert r.status == 200
    assert r.data()["permissions"] == sorted(grants)
    ivy = me(gate, "ivy")
    assert ivy.can("streams/1/topics/9:send")  # a stream grant covers its topics
    assert ivy.can("streams/2/topics/7:poll")
    assert not ivy.can("streams/2/topics/8:poll")
    assert not ivy.can("streams/3:send")
    assert ivy.can("streams/5:read")  # global: streams and everything below
    bad = call(gate, "PUT", "/api/users/ivy/permissions", admin, {"permissions": ["no colon"]})
    assert (bad.status, bad.data()["error"]) == (400, "invalid_request")
    denied = call(gate, "PUT", "/api/users/ivy/permissions", ivy, {"permissions": []})
    assert (denied.status, denied.data()["error"]) == (403, "forbidden")
    assert me(gate, "ivy").can("streams/1:send")  # the refused call changed nothing


def test_status_active_inactive(gate: Gate) -> None:
    admin = me(gate, "second")
    pair = gate.login("ivy", PW)
    r = call(gate, "PATCH", "/api/users/ivy", admin, {"status": "inactive"})
    assert r.status == 200 and r.data()["status"] == "inactive"
    anonymous = refused(gate, pair.access_token)
    r = call(gate, "GET", "/auth/me", anonymous)
    assert (r.status, r.data()["error"]) == (401, "not_authenticated")
    r = call(gate, "PATCH", "/api/users/ivy", admin, {"status": "asleep"})
    assert (r.status, r.data()["error"]) == (400, "invalid_request")
    assert r.data()["detail"] == "field 'status' must be 'active' or 'inactive'"
    assert call(gate, "PATCH", "/api/users/ivy", admin, {"status": "active"}).data()["status"] == (
        "active"
    )


def refused(gate: Gate, token: str) -> Identity:
    """Assert the token's session is revoked (nothing else) and return who the request
    is then: anonymous."""
    with pytest.raises(SessionRevoked):
        gate.authenticate(token)
    return ANONYMOUS


def test_admin_password_reset(gate: Gate) -> None:
    admin = me(gate, "second")
    old = gate.login("ivy", PW)
    short = call(gate, "PUT", "/api/users/ivy/password", admin, {"password": "short"})
    assert (short.status, short.data()["error"]) == (400, "invalid_password")
    assert gate.authenticate(old.access_token).username == "ivy"  # refused: nothing ended
    assert (
        call(gate, "PUT", "/api/users/ivy/password", admin, {"password": "brand new pw 1"}).status
        == 204
    )
    refused(gate, old.access_token)
    with pytest.raises(BadCredentials):
        gate.login("ivy", PW)
    assert me(gate, "ivy", "brand new pw 1").username == "ivy"
    viewer = me(gate, "ivy", "brand new pw 1")
    hijack = call(gate, "PUT", "/api/users/second/password", viewer, {"password": "hijack pw 12"})
    assert (hijack.status, hijack.data()["error"]) == (403, "forbidden")
    with pytest.raises(BadCredentials):
        gate.login("second", "hijack pw 12")
    assert me(gate, "second").username == "second"


def test_root_user_cannot_be_deleted_disabled_or_demoted(gate: Gate) -> None:
    admin = me(gate, "second")  # another admin exists, so this is not the last-admin rule
    for method, body in (
        ("DELETE", None),
        ("PATCH", {"enabled": False}),
        ("PATCH", {"status": "inactive"}),
        ("PATCH", {"role": "viewer"}),
    ):
        r = call(gate, method, "/api/users/root", admin, body)
        assert r.status == 409, (method, body)
        assert r.data()["error"] == "protected_user"
        root = call(gate, "GET", "/api/users/root", admin).data()
        assert (root["status"], root["role"]) == ("active", "admin")
    with pytest.raises(ProtectedUser):
        gate.delete_user("root")
    assert call(gate, "PATCH", "/api/users/root", admin, {"email": "r@x.org"}).status == 200
    assert call(gate, "DELETE", "/api/users/ivy", admin).status == 204
