"""The HTTP API described in OpenAPI 3.1, from the API's own route table and body specs.

::

    from authgate.openapi import describe
    doc = describe(HttpApi.for_gate(gate))  # {"paths": {...}, "components": {...}}

The FastAPI adapter merges it into ``app.openapi()`` (``/docs`` then lists authgate's
routes, with ``If-Match`` on the user writes, and its "Authorize" logs in with a username
and password through the OAuth2 password grant of ``POST /auth/token``); any other
framework can serve it or merge it into its own document.  The routes come from
`HttpApi.operations` and the request bodies from the specs the endpoints validate with,
so the description cannot list a route the API does not answer.  Each operation lists
every status it can answer, and a body's schema says what the endpoint checks (the
username alphabet, the password policy, the roles, the grammar of a grant), so a request
the schema accepts is not refused as malformed; ``tests/test_openapi.py`` checks every
answer of a live app against the schemas here, and ``.ci/openapi-fuzz`` runs
Schemathesis against the FastAPI example.  `error_responses` describes an app's own
routes' refusals the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from .api import (
    _BOOL,
    _CREATE,
    _FORGOT,
    _FORM_EXTRAS,
    _INT,
    _KEY,
    _LIST,
    _LOGIN,
    _MFA_BEGIN,
    _MFA_CODE,
    _MFA_CONFIRM,
    _MFA_STEP,
    _NEW_PASSWORD,
    _OBJ,
    _PASSKEY_ADD,
    _PASSKEY_LOGIN,
    _PASSKEY_OPTIONS,
    _PASSWORD,
    _PERMISSIONS,
    _REAUTH,
    _REFRESH,
    _RESET,
    _SESSION,
    _SIGNUP,
    _STR,
    _TOKEN,
    _UPDATE,
    _VERIFY,
    HttpApi,
    _Field,
)
from .users import USERNAME_MAX, USERNAME_MIN

__all__ = ["describe", "error_responses", "merge", "oauth2_flow"]

_REF = "#/components/schemas/"

# What the API checks beyond a field's kind, in patterns that read alike in ECMA-262,
# Python and Rust (hence whitespace spelt out: `str.isspace`, which the API uses).
_SPACE = r"\u0009-\u000d\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# A path segment of a grant's resource: not `.` or `..`, even percent-encoded.
_SEGMENT = rf"(?!(?:\.|%2[eE]){{1,2}}(?:/|:[^:]*$))[^/\\{_SPACE}]+"
_GRANT: dict[str, Any] = {
    "type": "string",
    "pattern": rf"^{_SEGMENT}(?:/{_SEGMENT})*:[^:{_SPACE}]+$",
    "description": "a grant, `resource:action`: no whitespace, `/` between non-empty "
    "segments of the resource, none of them `.` or `..`, `*` a wildcard",
}
# A username or group name: what remains after NFKC normalisation and case folding must
# be 3 to 64 letters, digits or `._-@+` (`str.isalnum`, which Python's `\w` and Rust's
# match, `_` aside; JavaScript reads `\w` as ASCII, stricter, refusing no name the API
# would take).  A few compatibility characters, such as `½` or `İ`, normalise to a
# character that is neither, and are refused.
_NAME: dict[str, Any] = {
    "type": "string",
    "pattern": rf"^[\w.@+-]{{{USERNAME_MIN},{USERNAME_MAX}}}$",
    "description": "letters and digits of any script, `.`, `_`, `-`, `@` and `+`; "
    "compared after NFKC normalisation and case folding (`Alice` is `alice`)",
}
# What an API key's `expires_in` may be (`authgate.flows.apikeys` checks it).
_KEY_LIFETIME = {"minimum": 60, "maximum": 10 * 365 * 86400}


@dataclass(frozen=True, slots=True)
class _Operation:
    summary: str
    ok: int = 200
    answer: str | None = None  # the schema of the success body
    body: Mapping[str, _Field] | None = None
    form: bool = False  # the body is form-encoded (an OAuth2 token request)
    checked: frozenset[str] = frozenset()  # body fields checked beyond their kind
    own_checks: Mapping[str, dict[str, Any]] | None = None  # this operation's own such
    rules: tuple[dict[str, Any], ...] = ()  # what the body's fields must satisfy together
    public: bool = False  # no credential needed
    conditional: bool = False  # takes If-Match (412, 428)
    etag: bool = False  # answers with the user's ETag
    missing: str | None = None  # what a 404 means
    conflict: str | None = None  # what a 409 means
    throttled: str | None = None  # what a 429 means
    links: Mapping[str, dict[str, Any]] | None = None  # what the answer leads to
    query: tuple[tuple[str, dict[str, Any], str], ...] = ()
    browser: bool = False  # JSON, or a form (with its CSRF token) answered by a 303
    second_factor: bool = False  # a login: 403 mfa_required asks for its second step
    optional_body: bool = False  # the body may be left out altogether
    accepted: str | None = None  # what a 202 means (the body says nothing more)


# Body rules are written so that a field sent as null counts as one not sent, as the
# API reads it.
_GIVEN_PASSWORD = {"required": ["password"], "properties": {"password": {"type": "string"}}}
_PASSWORDLESS = {"required": ["passwordless"], "properties": {"passwordless": {"const": True}}}
_ONE_ROLE_FIELD = {
    "not": {
        "required": ["role", "roles"],
        "properties": {"role": {"type": "string"}, "roles": {"type": "array"}},
    }
}
_STATUS_AGREES = {
    "not": {
        "anyOf": [
            {
                "required": ["status", "enabled"],
                "properties": {"status": {"const": status}, "enabled": {"const": enabled}},
            }
            for status, enabled in (("active", False), ("inactive", True))
        ]
    }
}
_THROTTLED = "too many failed attempts from the client's address (too_many_attempts)"
_LOCKED = (
    "too many failed attempts: on the account (account_locked) or from the client's "
    "address (too_many_attempts)"
)
_SESSION_LIMIT = "the user has every session allowed (AUTHGATE_SESSION_LIMIT_POLICY=refuse)"
_RACE = "the user changed meanwhile: read it again and retry"
_PROFILE = frozenset({"password", "role", "roles", "groups", "permissions"})


def _link(
    operation: str,
    parameters: Mapping[str, str] | None = None,
    body: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A link to authgate's `operation`, its `parameters` and `body` fields given by
    runtime expressions (``$response.body#/id``)."""
    link: dict[str, Any] = {"operationId": f"authgate_{operation}"}
    if parameters:
        link["parameters"] = dict(parameters)
    if body:
        link["requestBody"] = dict(body)
    return link


