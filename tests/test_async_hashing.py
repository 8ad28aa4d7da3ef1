"""The async face never hashes on the event loop."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time

import pytest

from authgate.gate import AsyncGate
from authgate.passwords import PasswordHasher
from authgate.stores import MemoryStore, SyncStoreAsAsync
from conftest import SECRET


async def test_logins_hashing_do_not_stall_other_coroutines() -> None:
    hasher = PasswordHasher()  # the real RFC 9106 parameters
    gate = AsyncGate(
        store=SyncStoreAsAsync(MemoryStore(), offload=False),
        hasher=hasher,
        secret_key=SECRET,
        max_login_attempts=0,
    )
    await gate.create_user("alice", "correct horse battery")
    started = time.perf_counter()
    hasher.verify(hasher.hash("calibrate me"), "calibrate me")
    hash_time = (time.perf_counter() - started) / 2

    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.002)
            lags.append(time.perf_counter() - before - 0.002)

    tick = asyncio.create_task(ticker())
    pairs = await asyncio.gather(*(gate.login("alice", "correct horse battery") for _ in range(4)))
    stop.set()
    await tick
    assert len(pairs) == 4
    assert len(lags) > 10
    # Hashing on the loop would delay the ticker by at least one hash time.
    assert max(lags) < 0.5 * hash_time, (max(lags), hash_time)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priority is Linux's")
def test_the_hashing_threads_run_below_the_event_loop_priority() -> None:
    from authgate.flows.drive import HASH_NICENESS, hashing_pool

    def niceness() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    mine = niceness()
    assert hashing_pool().submit(niceness).result() == min(mine + HASH_NICENESS, 19)
    assert niceness() == mine  # the caller's own thread keeps its priority
