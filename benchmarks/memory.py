"""What authgate's per-process caches and its Redis records cost in memory, measured.

Run: ``python benchmarks/memory.py`` (starts a private redis-server).  In process,
tracemalloc counts the bytes each cached entry adds (the session check cache of the
SQLite and Redis stores, the verified-token and identity caches of a gate); in Redis,
``used_memory`` before and after creating users and their sessions.
"""

from __future__ import annotations

import gc
import logging
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from authgate import Gate, User
from authgate.caches import IDENTITIES, SESSION_CHECKS, VERIFIED_TOKENS
from authgate.testing import cheap_hasher, redis_server

SECRET = "benchmark-secret-key-that-is-long-enough-000"
PW = "correct horse battery"


def allocated(work: Callable[[], object]) -> int:
    """Bytes still allocated after `work` (tracemalloc), what it returns kept alive."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    kept = work()
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    del kept
    return sum(stat.size_diff for stat in after.compare_to(before, "filename"))


def populate(gate: Gate, users: int, sessions: int) -> list[str]:
    """`users` users with `sessions` sessions each; their access tokens."""
    hashed = cheap_hasher().hash(PW)
    store: Any = gate.store
    tokens = []
    for index in range(users):
        name = f"mem{users}x{sessions}-{index:06d}"
        store.create_user(User.new(name, password_hash=hashed))
        tokens += [gate.login(name, PW).access_token for _ in range(sessions)]
    return tokens


def session_cache_bytes(url: str, users: int, sessions: int) -> float:
    """Bytes per session the session check cache of a store at `url` holds."""
    gate = Gate(store=url, secret_key=SECRET, hasher=cheap_hasher())
    tokens = populate(gate, users, sessions)
    checks = [(c["sid"], c["sub"]) for c in map(gate.verifier.verify, tokens)]
    store: Any = gate.store
    if hasattr(store, "_session_cache"):
        store._session_cache()  # Redis makes its cache on first use
    cache = store._cache
    cache.clear()

    def fill() -> None:
        for sid, sub in checks:
            store.get_session_user(sid, sub)

    total = allocated(fill)
    cached = len(cache._entries)
    gate.close()
    if cached < 0.9 * len(checks):
        raise RuntimeError(f"only {cached} of {len(checks)} session checks cached")
    return total / cached


def token_cache_bytes(stateless: bool, users: int, sessions: int) -> float:
    """Bytes per token a gate's verified-token and identity caches hold."""
    gate = Gate(store="memory://", secret_key=SECRET, hasher=cheap_hasher(), stateless=stateless)
    tokens = populate(gate, users, sessions)
    gate.verifier._verified.invalidate()
    gate._identities.invalidate()

    def fill() -> None:
        for token in tokens:
            gate.authenticate(token)

    total = allocated(fill)
    gate.close()
    return total / len(tokens)


def redis_bytes(redis_url: str, users: int, sessions: int) -> tuple[float, float]:
    """Redis used_memory per user (no session) and per session."""
    client = redis.Redis.from_url(redis_url)

    def used() -> int:
        value: int = client.info("memory")["used_memory"]
        return value

    gate = Gate(store=f"{redis_url}?prefix=mem{users}", secret_key=SECRET, hasher=cheap_hasher())
    hashed = cheap_hasher().hash(PW)
    store: Any = gate.store
    start = used()
    names = [f"redis-{index:06d}" for index in range(users)]
    for name in names:
        store.create_user(User.new(name, password_hash=hashed, email=f"{name}@example.com"))
    with_users = used()
    for name in names:
        for _ in range(sessions):
            gate.login(name, PW)
    with_sessions = used()
    gate.close()
    client.close()
    return (with_users - start) / users, (with_sessions - with_users) / (users * sessions)


def run() -> str:
    """The measurements, as a markdown section."""
    logging.getLogger("authgate.audit").setLevel(logging.WARNING)
    lines = [
        "### Memory",
        "",
        "| what | shape | bytes each | bound per process | at most |",
        "|---|---|---|---|---|",
    ]

    def add(what: str, shape: str, each: float, bound: int | None) -> None:
        most = f"{each * bound / 2**20:.1f} MiB" if bound else ""
        limit = f"{bound:,} entries" if bound else ""
        lines.append(f"| {what} | {shape} | {each:,.0f} | {limit} | {most} |")

    with tempfile.TemporaryDirectory() as tmp, redis_server() as redis_url:
        for store, url in (
            ("SQLite", f"sqlite:///{Path(tmp) / 'mem.db'}"),
            ("Redis", f"{redis_url}?prefix=memcache"),
        ):
            for users, sessions in ((2_000, 1), (200, 10)):
                each = session_cache_bytes(url, users, sessions)
                shape = f"{users:,} users x {sessions} session{'s' if sessions > 1 else ''}"
                add(f"cached session check ({store})", shape, each, SESSION_CHECKS.bound)
        for stateless in (True, False):
            each = token_cache_bytes(stateless, 2_000, 1)
            mode = "stateless" if stateless else "session-checked"
            bound = max(VERIFIED_TOKENS.bound, IDENTITIES.bound)
            add(f"verified token + its identity ({mode})", "2,000 tokens", each, bound)
        per_user, per_session = redis_bytes(redis_url, 2_000, 2)
        lines += [
            "",
            f"In Redis (`used_memory`, 2,000 users with 2 sessions each): {per_user:,.0f} bytes "
            f"per user record, {per_session:,.0f} bytes per session (a packed record in its "
            "user's sessions hash; the hash's own cost shared by the user's two sessions). "
            "At scale (a million sessions, a cluster): see Redis at scale below.",
        ]
    return "\n".join(lines)


def main() -> None:
    print(run())


if __name__ == "__main__":
    main()
