"""Whether asking for a reset link takes the same time whoever is named.

``POST /auth/password/forgot`` through the WSGI middleware and the HTTP API, on an
SQLite store of 10,000 users, for four kinds of name: an account with an address (a mail
is queued), one without, a name nobody has, and one no account can have.  Each request
names an account not named before (as a prober's would: no counter of it exists yet)
and the per-address limit is off.  Rounds interleave the kinds; the table gives the
median µs per request and the ratio to the account with an address.
Run: ``python benchmarks/accounts.py``.
"""

from __future__ import annotations

import io
import json
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from authgate import Gate
from authgate.mail import MemorySender, Outbox
from authgate.middleware.wsgi import AuthGateWSGIMiddleware
from authgate.testing import cheap_hasher
from authgate.users import User

USERS = 10_000
PER_ROUND = 100
ROUNDS = 7
SECRET = secrets.token_urlsafe(48)
KINDS = ("with an address", "without an address", "unknown name", "invalid name")


def _names(kind: str) -> Iterator[str]:
    """Names of `kind`, each named once."""
    for n in range(USERS // 2):
        yield {
            "with an address": f"mailed{n:05d}",
            "without an address": f"silent{n:05d}",
            "unknown name": f"nobody{n:05d}",
            "invalid name": f"no body {n}!",
        }[kind]


def _app(store: str) -> tuple[Callable[[str], int], Outbox]:
    outbox = Outbox(MemorySender(), retries=0, maxsize=10_000_000)
    gate = Gate(
        store=store,
        secret_key=SECRET,
        public_url="https://app.example",
        mail_url="memory://",
        outbox=outbox,
        hasher=cheap_hasher(),
        max_mail_requests_per_address=0,
        max_mail_requests_per_account=0,
        log_format="none",
    )
    for i in range(USERS // 2):  # straight into the store: no hashing needed here
        gate.store.create_user(User.new(f"mailed{i:05d}", email=f"m{i}@example.com"))
        gate.store.create_user(User.new(f"silent{i:05d}"))
    app = AuthGateWSGIMiddleware(_nowhere, gate, api=True)

    def ask(name: str) -> int:
        body = json.dumps({"username": name}).encode()
        environ: dict[str, Any] = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": "/auth/password/forgot",
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": "198.51.100.9",
            "wsgi.input": io.BytesIO(body),
        }
        status: list[str] = []
        b"".join(app(environ, lambda s, h, *e: status.append(s)))  # type: ignore[arg-type]
        return int(status[0][:3])

    return ask, outbox


def _nowhere(environ: Any, start_response: Any) -> list[bytes]:
    start_response("404 Not Found", [])
    return []


def run() -> str:
    """The table, as markdown."""
    with tempfile.TemporaryDirectory() as tmp:
        ask, outbox = _app(f"sqlite:///{Path(tmp) / 'bench.db'}")
        supply = {kind: _names(kind) for kind in KINDS}
        samples: dict[str, list[float]] = {kind: [] for kind in KINDS}
        for kind in KINDS:  # warm-up
            assert ask(next(supply[kind])) == 202
        for _ in range(ROUNDS):
            for kind in KINDS:
                names = [next(supply[kind]) for _ in range(PER_ROUND)]
                start = time.perf_counter()
                for name in names:
                    ask(name)
                samples[kind].append((time.perf_counter() - start) / PER_ROUND * 1e6)
        outbox.close(30)
    base = statistics.median(samples[KINDS[0]])
    lines = [
        "## Asking for a reset link: the same time whoever is named",
        "",
        f"`POST /auth/password/forgot` over the WSGI middleware, SQLite, {USERS:,} users; "
        f"median of {ROUNDS} interleaved rounds of {PER_ROUND} requests.",
        "",
        "| name | µs per request | ratio |",
        "|---|---:|---:|",
    ]
    for kind in KINDS:
        median = statistics.median(samples[kind])
        lines.append(f"| {kind} | {median:,.0f} | {median / base:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(run() + "\n")
