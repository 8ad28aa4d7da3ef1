"""The HTTP API described in OpenAPI 3.1, from the API's own route table and body specs.

::

    from authgate.openapi import describe
    doc = describe(HttpApi.for_gate(gate))  # {"paths": {...}, "components": {...}}

The FastAPI adapter merges it into ``app.openapi()`` (``/docs`` then lists authgate's
routes, with ``If-Match`` on the user writes); any other framework can serve it or merge
it into its own document.  The routes come from `HttpApi.operations` and the request
bodies from the specs the endpoints validate with, so the description cannot list a
route the API does not answer; ``tests/test_openapi.py`` checks every answer of a live
app against the schemas here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .api import (
    _BOOL,
    _CREATE,
    _INT,
    _KEY,
    _LIST,
    _LOGIN,
    _NEW_PASSWORD,
    _PASSWORD,
    _PERMISSIONS,
    _REFRESH,
    _STR,
    _UPDATE,
    HttpApi,
    _Field,
)

__all__ = ["describe", "merge"]

_REF = "#/components/schemas/"


@dataclass(frozen=True, slots=True)
class _Operation:
    summary: str
    ok: int = 200
    answer: str | None = None  # the schema of the success body
    body: Mapping[str, _Field] | None = None
    public: bool = False  # no credential needed
    conditional: bool = False  # takes If-Match (412, 428)
    etag: bool = False  # answers with the user's ETag
    missing: str | None = None  # what a 404 means
    conflict: str | None = None  # what a 409 means
    query: tuple[tuple[str, dict[str, Any], str], ...] = ()


_OPERATIONS: dict[str, _Operation] = {
    "login": _Operation(
        "Log in with a username and password: a token pair (429 while locked out or throttled)",
        answer="TokenPair",
        body=_LOGIN,
        public=True,
    ),
    "refresh": _Operation(
        "Trade a refresh token for a new pair; the old one is spent, and spending it "
        "again ends the session",
        answer="TokenPair",
        body=_REFRESH,
        public=True,
    ),
    "logout": _Operation("End the current session", ok=204),
    "me": _Operation("Who the credential belongs to", answer="Me"),
    "change_password": _Operation(
        "Change my password (needs the current one); my other sessions end",
        ok=204,
        body=_PASSWORD,
    ),
    "sessions": _Operation("My login sessions", answer="SessionList"),
    "revoke_session": _Operation("End one of my sessions", ok=204, missing="no such session"),
    "list_keys": _Operation("My API keys (never the keys themselves)", answer="ApiKeyList"),
    "create_key": _Operation(
        "Create an API key, narrowed to `permissions` (the key is shown once)",
        ok=201,
        answer="NewApiKey",
        body=_KEY,
    ),
    "revoke_key": _Operation("Revoke one of my API keys", ok=204, missing="no such API key"),
    "scram": _Operation(
        "SCRAM-SHA-256 login (RFC 7804): one handshake step per request, in the "
        "Authorization header; 401 with WWW-Authenticate asks for the next one",
        public=True,
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
        conflict="the username is taken",
    ),
    "get_user": _Operation(
        "One user (admin), with its ETag for a later If-Match",
        answer="User",
        etag=True,
        missing="no such user",
    ),
    "update_user": _Operation(
        "Change a user's fields (admin); send If-Match with the ETag read for a "
        "read-modify-write that loses no other admin's edit",
        answer="User",
        body=_UPDATE,
        etag=True,
        conflict="it would leave no enabled admin, or touch a protected user",
        conditional=True,
        missing="no such user",
    ),
    "delete_user": _Operation(
        "Delete a user and their sessions (admin); never yourself or the last admin",
        ok=204,
        conflict="it would leave no enabled admin, or delete yourself or a protected user",
        conditional=True,
        missing="no such user",
    ),
    "set_permissions": _Operation(
        "Replace a user's grants (admin): global ones and per resource (`streams/1:send`)",
        answer="User",
        body=_PERMISSIONS,
        etag=True,
        conditional=True,
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
                {"type": "string", "default": "*:*", "maxLength": 512},
                "the permission to decide, `resource:action`",
            ),
        ),
    ),
    "user_sessions": _Operation(
        "A user's login sessions (admin)", answer="SessionList", missing="no such user"
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
    ),
    "revoke_user_key": _Operation(
        "Revoke one API key of a user (admin)", ok=204, missing="no such user or API key"
    ),
    "set_password": _Operation(
        "Set a user's password (admin); every session of theirs ends",
        ok=204,
        body=_NEW_PASSWORD,
        etag=True,
        conditional=True,
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
    _BOOL: {"type": "boolean"},
    _INT: {"type": "integer"},
    _LIST: {"type": "array", "items": {"type": "string"}, "maxItems": 256},
}


def _body_schema(fields: Mapping[str, _Field]) -> dict[str, Any]:
    """The JSON Schema of a body the endpoint validates with `fields` (closed: an
    unknown field is a 400)."""
    properties = {}
    for name, spec in fields.items():
        schema = dict(_KINDS[spec.kind])
        if spec.kind == _STR:
            schema["maxLength"] = spec.max_length
        elif spec.kind == _LIST:
            schema["items"] = {"type": "string", "maxLength": spec.max_length}
        properties[name] = schema
    schema = {"type": "object", "properties": properties, "additionalProperties": False}
    required = [name for name, spec in fields.items() if spec.required]
    if required:
        schema["required"] = required
    return schema


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"{_REF}Error"}}},
    }


_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}
_ETAG = {"ETag": {"schema": {"type": "string"}, "description": "for a later If-Match"}}


def _operation(op: _Operation, name: str, path_names: list[str], scheme: str) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": "done" if op.ok == 204 else "OK"}
    if op.answer:
        ok["content"] = {"application/json": {"schema": {"$ref": f"{_REF}{op.answer}"}}}
    if op.etag:
        ok["headers"] = _ETAG
    responses: dict[str, Any] = {str(op.ok): ok}
    responses["400"] = _error("a malformed request, body or credential; nothing was written")
    responses["401"] = _error(
        "wrong credentials" if op.public else "no valid credential (WWW-Authenticate says why)"
    )
    if not op.public:
        responses["403"] = _error("the credential lacks the role or right")
    if op.missing:
        responses["404"] = _error(op.missing)
    if op.conflict:
        responses["409"] = _error(op.conflict)
    if op.conditional:
        responses["412"] = _error("If-Match names another version: read the user again")
        responses["428"] = _error("this server requires If-Match on user writes")
    if name == "login":
        responses["429"] = {
            **_error(
                "too many failed attempts: on the account (account_locked) or from the "
                "client's address (too_many_attempts)"
            ),
            "headers": _RETRY_AFTER,
        }
    elif name in ("refresh", "scram"):
        responses["429"] = {
            **_error("too many failed attempts from the client's address (too_many_attempts)"),
            "headers": _RETRY_AFTER,
        }
    responses["503"] = {
        **_error("the store cannot be reached; nothing was written"),
        "headers": _RETRY_AFTER,
    }
    out: dict[str, Any] = {
        "tags": ["authgate"],
        "summary": op.summary,
        "responses": responses,
    }
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
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
    if op.body is not None:
        out["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _body_schema(op.body)}},
        }
    if not op.public:
        out["security"] = [{scheme: []}]
    return out


def describe(api: HttpApi, *, scheme: str = "authgateBearer") -> dict[str, Any]:
    """The ``paths`` and ``components`` of an OpenAPI 3.1 document for `api`; its
    operations require the bearer security scheme named `scheme` (also declared)."""
    paths: dict[str, dict[str, Any]] = {}
    taken: set[str] = set()
    for template, method, name in api.operations():
        if name == "scram" and not api.scram_secret:
            continue  # answered 404 until SCRAM is configured
        names = re.findall(r"\{(\w+)\}", template)
        described = _operation(_OPERATIONS[name], name, names, scheme)
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
                }
            },
        },
    }


def merge(document: dict[str, Any], api: HttpApi, *, scheme: str = "authgateBearer") -> None:
    """Add `api`'s operations and schemas to an existing OpenAPI `document`, in place;
    a scheme of that name the document already declares is kept."""
    described = describe(api, scheme=scheme)
    document.setdefault("paths", {}).update(described["paths"])
    components = document.setdefault("components", {})
    components.setdefault("schemas", {}).update(described["components"]["schemas"])
    schemes = components.setdefault("securitySchemes", {})
    schemes.setdefault(scheme, described["components"]["securitySchemes"][scheme])
