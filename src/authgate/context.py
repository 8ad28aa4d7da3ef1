"""The current identity, carried in a contextvar.

The middlewares set it for each request; `as_identity` sets it for jobs, CLIs and
tests.  It follows asyncio tasks (each task copies the context it was created in) and
threads started with ``contextvars.copy_context().run``; a plain new thread starts
anonymous, which is the safe default.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token

from .identity import ANONYMOUS, Identity

__all__ = ["as_identity", "current_identity", "reset_identity", "set_identity"]

_current: ContextVar[Identity] = ContextVar("authgate.identity", default=ANONYMOUS)


def current_identity() -> Identity:
    """The identity the current request or job acts as (anonymous when none)."""
    return _current.get()


def set_identity(identity: Identity) -> Token[Identity]:
    """Make `identity` current; pass the returned token to `reset_identity`."""
    return _current.set(identity)


def reset_identity(token: Token[Identity]) -> None:
    """Undo a `set_identity`."""
    _current.reset(token)


@contextmanager
def as_identity(identity: Identity) -> Iterator[Identity]:
    """Run a block as `identity` (a job, a CLI command, a test)::

    with as_identity(admin):
        create_invoice(...)
    """
    token = _current.set(identity)
    try:
        yield identity
    finally:
        _current.reset(token)
