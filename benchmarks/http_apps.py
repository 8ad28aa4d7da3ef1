"""The apps `benchmarks/throughput.py` serves: bare, authgate, and the peers, on one route.

Configured from the environment (``AUTHGATE_*``, ``BENCH_SECRET``) by the benchmark.
"""

from __future__ import annotations

import os

import flask
import jwt
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
    """The usual Starlette recipe: pyjwt in an AuthenticationBackend."""

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
        return AuthCredentials(["authenticated"]), SimpleUser(claims["sub"])


bare_asgi = Starlette(routes=[Route("/", hello)])
peer_asgi = Starlette(
    routes=[Route("/", peer_hello)],
    middleware=[Middleware(AuthenticationMiddleware, backend=JWTBackend())],
)

bare_wsgi = flask.Flask("bare")
bare_wsgi.add_url_rule("/", "hello", lambda: "hello")

peer_wsgi = flask.Flask("peer")
peer_wsgi.config["JWT_SECRET_KEY"] = SECRET
JWTManager(peer_wsgi)
peer_wsgi.add_url_rule("/", "hello", jwt_required()(lambda: "hello"))

_authgate_flask = flask.Flask("authgate")
_authgate_flask.add_url_rule("/", "hello", require_auth(lambda: "hello"))


def __getattr__(name: str) -> object:
    """The authgate apps are built on first use, from the environment."""
    if name == "authgate_asgi":
        return AuthGateMiddleware(Starlette(routes=[Route("/", guarded)]), AsyncGate.from_env())
    if name == "authgate_wsgi":
        return AuthGateWSGIMiddleware(_authgate_flask, Gate.from_env())
    raise AttributeError(name)
