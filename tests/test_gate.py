"""The Gate: logins, tokens, sessions and lock-out on every backend and both faces."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from authgate.audit import AuditEvent
from authgate.errors import (
    AccountLocked,
    BadCredentials,
    InvalidPassword,
    InvalidToken,
    LastAdminError,
    MalformedToken,
    SessionLimitReached,
    SessionRevoked,
    ValidationError,
)
from authgate.identity import Client, Identity
from authgate.passwords import Argon2Params, PasswordHasher
from authgate.tokens import TokenPair

PW = "correct horse battery"


def assert_live(gate: Any, pair: Any, username: str) -> Identity:
    """`pair` is a real token pair: its access token verifies as `username` in the
    session the pair names, that session is in the store, and the refresh token is
    that session's."""
    assert isinstance(pair, TokenPair)
    assert (pair.token_type, pair.expires_in) == ("bearer", gate.settings.access_ttl)
    who = gate.authenticate(pair.access_token)
    assert isinstance(who, Identity)
    assert (who.username, who.session_id, who.is_authenticated) == (
        username,
        pair.session_id,
        True,
    )
    assert pair.session_id in [s.id for s in gate.list_sessions(username)]
    assert pair.refresh_token.startswith(pair.session_id + ".")
    return who


@pytest.fixture
def gate(make_gate: Any) -> Any:
    g = make_gate(max_login_attempts=3)
    g.create_user("alice", PW, roles=["operator"], email="alice@example.com")
    g.create_user("root", "root password 1", roles=["admin"])
    return g


def test_login_authenticate_refresh_logout(gate: Any) -> None:
    pair = gate.login("ALICE", PW, Client("10.1.2.3", "pytest"))
    assert pair.token_type == "bearer"
    assert pair.expires_in == 900
    who = gate.authenticate(pair.access_token)
    assert (who.username, who.roles, who.session_id) == ("alice", {"operator"}, pair.session_id)
    assert who.is_authenticated
    assert who.email == "alice@example.com"

    again = gate.refresh(pair.refresh_token)
    assert again.refresh_token != pair.refresh_token
    assert again.session_id == pair.session_id
    assert gate.authenticate(again.access_token).username == "alice"

    assert gate.logout(gate.authenticate(again.access_token)) is True
    for token in (pair.access_token, again.access_token):
        with pytest.raises(SessionRevoked):
            gate.authenticate(token)
    with pytest.raises(SessionRevoked):
        gate.refresh(again.refresh_token)


@pytest.mark.parametrize(
    ("username", "password"),
    [("alice", "wrong password"), ("nobody", PW), ("bad name!", PW), ("", ""), ("ab", PW)],
    ids=["wrong-password", "unknown-user", "invalid-username", "empty", "too-short"],
)
def test_every_failed_login_gets_the_same_answer(gate: Any, username: str, password: str) -> None:
    with pytest.raises(BadCredentials) as info:
        gate.login(username, password)
    assert info.value.detail == "invalid username or password"
    assert info.value.status == 401


def test_an_account_without_a_password_must_be_asked_for(gate: Any) -> None:
    """A forgotten password is an error, not an account nobody can log in to; a
    service account for API keys only says ``passwordless=True``."""
    for password, fields in (
        (None, {}),
        (None, {"roles": ["viewer"]}),
        (PW, {"passwordless": True}),
    ):
        with pytest.raises(ValidationError) as refused:
            gate.create_user("svc", password, **fields)
        assert refused.value.field == "password" and "passwordless" in refused.value.detail
        assert _get_user(gate, "svc") is None
    made = gate.create_user("svc", passwordless=True, roles=["viewer"])
    assert (made.username, made.roles, made.password_hash) == ("svc", {"viewer"}, "")
    with pytest.raises(BadCredentials):
        gate.login("svc", "")


def test_disabled_user_cannot_log_in(gate: Any) -> None:
    gate.update_user("alice", enabled=False)
    with pytest.raises(BadCredentials):
        gate.login("alice", PW)


def test_spent_refresh_token_revokes_family(gate: Any) -> None:
    first = gate.login("alice", PW)
    second = gate.refresh(first.refresh_token)
    with pytest.raises(SessionRevoked, match="reuse"):
        gate.refresh(first.refresh_token)
    with pytest.raises(SessionRevoked):
        gate.refresh(second.refresh_token)
    with pytest.raises(SessionRevoked):
        gate.authenticate(second.access_token)


