"""What one `authenticate` costs, next to a raw `jwt.decode`, measured in one run.

Run: ``python benchmarks/authenticate.py`` (starts a private redis-server).
Prints min / median / max over repeats, in microseconds per call.
"""

from __future__ import annotations

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


def row(name: str, samples: list[float], base: float | None = None) -> None:
    med = statistics.median(samples)
    ratio = f"{med / base:5.2f}x" if base else "     "
    print(f"{name:<44} {min(samples):9.2f} {med:9.2f} {max(samples):9.2f}  {ratio}")


def main() -> None:
    print(f"{'per call (µs)':<44} {'min':>9} {'median':>9} {'max':>9}  vs jwt.decode")
    hasher = PasswordHasher()
    hashed = hasher.hash("correct horse battery")
    argon = per_call(lambda: hasher.verify(hashed, "correct horse battery"), 5)
    row("argon2id verify (t=3, m=64 MiB, p=4)", argon)

    verifier = TokenVerifier(KeyRing([Key.hmac(SECRET)]), issuer="authgate", audience="authgate")
    token = verifier.issue({"sub": "alice", "sid": "s", "ver": 1}, ttl=3600)
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
    row(f"jwt.decode, full claim checks (PyJWT {jwt.__version__})", decode, base)

    def first_sight() -> None:
        verifier._verified.invalidate()
        verifier.verify(token)

    row("TokenVerifier, token seen first time", per_call(first_sight, 20000), base)
    row("TokenVerifier, token seen before", per_call(lambda: verifier.verify(token), 50000), base)

    with tempfile.TemporaryDirectory() as tmp, redis_server() as redis_url:
        urls = {
            "memory": "memory://",
            "sqlite": f"sqlite:///{Path(tmp) / 'bench.db'}",
            "redis": f"{redis_url}?prefix=bench",
        }
        stateless = Gate(
            store="memory://", secret_key=SECRET, hasher=cheap_hasher(), stateless=True
        )
        stateless.create_user("alice", "correct horse battery")
        pair = stateless.login("alice", "correct horse battery")
        row(
            "Gate.authenticate, stateless",
            per_call(lambda: stateless.authenticate(pair.access_token), 20000),
            base,
        )
        for name, url in urls.items():
            gate = Gate(store=url, secret_key=SECRET, hasher=cheap_hasher())
            gate.create_user("alice", "correct horse battery")
            pair = gate.login("alice", "correct horse battery")
            number = 2000 if name == "redis" else 10000
            row(
                f"Gate.authenticate, session check on {name}",
                per_call(partial(gate.authenticate, pair.access_token), number),
                base,
            )
            gate.close()


if __name__ == "__main__":
    main()
