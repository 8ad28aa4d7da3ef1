"""ASGI and WSGI type aliases, named once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import TYPE_CHECKING, Any

__all__ = [
    "ASGIApp",
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

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse
    from _typeshed.wsgi import WSGIApplication as WSGIApp
    from _typeshed.wsgi import WSGIEnvironment as WSGIEnviron
else:  # typeshed's aliases exist for type checkers only
    StartResponse = Callable[..., Callable[[bytes], object]]
    WSGIApp = Callable[..., Iterable[bytes]]
    WSGIEnviron = dict
