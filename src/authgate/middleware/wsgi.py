"""WSGI middleware with the ASGI middleware's behaviour, for Flask and any PEP 3333 app.

The identity goes into ``environ["authgate.identity"]``, ``REMOTE_USER`` and the
contextvar.  The contextvar stays set while the server iterates a streamed response,
and the iterable's ``close()`` is always called.  Nothing is buffered.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Iterable, Iterator
from contextvars import Context, copy_context
from typing import Any
from urllib.parse import parse_qsl

from ..api import MAX_BODY, ApiMount, ApiRequest, too_large
from ..audit import bind_audit_log
from ..browser import MAX_FORM, BrowserRules, BrowserVisit, form_field, is_session_cookie
from ..context import set_identity, set_object_hiding, set_visit, watch_refusals
from ..errors import AuthenticationError, AuthGateError
from ..gate import Gate
from ..http import (
    ApiResponse,
    CredentialRules,
    check_csrf,
    error_response,
    not_found,
    read_credential,
    refusal,
    request_address,
)
from ..identity import ANONYMOUS, Client, Identity
from ..types import AnyWSGIApp, StartResponse, WSGIApp, WSGIEnviron
from .handlers import teach_error_handling

__all__ = [
    "ENVIRON_KEY",
    "VISIT_KEY",
    "AuthGateWSGIApi",
    "AuthGateWSGIMiddleware",
    "environ_refusal",
    "identify",
    "identify_visit",
]

ENVIRON_KEY = "authgate.identity"
#: Where a browser request's `BrowserVisit` goes in the environ.
VISIT_KEY = "authgate.browser"

_STATUS = {
    200: "200 OK",
    201: "201 Created",
    202: "202 Accepted",
    204: "204 No Content",
    302: "302 Found",
    303: "303 See Other",
    400: "400 Bad Request",
    401: "401 Unauthorized",
    403: "403 Forbidden",
    404: "404 Not Found",
    405: "405 Method Not Allowed",
    409: "409 Conflict",
    412: "412 Precondition Failed",
    415: "415 Unsupported Media Type",
    428: "428 Precondition Required",
    429: "429 Too Many Requests",
    500: "500 Internal Server Error",
    503: "503 Service Unavailable",
}


class InContext:
    """A response iterable whose items are produced inside the request's context."""

    __slots__ = ("_context", "_inner", "_iterator")

    def __init__(self, inner: Iterable[bytes], context: Context) -> None:
        self._inner = inner
        self._context = context
        self._iterator = iter(inner)

    def __iter__(self) -> InContext:
        return self

    def __next__(self) -> bytes:
        return self._context.run(next, self._iterator)

    def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            self._context.run(close)


def _primed(result: Iterable[bytes], context: Context) -> Iterable[bytes]:
    iterator = iter(result)
    try:
        first = next(iterator)
    except StopIteration:
        close = getattr(result, "close", None)
        if close is not None:
            close()
        return []
    except BaseException:
        close = getattr(result, "close", None)
        if close is not None:
            close()
        raise
    return InContext(_Chain(first, iterator, result), context)


class _Chain:
    """The primed first chunk, then the rest; ``close()`` reaches the original."""

    __slots__ = ("_first", "_iterator", "_original")

    def __init__(self, first: bytes, iterator: Iterator[bytes], original: Iterable[bytes]) -> None:
        self._first: bytes | None = first
        self._iterator = iterator
        self._original = original

    def __iter__(self) -> Iterator[bytes]:
        if self._first is not None:
            first, self._first = self._first, None
            yield first
        yield from self._iterator

    def close(self) -> None:
        close = getattr(self._original, "close", None)
        if close is not None:
            close()