@pytest.mark.parametrize("token", ["", "x", "abc.def", "0" * 32 + ".short", 42, None])
def test_malformed_refresh_token(gate: Any, token: Any) -> None:
    with pytest.raises(MalformedToken):
        gate.refresh(token)


def test_password_change_revokes_other_sessions_only(gate: Any) -> None:
    here = gate.login("alice", PW)
    there = gate.login("alice", PW)
    me = gate.authenticate(here.access_token)
    with pytest.raises(BadCredentials):
        gate.change_password(me, "not the password", "new password 1")
    with pytest.raises(InvalidPassword):
        gate.change_password(me, PW, "short")
    gate.change_password(me, PW, "new password 1")
    assert gate.authenticate(here.access_token).username == "alice"
    with pytest.raises(SessionRevoked):
        gate.authenticate(there.access_token)
    with pytest.raises(BadCredentials):
        gate.login("alice", PW)
    assert_live(gate, gate.login("alice", "new password 1"), "alice")


def test_admin_password_reset_revokes_all_sessions(gate: Any) -> None:
    pair = gate.login("alice", PW)
    gate.set_password("alice", "reset password 1")
    with pytest.raises(SessionRevoked):
        gate.authenticate(pair.access_token)


def test_disable_takes_effect_on_next_authenticate(gate: Any) -> None:
    pair = gate.login("alice", PW)
    gate.authenticate(pair.access_token)
    gate.update_user("alice", enabled=False)
    with pytest.raises(SessionRevoked):
        gate.authenticate(pair.access_token)
    with pytest.raises(SessionRevoked):
        gate.refresh(pair.refresh_token)


def test_delete_takes_effect_on_next_authenticate(gate: Any) -> None:
    pair = gate.login("alice", PW)
    gate.delete_user("alice")
    with pytest.raises(SessionRevoked):
        gate.authenticate(pair.access_token)


def test_role_change_takes_effect_on_next_authenticate(gate: Any) -> None:
    pair = gate.login("alice", PW)
    assert gate.authenticate(pair.access_token).roles == {"operator"}
    gate.update_user("alice", roles=["viewer"])
    assert gate.authenticate(pair.access_token).roles == {"viewer"}


def test_user_recreated_with_same_name_does_not_inherit_tokens(gate: Any) -> None:
    pair = gate.login("alice", PW)
    gate.delete_user("alice")
    gate.create_user("alice", PW)
    with pytest.raises(SessionRevoked):
        gate.authenticate(pair.access_token)


def test_last_admin_cannot_be_deleted_or_demoted(gate: Any) -> None:
    with pytest.raises(LastAdminError):
        gate.delete_user("root")
    with pytest.raises(LastAdminError):
        gate.update_user("root", roles=["viewer"])
    with pytest.raises(LastAdminError):
        gate.delete_user("alice", acting="alice")


def test_list_and_revoke_own_sessions(gate: Any) -> None:
    one = gate.login("alice", PW, Client("10.0.0.1", "phone"))
    two = gate.login("alice", PW, Client("10.0.0.2", "laptop"))
    gate.login("root", "root password 1")
    sessions = gate.list_sessions("alice")
    assert [s.id for s in sessions] == [one.session_id, two.session_id]
    assert [s.user_agent for s in sessions] == ["phone", "laptop"]
    assert "refresh_hash" not in sessions[0].to_public_dict()
    root_session = gate.list_sessions("root")[0].id
    assert not gate.revoke_session("alice", root_session)  # not hers
    assert gate.revoke_session("alice", one.session_id)
    with pytest.raises(SessionRevoked):
        gate.authenticate(one.access_token)
    assert gate.revoke_sessions("alice") == 1
    with pytest.raises(SessionRevoked):
        gate.authenticate(two.access_token)
    assert_live(gate, gate.login("root", "root password 1"), "root")
    assert [s.id for s in gate.list_sessions("alice")] == []


def test_session_limit_evicts_the_oldest(make_gate: Any) -> None:
    gate = make_gate(max_sessions=2)
    gate.create_user("alice", PW)
    first, second, third = (gate.login("alice", PW) for _ in range(3))
    with pytest.raises(SessionRevoked):
        gate.authenticate(first.access_token)
    assert_live(gate, second, "alice")
    assert_live(gate, third, "alice")
    assert [s.id for s in gate.list_sessions("alice")] == [second.session_id, third.session_id]


