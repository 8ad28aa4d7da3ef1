"""HTTP without I/O: reading credentials from headers, rendering errors as responses.

Both middlewares and both framework adapters call these, so a credential is read the
same way and an error looks the same everywhere.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import string
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .browser import (
    BrowserRules,
    BrowserVisit,
    is_form,
    is_session_cookie,
    parse_cookies,
    wants_page,
)
from .caches import LRU, OUTAGE_REASONS
from .errors import (
    AmbiguousCredentials,
    AuthenticationError,
    AuthGateError,
    CsrfFailed,
    MalformedToken,
    PermissionDenied,
    StoreUnavailable,
    TooManyAttempts,
)

__all__ = [
    "SAFE_METHODS",
    "ApiResponse",
    "BrowserVisit",
    "CredentialRules",
    "check_csrf",
    "error_response",
    "not_found",
    "parse_authorization",
    "parse_cookies",
    "read_credential",
    "refusal",
    "request_address",
]

_log = logging.getLogger("authgate.store")


class _Throttle:
    """One log line per reason every `every` seconds, the next one saying how many it
    left out: an outage under load answers hundreds of 503s a second, all for one
    reason, and the log should hold that reason, not drown in it."""

    def __init__(self, every: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self.clock = clock
        # reason -> (last logged, left out); bounded, as reasons name hosts and ports
        self._seen: LRU[str, tuple[float, int]] = LRU(OUTAGE_REASONS)
        self._lock = threading.Lock()

    def admit(self, reason: str) -> int | None:
        """None: leave this one out; else log it, with the count left out since."""
        now = self.clock()
        with self._lock:
            last = self._seen.get(reason)
            if last is not None and now - last[0] < self.every:
                self._seen.put(reason, (last[0], last[1] + 1))
                return None
            self._seen.put(reason, (now, 0))
            return last[1] if last is not None else 0


_outages = _Throttle()

# RFC 6750's b64token: the characters a bearer token may hold.
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# Those characters but the trailing ``=``, as bytes, and the two spellings of the scheme
# that every client sends: `parse_authorization`'s fast path.
_B64TOKEN_CHARS = (string.ascii_letters + string.digits + "-._~+/").encode("ascii")
_BEARER = ("Bearer ", "bearer ")
# A second "Bearer ..." / "ApiKey ..." after a comma: header values joined (RFC 9110).
_SECOND_SCHEME = re.compile(r",\s*(?:bearer|apikey)(?:\s|$)", re.IGNORECASE)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
MAX_CREDENTIAL = 8192


@dataclass(frozen=True, slots=True)
class CredentialRules:
    """Where a middleware looks for a token.

    ``cookie_name`` turns on cookie sessions (with a CSRF double-submit check on
    unsafe methods: the ``csrf_header`` must equal the ``csrf_cookie``);
    ``query_param`` is read on WebSocket handshakes only, where browsers cannot set
    headers.

    Browsers send cookies with cross-site WebSocket handshakes and no CSRF header can be
    asked of them, so a handshake authenticated by the cookie must come from the page's
    own origin or one of ``websocket_origins`` (``"https://app.example.com"``); a
    handshake with a token in a header or the query is not affected.
    """

    cookie_name: str | None = None
    csrf_cookie: str = "authgate_csrf"
    csrf_header: str = "x-csrf-token"
    query_param: str = "token"
    websocket_origins: frozenset[str] = frozenset()
    #: Browser sessions (`for_gate` of a gate with ``cookie_sessions`` on): the cookie
    #: holds a session cookie, and its CSRF token is the signed one of that session.
    browser: BrowserRules | None = None

    def __post_init__(self) -> None:
        origins = frozenset(o.rstrip("/").lower() for o in self.websocket_origins)
        object.__setattr__(self, "websocket_origins", origins)
        object.__setattr__(self, "csrf_header", self.csrf_header.lower())

    @classmethod
    def for_gate(cls, gate: Any, **options: Any) -> CredentialRules:
        """The rules of a gate's settings: its browser sessions' cookies when
        ``cookie_sessions`` is on, none otherwise; `options` override."""
        browser: BrowserRules = gate.browser
        if not gate.settings.cookie_sessions:
            return cls(**options)
        defaults = {
            "cookie_name": browser.session_cookie,
            "csrf_cookie": browser.csrf_cookie,
            "csrf_header": browser.csrf_header,
            "browser": browser,
        }
        return cls(**{**defaults, **options})

    def wants_form_token(
        self, method: str, token: str | None, csrf: str | None, content_type: str
    ) -> bool:
        """Must the middleware read a form body for its CSRF field: an unsafe request
        that a live browser session authenticated, with a form and no CSRF header?"""
        return (
            self.browser is not None
            and csrf is None
            and token is not None
            and method not in SAFE_METHODS
            and is_session_cookie(token)
            and is_form(content_type)
        )


#: The address of a request whose server named none (a Unix socket, a test client):
#: such requests share one address, so the limits per address still hold for them.
UNKNOWN_ADDRESS = "unknown"


def request_address(value: object) -> str:
    """The client address a server handed over (``REMOTE_ADDR``, the ASGI ``client``),
    or `UNKNOWN_ADDRESS`: never empty, which means "no request" (a call from Python)."""
    text = str(value).strip() if value else ""
    return text or UNKNOWN_ADDRESS


def parse_authorization(value: str) -> str | None:
    """The token in an ``Authorization`` value, None for schemes authgate does not read.

    Accepts ``Bearer <token>``, Project Haystack's ``BEARER authToken=<token>`` and
    ``ApiKey <key>`` (scheme names are case-insensitive).  A bearer header without a
    usable token is a `MalformedToken`; two credentials in one value (two headers that
    a server or proxy joined with a comma) are `AmbiguousCredentials`.
    """
    # The shape nearly every request has, ``Bearer <token>`` with nothing but b64token
    # characters, decided without the regexes (a bearer token is some 450 characters,
    # and matching them cost a microsecond a request).  It can only return what the
    # rules below return: no comma, no space or ``=`` in the token, nothing to strip
    # (tests/test_http.py checks both paths against each other).  Anything else goes on.
    if value.startswith(_BEARER):
        token = value[7:]
        if (
            token
            and len(token) <= MAX_CREDENTIAL
            and token.isascii()
            and not token.encode("ascii").translate(None, _B64TOKEN_CHARS)
        ):
            return token
    return _parse_authorization(value)


def _parse_authorization(value: str) -> str | None:
    """`parse_authorization` by its rules alone (every shape of header)."""
    if "," in value and _SECOND_SCHEME.search(value):
        raise AmbiguousCredentials("send one Authorization header, not several")
    scheme, _, rest = value.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "apikey":  # Authorization: ApiKey agk_...
        rest = rest.strip()
        if not rest or len(rest) > MAX_CREDENTIAL or not _B64TOKEN.fullmatch(rest):
            raise MalformedToken("the Authorization header holds no valid API key")
        return rest
    if scheme != "bearer":
        return None
    rest = rest.strip()
    if rest[:10].lower() == "authtoken=":
        rest = rest[10:].split(",", 1)[0].strip().strip('"')
    if len(rest) > MAX_CREDENTIAL or not _B64TOKEN.fullmatch(rest):
        raise MalformedToken("the Authorization header holds no valid bearer token")
    return rest


def _query_value(query: str, name: str) -> str | None:
    from urllib.parse import parse_qsl

    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == name:
            return value
    return None


def read_credential(
    *,
    authorization: str | None,
    cookie: str | None,
    csrf: str | None,
    method: str,
    query: str,
    websocket: bool,
    rules: CredentialRules,
    origin: str | None = None,
    host: str = "",
) -> str | None:
    """The token a request presents, or None for an anonymous request.

    Order: the ``Authorization`` header, then the session cookie (if configured, with
    its CSRF check: `csrf` is the value of ``rules.csrf_header``; a browser session's
    is `check_csrf`'s, once the session is known to be live; on a WebSocket
    handshake, the ``Origin`` check instead: `origin` is that header's value and
    `host` the ``Host`` header's), then ``?token=`` on WebSocket handshakes.
    """
    header_token = None if authorization is None else parse_authorization(authorization)
    browser = rules.browser
    if browser is not None and header_token is not None and is_session_cookie(header_token):
        raise MalformedToken("a browser session is sent as its cookie, never in a header")
    if rules.cookie_name and cookie:
        cookies = parse_cookies(cookie, unique=(rules.cookie_name, rules.csrf_cookie))
        token = cookies.get(rules.cookie_name)
        if token and browser is not None and not is_session_cookie(token):
            token = None  # not a browser session: no credential (and never a token)
        if token and header_token is not None:
            if not _same(token, header_token):
                raise AmbiguousCredentials(
                    f"the Authorization header and the {rules.cookie_name} cookie hold "
                    "different credentials: send one"
                )
            return header_token
        if token:
            if websocket:
                _check_origin(origin, host, rules)
            elif browser is not None:
                pass  # checked once the session is known to be live: `check_csrf`
            elif method not in SAFE_METHODS:
                expected = cookies.get(rules.csrf_cookie, "")
                if not (expected and csrf and _same(expected, csrf)):
                    raise PermissionDenied(
                        f"CSRF check failed: send the {rules.csrf_cookie} cookie's value "
                        f"in the {rules.csrf_header} header"
                    )
            return token
    if header_token is not None:
        return header_token
    if websocket and query:
        token = _query_value(query, rules.query_param)
        if token is not None:
            if not token or len(token) > MAX_CREDENTIAL:
                raise MalformedToken("the token query parameter is empty or too long")
            return token
    return None


def check_csrf(rules: CredentialRules, method: str, token: str, csrf: str | None) -> None:
    """Refuse (`CsrfFailed`) an unsafe request that a live browser session's cookie
    authenticated without that session's CSRF token (`csrf`: the header's value, or
    the form field's).  A cookie whose session has ended authenticates nothing, and
    needs no token: the request goes on anonymous."""
    browser = rules.browser
    if browser is None or method in SAFE_METHODS or not is_session_cookie(token):
        return
    if not browser.csrf_ok(csrf, (token,)):
        raise CsrfFailed(
            "CSRF check failed: send this session's CSRF token in the "
            f"{rules.csrf_header} header or the {browser.csrf_field} field"
        )


def _same(a: str, b: str) -> bool:
    """Constant-time equality of two header values; a lone surrogate (no server sends
    one, a caller might) is encoded as itself, never replaced (two different values
    would then compare equal) and never an error."""
    return hmac.compare_digest(
        a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass")
    )


def _check_origin(origin: str | None, host: str, rules: CredentialRules) -> None:
    """Refuse a cookie-authenticated WebSocket handshake from a foreign page.  The
    page's own host is allowed whatever its scheme (a TLS proxy in front of the app
    makes ``https`` pages open ``ws`` scopes)."""
    seen = (origin or "").strip().rstrip("/").lower()
    if seen in rules.websocket_origins and seen:
        return
    scheme, sep, netloc = seen.partition("://")
    if sep and scheme in ("http", "https") and host and netloc == host.strip().lower():
        return
    raise PermissionDenied(
        "the session cookie is not accepted on a WebSocket from this origin: "
        "add the page's origin to CredentialRules.websocket_origins"
    )


@dataclass(frozen=True, slots=True)
class ApiResponse:
    """What authgate answers, an error or an HTTP API answer: a status, a body (JSON
    unless empty) and headers.  Every middleware and adapter sends this one type."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, status: int, payload: Any) -> ApiResponse:
        """A JSON response that caches nowhere (bodies may hold tokens)."""
        return cls(
            status,
            json.dumps(payload).encode(),
            [("content-type", "application/json"), ("cache-control", "no-store")],
        )

    @classmethod
    def empty(cls) -> ApiResponse:
        """204 No Content."""
        return cls(204, b"", [("cache-control", "no-store")])

    def data(self) -> Any:
        """The decoded JSON body (tests, adapters)."""
        return json.loads(self.body) if self.body else None


