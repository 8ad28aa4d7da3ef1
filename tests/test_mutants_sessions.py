"""The session layer's details that the end-to-end tests leave open, found by mutation
testing (docs/mutation.md): what a stateless token's claims become."""

from __future__ import annotations

from typing import Any

import pytest

from authgate.flows.identity import identity_from_claims
from authgate.gate import Gate
from authgate.permissions import RolePolicy
from authgate.testing import cheap_hasher
from conftest import SECRET

PW = "correct horse battery"
POLICY = RolePolicy(
    {"viewer": ["items:read"], "operator": ["items:create"], "admin": ["*:*"]},
    groups={"lab": ["plants:read"]},
)


@pytest.fixture
def gate() -> Gate:
    return Gate(
        store="memory://", hasher=cheap_hasher(), secret_key=SECRET, policy=POLICY, stateless=True
    )


def test_a_stateless_identity_carries_every_claim_the_token_holds(gate: Gate) -> None:
    user = gate.create_user(
        "alice", PW, roles=["operator"], groups=["lab"], permissions=["streams/1:send"]
    )
    pair = gate.login("alice", PW)
    who = gate.authenticate(pair.access_token)
    assert (who.username, who.user_id, who.session_id) == ("alice", user.id, pair.session_id)
    assert who.roles == frozenset({"operator"}) and who.groups == frozenset({"lab"})
    assert who.user_version == user.version
    assert who.is_authenticated
    assert who.can("items:create") and who.can("items:read")  # the role and the one below
    assert who.can("plants:read")  # the group
    assert who.can("streams/1:send") and not who.can("streams/2:send")  # the direct grant
    assert not who.can("users:delete")
    assert who.claims["sub"] == "alice" and who.claims["sid"] == pair.session_id
    assert who.grants is not None and who.permissions == who.grants.grants
    assert "streams/1:send" in who.permissions


def claims(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"sub": "bob", "sid": "s1", "ver": 3}
    return {**base, **over}


def test_claims_without_roles_groups_or_grants_give_an_identity_with_none() -> None:
    """A token signed with the key but without the optional claims (an older issuer, a
    tool) is an identity with no roles, groups or grants: never a crash, never more."""
    who = identity_from_claims(POLICY, claims())
    assert (who.roles, who.groups, who.user_id) == (frozenset(), frozenset(), "")
    assert who.permissions == frozenset()
    assert not who.can("items:read")
    assert (who.session_id, who.user_version) == ("s1", 3)


@pytest.mark.parametrize(
    ("given", "can", "cannot"),
    [
        ({"roles": ["viewer"]}, "items:read", "items:create"),
        ({"groups": ["lab"]}, "plants:read", "items:read"),
        ({"perms": ["docs:read"]}, "docs:read", "plants:read"),
    ],
)
def test_each_claim_grants_what_it_names_and_no_more(
    given: dict[str, Any], can: str, cannot: str
) -> None:
    who = identity_from_claims(POLICY, claims(**given))
    assert who.can(can)
    assert not who.can(cannot)
    assert who.roles == frozenset(given.get("roles", ()))
    assert who.groups == frozenset(given.get("groups", ()))


def test_the_user_id_claim_is_a_string_whatever_its_json_type() -> None:
    assert identity_from_claims(POLICY, claims(uid=42)).user_id == "42"


# -- changing one's own password -----------------------------------------------------------


def _audit(caplog: pytest.LogCaptureFixture, event: str) -> list[dict[str, Any]]:
    records = [getattr(r, "audit", {}) for r in caplog.records]
    return [a for a in records if a.get("event") == event]


