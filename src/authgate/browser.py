"""What browsers need, without I/O: session and CSRF cookies, CSRF tokens, safe
redirects.

A browser session is a login session (listed, revocable, ended by logout, a password
change or a reset like any other) whose credential is a cookie,
``ags_<session id>_<secret>``, of which the store keeps a SHA-256 only.  The cookie is
``HttpOnly``, ``Secure`` and ``SameSite=Lax`` by default, with the ``__Host-`` prefix
whenever the browser allows it.

CSRF tokens are signed (OWASP's "signed double-submit cookie"): a token is the HMAC, under
a key derived from the gate's secret, of what it is bound to.  Once logged in that is the
session cookie, so a token of another session, or one from before the login, is
refused; before the login it is a random value in a second cookie, so a login form
cannot be posted from another site either.  Forms send the token in a field, scripts in
a header.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, urlsplit

from .errors import AmbiguousCredentials

if TYPE_CHECKING:
    from .config import Settings

__all__ = [
    "SESSION_PREFIX",
    "BrowserRules",
    "BrowserVisit",
    "form_field",
    "form_pairs",
    "is_form",
    "is_session_cookie",
    "parse_cookies",
    "safe_next",
    "wants_page",
]

#: The start of a browser session's cookie value.
SESSION_PREFIX = "ags_"
#: How much of a form body the middlewares read to find the CSRF field (put it first in
#: a form that uploads files).
MAX_FORM = 64 * 1024
#: Fields and parts of a form authgate reads at most (to find the CSRF field, or the
#: few fields of its own endpoints).
MAX_FIELDS = 64
#: A masked CSRF token: 32 bytes of pad and 32 of masked HMAC, base64url.
_TOKEN_LENGTH = 86
_FORM = "application/x-www-form-urlencoded"
_PRINTABLE = "".join(chr(c) for c in range(0x21, 0x7F))
_MULTIPART = "multipart/form-data"


def is_session_cookie(credential: str) -> bool:
    """Is this credential a browser session's cookie value?"""
    return credential.startswith(SESSION_PREFIX)