_USER_TARGETS = {
    "GetUser": "get_user",
    "UpdateUser": "update_user",
    "DeleteUser": "delete_user",
    "SetPermissions": "set_permissions",
    "ExplainPermissions": "explain_permissions",
    "SetPassword": "set_password",
    "UserSessions": "user_sessions",
    "RevokeUserSessions": "revoke_user_sessions",
    "UserKeys": "user_keys",
}
_CONDITIONAL = {"UpdateUser", "DeleteUser", "SetPermissions", "SetPassword"}
_THE_USER = {"username": "$response.body#/username"}
# A new user leads to what concerns them, and to their login with the password given.
_NEW_USER_LINKS = {
    **{name: _link(operation, _THE_USER) for name, operation in _USER_TARGETS.items()},
    "Login": _link("login", body={**_THE_USER, "password": "$request.body#/password"}),
}
# A user read leads to the same, the writes conditional on the ETag it answered.
_USER_LINKS = {
    name: _link(
        operation,
        {**_THE_USER, "header.If-Match": "$response.header.ETag"}
        if name in _CONDITIONAL
        else _THE_USER,
    )
    for name, operation in _USER_TARGETS.items()
}
_PAIR_LINKS = {"Refresh": _link("refresh", body={"refresh_token": "$response.body#/refresh_token"})}
_FIRST = "$response.body#/items/0/id"
_OF_THE_USER = "$request.path.username"

