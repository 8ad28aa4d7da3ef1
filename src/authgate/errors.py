"""One exception tree for everything authgate refuses.

Each class knows the HTTP status it maps to and, for the 401 family, the RFC 6750
error code, so adapters render every error in one place.  Messages are written to be
safe to show a client: they never say whether a user exists, what a key is, or how a
check failed internally.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AccountLocked",
    "AmbiguousCredentials",
    "AuthGateError",
    "AuthenticationError",
    "AuthorizationError",
    "BadCredentials",
    "ConfigError",
    "Conflict",
    "CsrfFailed",
    "EmailNotVerified",
    "ExpiredToken",
    "InvalidPassword",
    "InvalidSignature",
    "InvalidToken",
    "InvalidTokenClaims",
    "InvalidUsername",
    "LastAdminError",
    "LoginRefused",
    "MalformedToken",
    "NotAuthenticated",
    "NotFound",
    "PermissionDenied",
    "PreconditionFailed",
    "PreconditionRequired",
    "ProtectedUser",
    "ProviderUnavailable",
    "SecondFactorRequired",
    "SessionLimitReached",
    "SessionRevoked",
    "StepUpRequired",
    "StoreError",
    "StoreUnavailable",
    "TokenNotYetValid",
    "TooManyAttempts",
    "UnknownKey",
    "UnsupportedMediaType",
    "UserExists",
    "UserNotFound",
    "ValidationError",
    "VersionConflict",
]


class AuthGateError(Exception):
    """The root of every error authgate raises on purpose."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "server_error"
    default_detail: ClassVar[str] = "internal error"

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail if detail is not None else self.default_detail
        super().__init__(self.detail)

    def extra(self) -> dict[str, object]:
        """Fields the error's JSON body carries besides ``error`` and ``detail``."""
        return {}

    def challenge_params(self) -> str:
        """Auth-params a 401's ``WWW-Authenticate`` adds after ``error_description``."""
        return ""


# -- 400 --------------------------------------------------------------------------------


