"""Throttling per client address beside the per-account lock-out: one address cannot spray
passwords over many accounts or lock them out, on every store and across processes."""

from __future__ import annotations

import json
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest
import webtest

from _workers import spray_logins
from authgate.audit import AuditEvent
from authgate.errors import (
    AccountLocked,
    BadCredentials,
    SessionRevoked,
    StoreUnavailable,
    TooManyAttempts,
)
from authgate.flows import Call, Pause, Settle, Verify
from authgate.flows.login import login
from authgate.flows.throttle import client_network
from authgate.gate import Gate
from authgate.http import error_response
from authgate.identity import Client
from authgate.middleware.wsgi import AuthGateWSGIApi, AuthGateWSGIMiddleware
from authgate.stores import MemoryStore, open_store
from authgate.testing import cheap_hasher
from conftest import SECRET
from test_scram import PW as SCRAM_PW
from test_scram import HaystackClient

SPRAYER, NEIGHBOUR = Client("203.0.113.9"), Client("198.51.100.7")
PW = "correct horse battery"


def accounts(gate: Any, count: int) -> list[str]:
    names = [f"user{n:02d}" for n in range(count)]
    for name in names:
        gate.create_user(name, PW)
    return names


def test_200_failed_logins_over_50_accounts_from_one_address_are_throttled(
    make_gate: Callable[..., Any],
) -> None:
    """The spray stops at the address's limit, locks no account, and leaves every account
    open to its owner from anywhere else."""
    gate = make_gate(max_failures_per_address=20, max_login_attempts=5)
    names = accounts(gate, 50)
    outcomes: list[str] = []
    retry_after: set[int] = set()
    for n in range(200):
        try:
            gate.login(names[n % 50], "wrong password", SPRAYER)
            outcomes.append("success")
        except AccountLocked:
            outcomes.append("locked")
        except TooManyAttempts as err:  # the address, not an account
            retry_after.add(err.retry_after)
            outcomes.append("throttled")
        except BadCredentials:
            outcomes.append("refused")
    assert outcomes == ["refused"] * 20 + ["throttled"] * 180
    assert retry_after and all(1 <= r <= 300 for r in retry_after)
    # The owner of an account the spray tried logs in from another address ...
    assert gate.login(names[0], PW, NEIGHBOUR).access_token
    # ... and so does every account's owner: none is locked (each got one checked guess).
    for name in names[1:5]:
        assert gate.login(name, PW, NEIGHBOUR).access_token
    # The sprayer's address stays throttled, even with the right password.
    with pytest.raises(TooManyAttempts):
        gate.login(names[0], PW, SPRAYER)


def test_the_spray_from_4_processes_gets_exactly_the_limit_checked(persistent_url: str) -> None:
    gate = Gate(
        store=open_store(persistent_url),
        hasher=cheap_hasher(),
        secret_key=SECRET,
        max_failures_per_address=20,
    )
    names = accounts(gate, 50)
    ctx = multiprocessing.get_context("spawn")
    chunks = [[names[(p * 50 + n) % 50] for n in range(50)] for p in range(4)]
    with ProcessPoolExecutor(4, mp_context=ctx) as pool:
        results = pool.map(
            spray_logins,
            [persistent_url] * 4,
            [SECRET] * 4,
            [SPRAYER.ip] * 4,
            chunks,
            [20] * 4,
        )
        outcomes = [o for chunk in results for o in chunk]
    assert sorted(outcomes) == ["BadCredentials"] * 20 + ["TooManyAttempts"] * 180
    assert gate.login(names[7], PW, NEIGHBOUR).access_token
    gate.close()


def test_good_logins_give_their_slot_back() -> None:
    """An office behind one address: its own good logins never throttle it, and only the
    failures count toward the limit."""
    gate = Gate(
        store="memory://", hasher=cheap_hasher(), secret_key=SECRET, max_failures_per_address=3
    )
    accounts(gate, 3)
    for _ in range(30):
        gate.login("user00", PW, SPRAYER)
    for _ in range(2):
        with pytest.raises(BadCredentials):
            gate.login("user01", "typo", SPRAYER)
    for _ in range(10):
        gate.login("user02", PW, SPRAYER)
    with pytest.raises(BadCredentials):
        gate.login("user01", "typo", SPRAYER)  # the third failure: still checked
    with pytest.raises(TooManyAttempts):
        gate.login("user01", PW, SPRAYER)


