"""API-key creation at its edges: name and lifetime bounds, the secret's strength, what is
recorded and audited (found by mutation testing, docs/mutation.md)."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from authgate.errors import ValidationError
from authgate.gate import Gate
from authgate.identity import Identity
from authgate.sessions import Client
from authgate.testing import cheap_hasher
from conftest import SECRET

PW = "correct horse battery"
TEN_YEARS = 10 * 365 * 86400


@pytest.fixture
def gate() -> Gate:
    g = Gate(store="memory://", hasher=cheap_hasher(), secret_key=SECRET)
    g.create_user("alice", PW, roles=["operator"])
    return g


@pytest.fixture
def alice(gate: Gate) -> Identity:
    return gate.authenticate(gate.login("alice", PW).access_token)


@pytest.mark.parametrize(
    ("name", "ok"), [("", False), ("k", True), ("k" * 100, True), ("k" * 101, False)]
)
def test_a_key_name_is_1_to_100_characters(
    gate: Gate, alice: Identity, name: str, ok: bool
) -> None:
    if ok:
        assert gate.create_api_key(alice, name)[1].name == name
    else:
        with pytest.raises(ValidationError, match="1 to 100 characters"):
            gate.create_api_key(alice, name)


@pytest.mark.parametrize(
    ("seconds", "ok"), [(59, False), (60, True), (TEN_YEARS, True), (TEN_YEARS + 1, False)]
)
def test_a_key_lives_60_seconds_to_10_years(
    gate: Gate, alice: Identity, seconds: int, ok: bool
) -> None:
    if not ok:
        with pytest.raises(ValidationError, match="60 seconds to 10 years"):
            gate.create_api_key(alice, "k", expires_in=seconds)
        return
    _, key = gate.create_api_key(alice, "k", expires_in=seconds)
    assert key.expires_at is not None
    assert key.expires_at - key.created_at == timedelta(seconds=seconds)


def test_a_key_carries_256_bits_of_secret_and_a_bad_grant_names_the_field(
    gate: Gate, alice: Identity
) -> None:
    raw, key = gate.create_api_key(alice, "k")
    secret = raw.removeprefix(f"agk_{key.id}_")
    assert len(secret) == 43  # token_urlsafe(32): 32 random bytes
    with pytest.raises(ValidationError) as info:
        gate.create_api_key(alice, "k", ["no colon"])
    assert info.value.field == "permissions"
    assert info.value.detail == "invalid permission 'no colon': expected 'resource:action'"


def test_a_key_records_where_it_was_made_within_bounds_and_is_audited(
    gate: Gate, alice: Identity, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="authgate.audit")
    client = Client("2001:db8::" + "1" * 70, "agent/" + "x" * 300)
    _, key = gate.create_api_key(alice, "deploy", client=client)
    stored = gate.store.get_session(key.id)
    assert stored is not None
    assert stored.client_ip == client.ip[:64] and stored.user_agent == client.user_agent[:256]
    audit = [getattr(r, "audit", {}) for r in caplog.records]
    (event,) = [a for a in audit if a.get("event") == "api_key_created"]
    assert (event["username"], event["session_id"], event["client_ip"], event["detail"]) == (
        "alice",
        key.id,
        client.ip,
        "deploy",
    )


def test_a_key_of_a_user_disabled_behind_the_gates_back_is_refused(
    gate: Gate, alice: Identity
) -> None:
    from authgate.errors import SessionRevoked

    raw, _ = gate.create_api_key(alice, "k")
    assert gate.authenticate(raw).username == "alice"
    user = gate.store.get_user("alice")
    assert user is not None
    gate.store.update_user(user.changed(enabled=False), user.version)
    with pytest.raises(SessionRevoked):
        gate.authenticate(raw)


def test_a_key_identity_names_its_user_and_key_and_marks_its_use(
    gate: Gate, alice: Identity
) -> None:
    raw, key = gate.create_api_key(alice, "k")
    stored = gate.store.get_session(key.id)
    assert stored is not None
    gate.store.touch_session(key.id, stored.last_seen - timedelta(hours=2))
    who = gate.authenticate(raw)
    assert (who.claims["sub"], who.claims["sid"]) == ("alice", key.id)
    used = gate.store.get_session(key.id)
    assert used is not None and used.last_seen > stored.last_seen - timedelta(minutes=1)
