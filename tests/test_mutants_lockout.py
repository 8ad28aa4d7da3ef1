"""LockoutPolicy's flows driven by hand: the details the end-to-end lock-out tests leave
open, found by mutation testing (docs/mutation.md)."""

from __future__ import annotations

from typing import Any

import pytest

from authgate.errors import AccountLocked
from authgate.flows import Call, Emit, Flow, Op
from authgate.lockout import LockoutPolicy


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
        drive(LockoutPolicy(max_attempts=5).reserve("alice"), {"incr": 6, "counter_ttl": ttl})
    assert info.value.retry_after == retry_after


def test_the_failure_that_locks_records_who_from_where_and_for_how_long() -> None:
    policy = LockoutPolicy(max_attempts=3, lockout_seconds=600)
    ops, _ = drive(policy.failed("alice", 3, client_ip="203.0.113.7"), {"expire_counter": True})
    assert ops[0] == Call("expire_counter", ("login-failures:alice", 600))
    assert len(ops) == 2
    assert isinstance(ops[1], Emit)
    event = ops[1].event
    assert (event.event, event.username, event.client_ip) == ("lockout", "alice", "203.0.113.7")
    assert "3 failed logins" in event.detail
    assert "600 s" in event.detail


def test_a_lockout_without_a_client_ip_records_an_empty_one() -> None:
    ops, _ = drive(LockoutPolicy(max_attempts=1).failed("alice", 1), {})
    assert isinstance(ops[-1], Emit)
    assert ops[-1].event.client_ip == ""