_MAILED = "a mailed link's token: invalid, expired, superseded or used (invalid_link)"
# The account a forgot or resend request names: its username, or its email where
# addresses are login names; one of them, not empty.
_ONE_LOGIN = {
    "anyOf": [
        {"required": [name], "properties": {name: {"type": "string", "minLength": 1}}}
        for name in ("username", "email")
    ]
}
_OPERATIONS: dict[str, _Operation] = {
    "csrf": _Operation(
        "The CSRF token for this browser (bound to its session cookie, or before a "
        "login to a CSRF cookie set now): send it in the header or form field named",
        answer="Csrf",
        public=True,
    ),
    "browser_login": _Operation(
        "Log in a browser: a session cookie (HttpOnly, Secure, SameSite) and a new CSRF "
        "binding; JSON answers the session, a form (with the CSRF token) a 303 to `next`",
        answer="BrowserSession",
        body=_SESSION,
        browser=True,
        public=True,
        second_factor=True,
        conflict=_SESSION_LIMIT,
        throttled=_LOCKED,
    ),
    "forgot": _Operation(
        "Mail a password reset link to the account named (`username`, or `email` where "
        "addresses are login names); the same answer whether or not there is one",
        ok=202,
        answer="Accepted",
        body=_FORGOT,
        rules=(_ONE_LOGIN,),
        browser=True,
        public=True,
        throttled="too many requests for mail from the client's address",
    ),
    "reset": _Operation(
        "Set a new password with a reset link's token: every session of the user ends",
        ok=204,
        body=_RESET,
        checked=frozenset({"new_password"}),
        browser=True,
        public=True,
        accepted=_MAILED,
    ),
    "resend": _Operation(
        "Mail a link confirming the email address of the account named; the same answer "
        "whether or not there is one",
        ok=202,
        answer="Accepted",
        body=_FORGOT,
        rules=(_ONE_LOGIN,),
        browser=True,
        public=True,
        throttled="too many requests for mail from the client's address",
    ),
    "verify": _Operation(
        "Confirm an email address with a verification link's token",
        ok=204,
        body=_VERIFY,
        browser=True,
        public=True,
        accepted=_MAILED,
    ),
    "signup": _Operation(
        "Register an account with the sign-up role (no role of one's choosing); 202 "
        "when addresses must be confirmed first (a taken name answers the same)",
        ok=201,
        answer="User",
        body=_SIGNUP,
        checked=frozenset({"username", "password", "email"}),
        browser=True,
        public=True,
        conflict="the username is taken",
        throttled="too many requests for mail from the client's address",
    ),
    "login": _Operation(
        "Log in with a username and password: a token pair (429 while locked out or throttled)",
        answer="TokenPair",
        body=_LOGIN,
        public=True,
        second_factor=True,
        conflict=_SESSION_LIMIT,
        throttled=_LOCKED,
        links=_PAIR_LINKS,
    ),
    "token": _Operation(
        "The same login as an OAuth2 password grant (RFC 6749, section 4.3), what "
        "Swagger UI's Authorize sends: a form, `grant_type=password&username=...&"
        "password=...`; `scope`, `client_id` and `client_secret` are ignored (a token "
        "holds its user's own rights)",
        answer="TokenPair",
        body=_TOKEN,
        form=True,
        checked=frozenset({"grant_type"}),
        public=True,
        second_factor=True,
        conflict=_SESSION_LIMIT,
        throttled=_LOCKED,
        links=_PAIR_LINKS,
    ),
    "refresh": _Operation(
        "Trade a refresh token for a new pair; the old one is spent, and spending it "
        "again ends the session",
        answer="TokenPair",
        body=_REFRESH,
        public=True,
        throttled=_THROTTLED,
        links=_PAIR_LINKS,
    ),
    "logout": _Operation("End the current session", ok=204),
    "me": _Operation("Who the credential belongs to", answer="Me"),
    "change_password": _Operation(
        "Change my password (needs the current one); my other sessions and my API keys end",
        ok=204,
        body=_PASSWORD,
        checked=frozenset({"new_password"}),
        conflict=_RACE,
    ),
    "sessions": _Operation(
        "My login sessions",
        answer="SessionList",
        links={"RevokeSession": _link("revoke_session", {"session_id": _FIRST})},
    ),
    "revoke_session": _Operation("End one of my sessions", ok=204, missing="no such session"),
    "list_keys": _Operation(
        "My API keys (never the keys themselves)",
        answer="ApiKeyList",
        links={"RevokeKey": _link("revoke_key", {"key_id": _FIRST})},
    ),
    "create_key": _Operation(
        "Create an API key, narrowed to `permissions` (the key is shown once)",
        ok=201,
        answer="NewApiKey",
        body=_KEY,
        checked=frozenset({"name", "permissions", "expires_in"}),
        links={"RevokeKey": _link("revoke_key", {"key_id": "$response.body#/id"})},
    ),
    "revoke_key": _Operation("Revoke one of my API keys", ok=204, missing="no such API key"),
    "scram": _Operation(
        "SCRAM-SHA-256 login (RFC 7804): one handshake step per request, in the "
        "Authorization header; 401 with WWW-Authenticate asks for the next one",
        public=True,
        conflict=_SESSION_LIMIT,
        throttled=_LOCKED,
    ),
    "mfa_complete": _Operation(
        "A login's second step: the `mfa_token` of its 403 `mfa_required` and a TOTP code, "
        "a recovery code, or a passkey's answer to the options it carried; opens the "
        "session the login was for (a token pair, or a browser's cookie session).  A "
        "wrong code or passkey counts toward the lock-out",
        answer="TokenPair",
        body=_MFA_STEP,
        # JSON names it (not null); a form's is in the cookie its login set.  One proof.
        rules=(
            {"required": ["mfa_token"], "properties": {"mfa_token": {"type": "string"}}},
            {
                "oneOf": [
                    {"required": ["code"], "properties": {"code": {"type": "string"}}},
                    {"required": ["passkey"], "properties": {"passkey": {"type": "object"}}},
                ]
            },
        ),
        browser=True,
        public=True,
        throttled=_LOCKED,
    ),
    "mfa_passkey_options": _Operation(
        "The options of `navigator.credentials.get()` for a login's second step by passkey "
        "(its `mfa_token` in the body, or in the cookie a form login set)",
        answer="PasskeyOptions",
        body=_MFA_BEGIN,
        optional_body=True,
        public=True,
        missing="the login's user has no passkey",
    ),
    "reauth_options": _Operation(
        "How I can prove it's me again (`methods`), how recent a proof authgate's own "
        "endpoints ask (`max_age`), and for a user with passkeys their options",
        answer="ReauthOptions",
    ),
    "reauth": _Operation(
        "Prove it's me again (the password, or with a second factor a code or a passkey): "
        "a new session of the same kind whose login time is now; the old one ends.  What "
        "`require_fresh` and 401 `insufficient_user_authentication` ask for",
        answer="TokenPair",
        body=_REAUTH,
        browser=True,
        throttled=_LOCKED,
    ),
    "passkey_list": _Operation("My passkeys (no key material)", answer="PasskeyList"),
    "passkey_begin": _Operation(
        "The options of `navigator.credentials.create()` adding a passkey to my account "
        "(a login within AUTHGATE_STEP_UP_TTL), or with the `mfa_token` of a login whose "
        "role requires a factor",
        answer="PasskeyOptions",
        body=_MFA_BEGIN,
        optional_body=True,
        conflict="the account has every passkey allowed",
    ),
    "passkey_add": _Operation(
        "Add the passkey a registration's answer creates: it, the recovery codes when the "
        "account had none (shown once), and enrolling during a login, its session",
        ok=201,
        answer="NewPasskey",
        body=_PASSKEY_ADD,
        # A passkey's label: 1 to 64 characters, none of them a control character.
        own_checks={"name": {"minLength": 1, "pattern": "^[^\\u0000-\\u001f\\u007f]*$"}},
        conflict="this passkey is registered already",
    ),
    "passkey_remove": _Operation(
        "Remove one of my passkeys (a login within AUTHGATE_STEP_UP_TTL)",
        ok=204,
        missing="no such passkey",
    ),
    "passkey_login_options": _Operation(
        "The options of `navigator.credentials.get()` for a login by passkey alone, and "
        "their token; `session: cookie` asks for a browser session",
        answer="PasskeyOptions",
        body=_PASSKEY_OPTIONS,
        checked=frozenset({"session"}),
        optional_body=True,
        public=True,
    ),
    "passkey_login": _Operation(
        "A login by passkey alone (it verifies its user: a PIN or a biometric): the token "
        "pair, or the browser session its options asked for",
        answer="TokenPair",
        body=_PASSKEY_LOGIN,
        browser=True,
        public=True,
        throttled=_LOCKED,
    ),
    "mfa_status": _Operation("My second factors (never a secret)", answer="MfaStatus"),
    "oidc_login": _Operation(
        "Log in through an identity provider: a redirect (303) to its login page, the "
        "login's state kept in an HttpOnly cookie (authorization code flow with PKCE); "
        "`next`: where to go after",
        ok=303,
        public=True,
        missing="no login is set up with this provider",
        query=(
            ("next", {"type": "string"}, "a path of this site to go to after"),
            ("remember", {"type": "string"}, "`1`: a remembered session"),
        ),
    ),
    "oidc_callback": _Operation(
        "Where the provider sends the person back: the code is traded for tokens, the ID "
        "token checked, the local user found or made, and the browser session opened "
        "(303 to `next`; a refusal goes to the login page with `?error=`)",
        ok=303,
        public=True,
        missing="no login is set up with this provider",
        query=(
            ("code", {"type": "string"}, "the provider's authorization code"),
            ("state", {"type": "string"}, "the login's state, as the provider returns it"),
        ),
    ),
    "oidc_logout": _Operation(
        "Log out here and at the provider (RP-initiated logout): 303 to its end-session "
        "endpoint, which comes back to this site's login page",
        ok=303,
        public=True,
        missing="no login is set up with this provider",
    ),
    "mfa_begin": _Operation(
        "Begin enrolling a TOTP authenticator (as myself, or with the `mfa_token` of a login "
        "whose role requires a factor): its secret, `otpauth://` URI and QR code (SVG)",
        ok=201,
        answer="TotpEnrolment",
        body=_MFA_BEGIN,
        optional_body=True,
        conflict="a TOTP authenticator is enrolled already",
    ),
    "mfa_confirm": _Operation(
        "Activate the enrolment with a first code: the recovery codes, shown once (and, "
        "enrolling during a login, its session)",
        answer="RecoveryCodes",
        body=_MFA_CONFIRM,
        missing="no enrolment waits for its first code",
        throttled=_LOCKED,
    ),
    "mfa_recovery": _Operation(
        "A new set of recovery codes for a current TOTP code (the old set is void)",
        answer="RecoveryCodes",
        body=_MFA_CODE,
        missing="no TOTP authenticator is enrolled",
        throttled=_LOCKED,
    ),
    "reset_mfa": _Operation(
        "Remove a user's second factors (admin): they log in with the password alone, and "
        "enrol again when a role of theirs requires it",
        ok=204,
        missing="no such user",
    ),
    "list_users": _Operation(
        "A page of users (admin)",
        answer="UserPage",
        query=(
            (
                "limit",
                {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                "users per page",
            ),
            ("after", {"type": "string"}, "the `next_after` of the previous page"),
        ),
    ),
    "create_user": _Operation(
        "Create a user (admin); a password is required unless `passwordless` is true",
        ok=201,
        answer="User",
        body=_CREATE,
        checked=_PROFILE | {"username"},
        rules=({"oneOf": [_GIVEN_PASSWORD, _PASSWORDLESS]}, _ONE_ROLE_FIELD),
        conflict="the username is taken",
        links=_NEW_USER_LINKS,
    ),
    "get_user": _Operation(
        "One user (admin), with its ETag for a later If-Match",
        answer="User",
        etag=True,
        missing="no such user",
        links=_USER_LINKS,
    ),
    "update_user": _Operation(
        "Change a user's fields (admin); send If-Match with the ETag read for a "
        "read-modify-write that loses no other admin's edit",
        answer="User",
        body=_UPDATE,
        checked=_PROFILE | {"status"},
        rules=(_ONE_ROLE_FIELD, _STATUS_AGREES),
        etag=True,
        conflict="it would leave no enabled admin, disable yourself or touch a protected "
        f"user; or {_RACE}",
        conditional=True,
        missing="no such user",
    ),
    "delete_user": _Operation(
        "Delete a user and their sessions (admin); never yourself or the last admin",
        ok=204,
        conflict="it would leave no enabled admin, or delete yourself or a protected user; "
        f"or {_RACE}",
        conditional=True,
        missing="no such user",
    ),
    "set_permissions": _Operation(
        "Replace a user's grants (admin): global ones and per resource (`streams/1:send`)",
        answer="User",
        body=_PERMISSIONS,
        checked=frozenset({"permissions"}),
        etag=True,
        conditional=True,
        conflict=_RACE,
        missing="no such user",
    ),
    "explain_permissions": _Operation(
        "A user's grants with where each comes from (admin); with `permission`, whether "
        "the user holds it, the grants that decide, and what would allow a refusal",
        answer="Explanation",
        missing="no such user",
        query=(
            (
                "permission",
                {**_GRANT, "default": "*:*", "maxLength": 512},
                "the permission to decide, `resource:action`",
            ),
        ),
    ),
    "user_sessions": _Operation(
        "A user's login sessions (admin)",
        answer="SessionList",
        missing="no such user",
        links={
            "RevokeUserSession": _link(
                "revoke_user_session", {"username": _OF_THE_USER, "session_id": _FIRST}
            )
        },
    ),
    "revoke_user_sessions": _Operation(
        "End every login session of a user (admin); their API keys stay",
        answer="Revoked",
        missing="no such user",
    ),
    "revoke_user_session": _Operation(
        "End one login session of a user (admin)", ok=204, missing="no such user or session"
    ),
    "user_keys": _Operation(
        "A user's API keys (admin; never the keys themselves)",
        answer="ApiKeyList",
        missing="no such user",
        links={
            "RevokeUserKey": _link("revoke_user_key", {"username": _OF_THE_USER, "key_id": _FIRST})
        },
    ),
    "revoke_user_key": _Operation(
        "Revoke one API key of a user (admin)", ok=204, missing="no such user or API key"
    ),
    "set_password": _Operation(
        "Set a user's password (admin); every session and API key of theirs ends",
        ok=204,
        body=_NEW_PASSWORD,
        checked=frozenset({"password"}),
        etag=True,
        conditional=True,
        conflict=_RACE,
        missing="no such user",
    ),
}

_STRINGS: dict[str, Any] = {"type": "array", "items": {"type": "string"}}
_WHEN: dict[str, Any] = {"type": "string", "format": "date-time"}
# What `GET /auth/me` and a user resource both show of an account.
_ACCOUNT: dict[str, Any] = {
    "username": {"type": "string"},
    "id": {"type": "string"},
    "role": {"type": ["string", "null"], "description": "the highest role held"},
    "roles": _STRINGS,
    "groups": _STRINGS,
    "permissions": _STRINGS,
    "email": {"type": "string"},
    "first_name": {"type": "string"},
    "last_name": {"type": "string"},
    "display_name": {"type": "string"},
    "email_verified": {"type": "boolean"},
}
_SOURCE: dict[str, Any] = {
    "type": "object",
    "required": ["grant", "via"],
    "properties": {
        "grant": {"type": "string"},
        "via": {"type": "string", "enum": ["role", "group", "direct"]},
        "name": {"type": "string", "description": "the role or group"},
        "through": {"type": "string", "description": "the held role that includes it"},
    },
}
_SCHEMAS: dict[str, dict[str, Any]] = {
    "Revoked": {
        "type": "object",
        "required": ["revoked"],
        "properties": {"revoked": {"type": "integer", "description": "sessions ended"}},
    },
    "Explanation": {
        "type": "object",
        "required": ["username", "permission", "allowed", "matched", "would_allow", "grants"],
        "properties": {
            "username": {"type": "string"},
            "permission": {"type": "string"},
            "allowed": {"type": "boolean"},
            "matched": {"type": "array", "items": _SOURCE},
            "would_allow": _STRINGS,
            "grants": {"type": "array", "items": _SOURCE},
        },
    },
    "MfaStatus": {
        "type": "object",
        "required": ["totp", "totp_pending", "recovery_codes_left", "passkeys", "required"],
        "properties": {
            "totp": {"type": "boolean", "description": "an authenticator is active"},
            "totp_pending": {"type": "boolean", "description": "one waits for its first code"},
            "recovery_codes_left": {"type": "integer"},
            "passkeys": {"type": "integer", "description": "how many passkeys I have"},
            "required": {"type": "boolean", "description": "a role of mine requires one"},
        },
    },
    "TotpEnrolment": {
        "type": "object",
        "required": ["secret", "uri", "qr_svg"],
        "properties": {
            "secret": {"type": "string", "description": "base32, shown this once"},
            "uri": {"type": "string", "description": "otpauth://totp/..."},
            "qr_svg": {"type": "string", "description": "the URI as a QR code, SVG"},
        },
    },
    "PasskeyOptions": {
        "type": "object",
        "required": ["publicKey"],
        "properties": {
            "publicKey": {
                "type": "object",
                "description": "the `publicKey` of `navigator.credentials.create()` or `.get()`"
                " (binary fields base64url)",
            },
            "passkey_token": {
                "type": "string",
                "description": "send it back with the answer (a second step's needs none)",
            },
        },
    },
    "Passkey": {
        "type": "object",
        "required": ["id", "name", "created_at", "backed_up", "transports"],
        "properties": {
            "id": {"type": "string", "description": "the credential id, base64url"},
            "name": {"type": "string"},
            "created_at": {"type": "number", "description": "seconds since the epoch"},
            "last_used_at": {"type": ["number", "null"]},
            "backed_up": {"type": "boolean", "description": "synced to a cloud account"},
            "transports": _STRINGS,
        },
    },
    "PasskeyList": {
        "type": "object",
        "required": ["passkeys"],
        "properties": {"passkeys": {"type": "array", "items": {"$ref": f"{_REF}Passkey"}}},
    },
    "NewPasskey": {
        "type": "object",
        "required": ["passkey"],
        "properties": {
            "passkey": {"$ref": f"{_REF}Passkey"},
            "recovery_codes": {**_STRINGS, "description": "shown this once"},
        },
    },
    "ReauthOptions": {
        "type": "object",
        "required": ["methods", "max_age"],
        "properties": {
            "methods": {
                "type": "array",
                "items": {"enum": ["password", "totp", "recovery_code", "passkey", "login"]},
            },
            "max_age": {"type": ["integer", "null"], "description": "seconds"},
            "passkey": {"$ref": f"{_REF}PasskeyOptions"},
        },
    },
    "RecoveryCodes": {
        "type": "object",
        "required": ["recovery_codes"],
        "properties": {"recovery_codes": {**_STRINGS, "description": "shown this once"}},
    },
    "Csrf": {
        "type": "object",
        "required": ["csrf_token", "header", "field"],
        "properties": {
            "csrf_token": {"type": "string"},
            "header": {"type": "string", "description": "the request header to send it in"},
            "field": {"type": "string", "description": "the form field to send it in"},
        },
    },
    "BrowserSession": {
        "type": "object",
        "required": ["username", "session_id", "expires_at", "remember", "csrf_token"],
        "properties": {
            "username": {"type": "string"},
            "session_id": {"type": "string"},
            "expires_at": _WHEN,
            "remember": {"type": "boolean"},
            "csrf_token": {"type": "string", "description": "this session's CSRF token"},
        },
    },
    "Accepted": {
        "type": "object",
        "required": ["detail"],
        "properties": {"detail": {"type": "string"}},
    },
    "Error": {
        "type": "object",
        "required": ["error", "detail"],
        "properties": {
            "error": {"type": "string", "description": "a stable code: `invalid_token`..."},
            "detail": {"type": "string", "description": "what went wrong, for people"},
        },
    },
    "TokenPair": {
        "type": "object",
        "required": ["access_token", "token_type", "expires_in", "refresh_token"],
        "properties": {
            "access_token": {"type": "string"},
            "token_type": {"const": "bearer"},
            "expires_in": {"type": "integer", "description": "seconds"},
            "refresh_token": {"type": "string"},
        },
    },
    "Me": {
        "type": "object",
        "required": ["username", "id", "roles", "groups", "permissions", "role"],
        "properties": {
            **_ACCOUNT,
            "session_id": {"type": "string"},
            "is_authenticated": {"type": "boolean"},
        },
    },
    "User": {
        "type": "object",
        "required": ["id", "username", "roles", "enabled", "version", "role", "status"],
        "properties": {
            **_ACCOUNT,
            "enabled": {"type": "boolean"},
            "status": {"enum": ["active", "inactive"]},
            "created_at": _WHEN,
            "updated_at": _WHEN,
            "version": {"type": "integer"},
        },
    },
    "UserPage": {
        "type": "object",
        "required": ["items", "next_after"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": f"{_REF}User"}},
            "next_after": {"type": ["string", "null"], "description": "null: the last page"},
        },
    },
    "Session": {
        "type": "object",
        "required": ["id", "created_at", "last_seen", "expires_at", "current"],
        "properties": {
            "id": {"type": "string"},
            "created_at": _WHEN,
            "last_seen": _WHEN,
            "expires_at": _WHEN,
            "client_ip": {"type": "string"},
            "user_agent": {"type": "string"},
            "kind": {"const": "login"},
            "current": {"type": "boolean", "description": "the session of this request"},
        },
    },
    "SessionList": {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": {"$ref": f"{_REF}Session"}}},
    },
    "ApiKey": {
        "type": "object",
        "required": ["id", "name", "permissions", "created_at", "expires_at"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "permissions": {**_STRINGS, "description": "empty: the owner's own rights"},
            "created_at": _WHEN,
            "expires_at": {"type": ["string", "null"], "format": "date-time"},
            "last_used": _WHEN,
        },
    },
    "ApiKeyList": {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": {"$ref": f"{_REF}ApiKey"}}},
    },
    "NewApiKey": {
        "allOf": [
            {"$ref": f"{_REF}ApiKey"},
            {
                "type": "object",
                "required": ["key"],
                "properties": {"key": {"type": "string", "description": "shown this once"}},
            },
        ]
    },
}

_KINDS: dict[str, dict[str, Any]] = {
    _STR: {"type": "string"},
    # A passkey's answer, as the browser's ``PublicKeyCredential.toJSON()`` gives it.
    _OBJ: {
        "type": "object",
        "description": "as `PublicKeyCredential.toJSON()` gives it",
        "required": ["id", "response"],
        "properties": {
            "id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{16,1400}$"},
            "response": {"type": "object"},
        },
    },
    _BOOL: {"type": "boolean"},
    _INT: {"type": "integer"},
    _LIST: {"type": "array", "items": {"type": "string"}, "maxItems": 256},
}


