"""Teach a framework that takes error handlers to answer authgate's errors itself.

Quart and Falcon answer an exception they have no handler for with a 500 and log its
traceback at ERROR.  The middlewares replace such a 500 with authgate's answer anyway
(`authgate.context.note_refusal`), but a refused request is no server error and should
leave no traceback: so when the wrapped app takes error handlers, the middleware
registers one for `AuthGateError` that renders it as authgate does.  Duck-typed: no
framework is imported.  To answer authgate's errors your own way, register your handler
after wrapping the app.
"""

from __future__ import annotations

import inspect
from typing import Any

from ..errors import AuthGateError
from ..http import error_response

__all__ = ["teach_error_handling"]


def teach_error_handling(app: Any, realm: str) -> None:
    """Register an `AuthGateError` handler with `app` when it takes one: Quart's (and
    Flask's) ``register_error_handler``, Falcon's ``add_error_handler``."""
    register = getattr(app, "register_error_handler", None)
    if callable(register):  # Quart, Flask: a handler returns (body, status, headers)

        def answer(err: AuthGateError) -> tuple[bytes, int, list[tuple[str, str]]]:
            rendered = error_response(err, realm)
            return rendered.body, rendered.status, rendered.headers

        register(AuthGateError, answer)
        return
    add = getattr(app, "add_error_handler", None)
    if not callable(add):
        return

    def fill(resp: Any, err: AuthGateError) -> None:  # Falcon: fill in its response
        rendered = error_response(err, realm)
        resp.status = rendered.status
        for name, value in rendered.headers:
            resp.set_header(name, value)
        resp.data = rendered.body

    if inspect.iscoroutinefunction(type(app).__call__):  # falcon.asgi.App

        async def handle_async(req: Any, resp: Any, err: AuthGateError, params: Any) -> None:
            fill(resp, err)

        add(AuthGateError, handle_async)
    else:

        def handle(req: Any, resp: Any, err: AuthGateError, params: Any) -> None:
            fill(resp, err)

        add(AuthGateError, handle)