@dataclass(frozen=True, slots=True)
class BrowserRules:
    """How a gate's browser sessions are carried: cookie names and attributes, the CSRF
    key, lifetimes and the pages a browser is sent to."""

    session_cookie: str = "__Host-authgate_session"
    csrf_cookie: str = "__Host-authgate_csrf"
    csrf_header: str = "x-csrf-token"
    csrf_field: str = "csrf_token"
    secure: bool = True
    samesite: str = "Lax"
    domain: str | None = None
    path: str = "/"
    session_ttl: int = 43_200
    remember_ttl: int = 2_592_000
    login_url: str | None = None
    home_url: str = "/"
    mfa_cookie: str = "__Host-authgate_mfa"
    oidc_cookie: str = "__Host-authgate_oidc"
    mfa_url: str | None = None
    key: bytes = field(default=b"", repr=False)

    @classmethod
    def from_settings(cls, settings: Settings, secret: bytes) -> BrowserRules:
        """The rules `settings` describe; `secret` is the key ring's secret material,
        from which the CSRF key is derived (so it is never the signing key itself)."""
        host_only = settings.cookie_secure and not settings.cookie_domain
        host_only = host_only and settings.cookie_path == "/"
        prefix = "__Host-" if host_only else ""
        return cls(
            session_cookie=prefix + settings.cookie_name,
            csrf_cookie=prefix + settings.csrf_cookie_name,
            csrf_header=settings.csrf_header.lower(),
            csrf_field=settings.csrf_field,
            secure=settings.cookie_secure,
            samesite=settings.cookie_samesite.capitalize(),
            domain=settings.cookie_domain,
            path=settings.cookie_path,
            session_ttl=settings.browser_session_ttl,
            remember_ttl=settings.remember_ttl,
            login_url=settings.login_url,
            home_url=settings.home_url,
            mfa_cookie=prefix + "authgate_mfa",
            oidc_cookie=prefix + "authgate_oidc",
            mfa_url=settings.mfa_url,
            key=hmac.new(secret, b"authgate-csrf-key-v1", hashlib.sha256).digest(),
        )

    # -- cookies ----------------------------------------------------------------------

    def _cookie(
        self,
        name: str,
        value: str,
        max_age: int | None,
        http_only: bool,
        samesite: str | None = None,
    ) -> str:
        parts = [f"{name}={value}", f"Path={self.path}"]
        if self.domain:
            parts.append(f"Domain={self.domain}")
        if max_age is not None:
            parts.append(f"Max-Age={max_age}")
        if http_only:
            parts.append("HttpOnly")
        if self.secure:
            parts.append("Secure")
        parts.append(f"SameSite={samesite or self.samesite}")
        return "; ".join(parts)

    def set_session(self, value: str, remember: bool) -> str:
        """The ``Set-Cookie`` value opening a session: a persistent cookie when
        remembered, else one that ends with the browser."""
        return self._cookie(
            self.session_cookie, value, self.remember_ttl if remember else None, True
        )

    def clear_session(self) -> str:
        """The ``Set-Cookie`` value that makes the browser drop its session cookie."""
        return self._cookie(self.session_cookie, "", 0, True)

    def set_nonce(self, nonce: str) -> str:
        """The ``Set-Cookie`` value of the pre-login CSRF binding (HttpOnly: scripts
        ask ``GET /auth/csrf`` for the token)."""
        return self._cookie(self.csrf_cookie, nonce, None, True)

    def set_mfa(self, challenge: str, ttl: int) -> str:
        """The ``Set-Cookie`` value carrying a form login's second-step challenge to the
        page that asks for the code (HttpOnly: no script reads it)."""
        return self._cookie(self.mfa_cookie, challenge, ttl, True)

    def clear_mfa(self) -> str:
        """The ``Set-Cookie`` value that drops the second-step challenge."""
        return self._cookie(self.mfa_cookie, "", 0, True)

    def set_oidc(self, state: str, ttl: int) -> str:
        """The ``Set-Cookie`` value keeping a provider login's state while the person is
        at the provider: HttpOnly, and ``SameSite=Lax`` whatever the session cookie's
        (the provider's redirect back is a cross-site navigation, which must bring it)."""
        return self._cookie(self.oidc_cookie, state, ttl, True, samesite="Lax")

    def clear_oidc(self) -> str:
        """The ``Set-Cookie`` value that drops a provider login's state."""
        return self._cookie(self.oidc_cookie, "", 0, True, samesite="Lax")

    def oidc_state(self, header: str | None) -> str | None:
        """A provider login's state, as a ``Cookie`` header carries it, if any."""
        if not header:
            return None
        return parse_cookies(header, unique=(self.oidc_cookie,)).get(self.oidc_cookie) or None

    def mfa_challenge(self, header: str | None) -> str | None:
        """The second-step challenge a ``Cookie`` header carries, if any."""
        if not header:
            return None
        return parse_cookies(header, unique=(self.mfa_cookie,)).get(self.mfa_cookie) or None

    @staticmethod
    def new_nonce() -> str:
        """A fresh pre-login CSRF binding."""
        return secrets.token_urlsafe(32)

    def cookies(self, header: str | None) -> tuple[str | None, str | None]:
        """(session cookie, CSRF nonce cookie) from a ``Cookie`` header; a cookie sent
        twice is `AmbiguousCredentials` (see `authgate.http.parse_cookies`)."""
        if not header:
            return None, None
        found = parse_cookies(header, unique=(self.session_cookie, self.csrf_cookie))
        return found.get(self.session_cookie) or None, found.get(self.csrf_cookie) or None

    # -- CSRF -------------------------------------------------------------------------

    def _secret(self, binding: str) -> bytes:
        return hmac.new(self.key, b"csrf\x00" + binding.encode(), hashlib.sha256).digest()

    def csrf_token(self, binding: str) -> str:
        """A CSRF token bound to a session cookie (or a pre-login nonce): the binding's
        HMAC, masked with a fresh random pad, so that no two pages carry the same
        bytes (a compressed page cannot leak it, BREACH) while every one verifies."""
        pad = secrets.token_bytes(32)
        masked = bytes(a ^ b for a, b in zip(pad, self._secret(binding), strict=True))
        return base64.urlsafe_b64encode(pad + masked).rstrip(b"=").decode()

    def csrf_ok(self, presented: str | None, bindings: Iterable[str | None]) -> bool:
        """Is `presented` a token (`csrf_token`) of one of `bindings`?  Compared in
        constant time; an absent binding matches nothing, a malformed token none."""
        if not presented or len(presented) != _TOKEN_LENGTH:
            return False
        try:
            raw = base64.urlsafe_b64decode(presented + "=" * (-len(presented) % 4))
        except ValueError:  # binascii.Error, and non-ASCII text
            return False
        pad, masked = raw[:32], raw[32:]
        secret = bytes(a ^ b for a, b in zip(pad, masked, strict=True))
        ok = False
        for binding in bindings:
            if binding:
                ok |= hmac.compare_digest(self._secret(binding), secret)
        return ok

    # -- redirects --------------------------------------------------------------------

    def login_location(self, target: str) -> str | None:
        """Where a page request for `target` (path and query) goes without a session:
        the login URL with ``next``, or None when no login URL is configured."""
        if not self.login_url:
            return None
        here = safe_next(target)
        if here is None or here == self.login_url.split("?")[0]:
            return self.login_url
        separator = "&" if "?" in self.login_url else "?"
        return f"{self.login_url}{separator}next={quote(here, safe='/')}"