def _checks(api: HttpApi) -> dict[str, dict[str, Any]]:
    """What the endpoints check of a body field beyond its kind, by field name (for
    the operations that list the field in `_Operation.checked`)."""
    policy = api.rules.hasher.policy
    new_password = {
        "type": "string",
        "minLength": policy.min_length,
        "pattern": "^[^\\u0000]*$",
        "description": f"at least {policy.min_length} characters, at most "
        f"{policy.max_bytes} bytes of UTF-8, no NUL",
    }
    role = {"type": "string", "enum": list(api.roles.order)}
    return {
        "username": _NAME,
        "password": new_password,
        "new_password": new_password,
        "role": role,
        "roles": {"type": "array", "items": role},
        "groups": {"type": "array", "items": _NAME},
        "permissions": {"type": "array", "items": _GRANT},
        "status": {"type": "string", "enum": ["active", "inactive"]},
        "grant_type": {"type": "string", "enum": ["password"]},
        "name": {"type": "string", "minLength": 1},
        "session": {"type": "string", "enum": ["token", "cookie"]},
        "expires_in": {"type": "integer", **_KEY_LIFETIME},
        # What sign-up takes for an address (none, or local@domain.tld).
        "email": {
            "type": "string",
            "pattern": rf"^(|[^@{_SPACE}]{{1,64}}@[^@.{_SPACE}]+(\.[^@.{_SPACE}]+)+)$",
        },
    }


