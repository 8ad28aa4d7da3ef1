"""Lock-out holds across processes: parallel guesses never exceed the limit."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import pytest

from _workers import wrong_logins
from authgate.errors import AccountLocked
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
    guesses = outcomes.count("BadCredentials")
    assert 1 <= guesses <= 5, outcomes
    assert outcomes.count("AccountLocked") == 20 - guesses
    with pytest.raises(AccountLocked):
        gate.login("alice", "correct horse battery")
    gate.close()