def parse_cookies(header: str, *, unique: Iterable[str] = ()) -> dict[str, str]:
    """Cookie pairs from a ``Cookie`` header (first occurrence wins); a cookie named in
    `unique` that comes twice is `AmbiguousCredentials` (which of the two a browser
    sends first depends on paths and domains an attacker may set cookies for)."""
    cookies: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if not (sep and name):
            continue
        if name not in cookies:
            cookies[name] = value.strip().strip('"')
        elif name in unique:
            raise AmbiguousCredentials(f"the {name} cookie is sent more than once")
    return cookies


class BrowserVisit:
    """One request of a browser, as the middleware sees it: which session cookie and
    CSRF binding it brought, the CSRF token its pages embed (`csrf_token`), and the
    cookies the response must set (a stale session cookie cleared, a CSRF binding
    made the first time a page asks for a token)."""

    __slots__ = ("nonce", "rules", "session", "set_cookies")

    def __init__(
        self, rules: BrowserRules, session: str | None, nonce: str | None, stale: bool = False
    ) -> None:
        self.rules = rules
        self.session = None if stale else session
        self.nonce = nonce
        self.set_cookies: list[str] = [rules.clear_session()] if stale and session else []

    def unset(self, headers: Iterable[tuple[str, str]]) -> list[str]:
        """The cookies to set on a response with `headers`, but those it sets itself
        (a login's new session cookie must not be cleared after it)."""
        named = {
            value.split("=", 1)[0].strip()
            for name, value in headers
            if name.lower() == "set-cookie"
        }
        return [c for c in self.set_cookies if c.split("=", 1)[0] not in named]

    def csrf_token(self) -> str:
        """The CSRF token of this browser: bound to its session, or before a login to
        its CSRF cookie (made now, and set on the response, if it has none)."""
        if self.session:
            return self.rules.csrf_token(self.session)
        if self.nonce is None:
            self.nonce = self.rules.new_nonce()
            self.set_cookies.append(self.rules.set_nonce(self.nonce))
        return self.rules.csrf_token(self.nonce)


def safe_next(target: object) -> str | None:
    """`target` when it is a path of this site (``/page?x=1``), else None: never
    ``//host``, ``/\\host``, a scheme, a control character or a backslash, which a
    browser could read as another site (an open redirect)."""
    if not isinstance(target, str) or not target.startswith("/") or len(target) > 2048:
        return None
    if target.startswith(("//", "/\\")) or "\\" in target:
        return None
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    # A Location header is ASCII: anything else (a space, é, U+2028) percent-encoded.
    return quote(target, safe=_PRINTABLE)


def wants_page(method: str, accept: str, authorization: bool) -> bool:
    """A browser navigating: a GET or HEAD whose ``Accept`` prefers HTML to JSON, with
    no ``Authorization`` header (an API client, which gets its 401).  No ``Accept``,
    or only wildcards, is an API client."""
    if method not in ("GET", "HEAD") or authorization:
        return False
    html = json = 0.0
    for part in accept.split(","):
        media, _, params = part.partition(";")
        media = media.strip().lower()
        quality = _quality(params)
        if media in ("text/html", "application/xhtml+xml"):
            html = max(html, quality)
        elif media == "application/json":
            json = max(json, quality)
    return html > json