def _body_schema(op: _Operation, checks: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """The JSON Schema of a body the endpoint validates with `op.body` (closed: an
    unknown field is a 400; an optional one may be null, read as not sent)."""
    assert op.body is not None
    properties = {}
    for name, spec in op.body.items():
        schema = dict(_KINDS[spec.kind])
        if spec.kind == _OBJ and op.form:  # a form sends the object as JSON text
            schema = {"type": "string", "description": "JSON, as `PublicKeyCredential.toJSON()`"}
            if spec.required:
                schema["minLength"] = 1  # a blank form field is one not sent
        if name in op.checked:
            schema.update(checks[name])
        if op.own_checks and name in op.own_checks:
            schema.update(op.own_checks[name])
        if spec.kind == _STR:
            schema["maxLength"] = spec.max_length
            if op.form and spec.required:
                schema["minLength"] = 1  # a blank form field is one not sent
        elif spec.kind == _LIST:
            schema["items"] = {**schema["items"], "maxLength": spec.max_length}
        if not spec.required and not op.form:
            schema["type"] = [schema["type"], "null"]
            if "enum" in schema:
                schema["enum"] = [*schema["enum"], None]
        properties[name] = schema
    body: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    required = [name for name, spec in op.body.items() if spec.required]
    if required:
        body["required"] = required
    if op.rules:
        body["allOf"] = list(op.rules)
    return body


def _error(description: str, headers: Mapping[str, Any] | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"{_REF}Error"}}},
    }
    if headers:
        answer["headers"] = dict(headers)
    return answer