def test_a_password_change_is_audited_with_its_session_and_what_it_ended(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    from authgate.errors import BadCredentials
    from authgate.identity import Client

    gate = Gate(store="memory://", hasher=cheap_hasher(), secret_key=SECRET)
    gate.create_user("carol", PW)
    other = gate.login("carol", PW)
    mine = gate.login("carol", PW)
    me = gate.authenticate(mine.access_token)
    caplog.set_level(logging.INFO, logger="authgate.audit")
    with pytest.raises(BadCredentials, match="the current password is wrong"):
        gate.change_password(me, "not it", "a new password 1", Client("192.0.2.9"))
    gate.change_password(me, PW, "a new password 1", Client("192.0.2.9"))
    refused, done = _audit(caplog, "password_change")
    assert (refused["username"], refused["session_id"], refused["client_ip"]) == (
        "carol",
        mine.session_id,
        "192.0.2.9",
    )
    assert refused["detail"] == "refused: wrong current password"
    assert (done["username"], done["session_id"], done["client_ip"]) == (
        "carol",
        mine.session_id,
        "192.0.2.9",
    )
    assert done["detail"] == "1 other sessions revoked"
    assert gate.store.get_session(other.session_id) is None
    assert gate.authenticate(mine.access_token).username == "carol"  # this one lives on


def test_changing_the_password_of_a_user_deleted_meanwhile_is_a_plain_refusal() -> None:
    from authgate.errors import BadCredentials

    gate = Gate(store="memory://", hasher=cheap_hasher(), secret_key=SECRET)
    gate.create_user("dave", PW)
    me = gate.authenticate(gate.login("dave", PW).access_token)
    gate.delete_user("dave")
    with pytest.raises(BadCredentials, match="the current password is wrong"):
        gate.change_password(me, PW, "a new password 1")  # one dummy verification


# -- refreshing ------------------------------------------------------------------------------


def test_a_refresh_for_a_user_disabled_behind_its_back_fails_and_ends_the_session(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Disabling through the Gate ends the sessions; a store changed another way (a
    migration, another tool) must not leave a disabled user refreshing."""
    from authgate.errors import SessionRevoked

    gate = Gate(store="memory://", hasher=cheap_hasher(), secret_key=SECRET)
    gate.create_user("erin", PW)
    pair = gate.login("erin", PW)
    user = gate.store.get_user("erin")
    assert user is not None
    gate.store.update_user(user.changed(enabled=False), user.version)
    with pytest.raises(SessionRevoked):
        gate.refresh(pair.refresh_token)
    assert gate.store.get_session(pair.session_id) is None


def test_refreshes_and_replays_are_audited_with_who_which_session_and_where(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    from authgate.errors import SessionRevoked
    from authgate.identity import Client

    gate = Gate(store="memory://", hasher=cheap_hasher(), secret_key=SECRET)
    gate.create_user("fay", PW)
    pair = gate.login("fay", PW)
    caplog.set_level(logging.INFO, logger="authgate.audit")
    gate.refresh(pair.refresh_token, Client("203.0.113.20"))
    with pytest.raises(SessionRevoked):
        gate.refresh(pair.refresh_token, Client("203.0.113.21"))  # spent: a replay
    (refreshed,) = _audit(caplog, "refresh")
    assert (refreshed["username"], refreshed["session_id"], refreshed["client_ip"]) == (
        "fay",
        pair.session_id,
        "203.0.113.20",
    )
    (replayed,) = _audit(caplog, "refresh_token_reuse")
    assert (replayed["username"], replayed["session_id"], replayed["client_ip"]) == (
        "fay",
        pair.session_id,
        "203.0.113.21",
    )
    assert replayed["detail"] == "a spent refresh token was presented; the session is revoked"


# -- ending sessions, groups, touches, the token pair -----------------------------------------


def test_ending_sessions_is_audited_with_who_which_and_where(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    from authgate.identity import Client

    gate = Gate(store="memory://", hasher=cheap_hasher(), secret_key=SECRET)
    gate.create_user("gus", PW)
    one, two, three, four = (gate.login("gus", PW) for _ in range(4))
    caplog.set_level(logging.INFO, logger="authgate.audit")
    here = Client("192.0.2.44")
    assert gate.logout(gate.authenticate(one.access_token), here)
    assert gate.revoke_session("gus", two.session_id, here)
    assert gate.revoke_sessions("gus", here, keep=three.session_id) == 1
    (out,) = _audit(caplog, "logout")
    (ended,) = _audit(caplog, "session_revoked")
    (bulk,) = _audit(caplog, "sessions_revoked")
    for event, sid in ((out, one.session_id), (ended, two.session_id), (bulk, three.session_id)):
        assert (event["username"], event["session_id"], event["client_ip"]) == (
            "gus",
            sid,
            "192.0.2.44",
        )
    assert bulk["detail"] == "1 sessions revoked"
    assert gate.store.get_session(four.session_id) is None
    assert gate.store.get_session(three.session_id) is not None


def test_groups_kept_in_the_store_grant_their_permissions_and_policy_groups_win() -> None:
    from authgate.users import Group

    gate = Gate(store="memory://", hasher=cheap_hasher(), secret_key=SECRET, policy=POLICY)
    gate.store.put_group(Group.new("ops", ["deploys:run"]))
    gate.store.put_group(Group.new("lab", ["not:granted"]))  # the policy defines lab
    gate.create_user("hal", PW, groups=["ops", "lab", "missing"])
    who = gate.authenticate(gate.login("hal", PW).access_token)
    assert who.can("deploys:run") and who.can("plants:read")
    assert not who.can("not:granted")


def test_a_session_is_marked_used_once_per_touch_interval() -> None:
    from datetime import timedelta

    gate = Gate(
        store="memory://", hasher=cheap_hasher(), secret_key=SECRET, session_touch_interval=60
    )
    gate.create_user("ida", PW)
    pair = gate.login("ida", PW)
    session = gate.store.get_session(pair.session_id)
    assert session is not None
    recent = session.last_seen - timedelta(seconds=10)
    gate.store.touch_session(pair.session_id, recent)
    gate._identities.invalidate()  # every check below reads the store
    gate.authenticate(pair.access_token)
    assert gate.store.get_session(pair.session_id).last_seen == recent  # type: ignore[union-attr]
    old = session.last_seen - timedelta(seconds=120)
    gate.store.touch_session(pair.session_id, old)
    gate._identities.invalidate()
    gate.authenticate(pair.access_token)
    touched = gate.store.get_session(pair.session_id)
    assert touched is not None and touched.last_seen > old + timedelta(seconds=100)


def test_a_token_pair_is_the_oauth2_response() -> None:
    gate = Gate(store="memory://", hasher=cheap_hasher(), secret_key=SECRET)
    gate.create_user("joy", PW)
    pair = gate.login("joy", PW)
    assert pair.to_dict() == {
        "access_token": pair.access_token,
        "token_type": "bearer",
        "expires_in": 900,
        "refresh_token": pair.refresh_token,
    }


# -- a second round (the full run of this session): the touch rule and store groups, stepped
# without I/O (the operation order carries the property) ----------------------------------


def _rules(**policy_groups: list[str]) -> Any:
    from authgate.flows.sessions import SessionRules

    gate = Gate(store="memory://", hasher=cheap_hasher(), secret_key=SECRET)
    rules: SessionRules = gate.rules
    if policy_groups:
        import dataclasses

        rules = dataclasses.replace(rules, policy=RolePolicy({}, groups=policy_groups))
    return rules


def _session_and_user(seen_ago: float, now: float, groups: tuple[str, ...] = ()) -> Any:
    from datetime import datetime, timedelta, timezone

    from authgate.stores.base import Session
    from authgate.users import User

    user = User.new("kimi", groups=list(groups))
    at = datetime.fromtimestamp(now, timezone.utc)
    session = Session(
        "s1",
        "kimi",
        at + timedelta(hours=1),
        at - timedelta(hours=1),
        at - timedelta(seconds=seen_ago),
    )
    claims = {"sid": "s1", "sub": "kimi", "uid": user.id}
    return session, user, claims


@pytest.mark.parametrize(("seen_ago", "touched"), [(299.5, False), (300.0, True), (301.0, True)])
def test_a_session_check_touches_once_the_interval_has_passed(
    monkeypatch: pytest.MonkeyPatch, seen_ago: float, touched: bool
) -> None:
    from authgate.flows import Call
    from authgate.flows import identity as sessions

    now = 1_790_000_000.0
    monkeypatch.setattr("authgate.flows.identity.time.time", lambda: now)
    rules = _rules()
    assert rules.touch_interval == 300
    session, user, claims = _session_and_user(seen_ago, now)
    flow = sessions.load_identity(rules, claims)
    assert next(flow) == Call("get_session_user", ("s1", "kimi"))
    if touched:
        op = flow.send((session, user))
        assert isinstance(op, Call) and op.method == "touch_session" and op.args[0] == "s1"
    else:
        with pytest.raises(StopIteration) as done:
            flow.send((session, user))
        assert done.value.value.username == "kimi"
    quick = sessions.quick_identity(rules, claims, session, user)
    assert (quick is None) is touched


def test_the_quick_check_leaves_store_kept_groups_to_the_full_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from authgate.flows import identity as sessions

    now = 1_790_000_000.0
    monkeypatch.setattr("authgate.flows.identity.time.time", lambda: now)
    rules = _rules(lab=["plants:read"])
    in_policy = _session_and_user(1.0, now, groups=("lab",))
    assert sessions.quick_identity(rules, in_policy[2], in_policy[0], in_policy[1]) is not None
    in_store = _session_and_user(1.0, now, groups=("lab", "ops1"))
    assert sessions.quick_identity(rules, in_store[2], in_store[0], in_store[1]) is None


def test_every_store_kept_group_adds_its_grants() -> None:
    from authgate.users import Group

    gate = Gate(store="memory://", hasher=cheap_hasher(), secret_key=SECRET)
    gate.store.put_group(Group.new("ops", ["deploys:run"]))
    gate.store.put_group(Group.new("qa-team", ["tests:run"]))
    gate.create_user("lou", PW, groups=["ops", "qa-team"])
    who = gate.authenticate(gate.login("lou", PW).access_token)
    assert who.can("deploys:run") and who.can("tests:run")


def test_ending_every_session_is_audited_without_a_kept_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    from authgate.identity import Client

    gate = Gate(store="memory://", hasher=cheap_hasher(), secret_key=SECRET)
    gate.create_user("max", PW)
    gate.login("max", PW)
    caplog.set_level(logging.INFO, logger="authgate.audit")
    assert gate.revoke_sessions("max", Client("192.0.2.45")) == 1
    (bulk,) = _audit(caplog, "sessions_revoked")
    assert (bulk["session_id"], bulk["client_ip"]) == ("", "192.0.2.45")


def test_a_sessions_user_must_be_the_tokens_user_when_the_token_says_which() -> None:
    from authgate.errors import SessionRevoked
    from authgate.flows import identity as sessions

    session, user, claims = _session_and_user(1.0, 1_790_000_000.0)
    assert sessions._live(claims, session, user) is user
    assert sessions._live({"sid": "s1", "sub": "kimi"}, session, user) is user  # no uid
    with pytest.raises(SessionRevoked):
        sessions._live({**claims, "uid": "another-users-id"}, session, user)


def test_an_identity_from_a_user_carries_the_users_own_fields() -> None:
    from authgate.flows.identity import identity_from_user
    from authgate.users import User

    policy = RolePolicy({"admin": ["*:*"]}, groups={"lab": ["plants:read"]})
    user = User.new("nia", roles=["viewer"], groups=["lab"], permissions=["docs:read"],
                    first_name="Nia", last_name="Long")  # fmt: skip
    who = identity_from_user(policy, user, "s9", {"sub": "nia"})
    assert (who.user_id, who.username, who.session_id) == (user.id, "nia", "s9")
    assert (who.groups, who.user_version, who.full_name) == (
        frozenset({"lab"}),
        user.version,
        "Nia Long",
    )
    assert who.permissions == frozenset({"docs:read", "plants:read"})
    shown = identity_from_user(policy, user.changed(display_name="N. L."), "s9", {"sub": "nia"})
    assert shown.full_name == "N. L."


def test_a_session_limit_is_audited_whichever_way_it_is_kept() -> None:
    from authgate.errors import SessionLimitReached
    from authgate.identity import Client

    here = Client("192.0.2.46", "pytest")
    for evict in (True, False):
        gate = Gate(store="memory://", hasher=cheap_hasher(), secret_key=SECRET,
                    max_sessions=1,
                    session_limit_policy="evict_oldest" if evict else "refuse")  # fmt: skip
        heard: list[Any] = []
        gate.audit.subscribe(heard.append)
        gate.create_user("ora", PW)
        first = gate.login("ora", PW, here)
        if evict:
            gate.login("ora", PW, here)
            (ended,) = [e for e in heard if e.event == "session_revoked"]
            assert (ended.username, ended.session_id, ended.client_ip, ended.detail) == (
                "ora",
                first.session_id,
                "192.0.2.46",
                "evicted by the session limit",
            )
        else:
            with pytest.raises(SessionLimitReached):
                gate.login("ora", PW, here)
            (refused,) = [e for e in heard if e.event == "login_failure"]
            assert (refused.username, refused.client_ip, refused.detail) == (
                "ora",
                "192.0.2.46",
                "session limit reached",
            )
        (ok, *_) = [e for e in heard if e.event == "login_success"]
        assert ok.detail == ""  # a password login says nothing more


def test_a_session_records_where_it_was_opened_within_bounds() -> None:
    from authgate.identity import Client

    gate = Gate(store="memory://", hasher=cheap_hasher(), secret_key=SECRET)
    gate.create_user("pia", PW)
    here = Client("2001:db8::" + "2" * 70, "agent/" + "y" * 300)
    stored = gate.store.get_session(gate.login("pia", PW, here).session_id)
    assert stored is not None
    assert (stored.client_ip, stored.user_agent) == (here.ip[:64], here.user_agent[:256])


def test_a_login_is_audited_with_how_it_was_proved() -> None:
    from authgate.flows import Call, Emit, sessions
    from authgate.identity import Client
    from authgate.users import User

    user = User.new("quin")
    flow = sessions.open_session(_rules(), user, Client("192.0.2.47"), detail="SCRAM")
    op = next(flow)  # create_session
    assert isinstance(op, Call)
    reread = flow.send(op.args[0])  # the user read again: unchanged during the login
    assert isinstance(reread, Call) and reread.method == "get_user"
    event = flow.send(user)
    assert isinstance(event, Emit)
    assert (event.event.event, event.event.detail) == ("login_success", "SCRAM")


def test_failed_logins_are_audited_with_the_name_tried_and_where_from() -> None:
    from authgate.errors import BadCredentials
    from authgate.identity import Client

    gate = Gate(store="memory://", hasher=cheap_hasher(), secret_key=SECRET, max_login_attempts=2)
    gate.create_user("rex", PW)
    heard: list[Any] = []
    gate.audit.subscribe(heard.append)
    here = Client("192.0.2.48")
    long_name = "x" * 70 + "!"
    for name, password in (("bad name!", PW), (long_name, PW), ("rex", "wrong"), ("rex", "wrong")):
        with pytest.raises(BadCredentials):
            gate.login(name, password, here)
    seen = [(e.event, e.username, e.client_ip, e.detail) for e in heard]
    assert seen == [
        ("login_failure", "bad name!", "192.0.2.48", "invalid username"),
        ("login_failure", long_name[:64], "192.0.2.48", "invalid username"),
        ("login_failure", "rex", "192.0.2.48", ""),
        ("lockout", "rex", "192.0.2.48", "2 failed logins; locked for 300 s"),
        ("login_failure", "rex", "192.0.2.48", ""),
    ]


@pytest.mark.parametrize("password", [None, 42, b"bytes"], ids=["none", "number", "bytes"])
def test_a_password_that_is_not_a_string_is_refused_like_a_wrong_one(password: Any) -> None:
    from authgate.errors import BadCredentials

    gate = Gate(store="memory://", hasher=cheap_hasher(), secret_key=SECRET)
    gate.create_user("sam", PW)
    for name in ("sam", "nobody", "bad name!"):
        with pytest.raises(BadCredentials):
            gate.login(name, password)
