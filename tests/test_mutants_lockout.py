"""LockoutPolicy's flows driven by hand: the details the end-to-end lock-out tests leave
open, found by mutation testing (docs/mutation.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from authgate.errors import AccountLocked
from authgate.flows import Call, Emit, Flow, Op, Pause
from authgate.flows.lockout import WAIT_SECONDS, LockoutPolicy


def drive(flow: Flow[Any], replies: dict[str, Any]) -> tuple[list[Op], Any]:
    """Run a flow, answering each store call from `replies`; the ops it yielded, and its
    result."""
    ops: list[Op] = []
    try:
        op = next(flow)
        while True:
            ops.append(op)
            op = flow.send(replies.get(op.method) if isinstance(op, Call) else None)
    except StopIteration as stop:
        return ops, stop.value


def test_with_lockout_off_a_guess_touches_no_counter_and_is_number_0() -> None:
    assert drive(LockoutPolicy(max_attempts=0).reserve("alice"), {}) == ([], 0)


@pytest.mark.parametrize(
    ("ttl", "retry_after"), [(0.0, 1), (0.25, 1), (1.0, 1), (1.5, 2), (299.2, 300)]
)
def test_retry_after_is_the_lock_left_rounded_up_and_never_below_1_s(
    ttl: float, retry_after: int
) -> None:
    with pytest.raises(AccountLocked) as info:
        drive(
            LockoutPolicy(max_attempts=5).reserve("alice"),
            {"incr": 6, "get_counter": 1, "counter_ttl": ttl},
        )
    assert info.value.retry_after == retry_after


def test_the_failure_that_locks_records_who_from_where_and_for_how_long() -> None:
    policy = LockoutPolicy(max_attempts=3, lockout_seconds=600)
    ops, _ = drive(
        policy.failed("alice", client_ip="203.0.113.7"), {"incr": 3, "expire_counter": True}
    )
    assert ops[0] == Call("incr", ("login-failed:alice", 300))
    assert ops[1] == Call("incr", ("login-locked:alice", 600))
    assert ops[2] == Call("incr", ("login-failures:alice", 600, 3))
    assert ops[3] == Call("expire_counter", ("login-failures:alice", 600))
    assert ops[4] == Call("expire_counter", ("login-failed:alice", 600))
    assert len(ops) == 6
    assert isinstance(ops[5], Emit)
    event = ops[5].event
    assert (event.event, event.username, event.client_ip) == ("lockout", "alice", "203.0.113.7")
    assert "3 failed logins" in event.detail
    assert "600 s" in event.detail


def test_a_lockout_without_a_client_ip_records_an_empty_one() -> None:
    ops, _ = drive(LockoutPolicy(max_attempts=1).failed("alice"), {"incr": 1})
    assert isinstance(ops[-1], Emit)
    assert ops[-1].event.client_ip == ""


def replay(flow: Flow[Any], answer: Callable[[Op], Any], ops: list[Op]) -> Any:
    """Run a flow, each op answered by `answer` and recorded in `ops`; its result."""
    try:
        op = next(flow)
        while True:
            ops.append(op)
            op = flow.send(answer(op))
    except StopIteration as stop:
        return stop.value


def store_replies(replies: dict[str, Any]) -> Callable[[Op], Any]:
    return lambda op: replies.get(op.method) if isinstance(op, Call) else None


def test_a_locked_account_is_refused_at_once_with_the_locks_time_left() -> None:
    ops: list[Op] = []
    answer = store_replies({"incr": 9, "get_counter": 1, "counter_ttl": 42.5})
    with pytest.raises(AccountLocked) as info:
        replay(LockoutPolicy(max_attempts=5).reserve("alice"), answer, ops)
    assert info.value.retry_after == 43
    assert ops == [
        Call("incr", ("login-failures:alice", 300)),
        Call("get_counter", ("login-locked:alice",)),
        Call("counter_ttl", ("login-locked:alice",)),
    ]


def test_an_attempt_over_the_limit_waits_for_those_in_flight_then_takes_a_new_number() -> None:
    """Six logins at once, five checked: the sixth waits; once a success clears the
    counter its next increment is a fresh guess."""
    numbers = iter([6, 7, 1])

    def answer(op: Op) -> Any:
        if isinstance(op, Call):
            return next(numbers) if op.method == "incr" else 0
        return None

    ops: list[Op] = []
    assert replay(LockoutPolicy(max_attempts=5).reserve("alice"), answer, ops) == 1
    assert [type(o).__name__ for o in ops] == ["Call", "Call", "Pause"] * 2 + ["Call"]
    assert all(o == Pause(0.05) for o in ops if isinstance(o, Pause))


def test_the_wait_is_bounded() -> None:
    ops: list[Op] = []
    answer = store_replies({"incr": 6, "get_counter": 0, "counter_ttl": 0.0})
    with pytest.raises(AccountLocked) as info:
        replay(LockoutPolicy(max_attempts=5).reserve("alice"), answer, ops)
    pauses = sum(isinstance(op, Pause) for op in ops)
    assert pauses * 0.05 == pytest.approx(WAIT_SECONDS)
    assert info.value.retry_after == 1


def test_unlocking_clears_the_lock_and_the_count() -> None:
    ops, _ = drive(LockoutPolicy().unlock("alice"), {})
    assert ops == [
        Call("reset_counter", ("login-locked:alice",)),
        Call("reset_counter", ("login-failures:alice",)),
        Call("reset_counter", ("login-failed:alice",)),
    ]


def test_only_the_failure_that_reaches_the_limit_locks() -> None:
    for count in (1, 4, 6):
        ops, _ = drive(LockoutPolicy(max_attempts=5).failed("alice"), {"incr": count})
        assert ops == [Call("incr", ("login-failed:alice", 300))], count
    ops, _ = drive(LockoutPolicy(max_attempts=5).failed("alice"), {"incr": 5})
    assert Call("incr", ("login-locked:alice", 300)) in ops


def test_a_success_clears_both_counts() -> None:
    ops, _ = drive(LockoutPolicy().succeeded("alice"), {})
    assert ops == [
        Call("reset_counter", ("login-failures:alice",)),
        Call("reset_counter", ("login-failed:alice",)),
    ]


def test_a_lock_wait_gives_up_after_forty_pauses() -> None:
    """Stepped without I/O: over the limit, unlocked, the guess waits 40 x 0.05 s for the
    attempts in flight, then is refused; it never waits for ever."""
    from authgate.errors import AccountLocked
    from authgate.flows import Call, Pause
    from authgate.flows.lockout import LockoutPolicy

    flow = LockoutPolicy(max_attempts=5, window=900, lockout_seconds=300).reserve("ann")
    op = next(flow)
    pauses = 0

    def step(op: Any) -> Any:
        nonlocal pauses
        if isinstance(op, Pause):
            pauses += 1
            return flow.send(None)
        assert isinstance(op, Call)
        answers = {"incr": 6, "get_counter": 0, "counter_ttl": 12.0}
        return flow.send(answers[op.method])

    def drive(op: Any) -> None:
        for _ in range(1000):  # a bound, not a hang
            op = step(op)

    with pytest.raises(AccountLocked):
        drive(op)
    assert pauses == 40