def _header(description: str) -> dict[str, Any]:
    return {"required": True, "schema": {"type": "string"}, "description": description}


_RETRY_AFTER = {
    "Retry-After": {
        "required": True,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
        "description": "seconds to wait",
    }
}
_CHALLENGE = {"WWW-Authenticate": _header("`Bearer realm=...`, with `error=` for a bad token")}
_ETAG = {"ETag": _header("for a later If-Match")}

#: What each refusal means, for any route (`error_responses`).
_REFUSALS: dict[int, str] = {
    400: "a malformed request, body or credential; nothing was done",
    401: "no valid credential (WWW-Authenticate says why)",
    403: "the credential lacks the role or right",
    404: "not found",
    409: "the request conflicts with the current state",
    503: "the store cannot be reached; nothing was done",
}


def error_responses(*statuses: int, public: bool = False) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` for a route's refusals, with authgate's error body
    (``{"error", "detail"}``): 400, 401 and 503, which any request may get (a malformed
    or stale credential is refused before the route runs, and checking one reads the
    store), then each of `statuses` (403, 404, 409).  `public`: the route needs no
    credential, so a 401 only refuses a bad one presented."""
    answers: dict[int | str, dict[str, Any]] = {}
    for status in sorted({400, 401, 503, *statuses}):
        if status not in _REFUSALS:
            raise ValueError(f"no refusal is described for {status}: use one of {list(_REFUSALS)}")
        description = _REFUSALS[status]
        if status == 401 and public:
            description = "the credential presented is not valid: send a valid one, or none"
        headers = {401: _CHALLENGE, 503: _RETRY_AFTER}.get(status)
        answers[str(status)] = _error(description, headers)
    return answers


def _operation(
    op: _Operation,
    path_names: list[str],
    schemes: tuple[str, ...],
    checks: Mapping[str, dict[str, Any]],
) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": "done" if op.ok == 204 else "OK"}
    if op.answer:
        ok["content"] = {"application/json": {"schema": {"$ref": f"{_REF}{op.answer}"}}}
    if op.etag:
        ok["headers"] = _ETAG
    if op.links:
        ok["links"] = dict(op.links)
    responses = {str(op.ok): ok, **error_responses(*(() if op.public else (403,)))}
    if op.public:
        responses["401"]["description"] = "wrong credentials, or a bad credential presented"
    if op.missing:
        responses["404"] = _error(op.missing)
    if op.conflict:
        responses["409"] = _error(op.conflict)
    if op.conditional:
        responses["412"] = _error("If-Match names another version: read the user again")
        responses["428"] = _error("this server requires If-Match on user writes")
    if op.throttled:
        responses["429"] = _error(op.throttled, _RETRY_AFTER)
    if op.accepted:
        responses["400"] = _error(f"a malformed body, or {op.accepted}")
    if op.second_factor:
        responses["403"] = _error(
            "the password was right, and a second factor is required (mfa_required): the "
            "body's `mfa_token` goes to POST /auth/mfa with a code"
        )
    if op.browser:
        responses["303"] = {
            "description": "a form's answer: to its `next` page, or on a refusal back to "
            "its `back` page with `?error=<code>`",
            "headers": {"Location": _header("a path of this site")},
        }
        responses["403"] = _error("a form without this browser's CSRF token (csrf_failed)")
        responses["415"] = _error("a body neither JSON nor a form")
    out: dict[str, Any] = {
        "tags": ["authgate"],
        "summary": op.summary,
        "responses": dict(sorted(responses.items())),
    }
    parameters: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": _NAME if name == "username" else {"type": "string"},
        }
        for name in path_names
    ]
    for query, schema, description in op.query:
        parameters.append(
            {"name": query, "in": "query", "schema": schema, "description": description}
        )
    if op.conditional:
        parameters.append(
            {
                "name": "If-Match",
                "in": "header",
                "schema": {"type": "string"},
                "description": "the ETag of the version this change was made from, or `*`",
            }
        )
    if parameters:
        out["parameters"] = parameters
    if op.body is not None and op.browser:
        # A form is answered with a redirect, refusals included: what the JSON body
        # must satisfy together (`rules`) a form is sent back for.
        as_form = replace(op, body={**op.body, **_FORM_EXTRAS}, form=True, rules=())
        out["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": _body_schema(op, checks)},
                "application/x-www-form-urlencoded": {"schema": _body_schema(as_form, checks)},
            },
        }
    elif op.body is not None:
        media = "application/x-www-form-urlencoded" if op.form else "application/json"
        schema = _body_schema(op, checks)
        out["requestBody"] = {
            "required": not op.optional_body,
            "content": {media: {"schema": schema}},
        }
    if not op.public:
        out["security"] = [{name: []} for name in schemes]  # any one of them
    return out


def describe(
    api: HttpApi,
    *,
    scheme: str = "authgateBearer",
    oauth2_scheme: str = "authgateOAuth2",
) -> dict[str, Any]:
    """The ``paths`` and ``components`` of an OpenAPI 3.1 document for `api`.  Its
    operations take either of two security schemes, both declared: `scheme`, a bearer
    token (an access token or API key), and `oauth2_scheme`, the OAuth2 password flow
    whose token URL is the API's ``POST /auth/token`` (how Swagger UI's Authorize logs
    in with a username and password)."""
    paths: dict[str, dict[str, Any]] = {}
    taken: set[str] = set()
    checks = _checks(api)
    for template, method, name in api.operations():
        if not _served(api, name):
            continue  # answered 404 until it is configured
        names = re.findall(r"\{(\w+)\}", template)
        described = _operation(_OPERATIONS[name], names, (scheme, oauth2_scheme), checks)
        described["operationId"] = f"authgate_{name}"
        if described["operationId"] in taken:  # PUT, beside PATCH, of a user
            described["operationId"] += f"_{method.lower()}"
        taken.add(described["operationId"])
        paths.setdefault(template, {})[method.lower()] = described
    return {
        "paths": paths,
        "components": {
            "schemas": dict(_SCHEMAS),
            "securitySchemes": {
                scheme: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "an authgate access token or API key",
                },
                oauth2_scheme: oauth2_flow(api),
            },
        },
    }


def _served(api: HttpApi, name: str) -> bool:
    """Does `api` answer operation `name` (rather than a 404 until configured)?"""
    if name == "scram":
        return bool(api.scram_secret)
    if name in ("csrf", "browser_login"):
        return api.browser is not None
    accounts = api.accounts
    if name in ("forgot", "reset", "resend", "verify"):
        return accounts is not None and accounts.mails
    if name == "signup":
        return accounts is not None and accounts.signup
    if name.startswith("oidc_"):
        return api.logins is not None and any(s.issuer.login_client_id for s in api.issuers or ())
    if name.startswith("passkey") or name == "mfa_passkey_options":
        return api.mfa is not None and api.mfa.passkeys is not None
    return True


def oauth2_flow(api: HttpApi) -> dict[str, Any]:
    """The OAuth2 security scheme whose password flow logs in at `api`'s token
    endpoint (its scopes: none, a token holds its user's own rights)."""
    return {
        "type": "oauth2",
        "description": f"log in with a username and password (POST {api.auth_prefix}/token)",
        "flows": {"password": {"tokenUrl": f"{api.auth_prefix}/token", "scopes": {}}},
    }


def merge(
    document: dict[str, Any],
    api: HttpApi,
    *,
    scheme: str = "authgateBearer",
    oauth2_scheme: str = "authgateOAuth2",
) -> None:
    """Add `api`'s operations and schemas to an existing OpenAPI `document`, in place;
    a scheme of either name the document already declares is kept."""
    described = describe(api, scheme=scheme, oauth2_scheme=oauth2_scheme)
    document.setdefault("paths", {}).update(described["paths"])
    components = document.setdefault("components", {})
    components.setdefault("schemas", {}).update(described["components"]["schemas"])
    schemes = components.setdefault("securitySchemes", {})
    for name, declared in described["components"]["securitySchemes"].items():
        schemes.setdefault(name, declared)
