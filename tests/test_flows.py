"""Flows stepped by hand, with no store and no I/O (as httpx tests its auth flows):
each test answers the operations a flow yields and pins the order that carries a
security property."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from authgate.errors import AccountLocked, AuthGateError, BadCredentials, SessionRevoked
from authgate.flows import Call, DummyVerify, Emit, Flow, Hash, Op, Verify
from authgate.flows.login import login
from authgate.flows.sessions import SessionRules, new_refresh_token, refresh
from authgate.gate import Gate
from authgate.identity import Client
from authgate.stores import Session
from authgate.testing import cheap_hasher
from authgate.users import User, utcnow

SECRET = "flows-test-secret-key-long-enough-for-hs256"
NOWHERE = Client()
Answer = Callable[[Op], Any]


@pytest.fixture
def rules() -> SessionRules:
    return Gate(store="memory://", secret_key=SECRET, hasher=cheap_hasher()).rules


def step(flow: Flow[Any], answer: Answer) -> tuple[list[Op], Any]:
    """Run `flow` to its end, each operation answered by `answer` (which may raise, as
    a store does); the operations in order, and the result or the error it ended in."""
    ops: list[Op] = []
    try:
        op = next(flow)
        while True:
            ops.append(op)
            try:
                result = answer(op)
            except AuthGateError as err:
                op = flow.throw(err)
                continue
            op = flow.send(result)
    except StopIteration as done:
        return ops, done.value
    except AuthGateError as err:
        return ops, err


def store_answers(**answers: Any) -> Answer:
    """Store calls answered from `answers` by method name (a callable is called with
    the call's arguments); counters count from zero; CPU work and events as a driver
    would, with a password verification that never matches unless said."""
    counters: dict[str, int] = {}
    written: dict[str, User] = {}  # users written since: what a store reads back

    def answer(op: Op) -> Any:
        if isinstance(op, Call):
            if op.method == "get_user" and op.args and op.args[0] in written:
                return written[op.args[0]]
            if op.method in ("update_user", "create_user"):
                written[op.args[0].username] = op.args[0]
            if op.method in answers:
                found = answers[op.method]
                return found(*op.args) if callable(found) else found
            if op.method == "incr":
                counters[op.args[0]] = counters.get(op.args[0], 0) + 1
                return counters[op.args[0]]
            if op.method in ("create_session", "update_user", "create_user"):
                return op.args[0]  # the record written
            return {"get_counter": 0, "counter_ttl": 0.0, "list_sessions": []}.get(op.method)
        if isinstance(op, Verify):
            return answers.get("verify", False)
        if isinstance(op, Hash):
            return cheap_hasher().hash(op.password)
        return None

    return answer


def calls(ops: list[Op]) -> list[str]:
    return [op.method for op in ops if isinstance(op, Call)]


def kinds(ops: list[Op]) -> list[str]:
    """The shape of a run: store calls by name, other operations by type."""
    return [op.method if isinstance(op, Call) else type(op).__name__ for op in ops]


def alice() -> User:
    return User.new("alice", password_hash=cheap_hasher().hash("alice password"))


# -- login ---------------------------------------------------------------------------------


def test_the_lockout_slot_is_reserved_before_the_user_is_read(rules: SessionRules) -> None:
    ops, result = step(
        login(rules, "Alice", "alice password", NOWHERE),
        store_answers(get_user=alice(), verify=True),
    )
    assert not isinstance(result, AuthGateError)
    assert ops[0] == Call("incr", ("login-failures:alice", rules.lockout.window))
    assert calls(ops).index("incr") < calls(ops).index("get_user")


def test_a_login_racing_a_password_reset_does_not_survive_it(rules: SessionRules) -> None:
    """The password matched the user as they were; a reset (or a change, or disabling)
    that ended every session while the login was being checked ends this one too."""
    hasher = cheap_hasher()
    before = User.new(
        "alice",
        password_hash=hasher.hash("alice password"),
        scram_credentials=hasher.derive_scram("alice password"),
    )
    after = before.changed(password_hash=hasher.hash("reset meanwhile"))
    reads = iter([before, after])
    ops, result = step(
        login(rules, "alice", "alice password", NOWHERE),
        store_answers(get_user=lambda name: next(reads), verify=True),
    )
    assert isinstance(result, SessionRevoked)
    created = [op for op in ops if isinstance(op, Call) and op.method == "create_session"]
    (session,) = [op.args[0] for op in created]
    assert Call("revoke_session", (session.id,)) in ops


def test_a_locked_account_is_refused_before_its_password_is_looked_at(
    rules: SessionRules,
) -> None:
    full = rules.lockout.max_attempts + 1
    ops, result = step(
        login(rules, "alice", "alice password", NOWHERE),
        store_answers(incr=full, get_counter=1, counter_ttl=42.0, get_user=alice()),
    )
    assert isinstance(result, AccountLocked) and result.retry_after == 42
    assert "get_user" not in calls(ops)
    assert not [op for op in ops if isinstance(op, Verify | DummyVerify)]


def test_an_unknown_user_costs_one_dummy_verification_and_looks_like_a_wrong_password(
    rules: SessionRules,
) -> None:
    unknown, refused = step(login(rules, "nobody", "a guess 123", NOWHERE), store_answers())
    wrong, refused_too = step(
        login(rules, "alice", "a guess 123", NOWHERE), store_answers(get_user=alice())
    )
    assert isinstance(refused, BadCredentials) and isinstance(refused_too, BadCredentials)
    assert str(refused) == str(refused_too)
    assert [op for op in unknown if isinstance(op, DummyVerify)] == [DummyVerify("a guess 123")]
    assert not [op for op in unknown if isinstance(op, Verify)]
    # The same store calls and events in the same order: nothing tells the two apart.
    assert kinds(unknown) == [k.replace("Verify", "DummyVerify") for k in kinds(wrong)]
    assert [op.event.event for op in unknown if isinstance(op, Emit)] == ["login_failure"]
    assert [op.event.event for op in wrong if isinstance(op, Emit)] == ["login_failure"]


def test_a_disabled_user_with_the_right_password_is_refused_like_a_wrong_one(
    rules: SessionRules,
) -> None:
    disabled = alice().changed(enabled=False)
    ops, result = step(
        login(rules, "alice", "alice password", NOWHERE),
        store_answers(get_user=disabled, verify=True),
    )
    assert isinstance(result, BadCredentials)
    assert "create_session" not in calls(ops) and "reset_counter" not in calls(ops)
    assert [op.event.event for op in ops if isinstance(op, Emit)] == ["login_failure"]


# -- refresh -------------------------------------------------------------------------------


SID = "5e55" * 8  # a session id of the shape refresh tokens carry


def _session(refresh_hash: str) -> Session:
    now = utcnow()
    return Session(
        id=SID,
        username="alice",
        expires_at=now + timedelta(hours=1),
        refresh_hash=refresh_hash,
    )


def test_a_spent_refresh_token_revokes_the_family_before_anything_else(
    rules: SessionRules,
) -> None:
    spent, _ = new_refresh_token(SID)
    _, current_hash = new_refresh_token(SID)  # the session has moved on since
    ops, result = step(
        refresh(rules, spent, NOWHERE),
        store_answers(get_session=_session(current_hash), get_user=alice(), revoke_session=True),
    )
    assert isinstance(result, SessionRevoked)
    assert calls(ops) == ["get_session", "revoke_session"]
    assert ops[1] == Call("revoke_session", (SID,))
    (event,) = [op.event for op in ops if isinstance(op, Emit)]
    assert event.event == "refresh_token_reuse"


def test_losing_the_rotation_race_revokes_the_family_too(rules: SessionRules) -> None:
    token, presented = new_refresh_token(SID)
    ops, result = step(
        refresh(rules, token, NOWHERE),
        store_answers(get_session=_session(presented), get_user=alice(), rotate_refresh=False),
    )
    assert isinstance(result, SessionRevoked)
    assert calls(ops)[-2:] == ["rotate_refresh", "revoke_session"]


def test_a_live_refresh_token_is_rotated_once(rules: SessionRules) -> None:
    token, presented = new_refresh_token(SID)
    ops, pair = step(
        refresh(rules, token, NOWHERE),
        store_answers(get_session=_session(presented), get_user=alice(), rotate_refresh=True),
    )
    assert calls(ops) == ["get_session", "get_user", "rotate_refresh"]
    rotate = ops[2]
    assert isinstance(rotate, Call) and rotate.args[1] == presented
    assert pair.refresh_token != token


def test_stepping_needs_no_store(rules: SessionRules) -> None:
    """The flows are plain generators: nothing above ran a store, a thread or a loop."""
    flow = login(rules, "alice", "x" * 12, NOWHERE)
    assert isinstance(next(flow), Call)
    flow.close()


async def test_a_store_call_with_keywords_reaches_the_store_on_both_drivers() -> None:
    from authgate.flows import arun, call, run
    from authgate.stores import MemoryStore, Store, SyncStoreAsAsync

    def names() -> Flow[list[str]]:
        page = yield from call(Store.list_users, limit=1)
        return [u.username for u in page.items]

    store = MemoryStore()
    for name in ("amy", "bob"):
        store.create_user(User.new(name))
    assert run(names(), store, cheap_hasher()) == ["amy"]
    assert await arun(names(), SyncStoreAsAsync(store, offload=False), cheap_hasher()) == ["amy"]


# -- the session check ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    ["no session", "someone else's", "not a login", "no user", "disabled", "another user's id"],
)
def test_a_session_check_that_finds_anything_amiss_is_a_revoked_session(
    rules: SessionRules, case: str
) -> None:
    """A deleted or disabled user, or a user of the same name made anew (another id),
    ends the session: the check answers SessionRevoked, never an error of its own."""
    from authgate.flows.identity import load_identity, quick_identity

    user = alice()
    session: Session | None = _session("")
    if case == "no session":
        session = None
    elif case == "someone else's":
        session = _session("").replace(username="bob")
    elif case == "not a login":
        session = _session("").replace(kind="apikey")
    claims = {"sub": "alice", "sid": SID, "uid": user.id}
    if case == "no user":
        found: User | None = None
    elif case == "disabled":
        found = user.changed(enabled=False)
    elif case == "another user's id":
        found = User.new("alice")
    else:
        found = user
    ops, result = step(
        load_identity(rules, claims), store_answers(get_session_user=(session, found))
    )
    assert isinstance(result, SessionRevoked), result
    assert calls(ops) == ["get_session_user"]
    with pytest.raises(SessionRevoked):
        quick_identity(rules, claims, session, found)


def test_a_sound_session_check_builds_the_users_identity(rules: SessionRules) -> None:
    from authgate.flows.identity import load_identity

    user = alice()
    claims = {"sub": "alice", "sid": SID, "uid": user.id}
    _, identity = step(
        load_identity(rules, claims), store_answers(get_session_user=(_session(""), user))
    )
    assert identity.username == "alice" and identity.session_id == SID


@pytest.mark.parametrize("keep", [None, SID])
def test_a_password_change_is_audited_with_the_session_it_keeps(
    rules: SessionRules, keep: str | None
) -> None:
    from authgate.flows.login import change_password

    for verified, outcome in [(False, "refused: wrong current password"), (True, "0 other")]:
        ops, _ = step(
            change_password(rules, "alice", "alice password", "a new long password", NOWHERE, keep),
            store_answers(get_user=alice(), verify=verified, revoke_user_sessions=0),
        )
        (event,) = [op.event for op in ops if isinstance(op, Emit)]
        assert (event.event, event.username, event.session_id) == (
            "password_change",
            "alice",
            keep or "",
        )
        assert event.detail.startswith(outcome)
