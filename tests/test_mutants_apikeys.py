"""API-key creation at its edges: name and lifetime bounds, the secret's strength, what is
recorded and audited (found by mutation testing, docs/mutation.md)."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from authgate.errors import ValidationError
from authgate.gate import Gate
from authgate.identity import Client, Identity
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


# -- a second round (the full run of this session): edges the first did not reach -------


@pytest.fixture
def carl(gate: Gate) -> Identity:
    gate.create_user("carl", PW, permissions=["items:read", "items:create"])
    return gate.authenticate(gate.login("carl", PW).access_token)


def test_a_narrowed_key_identity_holds_its_grants_and_nothing_else(
    gate: Gate, carl: Identity
) -> None:
    raw, _ = gate.create_api_key(carl, "reader", ["items:read"])
    who = gate.authenticate(raw)
    assert who.roles == frozenset() and who.permissions == frozenset({"items:read"})
    assert who.can("items:read") and not who.can("items:create")


def test_a_refused_grant_says_whose_rights_it_exceeds(gate: Gate, carl: Identity) -> None:
    from authgate.errors import PermissionDenied

    with pytest.raises(PermissionDenied) as by_owner:
        gate.create_api_key(carl, "k", ["items:delete"])
    assert by_owner.value.detail == "a key cannot hold items:delete: carl does not hold it"
    raw, _ = gate.create_api_key(carl, "maker", ["account:keys", "items:read"])
    with pytest.raises(PermissionDenied) as by_key:
        gate.create_api_key(gate.authenticate(raw), "k", ["items:create"])
    assert by_key.value.detail == (
        "a key cannot hold items:create: the key making it does not hold it"
    )


def test_a_key_is_marked_used_once_the_touch_interval_has_passed_exactly(
    gate: Gate, alice: Identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import datetime, timezone

    from authgate.flows import apikeys

    start = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
    now = [start]
    monkeypatch.setattr(apikeys, "utcnow", lambda: now[0])
    raw, key = gate.create_api_key(alice, "k")
    assert key.last_used == key.created_at == start  # made now, and used now
    now[0] = start + timedelta(seconds=gate.rules.touch_interval - 1)
    gate.authenticate(raw)
    assert gate.list_api_keys("alice")[0].last_used == start  # within the interval
    now[0] = start + timedelta(seconds=gate.rules.touch_interval)
    gate.authenticate(raw)
    assert gate.list_api_keys("alice")[0].last_used == now[0]


def test_a_recheck_follows_only_the_keys_own_record(gate: Gate, alice: Identity) -> None:
    """A key identity whose key id names another user's key, or a login session of its
    own user, is refused on recheck (its claims could come from a stale socket)."""
    import dataclasses
    from types import MappingProxyType

    from authgate.errors import SessionRevoked

    gate.create_user("bob", PW)
    bob = gate.authenticate(gate.login("bob", PW).access_token)
    raw, _ = gate.create_api_key(alice, "k")
    mine = gate.authenticate(raw)
    assert gate.recheck(mine).username == "alice"
    _, bobs = gate.create_api_key(bob, "b")
    for other in (bobs.id, alice.session_id):
        forged = dataclasses.replace(
            mine, claims=MappingProxyType({**mine.claims, "api_key": other})
        )
        with pytest.raises(SessionRevoked):
            gate.recheck(forged)


def test_a_key_identity_without_account_rights_holds_none() -> None:
    from types import MappingProxyType

    from authgate.errors import PermissionDenied
    from authgate.flows.apikeys import require_account_right

    bare = Identity(username="svc", claims=MappingProxyType({"api_key": "k1"}))
    with pytest.raises(PermissionDenied, match="not created with account:keys"):
        require_account_right(bare, "account:keys")
    require_account_right(Identity(username="svc"), "account:keys")  # a person holds it


def test_revoking_a_key_touches_only_that_users_keys_and_is_audited(
    gate: Gate, alice: Identity
) -> None:
    heard: list[tuple[str, str, str, str]] = []
    gate.audit.subscribe(lambda e: heard.append((e.event, e.username, e.session_id, e.client_ip)))
    _, key = gate.create_api_key(alice, "k")
    assert gate.revoke_api_key("alice", alice.session_id) is False  # a login, not a key
    assert gate.authenticate(gate.login("alice", PW).access_token)
    assert gate.store.get_session(alice.session_id) is not None
    assert gate.revoke_api_key("bob", key.id) is False
    assert gate.revoke_api_key("alice", key.id, Client("198.51.100.4", "cli")) is True
    assert [h for h in heard if h[0] == "api_key_revoked"] == [
        ("api_key_revoked", "alice", key.id, "198.51.100.4")
    ]


def test_a_keys_description_from_a_bare_record_and_its_lifetime_bounds() -> None:
    from datetime import datetime, timezone

    from authgate.flows.apikeys import _NO_EXPIRY, ApiKey
    from authgate.stores.base import Session

    made = datetime(2026, 1, 1, tzinfo=timezone.utc)
    bare = ApiKey.from_session(Session("k1", "u", made + timedelta(days=1), made, made))
    assert (bare.name, bare.permissions, bare.expires_at) == ("", (), made + timedelta(days=1))
    forever = made + _NO_EXPIRY - timedelta(days=1)  # "never", give or take a day
    assert ApiKey.from_session(Session("k2", "u", forever, made, made)).expires_at is None
    nearly = forever - timedelta(seconds=1)
    assert ApiKey.from_session(Session("k3", "u", nearly, made, made)).expires_at == nearly


def test_a_keys_public_description(gate: Gate, alice: Identity) -> None:
    _, key = gate.create_api_key(alice, "k", ["account:sessions"], expires_in=3600)
    assert key.to_public_dict() == {
        "id": key.id,
        "name": "k",
        "permissions": ["account:sessions"],
        "created_at": key.created_at.isoformat(),
        "expires_at": key.expires_at.isoformat() if key.expires_at else "missing",
        "last_used": key.last_used.isoformat(),
    }
    _, forever = gate.create_api_key(alice, "f")
    assert forever.expires_at is None and forever.to_public_dict()["expires_at"] is None