def _quality(params: str) -> float:
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "q":
            try:
                number = float(value)
            except ValueError:
                return 0.0
            return min(max(number, 0.0), 1.0) if number == number else 0.0  # NaN
    return 1.0


def is_form(content_type: str) -> bool:
    """Is this the content type of an HTML form's body (which any site can post)?"""
    media = content_type.split(";", 1)[0].strip().lower()
    return media in (_FORM, _MULTIPART)


def form_field(body: bytes, content_type: str, name: str) -> str | None:
    """The first value of field `name` in (the first bytes of) a form body, urlencoded
    or multipart, or None.  Linear in the body, whatever it holds; a body that does not
    parse has no fields."""
    try:
        pairs = form_pairs(body, content_type, partial=True)
    except Exception:  # a hostile body is a missing field, never an error
        return None
    return next((value for key, value in pairs if key == name), None)


def form_pairs(body: bytes, content_type: str, *, partial: bool = False) -> list[tuple[str, str]]:
    """The fields of a form body, urlencoded or multipart, in order (a file's part is
    skipped), at most `MAX_FIELDS` of them; `ValueError` for a body that is not a form
    of that type or has more fields.  `partial`: the body may be cut short (the head of
    a larger one): what is complete is read, the rest left out."""
    media, _, params = content_type.partition(";")
    media = media.strip().lower()
    if media == _FORM:
        if not partial:
            text = body.decode()
            return parse_qsl(
                text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=MAX_FIELDS
            )
        text = body.decode("utf-8", "replace")
        if len(body) >= MAX_FORM:
            text = text.rpartition("&")[0]  # the last field may be cut short
        return parse_qsl(text, keep_blank_values=True)[:MAX_FIELDS]
    if media != _MULTIPART:
        raise ValueError("not a form")
    boundary = _boundary(params)
    return _multipart(body, boundary, partial)


_BOUNDARY = re.compile(
    r'(?:^|;)\s*boundary=("?)([0-9A-Za-z\'()+_,\-./:=? ]{1,70})\1\s*(?:;|$)', re.I
)
_DISPOSITION = re.compile(rb"^content-disposition:[^\r\n]*$", re.I | re.M)
_NAME = re.compile(rb';\s*name="([^"\r\n]*)"', re.I)
_FILENAME = re.compile(rb";\s*filename\*?=", re.I)


def _boundary(params: str) -> bytes:
    match = _BOUNDARY.search(params)
    if match is None:
        raise ValueError("a multipart body needs a boundary")
    return match.group(2).encode("ascii")


def _multipart(body: bytes, boundary: bytes, partial: bool) -> list[tuple[str, str]]:
    """The non-file fields of a ``multipart/form-data`` body, found with `bytes.find`
    alone (linear, no recursion: nested multiparts are not looked into)."""
    delimiter = b"--" + boundary
    pairs: list[tuple[str, str]] = []
    start = body.find(delimiter)
    if start < 0:
        raise ValueError("no multipart part")
    position = start + len(delimiter)
    while len(pairs) < MAX_FIELDS:
        if body.startswith(b"--", position):
            return pairs  # the closing delimiter
        head_end = body.find(b"\r\n\r\n", position)
        end = body.find(b"\r\n" + delimiter, position)
        if head_end < 0 or end < 0 or head_end > end:
            if partial:
                return pairs
            raise ValueError("a multipart part is cut short")
        headers = body[position:head_end]
        disposition = _DISPOSITION.search(headers)
        if disposition is not None and _FILENAME.search(disposition.group()) is None:
            name = _NAME.search(disposition.group())
            if name is not None:
                value = body[head_end + 4 : end]
                pairs.append((name.group(1).decode("utf-8"), value.decode("utf-8")))
        position = end + 2 + len(delimiter)
    if partial:
        return pairs
    raise ValueError(f"a form of more than {MAX_FIELDS} fields")
