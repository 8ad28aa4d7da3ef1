"""The session-check cache never outlives a revocation made by another process."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest

from _workers import disable_user, revoke_user_sessions
from authgate.errors import SessionRevoked
from authgate.gate import Gate
from authgate.testing import cheap_hasher
from conftest import SECRET

PW = "correct horse battery"


@pytest.mark.parametrize("change", [revoke_user_sessions, disable_user], ids=["revoke", "disable"])
def test_change_in_another_process_ends_cached_sessions(
    persistent_url: str, change: Callable[[str, str], Any]
) -> None:
    gate = Gate(store=persistent_url, hasher=cheap_hasher(), secret_key=SECRET)
    gate.create_user("alice", PW)
    token = gate.login("alice", PW).access_token
    for _ in range(3):  # warm the cache
        assert gate.authenticate(token).username == "alice"
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx) as pool:
        pool.submit(change, persistent_url, "alice").result()
    changed_at = time.monotonic()
    # The cache entry would live 5 s; the invalidation must end it well before.
    deadline = changed_at + 2.0
    while True:
        try:
            gate.authenticate(token)
        except SessionRevoked:
            break
        assert time.monotonic() < deadline, "a cached session outlived its revocation"
        time.sleep(0.001)
    gate.close()


def test_change_in_the_same_process_is_seen_at_once(persistent_url: str) -> None:
    gate = Gate(store=persistent_url, hasher=cheap_hasher(), secret_key=SECRET)
    gate.create_user("alice", PW)
    pairs = [gate.login("alice", PW) for _ in range(2)]
    for pair in pairs:
        gate.authenticate(pair.access_token)
    gate.logout(gate.authenticate(pairs[0].access_token))
    with pytest.raises(SessionRevoked):
        gate.authenticate(pairs[0].access_token)
    assert gate.authenticate(pairs[1].access_token).username == "alice"
    gate.update_user("alice", roles=["operator"])
    assert gate.authenticate(pairs[1].access_token).roles == {"operator"}
    gate.close()
