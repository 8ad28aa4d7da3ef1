"""Iggy's user management through the HTTP API: per-resource permissions, status, admin
password resets and a protected root user."""

from __future__ import annotations

import json
from typing import Any

import pytest

from authgate.api import ApiRequest, ApiResponse
from authgate.errors import ProtectedUser
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
    response = gate.handle_api(ApiRequest(method, path, who, raw))
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
    assert bad.status == 400
    assert call(gate, "PUT", "/api/users/ivy/permissions", ivy, {"permissions": []}).status == 403


def test_status_active_inactive(gate: Gate) -> None:
    admin = me(gate, "second")
    pair = gate.login("ivy", PW)
    r = call(gate, "PATCH", "/api/users/ivy", admin, {"status": "inactive"})
    assert r.status == 200 and r.data()["status"] == "inactive"
    assert call(gate, "GET", "/auth/me", gate_identity(gate, pair.access_token)).status == 401
    assert call(gate, "PATCH", "/api/users/ivy", admin, {"status": "asleep"}).status == 400
    assert call(gate, "PATCH", "/api/users/ivy", admin, {"status": "active"}).data()["status"] == (
        "active"
    )


def gate_identity(gate: Gate, token: str) -> Identity:
    try:
        return gate.authenticate(token)
    except Exception:
        return ANONYMOUS


def test_admin_password_reset(gate: Gate) -> None:
    admin = me(gate, "second")
    old = gate.login("ivy", PW)
    assert call(gate, "PUT", "/api/users/ivy/password", admin, {"password": "short"}).status == 400
    assert (
        call(gate, "PUT", "/api/users/ivy/password", admin, {"password": "brand new pw 1"}).status
        == 204
    )
    assert gate_identity(gate, old.access_token) is ANONYMOUS
    assert me(gate, "ivy", "brand new pw 1").username == "ivy"
    viewer = me(gate, "ivy", "brand new pw 1")
    assert (
        call(gate, "PUT", "/api/users/second/password", viewer, {"password": "hijack pw 12"}).status
        == 403
    )


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
    with pytest.raises(ProtectedUser):
        gate.delete_user("root")
    assert call(gate, "PATCH", "/api/users/root", admin, {"email": "r@x.org"}).status == 200
    assert call(gate, "DELETE", "/api/users/ivy", admin).status == 204