def test_per_address_and_username_limit() -> None:
    gate = Gate(
        store="memory://",
        hasher=cheap_hasher(),
        secret_key=SECRET,
        max_login_attempts=0,  # no account lock-out: the pair limit keeps guessing slow
        max_failures_per_address=10,
        max_failures_per_address_user=2,
        address_window=86_400,  # one window for the whole test
    )
    accounts(gate, 2)
    for _ in range(2):
        with pytest.raises(BadCredentials):
            gate.login("user00", "guess", SPRAYER)
    with pytest.raises(TooManyAttempts):
        gate.login("user00", "guess", SPRAYER)
    with pytest.raises(BadCredentials):  # another account from the same address: its own
        gate.login("user01", "guess", SPRAYER)
    assert gate.login("user00", PW, NEIGHBOUR).access_token  # the owner, elsewhere
    # The refused attempt gave back the slot it took on the address: 3 failures counted.
    assert gate.store.get_counter(gate.rules.throttle.key(SPRAYER.ip)) == 3


def test_a_throttled_attempt_checks_no_password_and_touches_no_account() -> None:
    gate = Gate(
        store="memory://", hasher=cheap_hasher(), secret_key=SECRET, max_failures_per_address=1
    )
    accounts(gate, 1)
    with pytest.raises(BadCredentials):
        gate.login("user00", "guess", SPRAYER)
    seen: list[Any] = []

    def answer(op: Any) -> Any:
        seen.append(op)
        assert not isinstance(op, Verify), "a throttled attempt must not check a password"
        return getattr(gate.store, op.method)(*op.args) if isinstance(op, Call) else None

    with pytest.raises(TooManyAttempts):
        _replay(login(gate.rules, "user00", PW, SPRAYER), answer)
    assert [op.method for op in seen if isinstance(op, Call)] == ["incr"]
    assert gate.store.get_counter("login-failures:user00") == 1  # only the first attempt's


def _replay(steps: Any, answer: Callable[[Any], Any]) -> Any:
    """Run a flow, each op answered by `answer`; its result."""
    try:
        op = next(steps)
        while True:
            op = steps.send(answer(op))
    except StopIteration as done:
        return done.value


def test_failed_refresh_tokens_and_scram_proofs_count_too() -> None:
    gate = Gate(
        store="memory://", hasher=cheap_hasher(), secret_key=SECRET, max_failures_per_address=3
    )
    accounts(gate, 1)
    pair = gate.login("user00", PW, SPRAYER)
    for bad in ("not-a-token", f"{pair.refresh_token[:-2]}xx"):
        with pytest.raises(SessionRevoked if bad != "not-a-token" else Exception):
            gate.refresh(bad, SPRAYER)
    fresh = gate.refresh(gate.login("user00", PW, NEIGHBOUR).refresh_token, SPRAYER)
    assert fresh.access_token  # a good refresh gives its slot back: 2 failures so far
    app = AuthGateWSGIMiddleware(AuthGateWSGIApi(None, gate), gate)
    gate.create_user("alice", SCRAM_PW)
    scram = HaystackClient(webtest.TestApp(app, extra_environ={"REMOTE_ADDR": SPRAYER.ip}))
    final, _ = scram.login("alice", "not the password")
    assert final.status_code == 401  # the third failure: checked, refused
    final, _ = scram.login("alice", SCRAM_PW)
    assert final.status_code == 429 and final.headers["Retry-After"].isdigit()
    with pytest.raises(TooManyAttempts):
        gate.refresh(fresh.refresh_token, SPRAYER)
    elsewhere = HaystackClient(webtest.TestApp(app, extra_environ={"REMOTE_ADDR": "192.0.2.1"}))
    assert elsewhere.login("alice", SCRAM_PW)[0].status_code == 200