def not_found() -> ApiResponse:
    """The answer to a path nobody serves."""
    return ApiResponse.json(404, {"error": "not_found", "detail": "no such route"})


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def error_response(err: AuthGateError, realm: str = "authgate") -> ApiResponse:
    """Render any authgate error: 401 with an RFC 6750 ``WWW-Authenticate``, 429 with
    ``Retry-After``, others with their status."""
    body = json.dumps({"error": err.code, "detail": err.detail, **err.extra()}).encode()
    headers = [("content-type", "application/json"), ("cache-control", "no-store")]
    if isinstance(err, TooManyAttempts | StoreUnavailable):
        headers.append(("retry-after", str(err.retry_after)))
        if isinstance(err, StoreUnavailable):
            left_out = _outages.admit(err.reason)
            if left_out is not None:
                more = f" ({left_out} more since the last such line)" if left_out else ""
                _log.warning("answering 503: %s%s", err.reason, more)
    elif isinstance(err, AuthenticationError):
        challenge = f'Bearer realm="{_quote(realm)}"'
        if err.bearer_error:
            challenge += f', error="{err.bearer_error}", error_description="{_quote(err.detail)}"'
            challenge += err.challenge_params()
        headers.append(("www-authenticate", challenge))
    return ApiResponse(err.status, body, headers)


def refusal(
    err: AuthGateError,
    realm: str = "authgate",
    browser: BrowserRules | None = None,
    *,
    method: str = "GET",
    accept: str = "",
    authorization: bool = False,
    target: str = "/",
) -> ApiResponse:
    """The answer to a refusal, for a browser too: a page request (`wants_page`)
    without a session, when a login URL is configured, is redirected to it with
    ``next`` (`target`, the page's path and query, when it is a path of this site);
    everything else gets `error_response`.  Either varies with ``Accept``."""
    if browser is None:
        return error_response(err, realm)
    if (
        isinstance(err, AuthenticationError)
        and err.status == 401
        and wants_page(method, accept, authorization)
    ):
        location = browser.login_location(target)
        if location is not None:
            headers = [("location", location), ("cache-control", "no-store"), ("vary", "Accept")]
            return ApiResponse(302, b"", headers)
    response = error_response(err, realm)
    response.headers.append(("vary", "Accept"))
    return response
