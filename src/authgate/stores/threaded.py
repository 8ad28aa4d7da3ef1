"""The async face of a store whose I/O is local (SQLite, memory, JSON files): each
operation is the sync store's own, on a small thread pool or in-line."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from ..faces import (
    AsyncFace,
    Steps,
    adrive,
    call_now,
    deferred,
    drive,
    operation,
    passed_on,
    returning,
)
from ..users import Session, User
from .base import Store

__all__ = ["SyncStoreAsAsync"]

R = TypeVar("R")


class SyncStoreAsAsync(AsyncFace):
    """The async face of a store whose I/O is local (SQLite, memory): each operation
    is the sync store's own, passed on.

    SQLite calls run on a small thread pool so the event loop never waits on the disk
    (a write may wait for SQLite's write lock), and so does the per-request session
    check unless ``inline_checks`` (see `get_session_user`); the memory store answers
    in-line (``offload=False``), with no thread hop.
    """

    def __init__(
        self,
        sync: Store,
        *,
        offload: bool = True,
        max_workers: int = 4,
        inline_checks: bool = False,
    ) -> None:
        self.sync = sync
        self.url = sync.url
        self.offload = offload
        #: The per-request session check reads in-line (see `get_session_user`).
        self.inline_checks = inline_checks
        self._executor = ThreadPoolExecutor(max_workers, thread_name_prefix="authgate-store")

    def __repr__(self) -> str:
        return f"SyncStoreAsAsync({self.sync!r})"

    async def _drive(self, steps: Steps[R]) -> R:
        if not self.offload:
            return drive(steps, call_now)
        loop = asyncio.get_running_loop()
        return await adrive(steps, lambda thunk: loop.run_in_executor(self._executor, thunk))

    get_user = passed_on(Store.get_user, "sync")
    get_user_by_id = passed_on(Store.get_user_by_id, "sync")
    list_users = passed_on(Store.list_users, "sync")
    create_user = passed_on(Store.create_user, "sync")
    update_user = passed_on(Store.update_user, "sync")
    delete_user = passed_on(Store.delete_user, "sync")
    get_group = passed_on(Store.get_group, "sync")
    list_groups = passed_on(Store.list_groups, "sync")
    put_group = passed_on(Store.put_group, "sync")
    delete_group = passed_on(Store.delete_group, "sync")
    create_session = passed_on(Store.create_session, "sync")
    get_session = passed_on(Store.get_session, "sync")

    @operation
    def get_session_user(
        self, session_id: str, username: str
    ) -> Steps[tuple[Session | None, User | None]]:
        """The per-request session check: the cached answer in-line when the sync
        store has one, else its read on the pool.  With ``inline_checks`` (what
        `open_async_store` gives SQLite) the read runs in-line too: one session and one
        user by key, which never waits for a writer under WAL and takes some 20-40 µs,
        where a hop to the thread pool and back cost about 400 µs of waiting per check
        at 10,000 users (`benchmarks/request_cost.py`)."""
        if self.inline_checks:  # the store's own check looks at its cache first
            return returning(self.sync.get_session_user(session_id, username))
        hit = self.peek_session_user(session_id, username)
        if hit is not None:
            return returning(hit)
        return deferred(self.sync.get_session_user, session_id, username)

    touch_session = passed_on(Store.touch_session, "sync")
    rotate_refresh = passed_on(Store.rotate_refresh, "sync")
    revoke_session = passed_on(Store.revoke_session, "sync")
    list_sessions = passed_on(Store.list_sessions, "sync")
    revoke_user_sessions = passed_on(Store.revoke_user_sessions, "sync")
    incr = passed_on(Store.incr, "sync")
    get_counter = passed_on(Store.get_counter, "sync")
    counter_ttl = passed_on(Store.counter_ttl, "sync")
    expire_counter = passed_on(Store.expire_counter, "sync")
    reset_counter = passed_on(Store.reset_counter, "sync")

    def peek_session_user(
        self, session_id: str, username: str
    ) -> tuple[Session | None, User | None] | None:
        """The sync store's in-memory answer, on the event loop (no thread hop)."""
        peek = getattr(self.sync, "peek_session_user", None)
        return peek(session_id, username) if peek is not None else None

    async def close(self) -> None:
        """Release the thread pool and the sync store."""
        self._executor.shutdown(wait=False)
        self.sync.close()
