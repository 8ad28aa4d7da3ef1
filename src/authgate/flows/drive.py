"""The two drivers of flows: `run` against a sync store, `arun` against an async one.

Both step the same generator (`authgate.faces.drive`); they differ only in how an
operation is done.  `arun` sends argon2 and PBKDF2 work to a small bounded thread pool,
so the event loop never hashes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ..audit import AuditEvent
from ..faces import adrive, drive
from ..passwords import PasswordHasher
from ..permissions.objects import refuse_to_wait
from ..stores.base import AsyncStore, Store
from .ops import (
    Call,
    DeriveScram,
    DummyVerify,
    Emit,
    ExchangeCode,
    Fetch,
    Flow,
    Hash,
    Op,
    Pause,
    Settle,
    Verify,
)

__all__ = ["Emitter", "FetchFailed", "arun", "fetch_json", "hashing_pool", "run", "run_fetches"]

T = TypeVar("T")
Emitter = Callable[[AuditEvent], None]


def _drop(event: AuditEvent) -> None:
    """The emitter used when nobody listens."""


# argon2id at RFC 9106's low-memory profile holds 64 MiB per hash: a few at a time.
_HASH_WORKERS = 2
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


#: How much lower than the process's the hashing threads' scheduling priority is.
HASH_NICENESS = 10


def _yield_to_the_event_loop() -> None:
    """Lower this hashing thread's priority (and that of the threads argon2 starts from
    it, which inherit it), so a core busy hashing is the event loop's as soon as the
    loop wants it.  Linux sets priorities per thread; elsewhere this does nothing."""
    if not sys.platform.startswith("linux"):  # elsewhere a thread id is no pid
        return
    with contextlib.suppress(AttributeError, OSError):
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + HASH_NICENESS)


def hashing_pool() -> ThreadPoolExecutor:
    """The process-wide bounded pool where async code runs argon2, at a lower priority
    than the event loop's thread."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                _HASH_WORKERS,
                thread_name_prefix="authgate-argon2",
                initializer=_yield_to_the_event_loop,
            )
        return _pool


def _cpu(op: Hash | DeriveScram | Verify | DummyVerify, hasher: PasswordHasher) -> Any:
    if isinstance(op, Hash):
        return hasher.rehash(op.password) if op.rehash else hasher.hash(op.password)
    if isinstance(op, DeriveScram):
        return hasher.derive_scram(op.password)
    if isinstance(op, Verify):
        return hasher.verify(op.password_hash, op.password)
    hasher.dummy_verify(op.password)
    return None


#: The largest document `fetch_json` reads (a provider's JWKS is a few KiB).
MAX_DOCUMENT = 1 << 20


class FetchFailed(Exception):
    """A `Fetch` that got no JSON document: the reason, without the URL's host (for
    logs that must not name internal addresses)."""


def fetch_json(op: Fetch) -> Any:
    """Do a `Fetch`: GET ``op.url`` (http or https, redirects within those), at most
    `MAX_DOCUMENT` bytes, decoded as JSON; `FetchFailed` otherwise."""
    import http.client
    import urllib.error
    import urllib.request

    from .. import documents

    if not op.url.startswith(("https://", "http://")):
        raise FetchFailed("only http and https URLs are fetched")
    request = urllib.request.Request(  # noqa: S310 - http(s) only, checked above
        op.url, headers={"Accept": "application/json", "User-Agent": "authgate"}
    )
    try:
        with _http_only().open(request, timeout=op.timeout) as answer:
            if answer.status != 200:
                raise FetchFailed(f"answered {answer.status}")
            body = answer.read(MAX_DOCUMENT + 1)
    except urllib.error.HTTPError as err:
        raise FetchFailed(f"answered {err.code}") from None
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", err)
        raise FetchFailed(f"unreachable ({type(reason).__name__})") from None
    if len(body) > MAX_DOCUMENT:
        raise FetchFailed(f"the document is larger than {MAX_DOCUMENT} bytes")
    try:
        return documents.loads(body)  # bounded nesting
    except ValueError:
        raise FetchFailed("the document is not JSON") from None