class AuthGateWSGIMiddleware:
    """Authenticate every request of a WSGI app with a sync `Gate`.

    Any WSGI app, any framework: ``AuthGateWSGIMiddleware(app, gate, api=True)`` also
    serves the HTTP API (``/auth/...``, ``/api/users/...``).  An authgate error that
    escapes the app, or that the framework answered with a 500 of its own, is answered
    as authgate answers it (401 with ``WWW-Authenticate``, 403, 429 with
    ``Retry-After``, JSON)."""

    def __init__(
        self,
        app: AnyWSGIApp,
        gate: Gate,
        *,
        api: bool = False,
        realm: str = "authgate",
        rules: CredentialRules | None = None,
    ) -> None:
        teach_error_handling(app, realm)
        self.app: WSGIApp = AuthGateWSGIApi(app, gate) if api else app
        self.gate = gate
        self.realm = realm
        self.rules = rules or CredentialRules.for_gate(gate)
        self._hide_objects = gate.settings.hide_objects

    def __call__(self, environ: WSGIEnviron, start_response: StartResponse) -> Iterable[bytes]:
        try:
            identity, visit = identify_visit(self.gate, environ, self.rules)
        except AuthGateError as err:
            return self._error(environ, start_response, err)
        context = copy_context()
        return context.run(self._call, environ, start_response, identity, context, visit)

    def _call(
        self,
        environ: WSGIEnviron,
        start_response: StartResponse,
        identity: Identity,
        context: Context,
        visit: BrowserVisit | None,
    ) -> Iterable[bytes]:
        set_identity(identity)  # in the request's own context: nothing to reset
        if self._hide_objects:
            set_object_hiding(True)
        if visit is not None:
            set_visit(visit)
            environ[VISIT_KEY] = visit
        bind_audit_log(self.gate.audit)
        refusals, _ = watch_refusals()  # the request's own context: nothing to reset
        environ[ENVIRON_KEY] = identity
        if identity.is_authenticated:
            environ["REMOTE_USER"] = identity.username
        started = False
        replaced: list[bytes] | None = None

        def tracking_start(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            nonlocal started, replaced
            started = True
            if status[:3] == "500" and refusals:
                # The framework answered authgate's refusal with a 500 of its own
                # (Falcon does): answer it as authgate would instead.
                response = self._refusal(environ, refusals[-1])
                replaced = [response.body]
                return _start(start_response, response, *exc)
            if visit is not None and visit.set_cookies:
                headers = [*headers, *(("set-cookie", c) for c in visit.unset(headers))]
            return start_response(status, headers, *exc)

        try:
            result = self.app(environ, tracking_start)
            if not started:
                # A generator app calls start_response on its first step: take that
                # step here, so a guard it trips still becomes a 401 / 403.
                result = _primed(result, context)
        except AuthGateError as err:
            if started:
                raise
            return self._error(environ, start_response, err)
        if replaced is not None:
            close = getattr(result, "close", None)
            if close is not None:
                context.run(close)
            return replaced
        return result if isinstance(result, InContext | list) else InContext(result, context)

    def _refusal(self, environ: WSGIEnviron, err: AuthGateError) -> ApiResponse:
        return environ_refusal(environ, err, self.realm, self.rules.browser)

    def _error(
        self, environ: WSGIEnviron, start_response: StartResponse, err: AuthGateError
    ) -> list[bytes]:
        return _respond(start_response, self._refusal(environ, err))


def environ_refusal(
    environ: WSGIEnviron, err: AuthGateError, realm: str, browser: BrowserRules | None
) -> ApiResponse:
    """`authgate.http.refusal` for the request of a WSGI environ (or Django's META)."""
    if browser is None:
        return error_response(err, realm)
    query = environ.get("QUERY_STRING", "")
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "/")
    return refusal(
        err,
        realm,
        browser,
        method=environ.get("REQUEST_METHOD", "GET"),
        accept=environ.get("HTTP_ACCEPT", ""),
        authorization="HTTP_AUTHORIZATION" in environ,
        target=f"{path}?{query}" if query else path,
    )


def identify(gate: Gate, environ: WSGIEnviron, rules: CredentialRules) -> Identity:
    """The identity a request's credentials prove, from its WSGI environ (or Django's
    ``request.META``, which is one): anonymous when there are none; raises the 401 when
    they fail, except on a CORS preflight (``OPTIONS``), which passes as anonymous."""
    return identify_visit(gate, environ, rules)[0]


