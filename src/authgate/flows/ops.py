"""The operations a flow yields, and `call`, the typed way to yield a store call.

A flow is a generator: it yields one of these small frozen values and receives the
result, so it never does I/O itself and the same body serves the sync and the async
drivers (`authgate.flows.drive`).  Store calls are made with `call`, which names the
operation by the `Store` protocol's own method, so a misspelt operation or a wrong
argument is a type error, and the result arrives typed::

    user = yield from call(Store.get_user, username)   # User | None
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec, TypeVar

from ..audit import AuditEvent
from ..permissions.objects import Settle
from ..stores.base import Store

__all__ = [
    "Call",
    "DeriveScram",
    "DummyVerify",
    "Emit",
    "ExchangeCode",
    "Fetch",
    "Flow",
    "Hash",
    "Op",
    "Pause",
    "Settle",
    "Verify",
    "call",
]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Call:
    """Call the store operation `method` (made by `call`, which checks the name)."""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class Hash:
    """Hash a password.  CPU-heavy.

    A new password is checked against the policy first.  A password rehashed at login
    (``rehash=True``) is not: it has just matched its stored hash, and a policy
    tightened since it was set must not turn that login into a failure."""

    password: str
    rehash: bool = False

    def __repr__(self) -> str:
        return f"Hash(<password>, rehash={self.rehash})"


@dataclass(frozen=True, slots=True)
class DeriveScram:
    """Derive SCRAM-SHA-256 credentials from a password.  CPU-heavy (PBKDF2)."""

    password: str

    def __repr__(self) -> str:
        return "DeriveScram(<password>)"


@dataclass(frozen=True, slots=True)
class Verify:
    """Verify a password against a hash; the result is a bool.  CPU-heavy."""

    password_hash: str
    password: str

    def __repr__(self) -> str:
        return "Verify(<hash>, <password>)"


@dataclass(frozen=True, slots=True)
class DummyVerify:
    """Spend one verification's time for an unknown user.  CPU-heavy."""

    password: str

    def __repr__(self) -> str:
        return "DummyVerify(<password>)"


@dataclass(frozen=True, slots=True)
class Emit:
    """Record an audit event."""

    event: AuditEvent


@dataclass(frozen=True, slots=True)
class Pause:
    """Wait a moment (without holding the event loop) before going on."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Fetch:
    """GET a JSON document over HTTP (an identity provider's discovery document or
    keys); the result is the decoded JSON, or `FetchFailed`.  The async driver sends
    it to a thread: the event loop never waits on the network."""

    url: str
    timeout: float = 5.0


@dataclass(frozen=True, slots=True)
class ExchangeCode:
    """Trade an authorization code for tokens at an OpenID provider's token endpoint
    (with the PKCE verifier; the client authenticated by its secret when it has one);
    the result is the token response, or `FetchFailed`.  Done by Authlib's client, in
    a thread for the async driver."""

    token_endpoint: str
    client_id: str
    client_secret: str | None = field(repr=False)
    code: str = field(repr=False)
    redirect_uri: str = ""
    code_verifier: str = field(default="", repr=False)
    timeout: float = 10.0


#: `Settle` (an ``async def`` model hook's answer) comes from `authgate.permissions.objects`.
Op = Call | Hash | DeriveScram | Verify | DummyVerify | Emit | Pause | Settle | Fetch | ExchangeCode
Flow = Generator[Op, Any, T]


def call(method: Callable[Concatenate[Store, P], R], *args: P.args, **kwargs: P.kwargs) -> Flow[R]:
    """The steps of one store call: ``yield from call(Store.get_user, name)`` runs
    ``store.get_user(name)`` on whichever store the driver holds and returns its
    result, typed as the protocol declares it."""
    result: R = yield Call(method.__name__, args, tuple(kwargs.items()))
    return result
