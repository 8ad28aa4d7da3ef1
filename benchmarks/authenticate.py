"""What one token verification and one `authenticate` cost, next to a raw
`jwt.decode` of the same token, measured in one run.

Run: ``python benchmarks/authenticate.py`` (starts a private redis-server).  Prints a
markdown table: min / median / max over repeats, in microseconds per call.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import jwt

from authgate import Gate
from authgate.passwords import PasswordHasher
from authgate.testing import cheap_hasher, redis_server
from authgate.tokens import Key, KeyRing, TokenVerifier

SECRET = "benchmark-secret-key-that-is-long-enough-000"
REPEATS = 7


def per_call(fn: Callable[[], object], number: int) -> list[float]:
    """Microseconds per call, one figure per repeat."""
    out = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        out.append((time.perf_counter() - start) / number * 1e6)
    return out


def row(lines: list[str], name: str, samples: list[float], base: float | None = None) -> None:
    med = statistics.median(samples)
    ratio = f"{med / base:.2f}x" if base else ""
    lines.append(f"| {name} | {min(samples):.2f} | {med:.2f} | {max(samples):.2f} | {ratio} |")


def run() -> str:
    """The table, as markdown."""
    logging.getLogger("authgate.audit").setLevel(logging.WARNING)
    lines = [
        "### One verification, in process",
        "",
        "| per call | min µs | median µs | max µs | vs `jwt.decode` |",
        "|---|---|---|---|---|",
    ]
    hasher = PasswordHasher()
    hashed = hasher.hash("correct horse battery")
    argon = per_call(lambda: hasher.verify(hashed, "correct horse battery"), 5)
    row(lines, "argon2id verify (t=3, m=64 MiB, p=4)", argon)

    verifier = TokenVerifier(KeyRing([Key.hmac(SECRET)]), issuer="authgate", audience="authgate")
    token = verifier.issue(
        {"sub": "alice", "uid": "u1", "sid": "s", "ver": 1, "roles": ["viewer"]}, ttl=3600
    )
    options: Any = {"require": ["exp", "iat", "iss", "aud", "sub", "jti"]}
    decode = per_call(
        lambda: jwt.decode(
            token,
            SECRET,
            algorithms=["HS256"],
            audience="authgate",
            issuer="authgate",
            options=options,
        ),
        20000,
    )
    base = statistics.median(decode)
    row(
        lines,
        f"`jwt.decode` of the token, full claim checks (PyJWT {jwt.__version__})",
        decode,
        base,
    )

    def cold() -> None:
        verifier._verified.invalidate()
        verifier.verify(token)

    def first_header() -> None:
        verifier._verified.invalidate()
        verifier._headers.invalidate()
        verifier.verify(token)

    row(
        lines,
        "`TokenVerifier`, token not seen before (its header known)",
        per_call(cold, 20000),
        base,
    )
    row(
        lines,
        "`TokenVerifier`, token and header not seen before",
        per_call(first_header, 20000),
        base,
    )
    row(
        lines,
        "`TokenVerifier`, token seen before",
        per_call(lambda: verifier.verify(token), 50000),
        base,
    )

    with tempfile.TemporaryDirectory() as tmp, redis_server() as redis_url:
        urls = {
            "memory": "memory://",
            "SQLite": f"sqlite:///{Path(tmp) / 'bench.db'}",
            "Redis": f"{redis_url}?prefix=bench",
        }
        stateless = Gate(
            store="memory://", secret_key=SECRET, hasher=cheap_hasher(), stateless=True
        )
        stateless.create_user("alice", "correct horse battery")
        pair = stateless.login("alice", "correct horse battery")
        row(
            lines,
            "`Gate.authenticate`, stateless, token seen before",
            per_call(lambda: stateless.authenticate(pair.access_token), 20000),
            base,
        )
        for name, url in urls.items():
            gate = Gate(store=url, secret_key=SECRET, hasher=cheap_hasher())
            gate.create_user("alice", "correct horse battery")
            pair = gate.login("alice", "correct horse battery")
            row(
                lines,
                f"`Gate.authenticate`, session check on {name}, token seen before",
                per_call(partial(gate.authenticate, pair.access_token), 10000),
                base,
            )
            gate.close()
    return "\n".join(lines)


def main() -> None:
    print(run())


if __name__ == "__main__":
    main()
