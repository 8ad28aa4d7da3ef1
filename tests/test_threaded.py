"""The async face of the local stores (`authgate.stores.threaded`): what goes to its
thread pool, and what it answers in-line."""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from authgate.errors import SessionRevoked
from authgate.gate import AsyncGate
from authgate.testing import cheap_hasher
from conftest import SECRET

PW = "correct horse battery"


def test_an_async_sqlite_check_due_a_touch_reads_the_cache_in_line(
    make_store_url: Callable[[str], str],
) -> None:
    """When ``last_seen`` is due, the full check runs: its session read is answered by
    the cache on the event loop, and only the touch (a write) goes to the thread pool."""

    async def scenario() -> None:
        gate = AsyncGate(store=make_store_url("sqlite"), secret_key=SECRET, hasher=cheap_hasher())
        await gate.create_user("alice", PW)
        token = (await gate.login("alice", PW)).access_token
        await gate.authenticate(token)  # the session check cached
        store: Any = gate.store
        hops: list[str] = []
        submit = store._executor.submit

        def counted(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            hops.append(getattr(fn, "func", fn).__name__)
            return submit(fn, *args, **kwargs)

        store._executor.submit = counted
        gate.rules = dataclasses.replace(gate.rules, touch_interval=0)
        for _ in range(3):
            assert (await gate.authenticate(token)).username == "alice"
        assert hops == ["touch_session"] * 3, hops
        await gate.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(("inline", "expected"), [(True, []), (False, ["get_session_user"])])
def test_a_session_check_the_cache_misses_reads_in_line_unless_told_not_to(
    tmp_path: Any, inline: bool, expected: list[str]
) -> None:
    from authgate.stores import SQLiteStore, SyncStoreAsAsync

    async def scenario() -> None:
        sync = SQLiteStore(tmp_path / "auth.db", cache_ttl=0)  # every check reads
        store = SyncStoreAsAsync(sync, inline_checks=inline)
        gate = AsyncGate(store=store, secret_key=SECRET, hasher=cheap_hasher())
        await gate.create_user("alice", PW)
        token = (await gate.login("alice", PW)).access_token
        hops: list[str] = []
        submit = store._executor.submit

        def counted(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            hops.append(getattr(fn, "func", fn).__name__)
            return submit(fn, *args, **kwargs)

        store._executor.submit = counted  # type: ignore[method-assign]
        identity = await gate.authenticate(token)
        assert identity.username == "alice"
        assert hops == expected
        await gate.logout(identity)
        with pytest.raises(SessionRevoked):  # read in-line or not, the check holds
            await gate.authenticate(token)
        await gate.close()

    asyncio.run(scenario())


def test_only_sqlite_checks_sessions_in_line() -> None:
    from authgate.stores import open_async_store

    async def scenario(url: str) -> bool:
        store: Any = open_async_store(url)
        inline: bool = store.inline_checks
        await store.close()
        return inline

    assert asyncio.run(scenario("memory://")) is False
    assert asyncio.run(scenario(f"json:///{Path(tempfile.mkdtemp())}/j")) is False
    assert asyncio.run(scenario(f"sqlite:///{Path(tempfile.mkdtemp())}/s.db")) is True
