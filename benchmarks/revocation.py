"""How long a revocation made in another process takes to reach a process whose session
check is cached.

Run: ``pip install -e '.[all,dev,bench]' && python benchmarks/revocation.py`` (starts a
private redis-server; ``--trials N`` for a quick run).  For each store that caches the
session check (SQLite, Redis) this process holds a `Gate` and, per trial, logs one of
`USERS` users in (a fresh session), authenticates the token until the check is served
from the session cache, and asks a second OS process (this file, started with
``--revoker URL``, with its own `open_store`) to revoke that one session with
``Store.revoke_session``, what a logout or an admin's "end this session" does.  The
revoker reads ``time.monotonic()`` right after the store acknowledged the revocation;
this process polls ``gate.authenticate`` in a tight loop until it raises
`SessionRevoked` and reads the same clock (CLOCK_MONOTONIC is system-wide on Linux).
The delay is seen - acknowledged, sign kept: a poll can see the commit before the
revoker's call has returned.

The tight loop is a worker busy in Python: on Redis the eviction is made by the store's
listening thread, which must take the GIL from the polling one, and a thread that never
blocks gives it up only every ``sys.getswitchinterval()`` (5 ms), so Redis delays come
in steps of it; a worker that blocks on its sockets between requests hands it over at
once.  On SQLite the polling thread sees the commit itself (the WAL-index header).

The memory store lives in one process: no other process can revoke through it, so it
has nothing to measure.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from databases import sql_databases

from authgate import Gate, SessionRevoked
from authgate.caches import SESSION_CHECKS
from authgate.stores import open_store
from authgate.testing import cheap_hasher, redis_server

SECRET = "benchmark-secret-key-that-is-long-enough-000"
PW = "correct horse battery"
#: Trials go round-robin over this many users, so no one user is hot.
USERS = 100
#: Authenticated checks before a trial's revocation is asked for: the first may read
#: the store, the rest must be served from the session cache.
WARM_CHECKS = 3
#: Seconds to wait for a session check to be cached (Redis: the invalidation feed's
#: subscription confirmed), and for a revocation to be seen, before giving up.
DEADLINE = 10.0


@dataclass(frozen=True, slots=True)
class Trial:
    """One revocation: its delay (ms), how many polls saw the session still valid, and
    whether every one of them was answered by the session cache."""

    delay_ms: float
    polls: int
    all_cached: bool


class Revoker:
    """The second process: revokes the sessions it is sent, through its own store, and
    answers with its ``time.monotonic()`` reading taken after each acknowledgement."""

    def __init__(self, url: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--revoker", url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._to: IO[bytes] = self._pipe(self.proc.stdin)
        self._from: IO[bytes] = self._pipe(self.proc.stdout)
        if self._from.readline() != b"ready\n":
            raise RuntimeError(f"the revoker process for {url} did not start")

    @staticmethod
    def _pipe(pipe: IO[bytes] | None) -> IO[bytes]:
        assert pipe is not None  # both pipes were asked for
        return pipe

    def send(self, session_id: str, pause: float) -> None:
        """Ask for `session_id` to be revoked `pause` seconds after the request arrives
        (this process is polling by then)."""
        self._to.write(f"{session_id} {pause!r}\n".encode())
        self._to.flush()

    def acknowledged(self) -> float:
        """The revoker's monotonic clock right after the store acknowledged."""
        line = self._from.readline()
        if not line:
            raise RuntimeError(f"the revoker process exited ({self.proc.wait()})")
        return float(line)

    def close(self) -> None:
        """Let the revoker finish and wait for it."""
        self._to.close()
        self.proc.wait(10)
        self._from.close()


def serve_revocations(url: str) -> None:
    """The revoker process's loop: one line in (session id, pause), one line out."""
    store = open_store(url)
    out = sys.stdout.buffer
    out.write(b"ready\n")
    out.flush()
    for line in sys.stdin.buffer:
        session_id, pause = line.decode().split()
        time.sleep(float(pause))
        if not store.revoke_session(session_id):
            raise RuntimeError(f"session {session_id} was not live when revoked")
        out.write(f"{time.monotonic()!r}\n".encode())
        out.flush()
    store.close()


def cached_check(gate: Gate, token: str) -> bool:
    """Authenticate once; whether the session check was answered by the session cache
    (one hit, no miss: a check that reads the store counts a miss, and one the cache
    cannot answer at all, Redis while its feed is unheard, counts nothing)."""
    hits, misses = SESSION_CHECKS.hits, SESSION_CHECKS.misses
    gate.authenticate(token)
    return SESSION_CHECKS.hits == hits + 1 and SESSION_CHECKS.misses == misses


def warm(gate: Gate, token: str) -> None:
    """Authenticate `token` until its check is served from the cache, `WARM_CHECKS`
    times in a row (Redis: the cache answers once its subscription is confirmed)."""
    deadline = time.monotonic() + DEADLINE
    in_a_row = 0
    while in_a_row < WARM_CHECKS:
        in_a_row = in_a_row + 1 if cached_check(gate, token) else 0
        if time.monotonic() > deadline:
            raise RuntimeError(f"the session check through {gate.store!r} is not cached")
        if in_a_row == 0:
            time.sleep(0.01)