def identify_visit(
    gate: Gate,
    environ: WSGIEnviron,
    rules: CredentialRules,
    form_token: Callable[[], str | None] | None = None,
) -> tuple[Identity, BrowserVisit | None]:
    """`identify`, and for a browser (``rules.browser``) what it brought: a stale
    session cookie counts as none (and is cleared), and a form's CSRF field is read
    when no header carries the token (`form_token`: how; by default from
    ``wsgi.input``, which is then put back for the app)."""
    method = environ.get("REQUEST_METHOD", "GET")
    browser = rules.browser
    cookie = environ.get("HTTP_COOKIE")
    csrf = environ.get(_environ_key(rules.csrf_header))
    token: str | None = None
    try:
        token = read_credential(
            authorization=environ.get("HTTP_AUTHORIZATION"),
            cookie=cookie,
            csrf=csrf,
            method=method,
            query=environ.get("QUERY_STRING", ""),
            websocket=False,
            rules=rules,
        )
        identity = ANONYMOUS if token is None else gate.authenticate(token)
    except AuthenticationError:
        if browser is not None and token is not None and is_session_cookie(token):
            session, nonce = browser.cookies(cookie)
            return ANONYMOUS, BrowserVisit(browser, session, nonce, stale=True)
        if method == "OPTIONS":
            return ANONYMOUS, None
        raise
    if browser is None:
        return identity, None
    if token is not None:
        if rules.wants_form_token(method, token, csrf, environ.get("CONTENT_TYPE", "")):
            csrf = form_token() if form_token is not None else _form_token(environ, rules)
        check_csrf(rules, method, token, csrf)
    session, nonce = browser.cookies(cookie)
    return identity, BrowserVisit(browser, session, nonce)


def _form_token(environ: WSGIEnviron, rules: CredentialRules) -> str | None:
    """The CSRF field of a form body, looked for in its first `MAX_FORM` bytes; the
    body is put back whole for the app."""
    assert rules.browser is not None
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if length <= 0:
        return None  # no length (chunked): only the header can carry the token
    source = environ["wsgi.input"]
    head = source.read(min(length, MAX_FORM))
    environ["wsgi.input"] = (
        io.BytesIO(head)
        if length <= MAX_FORM
        else io.BufferedReader(_Replayed(head, source, length - len(head)))
    )
    return form_field(head, environ.get("CONTENT_TYPE", ""), rules.browser.csrf_field)


class _Replayed(io.RawIOBase):
    """A body's head, already read, then the rest of it from the server's input."""

    def __init__(self, head: bytes, rest: Any, remaining: int) -> None:
        self._head = memoryview(head)
        self._rest = rest
        self._remaining = remaining

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        if self._remaining <= 0:
            return 0
        data = self._rest.read(min(len(buffer), self._remaining))
        self._remaining -= len(data)
        buffer[: len(data)] = data
        return len(data)


@functools.lru_cache(maxsize=16)
def _environ_key(header: str) -> str:
    """Where WSGI puts a request header: ``x-csrf-token`` -> ``HTTP_X_CSRF_TOKEN``."""
    return "HTTP_" + header.upper().replace("-", "_")


class AuthGateWSGIApi(ApiMount[WSGIApp, Gate]):
    """Serves the HTTP API (`authgate.api`) and hands every other request to `app`
    (a 404 when there is none).  Put it inside `AuthGateWSGIMiddleware`::

        app = AuthGateWSGIMiddleware(AuthGateWSGIApi(app, gate), gate)
    """

    def __call__(self, environ: WSGIEnviron, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/") or "/"
        if not self.api.owns(path):
            if self.app is None:
                return _respond(start_response, not_found())
            return self.app(environ, start_response)
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            return _respond(start_response, too_large())
        body = environ["wsgi.input"].read(length) if length else b""
        request = ApiRequest(
            method=environ.get("REQUEST_METHOD", "GET"),
            path=path,
            identity=environ.get(ENVIRON_KEY, ANONYMOUS),
            body=body,
            query=dict(parse_qsl(environ.get("QUERY_STRING", ""))),
            client=Client(
                request_address(environ.get("REMOTE_ADDR")), environ.get("HTTP_USER_AGENT", "")
            ),
            authorization=environ.get("HTTP_AUTHORIZATION", ""),
            if_match=environ.get("HTTP_IF_MATCH", ""),
            headers=environ_headers(environ),
        )
        response = self.gate.run(self.api.answer(request))
        assert response is not None
        return _respond(start_response, response)


def environ_headers(environ: WSGIEnviron) -> dict[str, str]:
    """A WSGI environ's request headers, names in lower case."""
    headers = {
        key[5:].lower().replace("_", "-"): value
        for key, value in environ.items()
        if key.startswith("HTTP_") and isinstance(value, str)
    }
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.lower().replace("_", "-")] = environ[key]
    return headers


def _respond(start_response: StartResponse, response: ApiResponse) -> list[bytes]:
    _start(start_response, response)
    return [response.body]


def _start(start_response: StartResponse, response: ApiResponse, *exc: Any) -> Any:
    status = _STATUS.get(response.status, f"{response.status} Error")
    headers = [*response.headers, ("content-length", str(len(response.body)))]
    return start_response(status, headers, *exc)
