"""Verifying an identity provider's access tokens: authgate's trusted issuer against
PyJWT with ``PyJWKClient``, on the same tokens, in one run.

A provider (its keys served as a JWKS by a real HTTP server on loopback) signs one token
per user for a population of users; requests come from them by the Zipf model of
`population.Population` (a few users send most requests).  Cold: every token seen for
the first time (a signature check each).  Warm: the population's requests replayed
once the tokens were seen.  PyJWT is asked what a resource server built on it does per
request: ``PyJWKClient.get_signing_key_from_jwt`` (its keys cached) and ``jwt.decode``
with the issuer, audience and algorithms.  authgate is asked `Gate.authenticate` (the
token verified and its claims mapped to an identity with permissions).
Run: ``python benchmarks/issuers.py``.
"""

from __future__ import annotations

import json
import secrets
import statistics
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from population import Population

from authgate import Gate, TrustedIssuer
from authgate.permissions import RolePolicy

USERS = 10_000
REQUESTS = 20_000
ROUNDS = 5
AUDIENCE = "https://api.example.com"


class _Jwks:
    """A JWKS on loopback: the keys a provider publishes."""

    def __init__(self, document: dict[str, Any]) -> None:
        body = json.dumps(document).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/certs"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _tokens(algorithm: str) -> tuple[list[str], dict[str, Any], str]:
    """One token per user, signed with a new `algorithm` key; the JWKS; the issuer."""
    key: Any = (
        ec.generate_private_key(ec.SECP256R1())
        if algorithm == "ES256"
        else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    jwk = json.loads(jwt.get_algorithm_by_name(algorithm).to_jwk(key.public_key()))
    kid = secrets.token_hex(8)
    document = {"keys": [{**jwk, "kid": kid, "alg": algorithm, "use": "sig"}]}
    issuer = f"https://sso.example.com/realms/{algorithm.lower()}"
    now = int(time.time())
    tokens = [
        jwt.encode(
            {
                "iss": issuer,
                "aud": AUDIENCE,
                "sub": f"u{n}",
                "iat": now,
                "exp": now + 3600,
                "preferred_username": f"user{n}",
                "realm_access": {"roles": ["viewer"]},
            },
            key,
            algorithm=algorithm,
            headers={"kid": kid, "typ": "at+jwt"},
        )
        for n in range(USERS)
    ]
    return tokens, document, issuer


def _authgate(issuer: str, jwks_uri: str, algorithm: str) -> Callable[[str], object]:
    gate = Gate(
        store="memory://",
        secret_key=secrets.token_urlsafe(48),
        policy=RolePolicy({"viewer": ["notes:read"], "admin": ["*:*"]}),
        log_format="none",
        trusted_issuers=[
            TrustedIssuer(
                issuer, (AUDIENCE,), jwks_uri=jwks_uri, preset="keycloak", algorithms=(algorithm,)
            )
        ],
    )
    return gate.authenticate


def _pyjwt(issuer: str, jwks_uri: str, algorithm: str) -> Callable[[str], object]:
    client = jwt.PyJWKClient(jwks_uri, cache_keys=True)

    def verify(token: str) -> object:
        key = client.get_signing_key_from_jwt(token)
        return jwt.decode(token, key.key, algorithms=[algorithm], audience=AUDIENCE, issuer=issuer)

    return verify


def _per_call(verify: Callable[[str], object], tokens: list[str]) -> float:
    start = time.perf_counter()
    for token in tokens:
        verify(token)
    return (time.perf_counter() - start) / len(tokens) * 1e6


def run() -> str:
    """The table, as markdown."""
    drawn = Population(USERS, REQUESTS)
    rows: list[tuple[str, str, float, float]] = []
    for algorithm in ("RS256", "ES256"):
        tokens, document, issuer = _tokens(algorithm)
        jwks = _Jwks(document)
        try:
            replay = [tokens[user] for user in drawn.users]
            for name, make in (("authgate", _authgate), ("PyJWT + PyJWKClient", _pyjwt)):
                colds, warms = [], []
                for round_ in range(ROUNDS):
                    verify = make(issuer, jwks.url, algorithm)  # a fresh process's caches
                    verify(tokens[0])  # the keys fetched, as at start
                    fresh = tokens[1 + round_ * 1000 : 1 + (round_ + 1) * 1000]
                    colds.append(_per_call(verify, fresh))
                    _per_call(verify, replay)  # every token of the replay seen once
                    warms.append(_per_call(verify, replay))
                rows.append((algorithm, name, statistics.median(colds), statistics.median(warms)))
        finally:
            jwks.close()
    lines = [
        "## A provider's access tokens: authgate against PyJWT",
        "",
        f"`Gate.authenticate` with a trusted issuer against `PyJWKClient` + `jwt.decode`, "
        f"same tokens; {USERS:,} users with a token each. Cold: 1,000 tokens never seen. "
        f"Warm: {REQUESTS:,} requests of the Zipf population, each token seen before. "
        f"Median µs per token of {ROUNDS} rounds.",
        "",
        "| algorithm | verifier | cold µs | warm µs | warm, PyJWT / authgate |",
        "|---|---|---:|---:|---:|",
    ]
    for algorithm in ("RS256", "ES256"):
        ours = next(r for r in rows if r[0] == algorithm and r[1] == "authgate")
        theirs = next(r for r in rows if r[0] == algorithm and r[1] != "authgate")
        for row in (ours, theirs):
            ratio = f"{theirs[3] / ours[3]:.1f}x" if row is theirs else ""
            lines.append(f"| {row[0]} | {row[1]} | {row[2]:,.1f} | {row[3]:,.1f} | {ratio} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