def trial(gate: Gate, revoker: Revoker, username: str, pause: float) -> Trial:
    """Log `username` in, warm the session check, have it revoked in the other process
    and poll until it is seen."""
    pair = gate.login(username, PW)
    token = pair.access_token
    session_id = pair.refresh_token.partition(".")[0]
    warm(gate, token)
    revoker.send(session_id, pause)
    hits = SESSION_CHECKS.hits
    polls = 0
    seen = math.inf  # not seen by the deadline: kept, and reported as such
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            gate.authenticate(token)
        except SessionRevoked:
            seen = time.monotonic()
            break
        polls += 1
        if polls % 1024 == 0 and time.monotonic() > deadline:
            break
    # Every poll that saw the session still valid was one cache hit; the last one found
    # it gone (a hit there would mean it was answered from the cache after all).
    all_cached = SESSION_CHECKS.hits - hits == polls
    return Trial((seen - revoker.acknowledged()) * 1000, polls, all_cached)


def measure(url: str, trials: int) -> list[Trial]:
    """`trials` revocations through `url` made by another process, as seen here."""
    gate = Gate(store=url, secret_key=SECRET, hasher=cheap_hasher())
    names = [f"revoke{i:03d}" for i in range(USERS)]
    for name in names:
        if gate.store.get_user(name) is None:
            gate.create_user(name, PW)
    revoker = Revoker(url)
    try:
        # Pauses of 0 to 1.9 ms before each revocation: it lands while this process is
        # polling, at varied points of its loop.
        return [
            trial(gate, revoker, names[i % USERS], (i * 7 % 20) / 10_000) for i in range(trials)
        ]
    finally:
        revoker.close()
        gate.close()


def nearest_rank(sorted_values: list[float], fraction: float) -> float:
    """The `fraction` percentile by nearest rank: a value that was measured."""
    return sorted_values[max(0, math.ceil(fraction * len(sorted_values)) - 1)]


def ms(value: float) -> str:
    """A delay in ms for the table; one past the deadline says so."""
    return f"{value:.3f}" if value < math.inf else f"not seen in {DEADLINE:g} s"


def row(store: str, results: list[Trial]) -> str:
    """One table row: store | revocations | median | p99 | max (ms)."""
    delays = sorted(t.delay_ms for t in results)
    return (
        f"| {store} | {len(delays):,} | {ms(statistics.median(delays))} "
        f"| {ms(nearest_rank(delays, 0.99))} | {ms(delays[-1])} |"
    )


@contextlib.contextmanager
def store_urls() -> Iterator[dict[str, str]]:
    """A SQLite file (WAL) in a temporary directory, a private redis-server with a key
    prefix of this run's own, and fresh PostgreSQL and MariaDB databases."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        redis_server() as redis_url,
        sql_databases() as sql,
    ):
        yield {
            "SQLite": f"sqlite:///{Path(tmp) / 'revocation.db'}",
            "Redis": f"{redis_url}?prefix=revocation-{uuid.uuid4().hex[:12]}",
            **sql,
        }


def run(trials: int = 1000) -> str:
    """The cross-process revocation delay per caching store, as a markdown section."""
    logging.getLogger("authgate.audit").setLevel(logging.WARNING)  # a login per trial
    results: dict[str, list[Trial]] = {}
    with store_urls() as urls:
        for store, url in urls.items():
            results[store] = measure(url, trials)
    lines = [
        "### Cross-process revocation delay",
        "",
        f"A second process revokes one session (`Store.revoke_session`, as a logout "
        f"does) of a gate whose session check is cached in this process, {trials:,} "
        f"times per store, each a fresh session of one of {USERS} users; the delay runs "
        "from the revoker's `time.monotonic()` after the store acknowledged to this "
        "process's first `authenticate` that raised `SessionRevoked`, polled in a tight "
        "loop (negative: seen before the acknowledgement returned; the thread switch "
        "interval, which paces Redis's listener thread against it, is "
        f"{sys.getswitchinterval() * 1000:g} ms).",
        "",
        "| store | revocations | median ms | p99 ms | max ms |",
        "|---|---|---|---|---|",
        *(row(store, found) for store, found in results.items()),
        "",
        "The memory store lives in one process, where a revocation is seen on the very "
        "next check: there is no other process to measure.",
    ]
    notes = {
        "were not seen within the deadline": {
            store: sum(t.delay_ms == math.inf for t in found) for store, found in results.items()
        },
        "had a poll answered by the store instead of the cache": {
            store: sum(not t.all_cached for t in found) for store, found in results.items()
        },
    }
    for what, counts in notes.items():
        if any(counts.values()):
            lines += [
                "",
                f"Revocations that {what}: "
                + ", ".join(f"{store} {count}" for store, count in counts.items())
                + ".",
            ]
    return "\n".join(lines)


def main() -> None:
    """Print the markdown section (or, with ``--revoker``, be the revoking process)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--trials", type=int, default=1000, help="revocations per store")
    parser.add_argument("--revoker", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.revoker:
        serve_revocations(args.revoker)
        return
    print(run(args.trials))


if __name__ == "__main__":
    main()
