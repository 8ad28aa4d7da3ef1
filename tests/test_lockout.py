"""Lock-out holds across processes: parallel guesses never exceed the limit."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest

from _workers import wrong_logins
from authgate.errors import AccountLocked, BadCredentials
from authgate.gate import Gate
from authgate.stores import open_store
from authgate.testing import cheap_hasher
from conftest import SECRET


def test_20_parallel_wrong_attempts_across_4_processes_get_at_most_5_guesses(
    persistent_url: str,
) -> None:
    gate = Gate(
        store=open_store(persistent_url),
        hasher=cheap_hasher(),
        secret_key=SECRET,
        max_login_attempts=5,
    )
    gate.create_user("alice", "correct horse battery")
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(4, mp_context=ctx) as pool:
        chunks = pool.map(wrong_logins, [persistent_url] * 4, [SECRET] * 4, [5] * 4)
        outcomes = [o for chunk in chunks for o in chunk]
    assert len(outcomes) == 20
    # Each attempt reserves its guess with one atomic increment before any password is
    # checked: exactly max_login_attempts of the 20 get to guess, the rest are refused.
    assert sorted(outcomes) == ["AccountLocked"] * 15 + ["BadCredentials"] * 5, outcomes
    with pytest.raises(AccountLocked) as info:
        gate.login("alice", "correct horse battery")
    assert 1 <= info.value.retry_after <= 300
    gate.close()


def test_exactly_max_login_attempts_guesses_one_after_another(persistent_url: str) -> None:
    gate = Gate(
        store=open_store(persistent_url),
        hasher=cheap_hasher(),
        secret_key=SECRET,
        max_login_attempts=5,
    )
    gate.create_user("alice", "correct horse battery")
    outcomes = [_outcome(gate, "wrong password") for _ in range(8)]
    assert outcomes == ["BadCredentials"] * 5 + ["AccountLocked"] * 3
    assert _outcome(gate, "correct horse battery") == "AccountLocked"
    gate.close()


def _outcome(gate: Gate, password: str) -> str:
    try:
        gate.login("alice", password)
    except (BadCredentials, AccountLocked) as err:
        return type(err).__name__
    return "success"


def test_six_correct_logins_at_once_all_succeed(persistent_url: str) -> None:
    """The attempts in flight hold the five guesses; the sixth waits for a success to
    free the counter instead of being locked out (it was a 429)."""
    gate = Gate(
        store=open_store(persistent_url), hasher=cheap_hasher(), secret_key=SECRET,
        max_login_attempts=5,
    )  # fmt: skip
    gate.create_user("alice", "correct horse battery")
    barrier = threading.Barrier(6)

    def login() -> str:
        barrier.wait()
        return _outcome(gate, "correct horse battery")

    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(lambda _: login(), range(6)))
    assert outcomes == ["success"] * 6
    # and the bound on guesses still holds after them
    assert [_outcome(gate, "wrong") for _ in range(6)] == ["BadCredentials"] * 5 + ["AccountLocked"]
    gate.close()


async def test_six_correct_logins_at_once_all_succeed_on_the_async_face() -> None:
    from authgate.gate import AsyncGate

    gate = AsyncGate(store="memory://", hasher=cheap_hasher(), secret_key=SECRET)
    await gate.create_user("alice", "correct horse battery")
    pairs = await asyncio.gather(*(gate.login("alice", "correct horse battery") for _ in range(6)))
    assert len({p.access_token for p in pairs}) == 6