def test_429_says_when_to_come_back_and_names_no_account() -> None:
    rendered = error_response(TooManyAttempts(42))
    assert rendered.status == 429
    assert ("retry-after", "42") in rendered.headers
    assert json.loads(rendered.body) == {
        "error": "too_many_attempts",
        "detail": "too many failed attempts from this address; retry in 42 s",
    }


def test_the_throttle_is_recorded_once_per_window() -> None:
    events: list[AuditEvent] = []
    gate = Gate(
        store="memory://", hasher=cheap_hasher(), secret_key=SECRET, max_failures_per_address=2
    )
    gate.audit.subscribe(events.append)
    for _ in range(6):
        with pytest.raises((BadCredentials, TooManyAttempts)):
            gate.login("nobody", "guess", SPRAYER)
    throttled = [e for e in events if e.event == "throttled"]
    assert len(throttled) == 1 and throttled[0].client_ip == SPRAYER.ip


def test_without_an_address_nothing_is_counted() -> None:
    gate = Gate(
        store="memory://", hasher=cheap_hasher(), secret_key=SECRET, max_failures_per_address=1
    )
    for _ in range(3):
        with pytest.raises(BadCredentials):
            gate.login("nobody", "guess")  # from Python: no client address


def test_a_window_ends() -> None:
    gate = Gate(
        store="memory://",
        hasher=cheap_hasher(),
        secret_key=SECRET,
        max_failures_per_address=1,
        address_window=1,
    )
    accounts(gate, 1)
    with pytest.raises(BadCredentials):
        gate.login("user00", "guess", SPRAYER)
    with pytest.raises(TooManyAttempts):
        gate.login("user00", PW, SPRAYER)
    time.sleep(1.1)
    assert gate.login("user00", PW, SPRAYER).access_token


@pytest.mark.parametrize(
    ("ip", "counted_as"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),  # the same /64: the same client
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("fe80::1%eth0", "fe80::/64"),
        ("testclient", "testclient"),
        ("x" * 100, "x" * 64),
        ("203.0.113.9:51234", "203.0.113.9"),  # a port, as some proxies forward it
        ("[2001:db8:1:2::7]:443", "2001:db8:1:2::/64"),
        ("[::ffff:192.0.2.1]:80", "192.0.2.1"),
    ],
)
def test_an_address_is_counted_by_its_network(ip: str, counted_as: str) -> None:
    assert client_network(ip) == counted_as


def test_refusals_that_checked_nothing_give_their_slot_back() -> None:
    """A locked account's refusals and a store outage are no failed checks: an office
    retrying a locked account, or a store that blinked, does not throttle the address."""

    class Blinking(MemoryStore):
        down = False

        def get_user(self, username: str) -> Any:
            if self.down:
                raise StoreUnavailable("the store blinked")
            return super().get_user(username)

    store = Blinking()
    gate = Gate(
        store=store,
        hasher=cheap_hasher(),
        secret_key=SECRET,
        max_login_attempts=2,
        max_failures_per_address=4,
        address_window=86_400,
    )
    accounts(gate, 2)
    for _ in range(2):
        with pytest.raises(BadCredentials):
            gate.login("user00", "wrong", SPRAYER)  # two failures: user00 locks
    for _ in range(5):
        with pytest.raises(AccountLocked):
            gate.login("user00", PW, SPRAYER)
    store.down = True
    for _ in range(5):
        with pytest.raises(StoreUnavailable):
            gate.login("user01", PW, SPRAYER)
    store.down = False
    assert store.get_counter(gate.rules.throttle.key(SPRAYER.ip)) == 2  # the two failures
    assert gate.login("user01", PW, SPRAYER).access_token


