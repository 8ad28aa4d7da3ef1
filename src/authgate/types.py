"""ASGI and WSGI type aliases, named once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import TYPE_CHECKING, Any

__all__ = [
    "ASGIApp",
    "AnyASGIApp",
    "AnyWSGIApp",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "StartResponse",
    "WSGIApp",
    "WSGIEnviron",
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
#: What the middlewares wrap: any framework's app, however precisely it types the ASGI
#: (or WSGI) messages (Litestar, Quart, Falcon name their own).
AnyASGIApp = Callable[[Any, Any, Any], Awaitable[Any]]
AnyWSGIApp = Callable[[Any, Any], Iterable[bytes]]

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse
    from _typeshed.wsgi import WSGIApplication as WSGIApp
    from _typeshed.wsgi import WSGIEnvironment as WSGIEnviron
else:  # typeshed's aliases exist for type checkers only
    StartResponse = Callable[..., Callable[[bytes], object]]
    WSGIApp = Callable[..., Iterable[bytes]]
    WSGIEnviron = dict