def test_session_limit_can_refuse_new_logins(make_gate: Any) -> None:
    gate = make_gate(max_sessions=1, session_limit_policy="refuse")
    gate.create_user("alice", PW)
    first = gate.login("alice", PW)
    with pytest.raises(SessionLimitReached):
        gate.login("alice", PW)
    assert_live(gate, first, "alice")
    assert [s.id for s in gate.list_sessions("alice")] == [first.session_id]


def test_lockout_after_max_failures_and_reset_on_success(gate: Any) -> None:
    for _ in range(2):
        with pytest.raises(BadCredentials):
            gate.login("alice", "wrong password")
    assert_live(gate, gate.login("alice", PW), "alice")  # a success resets the count
    for _ in range(3):
        with pytest.raises(BadCredentials):
            gate.login("alice", "wrong password")
    with pytest.raises(AccountLocked) as info:
        gate.login("alice", PW)  # even the right password, while locked
    assert info.value.status == 429
    assert 290 <= info.value.retry_after <= 300
    gate.unlock("alice")
    assert_live(gate, gate.login("alice", PW), "alice")


def test_unknown_users_are_locked_out_like_real_ones(gate: Any) -> None:
    for _ in range(3):
        with pytest.raises(BadCredentials):
            gate.login("ghost", "any password")
    with pytest.raises(AccountLocked):
        gate.login("ghost", "any password")


def test_stateless_mode_trusts_the_token_until_it_expires(make_gate: Any) -> None:
    gate = make_gate(stateless=True)
    gate.create_user("alice", PW, roles=["operator"])
    pair = gate.login("alice", PW)
    gate.revoke_sessions("alice")
    who = gate.authenticate(pair.access_token)  # the documented trade-off
    assert (who.username, who.roles) == ("alice", {"operator"})


def test_tokens_of_another_gate_are_refused(make_gate: Any) -> None:
    mine = make_gate()
    other = make_gate(secret_key="another-secret-key-that-is-long-enough-42")
    mine.create_user("alice", PW)
    pair = mine.login("alice", PW)
    with pytest.raises(InvalidToken):
        other.authenticate(pair.access_token)


def test_login_rehashes_when_parameters_change(make_gate: Any) -> None:
    make_gate().create_user("alice", PW)
    stronger = PasswordHasher(Argon2Params(time_cost=2, memory_cost=16, parallelism=1))
    gate = make_gate(hasher=stronger)
    gate.login("alice", PW)
    user = _get_user(gate, "alice")
    assert "t=2" in user.password_hash
    assert not stronger.needs_rehash(user.password_hash)
    assert_live(gate, gate.login("alice", PW), "alice")


def _get_user(gate: Any, name: str) -> Any:
    if hasattr(gate, "gate"):
        return gate.loop.run_until_complete(gate.gate.store.get_user(name))
    return gate.store.get_user(name)


def test_audit_events_name_who_what_where_and_never_secrets(
    gate: Any, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[AuditEvent] = []
    gate.audit.subscribe(seen.append)
    caplog.set_level(logging.INFO, logger="authgate.audit")
    client = Client("192.0.2.7", "pytest")
    with pytest.raises(BadCredentials):
        gate.login("alice", "wrong password", client)
    pair = gate.login("alice", PW, client)
    again = gate.refresh(pair.refresh_token, client)
    with pytest.raises(SessionRevoked):
        gate.refresh(pair.refresh_token, client)
    second = gate.login("alice", PW, client)
    me = gate.authenticate(second.access_token)
    gate.change_password(me, PW, "new password 1", client)
    gate.logout(me, client)
    gate.revoke_sessions("alice", client)
    for _ in range(3):
        with pytest.raises(BadCredentials):
            gate.login("alice", "wrong again", client)

    kinds = [e.event for e in seen]
    for kind in (
        "login_failure",
        "login_success",
        "refresh",
        "refresh_token_reuse",
        "password_change",
        "logout",
        "sessions_revoked",
        "lockout",
    ):
        assert kind in kinds, kind
    success = next(e for e in seen if e.event == "login_success")
    assert (success.username, success.client_ip, success.session_id) == (
        "alice",
        "192.0.2.7",
        pair.session_id,
    )
    records = [r for r in caplog.records if r.name == "authgate.audit"]
    assert len(records) == len(seen)
    text = " ".join(r.getMessage() + repr(getattr(r, "audit", "")) for r in records)
    text += repr([e.to_dict() for e in seen])
    for secret in (
        PW,
        "new password 1",
        "wrong password",
        pair.access_token,
        pair.refresh_token,
        again.refresh_token,
        "$argon2",
    ):
        assert secret not in text
