"""The HTTP API, once, for every framework: requests in, responses out, no I/O.

Each endpoint is a flow (see `authgate.flows`): it validates the body, yields the store
and argon2 operations it needs and returns an `ApiResponse`.  `HttpApi.for_gate` builds
the API of a gate, and ``gate.run(api.answer(request))`` answers a request on either
face; the middlewares and the Flask and Starlette adapters only translate their request
into an `ApiRequest` and the `ApiResponse` back.  (A test keeps this table equal to the
routes.)

================================================  =====================================
``POST   /auth/login``                            anyone: a token pair (401, 429)
``POST   /auth/token``                            anyone: the same, as an OAuth2 password grant
``POST   /auth/refresh``                          anyone: a new pair for a refresh token
``POST   /auth/logout``                           authenticated: 204, the session ends
``GET    /auth/me``                               authenticated: who am I
``PUT    /auth/me/password``                      authenticated: 204, other sessions end
``GET    /auth/sessions``                         authenticated: my sessions
``DELETE /auth/sessions/{session_id}``            authenticated: 204, or 404
``GET    /auth/keys``                             authenticated: my API keys
``POST   /auth/keys``                             authenticated: 201 a new API key
``DELETE /auth/keys/{key_id}``                    authenticated: 204, or 404
``GET    /auth/scram``                            anyone: a step of the SCRAM handshake
``GET    /auth/csrf``                             anyone: this browser's CSRF token
``POST   /auth/session``                          anyone: a browser login, a session cookie
``POST   /auth/password/forgot``                  anyone: 202, a reset link is mailed
``POST   /auth/password/reset``                   anyone: 204, the password is reset
``POST   /auth/email/resend``                     anyone: 202, a verification link is mailed
``POST   /auth/email/verify``                     anyone: 204, the address is confirmed
``POST   /auth/signup``                           anyone: 201 the user (202 to confirm)
``GET    /auth/mfa``                              authenticated: my second factors
``POST   /auth/mfa``                              anyone: a login's second step
``POST   /auth/mfa/totp``                         authenticated: 201 a TOTP enrolment
``POST   /auth/mfa/totp/confirm``                 authenticated: its first code, the recovery codes
``POST   /auth/mfa/recovery``                     authenticated: new recovery codes
``POST   /auth/mfa/passkey``                      anyone: a second step's passkey options
``GET    /auth/reauth``                           authenticated: how to prove it's you again
``POST   /auth/reauth``                           authenticated: a new session proven now
``GET    /auth/passkeys``                         authenticated: my passkeys
``POST   /auth/passkeys/options``                 authenticated (recent): options to add one
``POST   /auth/passkeys``                         authenticated: 201, the passkey is added
``DELETE /auth/passkeys/{passkey_id}``            authenticated (recent): 204, it is removed
``POST   /auth/passkeys/login/options``           anyone: options of a login by passkey
``POST   /auth/passkeys/login``                   anyone: a login by passkey alone
``DELETE /api/users/{username}/mfa``              admin: 204, the user's second factors end
``GET    /auth/oidc/{provider}/login``            anyone: 303 to the provider's login page
``GET    /auth/oidc/{provider}/callback``         anyone: the provider's answer, a session
``POST   /auth/oidc/{provider}/logout``           anyone: 303, logged out here and there
``POST   /api/users/``                            admin: 201 the user
``GET    /api/users/``                            admin: a page of users
``GET    /api/users/{username}``                  admin: one user
``PATCH  /api/users/{username}``                  admin: change fields (password write-only)
``PUT    /api/users/{username}``                  admin: the same as PATCH
``DELETE /api/users/{username}``                  admin: 204 (never yourself or the last admin)
``PUT    /api/users/{username}/permissions``      admin: replace the direct grants
``PUT    /api/users/{username}/password``         admin: set the password, sessions end
``GET    /api/users/{username}/sessions``         admin: the user's login sessions
``DELETE /api/users/{username}/sessions``         admin: end them all (API keys stay)
``DELETE /api/users/{username}/sessions/{session_id}`` admin: end one; 404 unless theirs
``GET    /api/users/{username}/keys``             admin: the user's API keys
``DELETE /api/users/{username}/keys/{key_id}``   admin: revoke one; 404 unless theirs
``GET    /api/users/{username}/permissions``      admin: grants and their sources; with
                                                   ``?permission=`` whether it is held, why
================================================  =====================================
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qsl, unquote, urlencode

from . import documents
from .audit import AuditLog, bind_audit_log, record_denial, unbind_audit_log
from .browser import MAX_FIELDS, BrowserRules, form_pairs, is_form, safe_next
from .decorators import check_fresh
from .errors import (
    AuthGateError,
    CsrfFailed,
    LastAdminError,
    NotAuthenticated,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    PreconditionRequired,
    SecondFactorRequired,
    UnsupportedMediaType,
    UserNotFound,
    ValidationError,
    VersionConflict,
)
from .factors import Factors
from .flows import Flow, call
from .flows.accounts import (
    AccountRules,
    SignUp,
    request_password_reset,
    request_verification,
    reset_password,
    sign_up,
    verify_email,
)
from .flows.apikeys import create_api_key, list_api_keys, require_account_right, revoke_api_key
from .flows.browser import BrowserSession, browser_login, open_for
from .flows.identity import explain_decision
from .flows.issuers import Issuers, IssuerState
from .flows.login import change_password, login
from .flows.mfa import (
    ENROL,
    MfaRules,
    amr_of,
    begin_totp,
    complete_login,
    confirm_totp,
    mfa_status,
    read_challenge,
    regenerate_recovery,
    reset_factors,
)
from .flows.mfa import (
    LOGIN as LOGIN_STEP,
)
from .flows.oidc import LoginRules, begin_login, finish_login
from .flows.passkeys import (
    begin_registration,
    finish_registration,
    passkey_list,
    passkey_login,
    remove_passkey,
    via_of,
)
from .flows.scram import scram_step
from .flows.sessions import LOGIN, SessionRules, logout, refresh, revoke_session
from .flows.stepup import reauth_options, reauthenticate
from .flows.users import create_user as create_user_flow
from .flows.users import delete_user as delete_user_flow
from .flows.users import set_password as set_password_flow
from .flows.users import update_user as update_user_flow
from .gate import AsyncGate, Gate
from .http import ApiResponse, error_response
from .identity import Client, Identity
from .passkeys import LOGIN as PASSKEY_LOGIN
from .passkeys import MAX_CREDENTIAL, PasskeyRules
from .stores.base import Store
from .tokens import TokenPair, TokenVerifier
from .users import RoleHierarchy, User, normalize_username

__all__ = ["ApiMount", "ApiRequest", "ApiResponse", "HttpApi", "too_large"]

T = TypeVar("T")

MAX_BODY = 64 * 1024


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """A request as the API sees it: `path` is relative to the mount point."""

    method: str
    path: str
    identity: Identity
    body: bytes = b""
    query: Mapping[str, str] = field(default_factory=dict)
    client: Client = field(default_factory=Client)
    authorization: str = ""
    if_match: str = ""
    #: Every request header, names in lower case (repeated ones joined with ", ",
    #: cookies with "; "): what browser logins read (cookies, content type, CSRF).
    headers: Mapping[str, str] = field(default_factory=dict)


# -- body validation ----------------------------------------------------------------------

_STR, _BOOL, _LIST, _INT = "a string", "true or false", "a list of strings", "an integer"
_OBJ = "an object"
_URLENCODED = "application/x-www-form-urlencoded"


@dataclass(frozen=True, slots=True)
class _Field:
    kind: str
    required: bool = False
    max_length: int = 256


def _parse_body(raw: bytes, fields: Mapping[str, _Field]) -> dict[str, Any]:
    """A JSON object holding only known fields of the right types, else a 400."""
    if len(raw) > MAX_BODY:
        raise ValidationError(f"the request body is larger than {MAX_BODY} bytes")
    try:
        data = documents.loads(raw or b"null")
    except ValueError:
        raise ValidationError("the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ValidationError("the request body must be a JSON object")
    return _checked(data, fields)


def _parse_form(
    raw: bytes, fields: Mapping[str, _Field], content_type: str = _URLENCODED
) -> dict[str, Any]:
    """A form body (an OAuth2 token request: ``application/x-www-form-urlencoded``; a
    browser's form: that or ``multipart/form-data``) holding only known fields, each at
    most once, else a 400.  A field sent without a value is one not sent (RFC 6749,
    section 3.1)."""
    if len(raw) > MAX_BODY:
        raise ValidationError(f"the request body is larger than {MAX_BODY} bytes")
    try:
        if content_type == _URLENCODED:
            pairs = parse_qsl(
                raw.decode(),
                keep_blank_values=True,
                strict_parsing=True,
                errors="strict",
                max_num_fields=MAX_FIELDS,
            )
        else:
            pairs = form_pairs(raw, content_type)
    except ValueError:  # UnicodeDecodeError too
        raise ValidationError(
            "the request body must be form-encoded (application/x-www-form-urlencoded)"
        ) from None
    data: dict[str, Any] = {}
    for name, value in pairs:
        if name in data:
            raise ValidationError(f"field {name!r} is given twice", field=name)
        if value:
            data[name] = value
    return _checked(data, fields)


def _checked(data: dict[str, Any], fields: Mapping[str, _Field]) -> dict[str, Any]:
    """`data` when it holds only `fields`, each of its kind (None: not given)."""
    for name in data:
        if name not in fields:
            raise ValidationError(f"unknown field {name!r}", field=name)
    for name, spec in fields.items():
        if name not in data or data[name] is None:
            if spec.required:
                raise ValidationError(f"field {name!r} is required", field=name)
            data.pop(name, None)
            continue
        value = data[name]
        if spec.kind == _STR:
            ok = isinstance(value, str) and len(value) <= spec.max_length
        elif spec.kind == _BOOL:
            ok = isinstance(value, bool)
        elif spec.kind == _OBJ:
            ok = isinstance(value, dict)
        elif spec.kind == _INT:
            if isinstance(value, float) and value.is_integer():
                value = data[name] = int(value)  # 60.0 is JSON's 60
            ok = isinstance(value, int) and not isinstance(value, bool)
        else:
            ok = (
                isinstance(value, list)
                and len(value) <= 256
                and all(isinstance(v, str) and len(v) <= spec.max_length for v in value)
            )
        if not ok:
            limit = (
                f" of at most {spec.max_length} characters" if spec.kind in (_STR, _LIST) else ""
            )
            raise ValidationError(f"field {name!r} must be {spec.kind}{limit}", field=name)
    return data


_LOGIN = {"username": _Field(_STR, True), "password": _Field(_STR, True, 4096)}
# RFC 6749's password grant; authgate registers no clients and a token holds its user's
# rights, so `scope` and the client fields (Swagger UI may send them) are ignored.
_TOKEN = {
    "grant_type": _Field(_STR, True, 64),
    **_LOGIN,
    "scope": _Field(_STR, max_length=1024),
    "client_id": _Field(_STR),
    "client_secret": _Field(_STR, max_length=4096),
}
_REFRESH = {"refresh_token": _Field(_STR, True, 512)}
_PASSWORD = {"current_password": _Field(_STR, True, 4096), "new_password": _Field(_STR, True, 4096)}
_PROFILE = {
    "role": _Field(_STR),
    "roles": _Field(_LIST),
    "groups": _Field(_LIST),
    "permissions": _Field(_LIST),
    "enabled": _Field(_BOOL),
    "email": _Field(_STR, max_length=320),
    "first_name": _Field(_STR, max_length=128),
    "last_name": _Field(_STR, max_length=128),
    "display_name": _Field(_STR),
    "email_verified": _Field(_BOOL),
}
_CREATE = {
    "username": _Field(_STR, True),
    "password": _Field(_STR, False, 4096),
    "passwordless": _Field(_BOOL),
    **_PROFILE,
}
_UPDATE = {"password": _Field(_STR, False, 4096), "status": _Field(_STR), **_PROFILE}
_PERMISSIONS = {"permissions": _Field(_LIST, True)}
_KEY = {"name": _Field(_STR, True, 100), "permissions": _Field(_LIST), "expires_in": _Field(_INT)}
_NEW_PASSWORD = {"password": _Field(_STR, True, 4096)}
# What browser forms add to a body: the CSRF token, where to go after and on failure.
_FORM_EXTRAS = {"csrf_token": _Field(_STR), "next": _Field(_STR, max_length=2048),
                "back": _Field(_STR, max_length=2048)}  # fmt: skip
_SESSION = {**_LOGIN, "remember": _Field(_BOOL)}
# The challenge is required in JSON (a form's comes in the cookie its login set).
# A passkey's answer is ``PublicKeyCredential.toJSON()``: an object (a string in a form).
_CREDENTIAL = _Field(_OBJ, False, MAX_CREDENTIAL)
_MFA_STEP = {
    "mfa_token": _Field(_STR, False, 4096),
    "code": _Field(_STR, False, 64),
    "passkey": _CREDENTIAL,
}
_REAUTH = {
    "password": _Field(_STR, False, 4096),
    "code": _Field(_STR, False, 64),
    "passkey": _CREDENTIAL,
    "passkey_token": _Field(_STR, False, 4096),
}
_PASSKEY_ADD = {
    "passkey_token": _Field(_STR, True, 4096),
    "credential": _Field(_OBJ, True, MAX_CREDENTIAL),
    "name": _Field(_STR, False, 64),
    "mfa_token": _Field(_STR, False, 4096),
}
_PASSKEY_OPTIONS = {"session": _Field(_STR, False, 16), "remember": _Field(_BOOL)}
_PASSKEY_LOGIN = {
    "passkey_token": _Field(_STR, True, 4096),
    "credential": _Field(_OBJ, True, MAX_CREDENTIAL),
}
_MFA_BEGIN = {"mfa_token": _Field(_STR, False, 4096)}
_MFA_CONFIRM = {"mfa_token": _Field(_STR, False, 4096), "code": _Field(_STR, True, 64)}
_MFA_CODE = {"code": _Field(_STR, True, 64)}
_FORGOT = {"username": _Field(_STR, max_length=320), "email": _Field(_STR, max_length=320)}
_RESET = {"token": _Field(_STR, True, 4096), "new_password": _Field(_STR, True, 4096)}
_VERIFY = {"token": _Field(_STR, True, 4096)}
_SIGNUP = {
    "username": _Field(_STR, True, 320),
    "password": _Field(_STR, True, 4096),
    "email": _Field(_STR, max_length=320),
    "first_name": _Field(_STR, max_length=128),
    "last_name": _Field(_STR, max_length=128),
    "display_name": _Field(_STR),
}


def etag(user: User) -> str:
    """The user's entity tag: changes with every write, and differs between a deleted
    user and a new one of the same name."""
    return f'"{user.id}.{user.version}"'


def _now(response: ApiResponse) -> Flow[ApiResponse]:
    """A flow that needs no operation: it returns `response` at once."""
    yield from ()
    return response


# -- the API ------------------------------------------------------------------------------

Handler = Callable[[ApiRequest, str], Flow[ApiResponse]]


class HttpApi:
    """Routes and endpoint flows; mount it under any prefix."""

    def __init__(
        self,
        rules: SessionRules,
        roles: RoleHierarchy,
        *,
        auth_prefix: str = "/auth",
        users_prefix: str = "/api/users",
        realm: str = "authgate",
        protected: frozenset[str] = frozenset(),
        scram_secret: bytes = b"",
        require_if_match: bool = False,
        audit: AuditLog | None = None,
        browser: BrowserRules | None = None,
        accounts: AccountRules | None = None,
        mfa: MfaRules | None = None,
        issuers: Issuers | None = None,
        login_states: TokenVerifier | None = None,
        public_url: str | None = None,
    ) -> None:
        self.rules = rules
        self.issuers = issuers
        self.logins = (
            LoginRules(login_states, public_url, auth_prefix.rstrip("/"), roles)
            if login_states is not None and public_url
            else None
        )
        self.browser = browser
        self.accounts = accounts
        self.mfa = mfa
        self.audit = audit
        self.require_if_match = require_if_match
        self.scram_secret = scram_secret
        self.protected = protected
        self.roles = roles
        self.auth_prefix = auth_prefix.rstrip("/")
        self.users_prefix = users_prefix.rstrip("/")
        self.realm = realm
        auth, users = self.auth_prefix, self.users_prefix
        self._routes: dict[str, dict[str, Handler]] = {
            f"{auth}/login": {"POST": self._login},
            f"{auth}/token": {"POST": self._token},
            f"{auth}/refresh": {"POST": self._refresh},
            f"{auth}/logout": {"POST": self._logout},
            f"{auth}/me": {"GET": self._me},
            f"{auth}/me/password": {"PUT": self._change_password},
            f"{auth}/sessions": {"GET": self._sessions},
            f"{auth}/keys": {"GET": self._list_keys, "POST": self._create_key},
            f"{auth}/scram": {"GET": self._scram},
            f"{auth}/csrf": {"GET": self._csrf},
            f"{auth}/session": {"POST": self._browser_login},
            f"{auth}/password/forgot": {"POST": self._forgot},
            f"{auth}/password/reset": {"POST": self._reset},
            f"{auth}/email/resend": {"POST": self._resend},
            f"{auth}/email/verify": {"POST": self._verify},
            f"{auth}/signup": {"POST": self._signup},
            f"{auth}/mfa": {"GET": self._mfa_status, "POST": self._mfa_complete},
            f"{auth}/mfa/totp": {"POST": self._mfa_begin},
            f"{auth}/mfa/totp/confirm": {"POST": self._mfa_confirm},
            f"{auth}/mfa/recovery": {"POST": self._mfa_recovery},
            f"{auth}/mfa/passkey": {"POST": self._mfa_passkey_options},
            f"{auth}/reauth": {"GET": self._reauth_options, "POST": self._reauth},
            f"{auth}/passkeys": {"GET": self._passkey_list, "POST": self._passkey_add},
            f"{auth}/passkeys/options": {"POST": self._passkey_begin},
            f"{auth}/passkeys/login/options": {"POST": self._passkey_login_options},
            f"{auth}/passkeys/login": {"POST": self._passkey_login},
            users: {"GET": self._list_users, "POST": self._create_user},
            f"{users}/": {"GET": self._list_users, "POST": self._create_user},
        }
        self._starts = (f"{auth}/", users)
        # Routes with two path parameters, a user's and then one of theirs:
        # (before the first, its name, the segment between, the second's name, methods).
        self._pair_routes: list[tuple[str, str, str, str, dict[str, Handler]]] = [
            (f"{users}/", "username", "sessions", "session_id",
             {"DELETE": self._revoke_user_session}),
            (f"{users}/", "username", "keys", "key_id", {"DELETE": self._revoke_user_key}),
        ]  # fmt: skip
        # Routes with one path parameter: (before it, its name, after it, methods).
        self._param_routes: list[tuple[str, str, str, dict[str, Handler]]] = [
            (f"{auth}/sessions/", "session_id", "", {"DELETE": self._revoke_session}),
            (f"{auth}/keys/", "key_id", "", {"DELETE": self._revoke_key}),
            (f"{auth}/passkeys/", "passkey_id", "", {"DELETE": self._passkey_remove}),
            (f"{auth}/oidc/", "provider", "/login", {"GET": self._oidc_login}),
            (f"{auth}/oidc/", "provider", "/callback", {"GET": self._oidc_callback}),
            (f"{auth}/oidc/", "provider", "/logout", {"POST": self._oidc_logout}),
            (
                f"{users}/",
                "username",
                "/permissions",
                {"GET": self._explain_permissions, "PUT": self._set_permissions},
            ),
            (
                f"{users}/",
                "username",
                "/sessions",
                {"GET": self._user_sessions, "DELETE": self._revoke_user_sessions},
            ),
            (f"{users}/", "username", "/keys", {"GET": self._user_keys}),
            (f"{users}/", "username", "/password", {"PUT": self._set_password}),
            (f"{users}/", "username", "/mfa", {"DELETE": self._reset_mfa}),
            (
                f"{users}/",
                "username",
                "",
                {
                    "GET": self._get_user,
                    "PATCH": self._update_user,
                    "PUT": self._update_user,
                    "DELETE": self._delete_user,
                },
            ),
        ]

    def _match(self, path: str) -> tuple[dict[str, Handler], str] | None:
        methods = self._routes.get(path)
        if methods is not None:
            return methods, ""
        for before, _, after, candidates in self._param_routes:
            if not path.startswith(before):
                continue
            rest = path[len(before) :]
            if after:
                if not rest.endswith(after):
                    continue
                rest = rest[: -len(after)]
            else:
                rest = rest.rstrip("/")
            if rest and "/" not in rest:
                return candidates, unquote(rest)
        for before, _, middle, _, candidates in self._pair_routes:
            parts = path[len(before) :].split("/") if path.startswith(before) else []
            if len(parts) == 3 and parts[1] == middle and parts[0] and parts[2]:
                return candidates, f"{unquote(parts[0])}\x00{unquote(parts[2])}"
        return None

    def operations(self) -> list[tuple[str, str, str]]:
        """Every operation answered, as ``(path template, method, endpoint name)``:
        ``("/api/users/{username}", "PATCH", "update_user")``; what `authgate.openapi`
        describes.  The users collection is listed once, with its trailing slash."""
        out = []
        for path, methods in self._routes.items():
            if path + "/" not in self._routes:
                out += [(path, method, h.__name__.lstrip("_")) for method, h in methods.items()]
        for before, name, after, methods in self._param_routes:
            template = f"{before}{{{name}}}{after}"
            out += [(template, method, h.__name__.lstrip("_")) for method, h in methods.items()]
        for before, first, middle, second, methods in self._pair_routes:
            template = f"{before}{{{first}}}/{middle}/{{{second}}}"
            out += [(template, method, h.__name__.lstrip("_")) for method, h in methods.items()]
        return out

    def owns(self, path: str) -> bool:
        """True when `path` is one of the API's (cheap: for every request)."""
        return path.startswith(self._starts) and self._match(path) is not None

    @classmethod
    def for_gate(cls, gate: Gate | AsyncGate, **options: Any) -> HttpApi:
        """The HTTP API of `gate`, configured from it (its rules, role order, protected
        users, SCRAM secret, ``If-Match`` policy and audit log); `options` are the
        prefixes and realm.  Answer a request with ``gate.run(api.answer(request))``."""
        return cls(
            gate.rules,
            gate.roles,
            protected=gate.protected,
            scram_secret=gate.ring.secret_material(),
            require_if_match=gate.settings.require_if_match,
            audit=gate.audit,
            browser=gate.browser if gate.settings.cookie_sessions else None,
            accounts=gate.accounts,
            mfa=gate.mfa,
            issuers=gate.issuers,
            login_states=gate.login_states,
            public_url=gate.settings.public_url,
            **options,
        )

    def answer(self, request: ApiRequest) -> Flow[ApiResponse | None]:
        """The flow answering `request`: its response, or None when the path is not
        the API's.  ``gate.run(api.answer(request))``."""
        flow = self.handle(request)
        return None if flow is None else (yield from flow)

    def handle(self, request: ApiRequest) -> Flow[ApiResponse] | None:
        """The flow answering `request`, or None when the path is not the API's.  Drive
        it with a gate's ``run``."""
        found = self._match(request.path)
        if found is None:
            return None
        methods, arg = found
        handler = methods.get(request.method)
        if handler is None:
            return _now(_not_allowed(request.method, methods))
        return self._guarded(handler, request, arg)

    def _guarded(self, handler: Handler, request: ApiRequest, arg: str) -> Flow[ApiResponse]:
        # The guards' refusals reach the audit log's subscribers, not the logger alone.
        bound = bind_audit_log(self.audit) if self.audit is not None else None
        try:
            return (yield from handler(request, arg))
        except AuthGateError as err:
            return error_response(err, self.realm)
        finally:
            if bound is not None:
                unbind_audit_log(bound)

    # -- helpers --------------------------------------------------------------------------

    @staticmethod
    def _authenticated(request: ApiRequest, right: str | None = None) -> Identity:
        """The caller; with `right`, one that may manage its own account that way (an
        API key only when it lists the right)."""
        if not request.identity.is_authenticated:
            raise NotAuthenticated()
        if right is not None:
            require_account_right(request.identity, right)
        return request.identity

    def _admin(self, request: ApiRequest) -> Identity:
        who = self._authenticated(request)
        if not self.roles.admits(who.roles, self.roles.top):
            record_denial(who.username or "", f"the {self.roles.top} role", request.path)
            raise PermissionDenied(f"managing users requires the {self.roles.top} role")
        return who

    def _roles_from(self, body: dict[str, Any], actor: Identity) -> list[str] | None:
        if "role" in body and "roles" in body:
            raise ValidationError("give either 'role' or 'roles', not both", field="roles")
        roles = [body.pop("role")] if "role" in body else body.pop("roles", None)
        if roles is None:
            return None
        grantable = self.roles.implied(actor.roles)
        known = self.roles.known(roles)
        for normal in known:
            if normal not in grantable:
                raise PermissionDenied(
                    f"you cannot grant the {normal} role: your roles do not include it"
                )
        return known

    def _user_view(self, user: User) -> dict[str, Any]:
        view = user.to_public_dict()
        view["role"] = self.roles.highest(user.roles)
        view["status"] = "active" if user.enabled else "inactive"
        return view

    # -- /auth ---------------------------------------------------------------------------

    def _login(self, request: ApiRequest, arg: str) -> Flow[ApiResponse]:
        return self._logged_in(request, _parse_body(request.body, _LOGIN))

    def _token(self, request: ApiRequest, arg: str) -> Flow[ApiResponse]:
        """RFC 6749's password grant (section 4.3), what OAuth2 clients such as Swagger
        UI's "Authorize" send: the login of ``/auth/login`` from a form."""
        body = _parse_form(request.body, _TOKEN)
        if body["grant_type"] != "password":
            detail = "grant_type must be 'password': the only grant this endpoint serves"
            return _now(
                ApiResponse.json(400, {"error": "unsupported_grant_type", "detail": detail})
            )
        return self._logged_in(request, body)

    def _logged_in(self, request: ApiRequest, body: dict[str, Any]) -> Flow[ApiResponse]:
        pair: TokenPair = yield from login(
            self.rules, body["username"], body["password"], request.client, self.mfa
        )
        return ApiResponse.json(200, pair.to_dict())

    def _refresh(self, request: ApiRequest, arg: str) -> Flow[ApiResponse]:
        body = _parse_body(request.body, _REFRESH)
        pair: TokenPair = yield from refresh(self.rules, body["refresh_token"], request.client)
        return ApiResponse.json(200, pair.to_dict())

    def _logout(self, request: ApiRequest, arg: str) -> Flow[ApiResponse]:
        browser = self.browser
        session, _ = browser.cookies(request.headers.get("cookie")) if browser else (None, None)
        form = browser is not None and is_form(request.headers.get("content-type", ""))
        if browser is None or not (session or form):  # an API client's logout
            who = self._authenticated(request)
            yield from logout(who.username, who.session_id, request.client)
            return ApiResponse.empty()
        # A browser's: its cookies go whatever the session's state (the middleware
        # treats a stale one as none, and checked the CSRF token of a live one).
        who = request.identity
        if who.is_authenticated:
            yield from logout(who.username, who.session_id, request.client)
        content_type = request.headers.get("content-type", "")
        media = content_type.split(";", 1)[0].strip().lower()
        kind = _URLENCODED if media == _URLENCODED else content_type
        data = _parse_form(request.body, _FORM_EXTRAS, kind) if form else {}
        if form and not who.is_authenticated:
            self._check_csrf(request, data.get("csrf_token"), browser)
        cookies = [browser.clear_session(), browser.set_nonce(browser.new_nonce())]
        target = browser.login_url or browser.home_url
        return _browser_answer(ApiResponse.empty(), form, data, target, cookies)

    # -- browsers: cookie sessions and self-service accounts ------------------------------

    def _browser_rules(self) -> BrowserRules:
        if self.browser is None:
            raise NotFound("browser sessions are not enabled (AUTHGATE_COOKIE_SESSIONS)")
        return self.browser

    def _check_csrf(
        self, request: ApiRequest, presented: str | None, browser: BrowserRules
    ) -> None:
        """A form's (or script's) CSRF token must be bound to this browser: to its
        session cookie, or before a login to its CSRF cookie."""
        session, nonce = browser.cookies(request.headers.get("cookie"))
        token = presented or request.headers.get(browser.csrf_header)
        if not browser.csrf_ok(token, (session, nonce)):
            raise CsrfFailed()

    def _browser_body(
        self, request: ApiRequest, fields: Mapping[str, _Field]
    ) -> tuple[dict[str, Any], bool]:
        """The body of a browser endpoint and whether it came from a form.  A form
        (which any site can post) must carry this browser's CSRF token; anything else
        must be JSON (which another site cannot send without the browser asking this
        one first)."""
        content_type = request.headers.get("content-type", "")
        media = content_type.split(";", 1)[0].strip().lower()
        if is_form(content_type):
            browser = self.browser
            if browser is None:  # no CSRF check can be made: another site could post it
                raise UnsupportedMediaType(
                    "forms are taken only with cookie sessions on (their CSRF check): "
                    "send application/json"
                )
            strings = {k: _Field(_STR, f.required, f.max_length) for k, f in fields.items()}
            kind = _URLENCODED if media == _URLENCODED else content_type
            data = _parse_form(request.body, {**strings, **_FORM_EXTRAS}, kind)
            try:
                self._check_csrf(request, data.pop("csrf_token", None), browser)
            except CsrfFailed as refused:
                raise _FormRefused(data, refused) from None
            for name, spec in fields.items():
                if spec.kind == _BOOL and name in data:
                    data[name] = _checkbox(name, data[name])
            return data, True
        if media != "application/json" and not media.endswith("+json"):
            raise UnsupportedMediaType()
        return _parse_body(request.body, fields), False

    def _browser_flow(
        self,
        request: ApiRequest,
        fields: Mapping[str, _Field],
        act: Callable[[dict[str, Any], bool], Flow[tuple[ApiResponse, list[str]]]],
        success: str,
    ) -> Flow[ApiResponse]:
        """Run a browser endpoint: JSON in and out, or a form answered with a redirect
        (``303``) to its ``next`` page on success and back to its ``back`` page with
        ``?error=<code>`` when refused."""
        try:
            data, form = self._browser_body(request, fields)
        except _FormRefused as refused:
            # Nothing was done: back to the form, which renders a fresh token (a page
            # that outlived its CSRF binding, a login in another tab).
            return self._back(refused.data, refused.error)
        try:
            answer, cookies = yield from act(data, form)
        except SecondFactorRequired as asked:
            browser = self.browser
            if not (form and browser is not None and browser.mfa_url and not asked.enrolling):
                if not form:
                    raise
                return self._back(data, asked)
            # The second step's page, the challenge in a cookie (never in a URL).
            target = browser.mfa_url
            if safe_next(data.get("next")):
                target += ("&" if "?" in target else "?") + urlencode({"next": data["next"]})
            return _redirect(target, [browser.set_mfa(asked.challenge, asked.expires_in)])
        except AuthGateError as err:
            if not form or err.status >= 500:
                raise
            return self._back(data, err)
        return _browser_answer(answer, form, data, success, cookies)

    def _back(self, data: Mapping[str, Any], err: AuthGateError) -> ApiResponse:
        """A refused form sent back to its ``back`` page with ``?error=<code>``."""
        back = safe_next(data.get("back")) or self._fallback()
        query = {"error": err.code}
        if safe_next(data.get("next")):
            query["next"] = data["next"]
        separator = "&" if "?" in back else "?"
        return _redirect(f"{back}{separator}{urlencode(query)}", [])

    def _fallback(self) -> str:
        browser = self.browser
        return (browser.login_url or browser.home_url) if browser else "/"

    def _csrf(self, request: ApiRequest, arg: str) -> Flow[ApiResponse]:
        browser = self._browser_rules()
        session, nonce = browser.cookies(request.headers.get("cookie"))
        cookies = []
        if session is None or not request.identity.is_authenticated:
            session = None
            if nonce is None:
                nonce = browser.new_nonce()
                cookies.append(browser.set_nonce(nonce))
        token = browser.csrf_token(session or nonce or "")
        body = {"csrf_token": token, "header": browser.csrf_header, "field": browser.csrf_field}
        response = yield from _now(ApiResponse.json(200, body))
        response.headers.extend(("set-cookie", c) for c in cookies)
        return response

    def _browser_login(self, request: ApiRequest, arg: str) -> Flow[ApiResponse]:
        browser = self._browser_rules()

        def act(data: dict[str, Any], form: bool) -> Flow[tuple[ApiResponse, list[str]]]:
            before = request.identity
            if before.is_authenticated and before.claims.get("cookie"):
                # The browser's session so far ends: one browser, one session.
                yield from logout(before.username, before.session_id, request.client)
            remember = bool(data.get("remember", False))
            ttl = browser.remember_ttl if remember else browser.session_ttl
            opened: BrowserSession = yield from browser_login(
                self.rules, data["username"], data["password"], request.client,
                ttl=ttl, remember=remember, mfa=self.mfa,
            )  # fmt: skip
            return _browser_session_answer(browser, opened)

        return self._browser_flow(request, _SESSION, act, browser.home_url)

    # -- second factors -----------------------------------------------------------------

    def _mfa_rules(self) -> MfaRules:
        if self.mfa is None:
            raise NotFound("second factors are not configured")
        return self.mfa

    def _mfa_complete(self, request: ApiRequest, arg: str) -> Flow[ApiResponse]:
        mfa = self._mfa_rules()
        browser = self.browser

        def act(data: dict[str, Any], form: bool) -> Flow[tuple[ApiResponse, list[str]]]:
            # A form's challenge comes in the cookie its login set; JSON sends it.
            challenge = data.get("mfa_token")
            if challenge is None and browser is not None:
                challenge = browser.mfa_challenge(request.headers.get("cookie"))
            if challenge is None:
                raise ValidationError("field 'mfa_token' is required", field="mfa_token")
            if (data.get("code") is None) == (data.get("passkey") is None):
                raise ValidationError("send a 'code', or a 'passkey' answer", field="code")
            user, via = yield from complete_login(
                mfa, self.rules, challenge, data.get("code"), request.client, data.get("passkey")
            )
            answer, cookies = yield from self._opened_parts(user, via, request)
            if browser is not None and browser.mfa_challenge(request.headers.get("cookie")):
                cookies.append(browser.clear_mfa())
            return answer, cookies

        home = browser.home_url if browser is not None else "/"
        return self._browser_flow(request, _MFA_STEP, act, home)

    def _opened(self, user: User, via: Mapping[str, Any], request: ApiRequest) -> Flow[ApiResponse]:
        """The session a login was for, once its second step is done."""
        answer, cookies = yield from self._opened_parts(user, via, request)
        return _browser_answer(answer, False, {}, "", cookies)

    def _opened_parts(
        self, user: User, via: Mapping[str, Any], request: ApiRequest
    ) -> Flow[tuple[ApiResponse, list[str]]]:
        """The answer opening the session a login was for, and its cookies."""
        amr = via.get("amr") or amr_of("totp")
        opened = yield from open_for(
            self.rules, self.browser, user, via, request.client, amr, "second factor"
        )
        return self._session_answer(opened)

    def _enrolling(
        self, request: ApiRequest, body: Mapping[str, Any], *, fresh: bool = False
    ) -> Flow[tuple[str, Mapping[str, Any] | None]]:
        """Who enrols: the caller (`fresh`: one who proved it within ``step_up_ttl``),
        or the user of an enrolment challenge (a role of theirs requires a factor they
        do not have yet), with what their login was for."""
        mfa = self._mfa_rules()
        token = body.get("mfa_token")
        if token is None:
            who = self._authenticated(request, "account:mfa")
            if fresh:
                check_fresh(mfa.step_up_ttl, who)
            return who.username, None
        user, via = yield from read_challenge(mfa, token, ENROL)
        return user.username, via

    def _mfa_begin(self, request: ApiRequest, arg: str) -> Flow[ApiResponse]:
        mfa = self._mfa_rules()
        body = _parse_body(request.body or b"{}", _MFA_BEGIN)
        username, _ = yield from self._enrolling(request, body, fresh=True)
        enrolment = yield from begin_totp(mfa, username, request.client)
        return ApiResponse.json(201, enrolment.to_dict())

    def _mfa_confirm(self, request: ApiRequest, arg: str) -> Flow[ApiResponse]:
        mfa = self._mfa_rules()
        body = _parse_body(request.body, _MFA_CONFIRM)
        username, via = yield from self._enrolling(request, body)
        user, codes = yield from confirm_totp(
            mfa, self.rules, username, body["code"], request.client
        )
        if via is None:
            return ApiResponse.json(200, {"recovery_codes": codes})
        return (yield from self._enrolled(user, via, request, {"recovery_codes": codes}))

    def _enrolled(
        self, user: User, via: Mapping[str, Any], request: ApiRequest, shown: dict[str, Any]
    ) -> Flow[ApiResponse]:
        """Enrolled during a login: the session it was for opens now, its answer with
        what the enrolment shows once."""
        opened = yield from self._opened(user, via, request)
        data = {**(opened.data() or {}), **shown}
        cookies = [(k, v) for k, v in opened.headers if k == "set-cookie"]
        answer = ApiResponse.json(opened.status, data)
        answer.headers.extend(cookies)
        return answer

    def _mfa_passkey_options(self, request: ApiRequest, arg: str) -> Flow[ApiResponse]:
        """The options of ``navigator.credentials.get()`` for a login's second step (the
        challenge in the body, or in the cookie a form login set)."""
        mfa = self._mfa_rules()
        body = _parse_body(request.body or b"{}", _MFA_BEGIN)
        challenge = body.get("mfa_token")
        if challenge is None and self.browser is not None:
            challenge = self.browser.mfa_challenge(request.headers.get("cookie"))
        user, via = yield from read_challenge(mfa, challenge, LOGIN_STEP)
        keys = Factors.load(user.factors).passkeys
        wac = via.get("wac")
        if mfa.passkeys is None or not keys or not isinstance(wac, str):
            raise NotFound("this login has no passkey to use")
        options = mfa.passkeys.authentication(
            "", user, keys, {}, challenge=base64.urlsafe_b64decode(wac)
        )
        return ApiResponse.json(200, options)

    # -- logins through an identity provider ---------------------------------------------

    def _provider(self, name: str) -> tuple[IssuerState, LoginRules, BrowserRules]:
        """The trusted issuer named `name` that logins go through, and what they need."""
        browser = self._browser_rules()
        found = next((s for s in self.issuers or () if s.issuer.name == name), None)
        if found is None or not found.issuer.login_client_id:
            raise NotFound("no login is set up with this provider")
        if self.logins is None:
            raise NotFound("logins through a provider need AUTHGATE_PUBLIC_URL (their callback)")
        return found, self.logins, browser

    def _oidc_login(self, request: ApiRequest, name: str) -> Flow[ApiResponse]:
        state, logins, browser = self._provider(name)
        next_ = safe_next(request.query.get("next")) or browser.home_url
        remember = request.query.get("remember", "") in ("1", "true", "on")
        via = {"kind": "browser", "remember": remember}
        url, kept = yield from begin_login(state, logins, next_, via)
        return _redirect(url, [browser.set_oidc(kept, logins.ttl)])

    def _oidc_callback(self, request: ApiRequest, name: str) -> Flow[ApiResponse]:
        state, logins, browser = self._provider(name)
        kept = browser.oidc_state(request.headers.get("cookie"))
        try:
            user, via, next_ = yield from finish_login(
                state, logins, request.query, kept, request.client
            )
        except AuthGateError as err:
            if err.status >= 500:
                raise
            back = browser.login_url or browser.home_url
            separator = "&" if "?" in back else "?"
            target = f"{back}{separator}{urlencode({'error': err.code})}"
            return _redirect(target, [browser.clear_oidc()])
        before = request.identity
        if before.is_authenticated and before.claims.get("cookie"):
            # The browser's session so far ends: one browser, one session.
            yield from logout(before.username, before.session_id, request.client)
        opened = yield from open_for(
            self.rules, browser, user, via, request.client, via["amr"], f"through {name}"
        )
        _, cookies = self._session_answer(opened)
        return _redirect(safe_next(next_) or browser.home_url, [*cookies, browser.clear_oidc()])

    def _oidc_logout(self, request: ApiRequest, name: str) -> Flow[ApiResponse]:
        """End the session here, then at the provider (RP-initiated logout), when it
        names an end-session endpoint; back to this site's login page after."""
        state, logins, browser = self._provider(name)
        who = request.identity
        if who.is_authenticated and who.session_id:
            yield from logout(who.username, who.session_id, request.client)
        here = logins.public_url.rstrip("/") + (browser.login_url or browser.home_url)
        end = (state.metadata or {}).get("end_session_endpoint")
        target = here
        if isinstance(end, str) and end.startswith(("https://", "http://")):
            query = {"client_id": state.issuer.login_client_id, "post_logout_redirect_uri": here}
            target = end + ("&" if "?" in end else "?") + urlencode(query)
        return _redirect(target, [browser.clear_session(), browser.set_nonce(browser.new_nonce())])

    # -- step-up and passkeys -----------------------------------------------------------

    def _reauth_options(self, request: ApiRequest, arg: str) -> Flow[ApiResponse]:
        who = self._authenticated(request)
        return ApiResponse.json(200, (yield from reauth_options(self.mfa, who)))

    def _reauth(self, request: ApiRequest, arg: str) -> Flow[ApiResponse]:
        def act(data: dict[str, Any], form: bool) -> Flow[tuple[ApiResponse, list[str]]]:
            who = self._authenticated(request)
            opened = yield from reauthenticate(
                self.rules, self.mfa, self.browser, who, data, request.client
            )
            return self._session_answer(opened)

        return self._browser_flow(request, _REAUTH, act, self._fallback())

    def _session_answer(self, opened: TokenPair | BrowserSession) -> tuple[ApiResponse, list[str]]:
        if isinstance(opened, BrowserSession) and self.browser is not None:
            return _browser_session_answer(self.browser, opened)
        assert isinstance(opened, TokenPair)
        return ApiResponse.json(200, opened.to_dict()), []

    def _passkey_rules(self) -> PasskeyRules:
        passkeys = self._mfa_rules().passkeys
        if passkeys is None:
            raise NotFound("passkeys are not configured")
        return passkeys

    def _passkey_begin(self, request: ApiRequest, arg: str) -> Flow[ApiResponse]:
        passkeys = self._passkey_rules()
        body = _parse_body(request.body or b"{}", _MFA_BEGIN)
        username, _ = yield from self._enrolling(request, body, fresh=True)
        return ApiResponse.json(200, (yield from begin_registration(passkeys, username)))

    def _passkey_add(self, request: ApiRequest, arg: str) -> Flow[ApiResponse]:
        passkeys = self._passkey_rules()
        body = _parse_body(request.body, _PASSKEY_ADD)
        username, via = yield from self._enrolling(request, body)
        user, key, codes = yield from finish_registration(
            passkeys, username, body["passkey_token"], body["credential"], body.get("name"),
            request.client,
        )  # fmt: skip
        shown: dict[str, Any] = {"passkey": key.to_public_dict()}
        if codes:
            shown["recovery_codes"] = codes
        if via is None:
            return ApiResponse.json(201, shown)
        return (yield from self._enrolled(user, {**via, "amr": amr_of("passkey")}, request, shown))

    def _passkey_list(self, request: ApiRequest, arg: str) -> Flow[ApiResponse]:
        who = self._authenticated(request, "account:mfa")
        user = yield from call(Store.get_user, who.username)
        if user is None or user.id != who.user_id:
            raise NotAuthenticated()
        return ApiResponse.json(200, {"passkeys": passkey_list(user)})

    def _passkey_remove(self, request: ApiRequest, passkey_id: str) -> Flow[ApiResponse]:
        mfa = self._mfa_rules()
        who = self._authenticated(request, "account:mfa")
        check_fresh(mfa.step_up_ttl, who)
        yield from remove_passkey(who.username, passkey_id, request.client)
        return ApiResponse.empty()

    def _passkey_login_options(self, request: ApiRequest, arg: str) -> Flow[ApiResponse]:
        passkeys = self._passkey_rules()
        body = _parse_body(request.body or b"{}", _PASSKEY_OPTIONS)
        if body.get("session", "token") not in ("token", "cookie"):
            raise ValidationError("'session' is 'token' or 'cookie'", field="session")
        if body.get("session") == "cookie" and self.browser is None:
            raise ValidationError("cookie sessions are off", field="session")
        via = via_of(body, self.browser is not None)
        options = passkeys.authentication(PASSKEY_LOGIN, None, (), via)
        return (yield from _now(ApiResponse.json(200, options)))

    def _passkey_login(self, request: ApiRequest, arg: str) -> Flow[ApiResponse]:
        passkeys = self._passkey_rules()

        def act(data: dict[str, Any], form: bool) -> Flow[tuple[ApiResponse, list[str]]]:
            user, via = yield from passkey_login(
                passkeys, self.rules, data["passkey_token"], data["credential"], request.client
            )
            before = request.identity
            if (
                via.get("kind") == "browser"
                and before.is_authenticated
                and before.claims.get("cookie")
            ):
                # The browser's session so far ends: one browser, one session.
                yield from logout(before.username, before.session_id, request.client)
            return (yield from self._opened_parts(user, via, request))

        return self._browser_flow(request, _PASSKEY_LOGIN, act, self._fallback())

    def _mfa_recovery(self, request: ApiRequest, arg: str) -> Flow[ApiResponse]:
        mfa = self._mfa_rules()
        who = self._authenticated(request, "account:mfa")
        body = _parse_body(request.body, _MFA_CODE)
        codes = yield from regenerate_recovery(
            mfa, self.rules, who.username, body["code"], request.client
        )
        return ApiResponse.json(200, {"recovery_codes": codes})

    def _mfa_status(self, request: ApiRequest, arg: str) -> Flow[ApiResponse]:
        who = self._authenticated(request, "account:mfa")
        user = yield from call(Store.get_user, who.username)
        if user is None:
            raise NotAuthenticated()
        return ApiResponse.json(200, mfa_status(self.mfa, self.rules, user))

    def _reset_mfa(self, request: ApiRequest, username: str) -> Flow[ApiResponse]:
        actor = self._admin(request)
        name = normalize_username(username)
        yield from reset_factors(name, actor.username, request.client)
        return ApiResponse.empty()

    def _accounts(self) -> AccountRules:
        if self.accounts is None:
            raise NotFound("self-service accounts are not configured")
        return self.accounts

    def _forgot(self, request: ApiRequest, arg: str) -> Flow[ApiResponse]:
        accounts = self._accounts()

        def act(data: dict[str, Any], form: bool) -> Flow[tuple[ApiResponse, list[str]]]:
            login = _one_login(data)
            yield from request_password_reset(accounts, login, request.client)
            return _accepted("reset"), []

        return self._browser_flow(request, _FORGOT, act, self._fallback())

    def _reset(self, request: ApiRequest, arg: str) -> Flow[ApiResponse]:
        accounts = self._accounts()

        def act(data: dict[str, Any], form: bool) -> Flow[tuple[ApiResponse, list[str]]]:
            user = yield from reset_password(
                accounts, data["token"], data["new_password"], request.client
            )
            browser, who = self.browser, request.identity
            # A browser logged in as that user had its session ended with the others.
            mine = browser is not None and who.is_authenticated and who.username == user.username
            cookies = [browser.clear_session()] if browser is not None and mine else []
            return ApiResponse.empty(), cookies

        return self._browser_flow(request, _RESET, act, self._fallback())

    def _resend(self, request: ApiRequest, arg: str) -> Flow[ApiResponse]:
        accounts = self._accounts()

        def act(data: dict[str, Any], form: bool) -> Flow[tuple[ApiResponse, list[str]]]:
            login = _one_login(data)
            yield from request_verification(accounts, login, request.client)
            return _accepted("verify"), []

        return self._browser_flow(request, _FORGOT, act, self._fallback())

    def _verify(self, request: ApiRequest, arg: str) -> Flow[ApiResponse]:
        accounts = self._accounts()

        def act(data: dict[str, Any], form: bool) -> Flow[tuple[ApiResponse, list[str]]]:
            yield from verify_email(accounts, data["token"], request.client)
            return ApiResponse.empty(), []

        return self._browser_flow(request, _VERIFY, act, self._fallback())

    def _signup(self, request: ApiRequest, arg: str) -> Flow[ApiResponse]:
        accounts = self._accounts()
        if not accounts.signup:
            raise NotFound("sign-up is not enabled")

        def act(data: dict[str, Any], form: bool) -> Flow[tuple[ApiResponse, list[str]]]:
            profile = {
                k: v for k, v in data.items() if k not in ("username", "password", *_FORM_EXTRAS)
            }
            done: SignUp = yield from sign_up(
                accounts, data["username"], data["password"], request.client, profile
            )
            if done.user is None:
                return _accepted("signup"), []
            return ApiResponse.json(201, self._user_view(done.user)), []

        return self._browser_flow(request, _SIGNUP, act, self._fallback())

    def _me(self, request: ApiRequest, arg: str) -> Flow[ApiResponse]:
        who = self._authenticated(request)
        user = yield from call(Store.get_user, who.username)
        view = who.to_public_dict()
        view["role"] = self.roles.highest(who.roles)
        if user is not None:
            view.update(
                first_name=user.first_name,
                last_name=user.last_name,
                email=user.email,
                display_name=user.display_name or user.full_name or user.username,
            )
        return ApiResponse.json(200, view)

    def _change_password(self, request: ApiRequest, arg: str) -> Flow[ApiResponse]:
        who = self._authenticated(request, "account:password")
        body = _parse_body(request.body, _PASSWORD)
        yield from change_password(
            self.rules,
            who.username,
            body["current_password"],
            body["new_password"],
            request.client,
            who.session_id or None,
        )
        return ApiResponse.empty()

    def _sessions(self, request: ApiRequest, arg: str) -> Flow[ApiResponse]:
        who = self._authenticated(request, "account:sessions")
        sessions = yield from call(Store.list_sessions, who.username)
        items = []
        for s in (s for s in sessions if s.kind == "login"):
            item = s.to_public_dict()
            item["current"] = s.id == who.session_id
            items.append(item)
        return ApiResponse.json(200, {"items": items})

    def _revoke_session(self, request: ApiRequest, session_id: str) -> Flow[ApiResponse]:
        who = self._authenticated(request, "account:sessions")
        done = yield from revoke_session(who.username, session_id, request.client)
        if not done:
            raise NotFound("no such session")
        return ApiResponse.empty()

    def _scram(self, request: ApiRequest, arg: str) -> Flow[ApiResponse]:
        if not self.scram_secret:
            raise NotFound("SCRAM login is not configured")
        reply = yield from scram_step(
            self.rules, self.scram_secret, request.authorization, request.client
        )
        headers = [(reply.header, reply.value), ("cache-control", "no-store")]
        if reply.status == 200:
            return ApiResponse(200, b"", headers)
        return ApiResponse(
            reply.status,
            b'{"error": "scram", "detail": "continue the SCRAM handshake"}',
            [*headers, ("content-type", "application/json")],
        )

    def _create_key(self, request: ApiRequest, arg: str) -> Flow[ApiResponse]:
        who = self._authenticated(request, "account:keys")
        body = _parse_body(request.body, _KEY)
        key, described = yield from create_api_key(
            who, body["name"], body.get("permissions"), body.get("expires_in"), request.client
        )
        return ApiResponse.json(201, {"key": key, **described.to_public_dict()})

    def _list_keys(self, request: ApiRequest, arg: str) -> Flow[ApiResponse]:
        who = self._authenticated(request, "account:keys")
        keys = yield from list_api_keys(who.username)
        return ApiResponse.json(200, {"items": [k.to_public_dict() for k in keys]})

    def _revoke_key(self, request: ApiRequest, key_id: str) -> Flow[ApiResponse]:
        who = self._authenticated(request, "account:keys")
        done = yield from revoke_api_key(who.username, key_id, request.client)
        if not done:
            raise NotFound("no such API key")
        return ApiResponse.empty()

    # -- /api/users ----------------------------------------------------------------------

    def _create_user(self, request: ApiRequest, arg: str) -> Flow[ApiResponse]:
        actor = self._admin(request)
        body = _parse_body(request.body, _CREATE)
        roles = self._roles_from(body, actor) or []
        username = body.pop("username")
        password = body.pop("password", None)
        user = yield from create_user_flow(
            username, password, roles=roles, actor=actor.username, roles_order=self.roles, **body
        )  # with "passwordless" in body: the flow asks for one or the other
        return ApiResponse.json(201, self._user_view(user))

    def _list_users(self, request: ApiRequest, arg: str) -> Flow[ApiResponse]:
        self._admin(request)
        try:
            limit = int(request.query.get("limit", "100"))
        except ValueError:
            raise ValidationError("limit must be an integer", field="limit") from None
        if not 1 <= limit <= 1000:
            raise ValidationError("limit must be between 1 and 1000", field="limit")
        page = yield from call(Store.list_users, request.query.get("after") or None, limit)
        return ApiResponse.json(
            200, {"items": [self._user_view(u) for u in page.items], "next_after": page.next_after}
        )

    def _get_user(self, request: ApiRequest, username: str) -> Flow[ApiResponse]:
        self._admin(request)
        user = yield from call(Store.get_user, normalize_username(username))
        if user is None:
            raise UserNotFound()
        return self._user_response(user)

    def _user_response(self, user: User) -> ApiResponse:
        response = ApiResponse.json(200, self._user_view(user))
        response.headers.append(("etag", etag(user)))
        return response

    def _expected_version(self, request: ApiRequest, username: str) -> Flow[int | None]:
        """The version `If-Match` allows the request to change (None: no condition);
        `PreconditionFailed` when it names another version, `PreconditionRequired`
        when the server wants one and none came.  Run before anything is written."""
        header = request.if_match.strip()
        if not header:
            if self.require_if_match:
                raise PreconditionRequired()
            return None
        user = yield from call(Store.get_user, normalize_username(username))
        if user is None:
            raise UserNotFound()
        if header != "*" and etag(user) not in (tag.strip() for tag in header.split(",")):
            raise PreconditionFailed()
        return user.version

    def _conditional(self, expected: int | None, flow: Flow[T]) -> Flow[T]:
        """`flow`, its lost compare-and-set a 412 when the request was conditional."""
        try:
            return (yield from flow)
        except VersionConflict:
            if expected is None:
                raise
            raise PreconditionFailed() from None

    def _update_user(self, request: ApiRequest, username: str) -> Flow[ApiResponse]:
        actor = self._admin(request)
        body = _parse_body(request.body, _UPDATE)
        name = normalize_username(username)
        roles = self._roles_from(body, actor)
        if roles is not None:
            body["roles"] = roles
        status = body.pop("status", None)
        if status is not None:
            if status not in ("active", "inactive"):
                raise ValidationError(
                    "field 'status' must be 'active' or 'inactive'", field="status"
                )
            if "enabled" in body and body["enabled"] != (status == "active"):
                raise ValidationError("'status' and 'enabled' disagree", field="status")
            body["enabled"] = status == "active"
        if name == actor.username and body.get("enabled") is False:
            raise LastAdminError("refused: you cannot disable your own account")
        password = body.pop("password", None)
        if password is not None:
            self.rules.hasher.policy.check(password)  # refuse before writing anything
        expected = yield from self._expected_version(request, name)
        if not body and password is None:
            user = yield from call(Store.get_user, name)
            if user is None:
                raise UserNotFound()
            return self._user_response(user)
        flow = update_user_flow(
            name,
            self.roles,
            protected=self.protected,
            expected_version=expected,
            password=password,
            actor=actor.username,
            **body,
        )
        return self._user_response((yield from self._conditional(expected, flow)))

    def _delete_user(self, request: ApiRequest, username: str) -> Flow[ApiResponse]:
        actor = self._admin(request)
        expected = yield from self._expected_version(request, username)
        flow = delete_user_flow(
            username,
            self.roles,
            acting=actor.username,
            protected=self.protected,
            expected_version=expected,
            actor=actor.username,
        )
        yield from self._conditional(expected, flow)
        return ApiResponse.empty()

    def _explain_permissions(self, request: ApiRequest, username: str) -> Flow[ApiResponse]:
        """Every grant of a user with its source; with ``?permission=resource:action``,
        whether they hold it, the grants that decide, and what would allow a refusal."""
        self._admin(request)
        permission = request.query.get("permission", "*:*")
        if not isinstance(permission, str) or len(permission) > 512:
            raise ValidationError("'permission' must be resource:action", field="permission")
        explained = yield from explain_decision(self.rules.policy, username, permission)
        return ApiResponse.json(200, explained.to_dict())

    def _user_of(self, request: ApiRequest, username: str) -> Flow[tuple[Identity, User]]:
        """The admin asking and the user asked about (`UserNotFound`: 404)."""
        actor = self._admin(request)
        user = yield from call(Store.get_user, normalize_username(username))
        if user is None:
            raise UserNotFound()
        return actor, user

    def _user_sessions(self, request: ApiRequest, username: str) -> Flow[ApiResponse]:
        """A user's live login sessions (admin)."""
        actor, user = yield from self._user_of(request, username)
        sessions = yield from call(Store.list_sessions, user.username)
        items = [
            {**s.to_public_dict(), "current": s.id == actor.session_id}
            for s in sessions
            if s.kind == LOGIN
        ]
        return ApiResponse.json(200, {"items": items})

    def _revoke_user_sessions(self, request: ApiRequest, username: str) -> Flow[ApiResponse]:
        """End every login session of a user (admin); their API keys stay."""
        actor, user = yield from self._user_of(request, username)
        sessions = yield from call(Store.list_sessions, user.username)
        count = 0
        for session in (s for s in sessions if s.kind == LOGIN):
            done = yield from revoke_session(
                user.username, session.id, request.client, actor=actor.username, kind=LOGIN
            )
            count += done
        return ApiResponse.json(200, {"revoked": count})

    def _revoke_user_session(self, request: ApiRequest, pair: str) -> Flow[ApiResponse]:
        """End one login session of a user (admin); 404 unless it is theirs."""
        username, _, session_id = pair.partition("\x00")
        actor, user = yield from self._user_of(request, username)
        done = yield from revoke_session(
            user.username, session_id, request.client, actor=actor.username, kind=LOGIN
        )
        if not done:
            raise NotFound("no such session")
        return ApiResponse.empty()

    def _user_keys(self, request: ApiRequest, username: str) -> Flow[ApiResponse]:
        """A user's live API keys (admin; never the keys themselves)."""
        _, user = yield from self._user_of(request, username)
        keys = yield from list_api_keys(user.username)
        return ApiResponse.json(200, {"items": [k.to_public_dict() for k in keys]})

    def _revoke_user_key(self, request: ApiRequest, pair: str) -> Flow[ApiResponse]:
        """Revoke one API key of a user (admin); 404 unless it is theirs."""
        username, _, key_id = pair.partition("\x00")
        actor, user = yield from self._user_of(request, username)
        done = yield from revoke_api_key(
            user.username, key_id, request.client, actor=actor.username
        )
        if not done:
            raise NotFound("no such API key")
        return ApiResponse.empty()

    def _set_permissions(self, request: ApiRequest, username: str) -> Flow[ApiResponse]:
        """Replace a user's direct grants: global ones and per-resource ones such as
        ``streams/1:send`` or ``streams/1/topics/7:read`` (Iggy's levels)."""
        actor = self._admin(request)
        body = _parse_body(request.body, _PERMISSIONS)
        expected = yield from self._expected_version(request, username)
        flow = update_user_flow(
            normalize_username(username),
            self.roles,
            expected_version=expected,
            permissions=body["permissions"],
            actor=actor.username,
        )
        return self._user_response((yield from self._conditional(expected, flow)))

    def _set_password(self, request: ApiRequest, username: str) -> Flow[ApiResponse]:
        """Set a user's password as an admin; all their sessions end."""
        actor = self._admin(request)
        body = _parse_body(request.body, _NEW_PASSWORD)
        expected = yield from self._expected_version(request, username)
        flow = set_password_flow(
            normalize_username(username),
            body["password"],
            expected_version=expected,
            actor=actor.username,
        )
        user = yield from self._conditional(expected, flow)
        response = ApiResponse.empty()
        response.headers.append(("etag", etag(user)))
        return response


A = TypeVar("A")  # the app behind the API: ASGI or WSGI
G = TypeVar("G", Gate, AsyncGate)


class ApiMount(Generic[A, G]):
    """The HTTP API of `gate` mounted in front of `app` (None: a 404 for every other
    path); the ASGI and WSGI mounts (`authgate.middleware`) only move bytes."""

    def __init__(self, app: A | None, gate: G, *, api: HttpApi | None = None) -> None:
        self.app: A | None = app
        self.gate: G = gate
        self.api = api or HttpApi.for_gate(gate)


def _checkbox(name: str, value: str) -> bool:
    """A form's boolean: a checked box sends ``on`` (or its ``value``), an unchecked
    one nothing."""
    word = value.lower()
    if word in ("on", "true", "1", "yes"):
        return True
    if word in ("off", "false", "0", "no"):
        return False
    raise ValidationError(f"field {name!r} must be on or off", field=name)


class _FormRefused(Exception):
    """A form whose CSRF token is not this browser's: what it held, and why."""

    def __init__(self, data: dict[str, Any], error: AuthGateError) -> None:
        super().__init__(error.detail)
        self.data = data
        self.error = error


_ACCEPTED = {
    "reset": "if an account has that name and an email address, a reset link is on its way",
    "verify": "if that account has an unconfirmed email address, a link is on its way",
    "signup": "check your mail: the link in it confirms your address",
}


def _accepted(what: str) -> ApiResponse:
    """202: the request is taken, and says nothing of whether the account exists."""
    return ApiResponse.json(202, {"detail": _ACCEPTED[what]})


def _browser_session_answer(
    browser: BrowserRules, opened: BrowserSession
) -> tuple[ApiResponse, list[str]]:
    """The answer to a browser login: the session (never its cookie's value) and its
    CSRF token; and the cookies to set, a new session cookie and a new CSRF binding:
    nothing from before the login (a cookie an attacker planted included) survives it."""
    session = opened.session
    view = {
        "username": session.username,
        "session_id": session.id,
        "expires_at": session.expires_at.isoformat(),
        "remember": opened.remember,
        "csrf_token": browser.csrf_token(opened.cookie),
    }
    cookies = [
        browser.set_session(opened.cookie, opened.remember),
        browser.set_nonce(browser.new_nonce()),
    ]
    return ApiResponse.json(200, view), cookies


def _one_login(data: Mapping[str, Any]) -> str:
    """The account a reset or resend request names, by ``username`` or ``email``."""
    login = data.get("username") or data.get("email")
    if not login:
        raise ValidationError("give the account's 'username' (or 'email')", field="username")
    return str(login)


def _redirect(location: str, cookies: list[str]) -> ApiResponse:
    headers = [("location", location), ("cache-control", "no-store")]
    headers.extend(("set-cookie", cookie) for cookie in cookies)
    return ApiResponse(303, b"", headers)


def _browser_answer(
    answer: ApiResponse, form: bool, data: Mapping[str, Any], default: str, cookies: list[str]
) -> ApiResponse:
    """`answer` with `cookies` set; for a form, a redirect to its safe ``next`` page."""
    if form:
        return _redirect(safe_next(data.get("next")) or default, cookies)
    headers = [*answer.headers, *(("set-cookie", cookie) for cookie in cookies)]
    return ApiResponse(answer.status, answer.body, headers)


def _not_allowed(method: str, methods: Mapping[str, Handler]) -> ApiResponse:
    """405, with the ``Allow`` header RFC 9110 asks for."""
    detail = f"{method} is not allowed here"
    response = ApiResponse.json(405, {"error": "method_not_allowed", "detail": detail})
    response.headers.append(("allow", ", ".join(methods)))
    return response


def too_large() -> ApiResponse:
    """The answer to a body over `MAX_BODY` (or of no valid length)."""
    detail = f"the request body must be 0 to {MAX_BODY} bytes"
    return ApiResponse.json(400, {"error": "invalid_request", "detail": detail})
