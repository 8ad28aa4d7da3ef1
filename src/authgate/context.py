"""The current identity, carried in a contextvar, and `current_identity`, the proxy that
reads it.

The middlewares set it for each request; `as_identity` sets it for jobs, CLIs and
tests.  ``current_identity.username`` reads the identity of the request being served,
in every framework (the Flask and Starlette adapters export this same object), and
``current_identity()`` returns the identity itself.  It follows asyncio tasks (each
task copies the context it was created in) and threads started with
``contextvars.copy_context().run``; a plain new thread starts anonymous, which is the
safe default.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any, cast

from .browser import BrowserVisit
from .errors import AuthGateError
from .identity import ANONYMOUS, Identity

__all__ = [
    "as_identity",
    "csrf_token",
    "current_identity",
    "hiding_objects",
    "note_refusal",
    "reset_identity",
    "reset_object_hiding",
    "reset_visit",
    "set_identity",
    "set_object_hiding",
    "set_visit",
    "stop_watching",
    "watch_refusals",
]

_current: ContextVar[Identity] = ContextVar("authgate.identity", default=ANONYMOUS)
_hiding: ContextVar[bool] = ContextVar("authgate.hide_objects", default=False)
_refusals: ContextVar[list[AuthGateError] | None] = ContextVar("authgate.refusals", default=None)
_visit: ContextVar[BrowserVisit | None] = ContextVar("authgate.browser_visit", default=None)


class _CurrentIdentity:
    """Stands for the identity the current request or job acts as (anonymous when
    none): each attribute is read from it when asked, and calling the proxy returns it.
    It passes for an `Identity` (``isinstance`` and type checkers agree), as Flask's
    ``current_app`` passes for a ``Flask``."""

    __slots__ = ()

    def __call__(self) -> Identity:
        return _current.get()

    def __getattr__(self, name: str) -> Any:
        return getattr(_current.get(), name)

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return Identity

    def __eq__(self, other: object) -> bool:
        return _current.get() == other

    def __hash__(self) -> int:
        return hash(_current.get())

    def __repr__(self) -> str:
        return f"<current_identity {_current.get()!r}>"


current_identity: Identity = cast(Identity, _CurrentIdentity())
"""The identity of the request or job being served: ``current_identity.username``,
``current_identity.can("items:read")``; ``current_identity()`` is the identity itself."""


def set_identity(identity: Identity) -> Token[Identity]:
    """Make `identity` current; pass the returned token to `reset_identity`."""
    return _current.set(identity)


def reset_identity(token: Token[Identity]) -> None:
    """Undo a `set_identity`."""
    _current.reset(token)


def watch_refusals() -> tuple[list[AuthGateError], Token[list[AuthGateError] | None]]:
    """Start noting, for the request being served, the authgate errors raised while it
    runs (`note_refusal`); pass the token to `stop_watching`.  The list is shared by the
    tasks and threads the request's context is copied into."""
    refusals: list[AuthGateError] = []
    return refusals, _refusals.set(refusals)


def stop_watching(token: Token[list[AuthGateError] | None]) -> None:
    """Undo a `watch_refusals`."""
    _refusals.reset(token)


def note_refusal(err: AuthGateError) -> AuthGateError:
    """Note `err` for the middleware serving this request (if any), and return it: a
    framework that turns the exception into a 500 of its own (Litestar, Quart, Falcon)
    still gets authgate's answer on the wire."""
    refusals = _refusals.get()
    if refusals is not None:
        refusals.append(err)
    return err


def hiding_objects() -> bool:
    """Whether an object the current caller may not see is answered as missing (404)
    rather than forbidden (403): the ``hide_objects`` setting of the gate whose
    middleware serves the request, unless a guard says otherwise."""
    return _hiding.get()


def set_object_hiding(hide: bool) -> Token[bool]:
    """Set what `hiding_objects` answers in this context (the middlewares do, from
    ``AUTHGATE_HIDE_OBJECTS``); pass the token to `reset_object_hiding`."""
    return _hiding.set(hide)


def reset_object_hiding(token: Token[bool]) -> None:
    """Undo a `set_object_hiding`."""
    _hiding.reset(token)


@contextmanager
def as_identity(identity: Identity, *, hide_objects: bool | None = None) -> Iterator[Identity]:
    """Run a block as `identity` (a job, a CLI command, a test)::

    with as_identity(admin):
        create_invoice(...)

    `hide_objects` sets `hiding_objects` for the block (unchanged when None).
    """
    token = _current.set(identity)
    hiding = None if hide_objects is None else _hiding.set(hide_objects)
    try:
        yield identity
    finally:
        if hiding is not None:
            _hiding.reset(hiding)
        _current.reset(token)


def set_visit(visit: BrowserVisit | None) -> Token[BrowserVisit | None]:
    """Make `visit` the current request's browser state (the middlewares do this)."""
    return _visit.set(visit)


def reset_visit(token: Token[BrowserVisit | None]) -> None:
    """Undo `set_visit`."""
    _visit.reset(token)


def csrf_token() -> str:
    """The CSRF token for the page being rendered, to put in its forms
    (``<input type="hidden" name="csrf_token" value="...">``) or a ``<meta>`` tag for
    its scripts: bound to the browser's session, or before a login to a cookie set on
    this response.  Needs ``cookie_sessions`` on and authgate's middleware in front."""
    visit = _visit.get()
    if visit is None:
        raise RuntimeError(
            "csrf_token() has no browser request to answer for: turn on cookie sessions "
            "(AUTHGATE_COOKIE_SESSIONS=true) and serve the page behind authgate's middleware"
        )
    return visit.csrf_token()