class ValidationError(AuthGateError, ValueError):
    """Input that breaks a rule: a bad username, a weak password, a malformed body."""

    status = 400
    code = "invalid_request"
    default_detail = "the request is invalid"

    def __init__(self, detail: str | None = None, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.field = field


class PreconditionRequired(ValidationError):
    """The server requires ``If-Match`` on changes to users and none was sent (HTTP 428)."""

    status = 428
    code = "precondition_required"
    default_detail = "send If-Match with the user's ETag (from GET) to change it"


class UnsupportedMediaType(ValidationError):
    """A body of a type the endpoint does not read (HTTP 415)."""

    status = 415
    code = "unsupported_media_type"
    default_detail = "send the body as application/json or as a form"


class InvalidUsername(ValidationError):
    """A username that normalises to something outside the allowed alphabet or length."""

    code = "invalid_username"


class InvalidPassword(ValidationError):
    """A password that the password policy refuses."""

    code = "invalid_password"


# -- 401 --------------------------------------------------------------------------------


class AuthenticationError(AuthGateError):
    """The caller is not who they claim, or claimed nothing (HTTP 401)."""

    status = 401
    code = "unauthorized"
    #: RFC 6750 error code for ``WWW-Authenticate``; None when no credential was presented.
    bearer_error: ClassVar[str | None] = "invalid_token"
    default_detail = "authentication failed"


class NotAuthenticated(AuthenticationError):
    """No credential was presented where one is required."""

    code = "not_authenticated"
    bearer_error = None
    default_detail = "authentication required"


class BadCredentials(AuthenticationError):
    """Wrong username or password; the same message whichever of the two was wrong."""

    code = "invalid_credentials"
    bearer_error = None
    default_detail = "invalid username or password"


class LoginRefused(BadCredentials):
    """The identity provider a login went through did not log the person in (they
    cancelled, or it refused the code)."""

    code = "login_refused"
    default_detail = "the identity provider did not log you in"


class TooManyAttempts(AuthenticationError):
    """Too many failed attempts from the client's address: try again after
    ``retry_after`` seconds (HTTP 429 with ``Retry-After``)."""

    status = 429
    code = "too_many_attempts"
    bearer_error = None
    default_detail = "too many failed attempts from this address"

    def __init__(self, retry_after: int, detail: str | None = None) -> None:
        super().__init__(detail or f"{self.default_detail}; retry in {retry_after} s")
        self.retry_after = retry_after


class AccountLocked(TooManyAttempts):
    """Too many failed logins on the account: try again after ``retry_after`` seconds
    (HTTP 429)."""

    code = "account_locked"
    default_detail = "too many failed login attempts"


class InvalidToken(AuthenticationError):
    """A presented token that cannot be trusted."""

    code = "invalid_token"
    default_detail = "the token is invalid"


class AmbiguousCredentials(AuthenticationError):
    """The request presents more than one credential where one is read: two
    ``Authorization`` headers, a session cookie twice, or a header and a cookie that
    disagree (HTTP 400, RFC 6750 ``invalid_request``)."""

    status = 400
    code = "ambiguous_credentials"
    bearer_error = "invalid_request"
    default_detail = "the request presents more than one credential: send exactly one"


class MalformedToken(InvalidToken):
    """The token is not a well-formed JWT (or refresh token) at all."""

    default_detail = "the token is malformed"


class InvalidSignature(InvalidToken):
    """The signature does not verify with any trusted key."""

    default_detail = "the token signature is invalid"


class UnknownKey(InvalidToken):
    """The token names a key (``kid``) the key ring does not trust."""

    default_detail = "the token was signed with an unknown key"


class ExpiredToken(InvalidToken):
    """The token's ``exp`` has passed."""

    default_detail = "the token has expired"


class TokenNotYetValid(InvalidToken):
    """The token's ``nbf`` or ``iat`` lies in the future."""

    default_detail = "the token is not yet valid"


class InvalidTokenClaims(InvalidToken):
    """A required claim is missing or wrong (issuer, audience, type, subject...)."""

    default_detail = "the token claims are invalid"


class SessionRevoked(InvalidToken):
    """The token's session was revoked, expired, or its user changed."""

    default_detail = "the session is no longer valid"


class StepUpRequired(AuthenticationError):
    """The identity is real but its proof is too old for this operation: prove it again
    (``POST /auth/reauth``, or log in again) within `max_age` seconds of the request
    (HTTP 401 ``insufficient_user_authentication``, RFC 9470)."""

    code = "insufficient_user_authentication"
    bearer_error = "insufficient_user_authentication"
    default_detail = "a more recent authentication is required: prove it's you again"

    def __init__(self, max_age: int, detail: str | None = None) -> None:
        super().__init__(
            detail
            or f"{self.default_detail} (within {max_age} s: POST /auth/reauth or log in again)"
        )
        self.max_age = max_age

    def extra(self) -> dict[str, object]:
        return {"max_age": self.max_age}

    def challenge_params(self) -> str:
        return f', max_age="{self.max_age}"'


# -- 403 --------------------------------------------------------------------------------


class AuthorizationError(AuthGateError):
    """The caller is known but not allowed (HTTP 403)."""

    status = 403
    code = "forbidden"
    default_detail = "permission denied"


class PermissionDenied(AuthorizationError):
    """A guard refused: the message says what was required."""


class CsrfFailed(PermissionDenied):
    """An unsafe request authenticated by a cookie came without the CSRF token of its
    session (a form posted from another site, or a token of another session)."""

    code = "csrf_failed"
    default_detail = "the CSRF token is missing or does not belong to this session"


class SecondFactorRequired(AuthorizationError):
    """The password was right; the login needs its second step (a TOTP code, a
    recovery code or a passkey, or enrolling a factor the user's role requires) with
    `challenge` (HTTP 403 ``mfa_required``, the challenge in the body; for a user with
    passkeys, the options of ``navigator.credentials.get()`` in ``passkey``)."""

    code = "mfa_required"
    default_detail = "a second factor is required: send the challenge with a code to /auth/mfa"

    def __init__(
        self,
        challenge: str,
        methods: list[str],
        expires_in: int,
        passkey: dict[str, object] | None = None,
    ) -> None:
        detail = (
            "your role requires a second factor: enrol one with this challenge"
            if any(m.startswith("enrol_") for m in methods)
            else self.default_detail
        )
        #: Is the challenge for enrolling a factor (rather than using one)?
        self.enrolling = detail != self.default_detail
        super().__init__(detail)
        self.challenge = challenge
        self.methods = methods
        self.expires_in = expires_in
        self.passkey = passkey

    def extra(self) -> dict[str, object]:
        body: dict[str, object] = {
            "mfa_token": self.challenge,
            "methods": self.methods,
            "expires_in": self.expires_in,
        }
        if self.passkey is not None:
            body["passkey"] = self.passkey
        return body


class EmailNotVerified(AuthorizationError):
    """The password was right, but the account's email address is not confirmed yet
    (only someone who knows the password learns this)."""

    code = "email_not_verified"
    default_detail = "confirm your email address first: follow the link we mailed you"


# -- store ------------------------------------------------------------------------------


class StoreError(AuthGateError):
    """A store refused or failed an operation."""

    status = 500
    code = "store_error"
    default_detail = "store error"


class Conflict(StoreError):
    """The write conflicts with the current state (HTTP 409)."""

    status = 409
    code = "conflict"
    default_detail = "conflict"


class UserExists(Conflict):
    """A user with the same normalised username already exists."""

    code = "user_exists"
    default_detail = "a user with that username already exists"


class VersionConflict(Conflict):
    """The record changed since it was read: re-read it and try again."""

    code = "version_conflict"
    default_detail = "the record was changed by someone else; reload it and retry"


class PreconditionFailed(Conflict):
    """``If-Match`` names a version of the user that is no longer the current one
    (HTTP 412): someone changed it since the caller read it."""

    status = 412
    code = "precondition_failed"
    default_detail = "the user changed since you read it: GET it again and retry with its new ETag"


class LastAdminError(Conflict):
    """Refused: it would leave no enabled admin (or remove the caller themself)."""

    code = "last_admin"
    default_detail = "refused: this would leave no enabled admin"


class SessionLimitReached(Conflict):
    """The user has as many sessions as allowed and the policy refuses new ones."""

    code = "session_limit"
    default_detail = "too many active sessions: log out elsewhere first"


class ProtectedUser(Conflict):
    """The root user cannot be deleted, disabled or demoted."""

    code = "protected_user"
    default_detail = "refused: the root user cannot be deleted, disabled or demoted"


class NotFound(StoreError):
    """The record does not exist (HTTP 404)."""

    status = 404
    code = "not_found"
    default_detail = "not found"


class UserNotFound(NotFound):
    """No user with that username."""

    default_detail = "no such user"


class StoreUnavailable(StoreError):
    """The store cannot be reached (HTTP 503 with ``Retry-After``).

    Clients see only `detail`, which names no host, port or path; `reason` (also
    ``str(err)``) says what failed, for the log and the operator's CLI.
    """

    status = 503
    code = "store_unavailable"
    default_detail = "the authentication store is unavailable; retry shortly"

    def __init__(self, reason: str | None = None, *, retry_after: int = 1) -> None:
        super().__init__()
        self.reason = reason or self.default_detail
        self.retry_after = retry_after
        self.args = (self.reason,)


class ProviderUnavailable(StoreUnavailable):
    """A trusted identity provider's keys cannot be had: never fetched, or older than
    their issuer's ``keys_max_age`` and the provider unreachable (HTTP 503 with
    ``Retry-After``; `reason` names the issuer, never its address)."""

    code = "provider_unavailable"
    default_detail = "the identity provider's keys are unavailable; retry shortly"


# -- configuration ----------------------------------------------------------------------


class ConfigError(AuthGateError):
    """authgate is configured wrongly; the message says what to set."""

    code = "config_error"
    default_detail = "authgate is misconfigured"
