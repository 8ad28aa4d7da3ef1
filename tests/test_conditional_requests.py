"""Optimistic concurrency in the HTTP API: ETag, If-Match, 412 and 428 (the contract suite
runs the same exchange over every adapter and server)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from authgate.api import ApiRequest, ApiResponse, HttpApi, etag
from authgate.gate import Gate
from authgate.identity import Identity
from authgate.testing import cheap_hasher
from conftest import SECRET

PW = "correct horse battery"


def make_gate(**settings: Any) -> Gate:
    gate = Gate(store="memory://", hasher=cheap_hasher(), secret_key=SECRET, **settings)
    gate.create_user("root", PW, roles=["admin"])
    gate.create_user("bob", PW, roles=["viewer"])
    return gate


def call(gate: Gate, method: str, path: str, body: Any = None, if_match: str = "") -> ApiResponse:
    who: Identity = gate.authenticate(gate.login("root", PW).access_token)
    raw = json.dumps(body).encode() if body is not None else b""
    response = gate.run(
        HttpApi.for_gate(gate).answer(ApiRequest(method, path, who, raw, if_match=if_match))
    )
    assert response is not None
    return response


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PATCH", "/api/users/bob", {"first_name": "B"}),
        ("PUT", "/api/users/bob", {"first_name": "B"}),
        ("PUT", "/api/users/bob/permissions", {"permissions": ["items:read"]}),
        ("PUT", "/api/users/bob/password", {"password": "new password 12"}),
        ("DELETE", "/api/users/bob", None),
    ],
)
def test_a_server_that_requires_if_match_answers_428_and_writes_nothing(
    method: str, path: str, body: Any
) -> None:
    gate = make_gate(require_if_match=True)
    before = gate.store.get_user("bob")
    refused = call(gate, method, path, body)
    assert (refused.status, refused.data()["error"]) == (428, "precondition_required")
    assert gate.store.get_user("bob") == before
    tag = etag(before)  # type: ignore[arg-type]
    assert call(gate, method, path, body, if_match=tag).status in (200, 204)


def test_the_etag_changes_with_every_write_and_with_the_user_itself() -> None:
    gate = make_gate()
    bob = gate.store.get_user("bob")
    assert bob is not None
    assert call(gate, "GET", "/api/users/bob").headers[-1] == ("etag", etag(bob))
    gate.delete_user("bob")
    again = gate.create_user("bob", PW)
    assert again.version == bob.version and etag(again) != etag(bob)
    stale = call(gate, "PATCH", "/api/users/bob", {"first_name": "x"}, if_match=etag(bob))
    assert stale.status == 412


def test_a_write_that_loses_the_race_after_the_check_is_a_412(monkeypatch: Any) -> None:
    """If-Match matched when read, then someone else wrote first: the store's
    compare-and-set refuses, and the client hears 412 (not 409)."""
    gate = make_gate()
    bob = gate.store.get_user("bob")
    assert bob is not None
    original = gate.store.update_user
    raced: list[bool] = []

    def update_after_a_rival(user: Any, expected_version: int) -> Any:
        if not raced:
            raced.append(True)
            rival = gate.store.get_user("bob")
            original(rival.changed(last_name="rival"), rival.version)  # type: ignore[union-attr]
        return original(user, expected_version)

    monkeypatch.setattr(gate.store, "update_user", update_after_a_rival)
    lost = call(gate, "PATCH", "/api/users/bob", {"first_name": "mine"}, if_match=etag(bob))
    assert (lost.status, lost.data()["error"]) == (412, "precondition_failed")
    now = gate.store.get_user("bob")
    assert now is not None and (now.first_name, now.last_name) == ("", "rival")


def test_a_patch_with_a_password_and_fields_is_one_write() -> None:
    """Profile and password change together or not at all (it was two writes)."""
    gate = make_gate()
    bob = gate.store.get_user("bob")
    assert bob is not None
    done = call(gate, "PATCH", "/api/users/bob", {"first_name": "B", "password": "new pw 123"})
    assert done.status == 200
    now = gate.store.get_user("bob")
    assert now is not None and now.version == bob.version + 1
    assert now.first_name == "B" and now.password_hash != bob.password_hash
    gate.login("bob", "new pw 123")