def test_requests_from_no_address_share_one() -> None:
    """A server that names no client (a Unix socket): its requests count as one address,
    never as "not counted"."""
    gate = Gate(
        store="memory://", hasher=cheap_hasher(), secret_key=SECRET, max_failures_per_address=2
    )
    app = webtest.TestApp(AuthGateWSGIMiddleware(AuthGateWSGIApi(None, gate), gate))
    body = {"username": "nobody", "password": "guess"}
    statuses = [
        app.post_json(
            "/auth/login", body, extra_environ={"REMOTE_ADDR": ""}, expect_errors=True
        ).status_int
        for _ in range(4)
    ]
    assert statuses == [401, 401, 429, 429]


def test_ipv6_hosts_of_one_network_share_a_limit() -> None:
    gate = Gate(
        store="memory://", hasher=cheap_hasher(), secret_key=SECRET, max_failures_per_address=2
    )
    for n in range(2):
        with pytest.raises(BadCredentials):
            gate.login("nobody", "guess", Client(f"2001:db8:7:7::{n + 1}"))
    with pytest.raises(TooManyAttempts):
        gate.login("nobody", "guess", Client("2001:db8:7:7:aaaa::9"))
    with pytest.raises(BadCredentials):
        gate.login("nobody", "guess", Client("2001:db8:7:8::1"))


# -- the lock-out counts failures, not logins in flight -------------------------------------


def _step(gate: Gate, steps: Any, op: Any, until: Callable[[Any], bool]) -> Any:
    """Run a flow's ops against the gate's store until `until(op)`; that op."""
    while not until(op):
        if isinstance(op, Call):
            result = getattr(gate.store, op.method)(*op.args)
        elif isinstance(op, Verify):
            result = gate.hasher.verify(op.password_hash, op.password)
        elif isinstance(op, Pause | Settle):
            raise AssertionError(f"unexpected {op!r}")
        else:
            result = None
        op = steps.send(result)
    return op


def test_a_correct_login_in_flight_never_locks_its_own_account() -> None:
    """Three wrong guesses, then the owner's login starts (its guess reserved) while a
    fourth wrong one completes: four failures with a limit of five lock nothing, and the
    owner's login, and the next, go through."""
    gate = Gate(store="memory://", hasher=cheap_hasher(), secret_key=SECRET, max_login_attempts=5)
    accounts(gate, 1)
    for _ in range(3):
        with pytest.raises(BadCredentials):
            gate.login("user00", "wrong")
    owner = login(gate.rules, "user00", PW, NEIGHBOUR)
    pending = _step(gate, owner, next(owner), lambda op: isinstance(op, Verify))
    with pytest.raises(BadCredentials):  # reserved as the fifth guess, the fourth failure
        gate.login("user00", "wrong")
    assert gate.store.get_counter("login-locked:user00") == 0
    verified = gate.hasher.verify(pending.password_hash, pending.password)
    with pytest.raises(StopIteration) as done:  # the owner's login completes
        _step(gate, owner, owner.send(verified), lambda op: False)
    assert done.value.value.access_token
    assert gate.login("user00", PW).access_token


def test_a_lock_holds_when_the_reservations_window_started_afresh() -> None:
    """The reservations' window ends before the failures' (it started a check earlier):
    the failure that locks must still stop every attempt during the lock."""
    gate = Gate(store="memory://", hasher=cheap_hasher(), secret_key=SECRET, max_login_attempts=5)
    accounts(gate, 1)
    for _ in range(4):
        with pytest.raises(BadCredentials):
            gate.login("user00", "wrong")
    gate.store.reset_counter("login-failures:user00")  # as if its window had just ended
    with pytest.raises(BadCredentials):
        gate.login("user00", "wrong")  # the fifth failure: locks
    for _ in range(3):
        with pytest.raises(AccountLocked):
            gate.login("user00", PW)


def test_five_real_failures_still_lock() -> None:
    gate = Gate(store="memory://", hasher=cheap_hasher(), secret_key=SECRET, max_login_attempts=5)
    accounts(gate, 1)
    for _ in range(5):
        with pytest.raises(BadCredentials):
            gate.login("user00", "wrong")
    with pytest.raises(AccountLocked):
        gate.login("user00", PW)
