"""Starlette: the middleware, the HTTP API as routes, and the error handler.

::

    from starlette.applications import Starlette
    from authgate import AsyncGate
    from authgate.integrations.starlette import AuthGate

    auth = AuthGate(AsyncGate.from_env())
    app = Starlette(routes=[*my_routes, *auth.routes],
                    middleware=auth.middleware,
                    exception_handlers=auth.exception_handlers)
"""

from __future__ import annotations

import re
from typing import Any

from starlette.middleware import Middleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.websockets import WebSocket

from ..api import ApiRequest, HttpApi
from ..context import csrf_token, current_identity
from ..errors import AuthGateError
from ..gate import AsyncGate
from ..http import ApiResponse, CredentialRules, error_response, not_found, refusal, request_address
from ..identity import ANONYMOUS, Client
from ..middleware.asgi import AuthGateMiddleware, scope_headers

__all__ = ["AuthGate", "csrf_token", "current_identity", "render_error", "to_response"]

_API_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


async def render_error(conn: HTTPConnection, exc: Exception) -> Response | None:
    """Starlette exception handler for every `AuthGateError` (401 / 403 / 409 / 429...).
    On a WebSocket it closes with 1008 (before accept, the server answers 403)."""
    assert isinstance(exc, AuthGateError)
    if isinstance(conn, WebSocket):
        await conn.close(code=1008)
        return None
    return to_response(error_response(exc))


def to_response(answer: ApiResponse) -> Response:
    """An authgate answer as a Starlette response (every header kept: a login sets two
    cookies)."""
    response = Response(answer.body, answer.status)
    response.raw_headers = [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in [*answer.headers, ("content-length", str(len(answer.body)))]
    ]
    return response


class AuthGate:
    """What a Starlette (or FastAPI) app adds: `middleware`, `routes`,
    `exception_handlers`, or all three at once with `install`."""

    def __init__(self, gate: AsyncGate, *, rules: CredentialRules | None = None) -> None:
        self.gate = gate
        self.rules = rules
        self.browser = (rules or CredentialRules.for_gate(gate)).browser
        self.middleware = [Middleware(AuthGateMiddleware, gate=gate, rules=rules)]
        self.exception_handlers: dict[Any, Any] = {AuthGateError: self.render_error}
        self.api = api = HttpApi.for_gate(gate)
        self.routes: list[BaseRoute] = [
            Route(f"{api.auth_prefix}/{{rest:path}}", self._serve, methods=_API_METHODS),
            Route(api.users_prefix, self._serve, methods=_API_METHODS),
            Route(f"{api.users_prefix}/{{rest:path}}", self._serve, methods=_API_METHODS),
        ]
        # Every request for the API's paths reaches the API, which answers it as in any
        # framework: OPTIONS too (Starlette's own 405 would list in `Allow` every method
        # the routes take, not the path's) and a path with a newline (Starlette's
        # `{rest:path}` stops at one: a 404 of Starlette's own).
        for route in self.routes:
            if isinstance(route, Route):
                route.path_regex = re.compile(route.path_regex.pattern, re.DOTALL)

    async def render_error(self, conn: HTTPConnection, exc: Exception) -> Response | None:
        """`render_error`, and for a browser's page request without a session, a
        redirect to the login page (when one is configured)."""
        if self.browser is None or isinstance(conn, WebSocket):
            return await render_error(conn, exc)
        assert isinstance(exc, AuthGateError)
        request = conn.scope
        query = request.get("query_string", b"").decode("latin-1")
        path = request.get("path", "/")
        rendered = refusal(
            exc,
            "authgate",
            self.browser,
            method=request.get("method", "GET"),
            accept=conn.headers.get("accept", ""),
            authorization="authorization" in conn.headers,
            target=f"{path}?{query}" if query else path,
        )
        return to_response(rendered)

    def install(self, app: Any) -> None:
        """Add the middleware, routes and handler to an existing Starlette/FastAPI app."""
        app.add_exception_handler(AuthGateError, self.render_error)
        app.router.routes.extend(self.routes)
        app.add_middleware(AuthGateMiddleware, gate=self.gate, rules=self.rules)

    async def _serve(self, request: Request) -> Response:
        root = request.scope.get("root_path", "")
        path = request.url.path[len(root) :] if root else request.url.path
        client = request.client
        api_request = ApiRequest(
            method=request.method,
            path=path,
            identity=request.scope.get("user", ANONYMOUS),
            body=await request.body(),
            query=dict(request.query_params),
            client=Client(
                request_address(client.host if client else None),
                request.headers.get("user-agent", ""),
            ),
            authorization=request.headers.get("authorization", ""),
            if_match=request.headers.get("if-match", ""),
            headers=scope_headers(request.scope),
        )
        response = await self.gate.run(self.api.answer(api_request)) or not_found()
        return to_response(response)
