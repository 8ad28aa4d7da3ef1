"""Pure ASGI middleware: credentials in, identity on the scope and in the contextvar.

- ``http`` and ``websocket`` scopes are authenticated; ``lifespan`` and anything else
  pass straight through.
- An anonymous request goes on as `ANONYMOUS`; a presented credential that fails is
  answered with 401 and an RFC 6750 ``WWW-Authenticate`` header (CORS preflight
  ``OPTIONS`` requests go on anonymous instead).
- ``scope["user"]`` and ``scope["auth"]`` are the `Identity`, which has Starlette's
  ``is_authenticated``, ``display_name`` and ``scopes``, so
  ``starlette.authentication.requires`` works on top.
- `NotAuthenticated` / `PermissionDenied` (any authgate error) raised by the app before
  it starts its response becomes a JSON 401 / 403.
- A WebSocket handshake without valid credentials is refused before accept (403, or a
  real 401 where the server offers ``websocket.http.response``); a handshake that
  carries only the session cookie must come from an allowed ``Origin``.  An open socket
  whose session ends is closed with 4401: when its next message arrives, and, idle or
  not, within ``websocket_recheck_seconds``.
- Response messages are passed on as they come: nothing is buffered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from urllib.parse import parse_qsl

from ..api import MAX_BODY, ApiMount, ApiRequest, too_large
from ..audit import bind_audit_log, unbind_audit_log
from ..browser import MAX_FORM, BrowserVisit, form_field, is_session_cookie
from ..context import (
    reset_identity,
    reset_object_hiding,
    reset_visit,
    set_identity,
    set_object_hiding,
    set_visit,
    stop_watching,
    watch_refusals,
)
from ..errors import AuthenticationError, AuthGateError, SessionRevoked
from ..faces import answered
from ..gate import AsyncGate
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
from ..types import AnyASGIApp, ASGIApp, Message, Receive, Scope, Send
from .handlers import teach_error_handling

__all__ = ["VISIT_KEY", "WS_SESSION_REVOKED", "AuthGateMiddleware", "scope_headers"]

#: Where a browser request's `BrowserVisit` goes in the scope.
VISIT_KEY = "authgate.browser"

#: Close code for a WebSocket whose session died while it was open.
WS_SESSION_REVOKED = 4401
_WS_POLICY_VIOLATION = 1008


async def _sent() -> None:
    """An awaitable for a message the middleware drops."""


class AuthGateMiddleware:
    """Authenticate every HTTP request and WebSocket handshake with an `AsyncGate`.

    Any ASGI app, any framework: ``AuthGateMiddleware(app, gate, api=True)`` also serves
    the HTTP API (``/auth/...``, ``/api/users/...``).  An authgate error that escapes the
    app, or that the framework answered with a 500 of its own, is answered as authgate
    answers it (401 with ``WWW-Authenticate``, 403, 429 with ``Retry-After``, JSON)."""

    def __init__(
        self,
        app: AnyASGIApp,
        gate: AsyncGate,
        *,
        api: bool = False,
        realm: str = "authgate",
        rules: CredentialRules | None = None,
        recheck_websockets: bool = True,
        websocket_recheck_seconds: float = 5.0,
    ) -> None:
        teach_error_handling(app, realm)
        self.app: ASGIApp = AuthGateApi(app, gate) if api else app
        self.gate = gate
        self.realm = realm
        self.rules = rules or CredentialRules.for_gate(gate)
        self.recheck_websockets = recheck_websockets
        self.websocket_recheck_seconds = websocket_recheck_seconds
        self._csrf_header = self.rules.csrf_header.encode("latin-1")
        self._hide_objects = gate.settings.hide_objects

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        websocket = kind == "websocket"
        method = "GET" if websocket else scope["method"]
        authorization = cookie = csrf = origin = None
        host = content_type = accept = ""
        csrf_header = self._csrf_header
        for name, value in scope["headers"]:
            if name == b"authorization":  # twice: joined as WSGI servers do, then refused
                text = value.decode("latin-1")
                authorization = f"{authorization}, {text}" if authorization else text
            elif name == b"cookie":
                text = value.decode("latin-1")
                cookie = f"{cookie}; {text}" if cookie else text
            elif name == csrf_header:
                csrf = value.decode("latin-1")
            elif websocket and name == b"origin":
                origin = value.decode("latin-1")
            elif websocket and name == b"host":
                host = value.decode("latin-1")
            elif name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"accept":
                accept = value.decode("latin-1")
        browser = self.rules.browser
        token: str | None = None
        visit: BrowserVisit | None = None
        try:
            token = read_credential(
                authorization=authorization,
                cookie=cookie,
                csrf=csrf,
                method=method,
                # read on handshakes only
                query=scope.get("query_string", b"").decode("latin-1") if websocket else "",
                websocket=websocket,
                rules=self.rules,
                origin=origin,
                host=host,
            )
            if token is None:
                identity = ANONYMOUS
            else:
                steps = self.gate.authentication(token)
                known = answered(steps)
                identity = known if known is not None else await self.gate.run(steps)
                if browser is not None:  # a live session: its CSRF token, now
                    if self.rules.wants_form_token(method, token, csrf, content_type):
                        head, receive = await _read_form(receive)
                        csrf = form_field(head, content_type, browser.csrf_field)
                    check_csrf(self.rules, method, token, csrf)
        except AuthGateError as err:
            if (
                browser is not None
                and token is not None
                and is_session_cookie(token)
                and isinstance(err, AuthenticationError)
            ):
                identity = ANONYMOUS  # a session that ended: the browser is anonymous
                visit = BrowserVisit(browser, *browser.cookies(cookie), stale=True)
            elif method == "OPTIONS" and isinstance(err, AuthenticationError):
                identity = ANONYMOUS
            elif websocket:
                await self._refuse_websocket(scope, receive, send, err)
                return
            else:
                await self._send_error(send, err, scope, accept, authorization)
                return
        if browser is not None and visit is None:
            visit = BrowserVisit(browser, *browser.cookies(cookie))
        visit_token = None
        if visit is not None:
            scope[VISIT_KEY] = visit
            visit_token = set_visit(visit)
            if not websocket:
                send = _setting_cookies(send, visit)

        scope["user"] = identity
        scope["auth"] = identity
        context_token = set_identity(identity)
        # Off is the context's default: nothing to set on the common path.
        hiding_token = set_object_hiding(True) if self._hide_objects else None
        audit_token = bind_audit_log(self.gate.audit)
        refusals, watch_token = watch_refusals()
        try:
            if websocket:
                if not (identity.is_authenticated and self.recheck_websockets):
                    await self._call_websocket(scope, receive, send)
                    return
                watch = _SocketWatch(
                    self.gate, identity, receive, send, self.websocket_recheck_seconds
                )
                try:
                    await self._call_websocket(scope, watch.receive, watch.send)
                finally:
                    await watch.stop()
                return
            started = replaced = False

            def tracking_send(message: Message) -> Awaitable[None]:
                # Plain, handing back send's own awaitable: no coroutine of its own
                # for every message.
                nonlocal started, replaced
                if replaced:  # the body of the framework's own 500: dropped
                    return _sent()
                started = True
                if refusals and message.get("status") == 500:
                    # The framework answered authgate's refusal with a 500 of its own
                    # (Litestar and Quart do): answer it as authgate would instead.
                    replaced = True
                    return self._send_error(send, refusals[-1], scope, accept, authorization)
                return send(message)

            try:
                await self.app(scope, receive, tracking_send)
            except AuthGateError as err:
                if started:
                    raise
                await self._send_error(send, err, scope, accept, authorization)
        finally:
            if visit_token is not None:
                reset_visit(visit_token)
            stop_watching(watch_token)
            unbind_audit_log(audit_token)
            if hiding_token is not None:
                reset_object_hiding(hiding_token)
            reset_identity(context_token)

    async def _call_websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        accepted = False

        async def tracking_send(message: Message) -> None:
            nonlocal accepted
            if message["type"] == "websocket.accept":
                accepted = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except AuthGateError as err:
            if accepted:
                await send(
                    {
                        "type": "websocket.close",
                        "code": _WS_POLICY_VIOLATION,
                        "reason": err.detail[:120],
                    }
                )
                return
            await self._refuse_websocket(scope, receive, send, err, connected=True)

    async def _send_error(
        self,
        send: Send,
        err: AuthGateError,
        scope: Scope | None = None,
        accept: str = "",
        authorization: str | None = None,
    ) -> None:
        browser = self.rules.browser
        if browser is None or scope is None:
            await _send_response(send, error_response(err, self.realm))
            return
        query = scope.get("query_string", b"").decode("latin-1")
        path = scope.get("path", "/")  # the full path: it includes root_path
        answer = refusal(
            err,
            self.realm,
            browser,
            method=scope.get("method", "GET"),
            accept=accept,
            authorization=authorization is not None,
            target=f"{path}?{query}" if query else path,
        )
        await _send_response(send, answer)

    async def _refuse_websocket(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        err: AuthGateError,
        *,
        connected: bool = False,
    ) -> None:
        if not connected:
            message = await receive()  # the websocket.connect event
            if message["type"] != "websocket.connect":
                return
        if "websocket.http.response" in scope.get("extensions", {}):
            await _send_response(send, error_response(err, self.realm), "websocket.http")
            return
        await send({"type": "websocket.close", "code": _WS_POLICY_VIOLATION})


async def _read_form(receive: Receive) -> tuple[bytes, Receive]:
    """The first `MAX_FORM` bytes of a form body, for its CSRF field, and a `receive`
    that hands the app the whole body as it came (what was read, then the rest)."""
    messages: list[Message] = []
    head = bytearray()
    while len(head) < MAX_FORM:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break  # the client left: the app learns it from the replay
        head += message.get("body", b"")
        if not message.get("more_body", False):
            break
    pending = iter(messages)

    async def replay() -> Message:
        for message in pending:
            return message
        return await receive()

    return bytes(head[:MAX_FORM]), replay


def _setting_cookies(send: Send, visit: BrowserVisit) -> Send:
    """`send`, adding the cookies `visit` holds when the response starts (a CSRF
    binding made while the page rendered, a stale session cookie cleared)."""

    def sending(message: Message) -> Awaitable[None]:
        if message["type"] == "http.response.start" and visit.set_cookies:
            headers = list(message.get("headers", ()))
            named = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]
            headers.extend((b"set-cookie", c.encode("latin-1")) for c in visit.unset(named))
            message = {**message, "headers": headers}
        return send(message)

    return sending


class AuthGateApi(ApiMount[ASGIApp, AsyncGate]):
    """Serves the HTTP API (`authgate.api`) and hands every other request to `app`
    (a 404 when there is none).  Put it inside `AuthGateMiddleware`::

        app = AuthGateMiddleware(AuthGateApi(app, gate), gate)
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope.get("path", "/")[len(scope.get("root_path", "")) :] or "/"
            if self.api.owns(path):
                await self._serve(scope, receive, send, path)
                return
        if self.app is None:
            await _send_response(send, not_found())
            return
        await self.app(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > MAX_BODY:
                await _send_response(send, too_large())
                return
            if not message.get("more_body", False):
                break
        headers = scope_headers(scope)
        user_agent = headers.get("user-agent", "")
        authorization = headers.get("authorization", "")
        if_match = headers.get("if-match", "")
        client = scope.get("client") or (None, 0)
        request = ApiRequest(
            method=scope["method"],
            path=path,
            identity=scope.get("user", ANONYMOUS),
            body=bytes(body),
            query=dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"))),
            client=Client(request_address(client[0]), user_agent),
            authorization=authorization,
            if_match=if_match,
            headers=headers,
        )
        response = await self.gate.run(self.api.answer(request))
        assert response is not None
        await _send_response(send, response)


def scope_headers(scope: Scope) -> dict[str, str]:
    """An ASGI scope's request headers, names in lower case; a repeated header's values
    joined as RFC 9110 combines them (cookies with "; ")."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", ()):
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        if name in headers:
            value = f"{headers[name]}{'; ' if name == 'cookie' else ', '}{value}"
        headers[name] = value
    return headers


class _SocketWatch:
    """Keeps an accepted WebSocket's session under watch: re-checked at every message
    from the client and every `interval` seconds while idle; when the session ends,
    the client gets close code 4401 and the app a ``websocket.disconnect``."""

    def __init__(
        self, gate: AsyncGate, identity: Identity, receive: Receive, send: Send, interval: float
    ) -> None:
        self.gate = gate
        self.identity = identity
        self._receive = receive
        self._send = send
        self.interval = interval
        self.revoked = asyncio.Event()
        self._closing: asyncio.Event | None = None  # set once the close has gone out
        self._ticker: asyncio.Task[None] | None = None
        self._revoked_wait: asyncio.Task[bool] | None = None

    async def send(self, message: Message) -> None:
        if message["type"] == "websocket.accept" and self._ticker is None and self.interval > 0:
            self._ticker = asyncio.ensure_future(self._tick())
        if self._closing is not None:  # closed, or closing: nothing more goes out
            await self._closing.wait()
            if message["type"] == "websocket.close":
                return  # once is enough
            raise SessionRevoked("the session ended: the WebSocket is closed")  # stops an app
        if message["type"] != "websocket.close":
            await self._send(message)
            return
        # Sending may yield to the app, which may then stop; the close still goes out
        # first (`stop` waits for it), else the client never learns why.
        self._closing = asyncio.Event()
        try:
            await self._send(message)
        finally:
            self._closing.set()

    async def receive(self) -> Message:
        if self.revoked.is_set():
            return _REVOKED_DISCONNECT
        message = await self._receive() if self._ticker is None else await self._race()
        if message is None:
            return _REVOKED_DISCONNECT
        if message["type"] == "websocket.receive" and not await self._still_valid():
            return _REVOKED_DISCONNECT
        return message

    async def _race(self) -> Message | None:
        """The client's next message, or None when the session ends first."""
        if self._revoked_wait is None:
            self._revoked_wait = asyncio.ensure_future(self.revoked.wait())
        incoming = asyncio.ensure_future(self._receive())
        await asyncio.wait({incoming, self._revoked_wait}, return_when=asyncio.FIRST_COMPLETED)
        if incoming.done():
            return incoming.result()
        incoming.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await incoming
        return None

    async def _still_valid(self) -> bool:
        if self.revoked.is_set():
            return False
        try:
            await self.gate.recheck(self.identity)
        except AuthGateError:
            await self._close()
            return False
        return True

    async def _tick(self) -> None:
        while not self.revoked.is_set():
            await asyncio.sleep(self.interval)
            if not await self._still_valid():
                return

    async def _close(self) -> None:
        self.revoked.set()
        await self.send(
            {"type": "websocket.close", "code": WS_SESSION_REVOKED, "reason": "session revoked"}
        )

    async def stop(self) -> None:
        if self._closing is not None:
            await self._closing.wait()  # a close in flight (the ticker's) goes out first
        for task in (self._ticker, self._revoked_wait):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


_REVOKED_DISCONNECT: Message = {"type": "websocket.disconnect", "code": WS_SESSION_REVOKED}


async def _send_response(send: Send, response: ApiResponse, kind: str = "http") -> None:
    """Send `response` (``kind`` "websocket.http": as the denial of a handshake)."""
    headers = [(k.encode(), v.encode()) for k, v in response.headers]
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": f"{kind}.response.start", "status": response.status, "headers": headers})
    await send({"type": f"{kind}.response.body", "body": response.body})