def exchange_code(op: ExchangeCode) -> dict[str, Any]:
    """Do an `ExchangeCode` with Authlib's OAuth 2 client: the provider's token
    response; `FetchFailed` when it refuses or cannot be reached (the reason names its
    error code, never its address)."""
    try:
        from authlib.integrations.base_client.errors import OAuthError
        from authlib.integrations.requests_client import OAuth2Session
        from authlib.oauth2.rfc6749.errors import OAuth2Error
        from requests import RequestException
    except ImportError as err:  # pragma: no cover - the oidc extra brings them
        raise FetchFailed(f"install the oidc extra (authgate[oidc]): {err}") from None
    auth_method = "client_secret_basic" if op.client_secret else "none"
    with OAuth2Session(
        op.client_id,
        op.client_secret,
        token_endpoint_auth_method=auth_method,
        redirect_uri=op.redirect_uri,
        default_timeout=op.timeout,
    ) as client:
        try:
            token = client.fetch_token(
                op.token_endpoint,
                grant_type="authorization_code",
                code=op.code,
                code_verifier=op.code_verifier,
            )
        except (OAuth2Error, OAuthError) as err:  # the requests client raises the second
            error = str(getattr(err, "error", "") or "refused")[:64]
            raise FetchFailed(f"the provider refused the code ({error})") from None
        except (RequestException, ValueError) as err:
            raise FetchFailed(f"the token endpoint failed ({type(err).__name__})") from None
    return dict(token)


def _http_only() -> Any:
    """A URL opener that speaks http and https alone (a redirect to ``file:`` or
    ``ftp:``, or from https to http, is an error), through the proxy the environment
    names (``HTTPS_PROXY``), if any."""
    import urllib.request

    class NoDowngrade(urllib.request.HTTPRedirectHandler):
        """Follows a redirect only to http(s), and from https only to https."""

        def redirect_request(
            self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str
        ) -> Any:
            if req.full_url.startswith("https://") and not newurl.startswith("https://"):
                raise urllib.error.HTTPError(newurl, code, "redirect to plain http", headers, fp)
            return super().redirect_request(req, fp, code, msg, headers, newurl)

    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(),
        NoDowngrade(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


def run_fetches(flow: Flow[T]) -> T:
    """Drive a flow that only fetches (an issuer's keys), in this thread."""

    def execute(op: Op) -> Any:
        if not isinstance(op, Fetch):
            raise TypeError(f"run_fetches takes flows of Fetch only, not {type(op).__name__}")
        return fetch_json(op)

    return drive(flow, execute)


def _invoke(store: Any, op: Call) -> Any:
    """Call the store's method for `op`: its result, or an awaitable on an async store."""
    method = getattr(store, op.method)
    return method(*op.args, **dict(op.kwargs)) if op.kwargs else method(*op.args)


def run(flow: Flow[T], store: Store, hasher: PasswordHasher, emit: Emitter = _drop) -> T:
    """Drive `flow` against a sync store."""

    def execute(op: Op) -> Any:
        if isinstance(op, Call):
            return _invoke(store, op)
        if isinstance(op, Emit):
            return emit(op.event)
        if isinstance(op, Pause):
            return time.sleep(op.seconds)
        if isinstance(op, Settle):
            refuse_to_wait(op)
        if isinstance(op, Fetch):
            return fetch_json(op)
        if isinstance(op, ExchangeCode):
            return exchange_code(op)
        return _cpu(op, hasher)

    return drive(flow, execute)


async def arun(
    flow: Flow[T], store: AsyncStore, hasher: PasswordHasher, emit: Emitter = _drop
) -> T:
    """Drive `flow` against an async store; argon2 runs on the bounded pool."""
    loop = asyncio.get_running_loop()

    async def execute(op: Op) -> Any:
        if isinstance(op, Call):
            return await _invoke(store, op)
        if isinstance(op, Emit):
            return emit(op.event)
        if isinstance(op, Pause):
            return await asyncio.sleep(op.seconds)
        if isinstance(op, Settle):
            return await op.answer
        if isinstance(op, Fetch):
            return await asyncio.to_thread(fetch_json, op)
        if isinstance(op, ExchangeCode):
            return await asyncio.to_thread(exchange_code, op)
        return await loop.run_in_executor(hashing_pool(), _cpu, op, hasher)

    return await adrive(flow, execute)
