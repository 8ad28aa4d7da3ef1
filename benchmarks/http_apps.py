"""The apps `benchmarks/throughput.py` serves: bare, authgate, and the peers, on one route.

Configured from the environment by the benchmark: ``AUTHGATE_*`` for authgate,
``BENCH_SECRET`` for the peers' key, ``BENCH_REDIS_URL`` for the peers' blocklists, and
``BENCH_TIME_SCALE`` for how much faster than configured authgate's session state ages
(scaled to the modelled traffic, see `population.py`).
"""

from __future__ import annotations

import dataclasses
import os
from datetime import timedelta
from typing import Any

import flask
import jwt
import redis
import redis.asyncio
from flask_jwt_extended import JWTManager, jwt_required
from starlette.applications import Starlette
from starlette.authentication import (
    AuthCredentials,
    AuthenticationBackend,
    AuthenticationError,
    SimpleUser,
    requires,
)
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from authgate import AsyncGate, AuthGateMiddleware, AuthGateWSGIMiddleware, Gate, require_auth
from authgate.stores.cache import CACHE_TTL

SECRET = os.environ.get("BENCH_SECRET", "benchmark-secret-key-that-is-long-enough-000")


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


@require_auth
async def guarded(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


@requires("authenticated")
async def peer_hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


class JWTBackend(AuthenticationBackend):
    """The usual Starlette recipe: pyjwt in an AuthenticationBackend; with a Redis
    client, the blocklist of revoked token ids too."""

    def __init__(self, blocklist: redis.asyncio.Redis | None = None) -> None:
        self.blocklist = blocklist

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, SimpleUser] | None:
        scheme, _, token = conn.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        try:
            claims = jwt.decode(
                token, SECRET, algorithms=["HS256"], audience="authgate", issuer="authgate"
            )
        except jwt.PyJWTError as err:
            raise AuthenticationError("invalid token") from err
        if self.blocklist is not None and await self.blocklist.exists(f"blocklist:{claims['jti']}"):
            raise AuthenticationError("revoked token")
        return AuthCredentials(["authenticated"]), SimpleUser(claims["sub"])


def flask_jwt_app(blocklist: redis.Redis | None) -> flask.Flask:
    """Flask-JWT-Extended as its docs set it up, the blocklist as in its Redis recipe."""
    peer = flask.Flask("peer")
    peer.config["JWT_SECRET_KEY"] = SECRET
    peer.config["JWT_ACCESS_TOKEN_EXPIRES"] = timedelta(hours=6)  # outlives a whole run
    manager = JWTManager(peer)
    if blocklist is not None:

        @manager.token_in_blocklist_loader  # type: ignore[untyped-decorator,unused-ignore]
        def revoked(jwt_header: dict[str, Any], jwt_payload: dict[str, Any]) -> bool:
            return blocklist.get(f"blocklist:{jwt_payload['jti']}") is not None

    @peer.get("/")
    @jwt_required()  # type: ignore[untyped-decorator]
    def peer_hello() -> str:
        return "hello"

    return peer


def scale_time(gate: Any, factor: float) -> None:
    """Run `gate`'s clocks of session state `factor` times faster than configured:
    its session cache lifetime (SQLite, Redis) and its ``last_seen`` touch interval
    (see `population.py`: a row serving faster than the modelled traffic)."""
    ttl = CACHE_TTL * factor
    store = getattr(gate.store, "sync", gate.store)
    if hasattr(store, "_cache_ttl"):
        store._cache_ttl = ttl
    cache = getattr(store, "_cache", None)
    if cache is not None:
        cache.ttl = ttl
    interval: Any = gate.settings.session_touch_interval * factor
    gate.rules = dataclasses.replace(gate.rules, touch_interval=interval)


def _configured(gate: Any) -> Any:
    factor = os.environ.get("BENCH_TIME_SCALE")
    if factor:
        scale_time(gate, float(factor))
    return gate


bare_asgi = Starlette(routes=[Route("/", hello)])
peer_asgi = Starlette(
    routes=[Route("/", peer_hello)],
    middleware=[Middleware(AuthenticationMiddleware, backend=JWTBackend())],
)

bare_wsgi = flask.Flask("bare")
bare_wsgi.add_url_rule("/", "hello", lambda: "hello")
peer_wsgi = flask_jwt_app(None)

_authgate_flask = flask.Flask("authgate")
_authgate_flask.add_url_rule("/", "hello", require_auth(lambda: "hello"))


def __getattr__(name: str) -> object:
    """The apps that need the environment are built on first use."""
    if name == "authgate_asgi":
        gate = _configured(AsyncGate.from_env())
        return AuthGateMiddleware(Starlette(routes=[Route("/", guarded)]), gate)
    if name == "authgate_wsgi":
        return AuthGateWSGIMiddleware(_authgate_flask, _configured(Gate.from_env()))
    if name == "peer_asgi_blocklist":
        client = redis.asyncio.Redis.from_url(os.environ["BENCH_REDIS_URL"])
        return Starlette(
            routes=[Route("/", peer_hello)],
            middleware=[Middleware(AuthenticationMiddleware, backend=JWTBackend(client))],
        )
    if name == "peer_wsgi_blocklist":
        return flask_jwt_app(redis.Redis.from_url(os.environ["BENCH_REDIS_URL"]))
    raise AttributeError(name)
