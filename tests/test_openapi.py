"""authgate's routes in FastAPI's OpenAPI document: a valid OpenAPI 3.1 document, and
every answer of a live app (every operation, success and refusal) matches it: its
status is documented, its body validates against the schema, its documented headers
(ETag, Retry-After, WWW-Authenticate) are there, and a request body the schema refuses
is refused.  The OAuth2 password grant (``POST /auth/token``) logs in as Swagger UI's
"Authorize" sends it, and is the login of ``POST /auth/login``.  (``.ci/openapi-fuzz``
runs Schemathesis against the FastAPI example.)"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pyotp
import pytest
from fastapi import Depends, FastAPI
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from authgate import AsyncGate, Identity
from authgate.api import HttpApi
from authgate.errors import StoreUnavailable, ValidationError
from authgate.integrations.fastapi import (
    AuthGate,
    error_responses,
    require_auth,
    require_role,
)
from authgate.openapi import _served
from authgate.testing import SoftAuthenticator, cheap_hasher

SECRET = "Gq8vR2mT7xK4pL9sW3nB6yH1cF5jD0zA"
ADMIN_PW = "openapi admin password"


#: Passkeys on, for a relying party the test client's pages are of.
PASSKEYS: dict[str, Any] = {
    "passkey_rp_id": "testserver",
    "passkey_origins": ("http://testserver",),
}


def _app(**settings: Any) -> tuple[FastAPI, AsyncGate]:
    gate = AsyncGate(
        store="memory://", secret_key=SECRET, hasher=cheap_hasher(), **{**PASSKEYS, **settings}
    )
    app = FastAPI(title="openapi test")
    AuthGate(gate).install(app)

    @app.get("/mine", responses=error_responses())
    async def mine(me: Identity = Depends(require_auth())) -> dict[str, str]:
        return {"username": me.username}

    @app.get("/staff", dependencies=[Depends(require_role("operator"))],
             responses=error_responses(403))  # fmt: skip
    async def staff() -> dict[str, str]:
        return {"message": "staff only"}

    return app, gate


class Checked:
    """An httpx client whose every answer from an authgate route is checked against the
    document the app serves; it records which operations were seen, with which status."""

    def __init__(self, client: httpx.AsyncClient, document: dict[str, Any]) -> None:
        self.client = client
        self.document = document
        self.registry: Registry[Any] = Registry().with_resource(
            "urn:doc", Resource.from_contents(document, default_specification=DRAFT202012)
        )
        self.seen: dict[str, set[int]] = {}
        self.templates = [
            (re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", t) + "$"), t) for t in document["paths"]
        ]

    def _operation(self, method: str, path: str) -> dict[str, Any]:
        for pattern, template in self.templates:
            if pattern.match(path):
                return dict(self.document["paths"][template][method.lower()])
        raise AssertionError(f"{method} {path} is not in the document")

    def schema_errors(self, schema: dict[str, Any], value: Any) -> list[str]:
        validator = Draft202012Validator(_relative(schema), registry=self.registry)
        return [e.message for e in validator.iter_errors(value)]

    async def __call__(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = await self.client.request(method, path, **kwargs)
        if not path.startswith(("/auth", "/api/users", "/mine", "/staff")):
            return response
        operation = self._operation(method, path.partition("?")[0])
        documented = operation["responses"].get(str(response.status_code))
        assert documented is not None, (
            f"{method} {path} answered {response.status_code}, not documented: "
            f"{sorted(operation['responses'])} ({response.text})"
        )
        self.seen.setdefault(operation["operationId"], set()).add(response.status_code)
        content = documented.get("content", {}).get("application/json")
        if content is None:
            assert response.content == b"", f"{method} {path}: an undocumented body"
        else:
            assert response.headers["content-type"].startswith("application/json")
            errors = self.schema_errors(content["schema"], response.json())
            assert not errors, f"{method} {path} {response.status_code}: {errors}"
        for header in documented.get("headers", {}):
            assert header.lower() in response.headers, f"{method} {path}: no {header}"
        return response


def _relative(schema: Any) -> Any:
    """``#/components/...`` references made absolute into the served document."""
    if isinstance(schema, dict):
        return {
            k: ("urn:doc" + v if k == "$ref" and v.startswith("#/") else _relative(v))
            for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [_relative(v) for v in schema]
    return schema


@pytest.fixture
async def api() -> Any:
    app, gate = _app()
    await gate.create_user("root", ADMIN_PW, roles=["admin"])
    transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        document = (await client.get("/openapi.json")).json()
        yield Checked(client, document), gate, app
    await gate.close()


async def test_the_document_is_valid_openapi_with_authgates_routes(api: Any) -> None:
    checked, gate, _ = api
    document = checked.document
    validate(document)  # OpenAPI 3.1, every $ref resolving
    assert document["openapi"].startswith("3.1")
    described = {(t, m.upper()) for t, ops in document["paths"].items() for m in ops}
    api_of_gate = HttpApi.for_gate(gate)
    answered = {(t, m) for t, m, name in api_of_gate.operations() if _served(api_of_gate, name)}
    assert answered <= described and "/mine" in document["paths"]
    assert ("/auth/session", "POST") not in described  # 404 until cookie sessions are on
    # The same two schemes for the app's own routes and authgate's, either one enough: a
    # token pasted, or the OAuth2 password flow that logs in at authgate's token URL.
    schemes = document["components"]["securitySchemes"]
    assert sorted(schemes) == ["HTTPBearer", "OAuth2PasswordBearer"]
    assert schemes["HTTPBearer"]["scheme"] == "bearer"
    assert schemes["OAuth2PasswordBearer"]["flows"] == {
        "password": {"tokenUrl": "/auth/token", "scopes": {}}
    }
    either: list[dict[str, list[str]]] = [{"HTTPBearer": []}, {"OAuth2PasswordBearer": []}]
    assert document["paths"]["/mine"]["get"]["security"] == either
    patch = document["paths"]["/api/users/{username}"]["patch"]
    assert patch["security"] == either
    assert {"If-Match", "username"} <= {p["name"] for p in patch["parameters"]}
    assert {"200", "412", "428"} <= set(patch["responses"])
    assert (
        "ETag" in document["paths"]["/api/users/{username}"]["get"]["responses"]["200"]["headers"]
    )
    assert "security" not in document["paths"]["/auth/login"]["post"]
    assert "security" not in document["paths"]["/auth/token"]["post"]
    ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))


async def test_every_operation_answers_as_documented(api: Any) -> None:
    call, _, _ = api
    bad_login = await call("POST", "/auth/login", json={"username": "root", "password": "x"})
    assert bad_login.status_code == 401
    login = await call("POST", "/auth/login", json={"username": "root", "password": ADMIN_PW})
    pair = login.json()
    admin = {"Authorization": f"Bearer {pair['access_token']}"}
    assert (await call("GET", "/auth/me")).status_code == 401
    assert (await call("GET", "/auth/me", headers=admin)).status_code == 200
    fresh = await call("POST", "/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    admin = {"Authorization": f"Bearer {fresh.json()['access_token']}"}
    spent = await call("POST", "/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert spent.status_code == 401
    form = {"grant_type": "password", "username": "root", "password": ADMIN_PW}
    again = await call("POST", "/auth/token", data=form)
    admin = {"Authorization": f"Bearer {again.json()['access_token']}"}
    refused = await call("POST", "/auth/token", data={**form, "grant_type": "client_credentials"})
    assert refused.status_code == 400

    sessions = await call("GET", "/auth/sessions", headers=admin)
    assert sessions.status_code == 200 and sessions.json()["items"]
    assert (await call("DELETE", "/auth/sessions/nope", headers=admin)).status_code == 404
    made = await call(
        "POST", "/auth/keys", headers=admin, json={"name": "ci", "permissions": ["users:read"]}
    )
    assert made.status_code == 201
    assert (await call("GET", "/auth/keys", headers=admin)).status_code == 200
    key = {"Authorization": f"Bearer {made.json()['key']}"}
    assert (await call("GET", "/auth/sessions", headers=key)).status_code == 403
    assert (
        await call("DELETE", f"/auth/keys/{made.json()['id']}", headers=admin)
    ).status_code == 204
    assert (await call("DELETE", "/auth/keys/nope", headers=admin)).status_code == 404

    body = {"username": "dana", "password": "dana password 1", "roles": ["viewer"]}
    assert (await call("POST", "/api/users/", headers=admin, json=body)).status_code == 201
    assert (await call("POST", "/api/users/", headers=admin, json=body)).status_code == 409
    service = {"username": "svc1", "passwordless": True, "email": "svc@example.com"}
    assert (await call("POST", "/api/users/", headers=admin, json=service)).status_code == 201
    page = await call("GET", "/api/users/?limit=1", headers=admin)
    assert page.status_code == 200 and page.json()["next_after"]
    assert (await call("GET", "/api/users/?limit=0", headers=admin)).status_code == 400
    read = await call("GET", "/api/users/dana", headers=admin)
    assert read.status_code == 200
    tag = read.headers["etag"]
    assert (await call("GET", "/api/users/nobody", headers=admin)).status_code == 404
    patched = await call(
        "PATCH", "/api/users/dana", headers={**admin, "If-Match": tag}, json={"first_name": "D"}
    )
    assert patched.status_code == 200
    stale = await call(
        "PUT", "/api/users/dana", headers={**admin, "If-Match": tag}, json={"first_name": "E"}
    )
    assert stale.status_code == 412
    tag = patched.headers["etag"]
    granted = await call(
        "PUT",
        "/api/users/dana/permissions",
        headers={**admin, "If-Match": tag},
        json={"permissions": ["streams/1:send"]},
    )
    assert granted.status_code == 200
    explained = await call(
        "GET", "/api/users/dana/permissions?permission=streams/1/topics/2:send", headers=admin
    )
    assert explained.status_code == 200 and explained.json()["allowed"] is True
    assert explained.json()["matched"] == [{"grant": "streams/1:send", "via": "direct"}]
    bad = await call("GET", "/api/users/dana/permissions?permission=nonsense", headers=admin)
    assert bad.status_code == 400
    assert (await call("GET", "/api/users/nobody/permissions", headers=admin)).status_code == 404
    # An admin's view of another user's sessions and keys.
    dana_login = {"username": "dana", "password": "dana password 1"}
    assert (await call("POST", "/auth/login", json=dana_login)).status_code == 200
    listed = await call("GET", "/api/users/dana/sessions", headers=admin)
    assert listed.status_code == 200 and len(listed.json()["items"]) == 1
    sid = listed.json()["items"][0]["id"]
    not_roots = await call("DELETE", f"/api/users/root/sessions/{sid}", headers=admin)
    assert not_roots.status_code == 404
    ended = await call("DELETE", f"/api/users/dana/sessions/{sid}", headers=admin)
    assert ended.status_code == 204
    assert (await call("POST", "/auth/login", json=dana_login)).status_code == 200
    every = await call("DELETE", "/api/users/dana/sessions", headers=admin)
    assert every.status_code == 200 and every.json() == {"revoked": 1}
    assert (await call("GET", "/api/users/nobody/sessions", headers=admin)).status_code == 404
    keys = await call("GET", "/api/users/dana/keys", headers=admin)
    assert keys.status_code == 200 and keys.json() == {"items": []}
    assert (await call("DELETE", "/api/users/dana/keys/nope", headers=admin)).status_code == 404
    reset = await call(
        "PUT", "/api/users/dana/password", headers=admin, json={"password": "dana password 2"}
    )
    assert reset.status_code == 204
    dana = await call(
        "POST", "/auth/login", json={"username": "dana", "password": "dana password 2"}
    )
    viewer = {"Authorization": f"Bearer {dana.json()['access_token']}"}
    assert (await call("GET", "/api/users/", headers=viewer)).status_code == 403
    changed = await call(
        "PUT",
        "/auth/me/password",
        headers=viewer,
        json={"current_password": "dana password 2", "new_password": "dana password 3"},
    )
    assert changed.status_code == 204
    # Second factors: dana enrols TOTP, then logs in in two steps.
    relogin = {"username": "dana", "password": "dana password 3"}
    viewer = {
        "Authorization": "Bearer "
        + (await call("POST", "/auth/login", json=relogin)).json()["access_token"]
    }
    status = await call("GET", "/auth/mfa", headers=viewer)
    assert status.status_code == 200 and status.json()["totp"] is False
    begun = await call("POST", "/auth/mfa/totp", headers=viewer, json={})
    assert begun.status_code == 201
    totp = pyotp.TOTP(begun.json()["secret"])
    wrong = await call("POST", "/auth/mfa/totp/confirm", headers=viewer, json={"code": "000000"})
    assert wrong.status_code == 401
    confirmed = await call(
        "POST", "/auth/mfa/totp/confirm", headers=viewer, json={"code": totp.now()}
    )
    assert confirmed.status_code == 200 and len(confirmed.json()["recovery_codes"]) == 10
    again_begun = await call("POST", "/auth/mfa/totp", headers=viewer, json={})
    assert again_begun.status_code == 409
    first_step = await call("POST", "/auth/login", json=relogin)
    assert first_step.status_code == 403 and first_step.json()["error"] == "mfa_required"
    challenge = first_step.json()["mfa_token"]
    recovery = confirmed.json()["recovery_codes"][0]
    bad_code = await call("POST", "/auth/mfa", json={"mfa_token": challenge, "code": "x" * 12})
    assert bad_code.status_code == 401
    second_step = await call("POST", "/auth/mfa", json={"mfa_token": challenge, "code": recovery})
    assert second_step.status_code == 200 and second_step.json()["access_token"]
    # Step-up: dana proves it again (a recovery code: she has a factor), then adds a
    # passkey, logs in with it alone and as a second step, and removes it.
    how = await call("GET", "/auth/reauth", headers=viewer)
    assert how.status_code == 200 and how.json()["methods"] == ["totp", "recovery_code"]
    renewed = await call(
        "POST", "/auth/reauth", headers=viewer, json={"code": confirmed.json()["recovery_codes"][1]}
    )
    assert renewed.status_code == 200
    viewer = {"Authorization": f"Bearer {renewed.json()['access_token']}"}
    device = SoftAuthenticator("http://testserver")
    creating = await call("POST", "/auth/passkeys/options", headers=viewer, json={})
    assert creating.status_code == 200
    added = await call(
        "POST", "/auth/passkeys", headers=viewer,
        json={"passkey_token": creating.json()["passkey_token"],
              "credential": device.create(creating.json()), "name": "laptop"},
    )  # fmt: skip
    assert added.status_code == 201 and "recovery_codes" not in added.json()
    passkey_id = added.json()["passkey"]["id"]
    listed_keys = await call("GET", "/auth/passkeys", headers=viewer)
    assert [k["name"] for k in listed_keys.json()["passkeys"]] == ["laptop"]
    getting = await call("POST", "/auth/passkeys/login/options", json={})
    assert getting.status_code == 200
    alone = await call(
        "POST", "/auth/passkeys/login",
        json={"passkey_token": getting.json()["passkey_token"],
              "credential": device.get(getting.json())},
    )  # fmt: skip
    assert alone.status_code == 200 and alone.json()["access_token"]
    asked = (await call("POST", "/auth/login", json=relogin)).json()
    assert "passkey" in asked["methods"]
    again = await call("POST", "/auth/mfa/passkey", json={"mfa_token": asked["mfa_token"]})
    assert again.status_code == 200 and again.json()["publicKey"] == asked["passkey"]["publicKey"]
    by_key = await call(
        "POST",
        "/auth/mfa",
        json={"mfa_token": asked["mfa_token"], "passkey": device.get(asked["passkey"])},
    )
    assert by_key.status_code == 200
    assert (await call("DELETE", f"/auth/passkeys/{passkey_id}", headers=viewer)).status_code == 204
    assert (await call("DELETE", f"/auth/passkeys/{passkey_id}", headers=viewer)).status_code == 404
    no_code = await call("POST", "/auth/mfa/recovery", headers=viewer, json={"code": "123"})
    assert no_code.status_code == 401
    assert (await call("DELETE", "/api/users/dana/mfa", headers=admin)).status_code == 204
    assert (await call("DELETE", "/api/users/nobody/mfa", headers=admin)).status_code == 404
    assert (
        await call("POST", "/auth/mfa/recovery", headers=viewer, json={"code": "1"})
    ).status_code == 404
    assert (await call("POST", "/auth/logout", headers=viewer)).status_code == 204
    assert (await call("DELETE", "/api/users/root", headers=admin)).status_code == 409
    assert (await call("DELETE", "/api/users/dana", headers=admin)).status_code == 204
    assert (await call("DELETE", "/api/users/dana", headers=admin)).status_code == 404
    assert (await call("GET", "/auth/scram")).status_code == 401
    for _ in range(5):
        await call("POST", "/auth/login", json={"username": "svc1", "password": "guess 123"})
    locked = await call("POST", "/auth/login", json={"username": "svc1", "password": "guess 123"})
    assert locked.status_code == 429

    documented = {
        op["operationId"] for ops in call.document["paths"].values() for op in ops.values()
    }
    authgate_ops = {op for op in documented if op.startswith("authgate_")}
    assert set(call.seen) == authgate_ops, authgate_ops - set(call.seen)


async def test_a_required_if_match_and_an_outage_answer_as_documented() -> None:
    app, gate = _app(require_if_match=True)
    await gate.create_user("root", ADMIN_PW, roles=["admin"])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        call = Checked(client, (await client.get("/openapi.json")).json())
        login = await call("POST", "/auth/login", json={"username": "root", "password": ADMIN_PW})
        admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
        unconditional = await call("PATCH", "/api/users/root", headers=admin, json={"email": ""})
        assert unconditional.status_code == 428

        def down(*args: Any) -> Any:
            raise StoreUnavailable("the store is down for this test")

        gate.store.get_user = down  # type: ignore[assignment]
        refused = await call("POST", "/auth/login", json={"username": "root", "password": "x"})
        assert refused.status_code == 503
    await gate.close()


_API = HttpApi.for_gate(AsyncGate(store="memory://", secret_key=SECRET, **PASSKEYS))


@pytest.mark.parametrize("operation", sorted(
    (t, m, n) for t, m, n in _API.operations() if _served(_API, n)
))  # fmt: skip
async def test_a_body_the_schema_refuses_is_refused(api: Any, operation: Any) -> None:
    """Each documented body is closed (no unknown field) and its required fields are
    required: the server refuses what the schema refuses, with a 400 naming the field."""
    call, _, _ = api
    template, method, _ = operation
    schema = call.document["paths"][template][method.lower()].get("requestBody")
    if schema is None or "application/json" not in schema["content"]:
        return  # takes no JSON body (the token endpoint's form has a test of its own)
    body_schema = schema["content"]["application/json"]["schema"]
    assert body_schema["additionalProperties"] is False
    login = await call("POST", "/auth/login", json={"username": "root", "password": ADMIN_PW})
    admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
    path = template.replace("{username}", "root")
    valid = {
        name: {"string": "x1y2z3", "boolean": True, "integer": 60, "array": [], "object": {}}[
            spec["type"]
        ]
        for name, spec in body_schema["properties"].items()
        if name in body_schema.get("required", [])
    }
    extra = await call(method, path, headers=admin, json={**valid, "unexpected": 1})
    assert extra.status_code == 400 and "unexpected" in extra.json()["detail"]
    for name in body_schema.get("required", []):
        missing = await call(
            method, path, headers=admin, json={k: v for k, v in valid.items() if k != name}
        )
        assert missing.status_code == 400 and name in missing.json()["detail"]
    for name, spec in body_schema["properties"].items():
        kind = _kind(spec)
        wrong = {"string": 7, "boolean": "yes", "integer": "60", "array": "a", "object": "{}"}[kind]
        refused = await call(method, path, headers=admin, json={**valid, name: wrong})
        assert refused.status_code == 400 and name in refused.json()["detail"], name
        longest = spec.get("maxLength") or spec.get("items", {}).get("maxLength")
        if longest is not None:
            value = "x" * (longest + 1)
            long = await call(
                method, path, headers=admin,
                json={**valid, name: value if kind == "string" else [value]},
            )  # fmt: skip
            assert long.status_code == 400 and f"at most {longest}" in long.json()["detail"]


def _kind(spec: dict[str, Any]) -> str:
    """The JSON type of a documented field (an optional one may also be null)."""
    kinds = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
    (kind,) = [k for k in kinds if k != "null"]
    return str(kind)


def test_the_api_modules_route_table_lists_every_route() -> None:
    import authgate.api

    documented = set(re.findall(r"``([A-Z]+)\s+(/\S+)``", authgate.api.__doc__ or ""))
    assert documented == {(m, t) for t, m, _ in _API.operations()}


# -- the OAuth2 password grant: POST /auth/token -------------------------------------------

# What Swagger UI's Authorize sends, its client credentials left blank: a form, blank
# fields included, and the client's id and secret as Basic credentials.
SWAGGER = {
    "Accept": "application/json, text/plain, */*",
    "Content-Type": "application/x-www-form-urlencoded",
    "Authorization": "Basic Og==",
}


async def test_the_token_endpoint_logs_in_as_swagger_ui_sends_it(api: Any) -> None:
    call, _, _ = api
    body = f"grant_type=password&scope=&username=root&password={ADMIN_PW.replace(' ', '+')}"
    answer = await call("POST", "/auth/token", content=body, headers=SWAGGER)
    assert answer.status_code == 200, answer.text
    pair = answer.json()
    assert pair["token_type"] == "bearer" and pair["expires_in"] > 0 and pair["refresh_token"]
    assert answer.headers["cache-control"] == "no-store"  # RFC 6749, section 5.1
    token = {"Authorization": f"Bearer {pair['access_token']}"}
    me = await call("GET", "/auth/me", headers=token)
    assert me.status_code == 200 and me.json()["username"] == "root"
    # The client fields, filled in or in the body, change nothing: there are no clients.
    filled = {"client_id": "swagger", "client_secret": "s3cret", "scope": "anything at all"}
    form = {"grant_type": "password", "username": "ROOT", "password": ADMIN_PW, **filled}
    assert (await call("POST", "/auth/token", data=form)).status_code == 200
    renewed = await call("POST", "/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert renewed.status_code == 200


async def test_a_wrong_password_on_the_form_is_the_same_401_as_on_json(api: Any) -> None:
    call, _, _ = api
    answers = [
        await call("POST", "/auth/login", json={"username": who, "password": "wrong one"})
        for who in ("root", "nobody")
    ]
    answers += [
        await call(
            "POST", "/auth/token",
            data={"grant_type": "password", "username": who, "password": "wrong one"},
        )
        for who in ("root", "nobody")
    ]  # fmt: skip
    assert {a.status_code for a in answers} == {401}
    assert len({a.content for a in answers}) == 1
    assert len({a.headers["www-authenticate"] for a in answers}) == 1


async def test_failures_on_either_login_route_count_toward_one_lock_out(api: Any) -> None:
    call, gate, _ = api
    form = {"grant_type": "password", "username": "root", "password": "wrong one"}
    for _ in range(3):
        assert (await call("POST", "/auth/token", data=form)).status_code == 401
    for _ in range(2):
        wrong = await call("POST", "/auth/login", json={"username": "root", "password": "no"})
        assert wrong.status_code == 401
    locked = await call("POST", "/auth/token", data={**form, "password": ADMIN_PW})
    assert locked.status_code == 429 and locked.json()["error"] == "account_locked"
    assert int(locked.headers["retry-after"]) > 0
    json_login = await call("POST", "/auth/login", json={"username": "root", "password": ADMIN_PW})
    assert json_login.status_code == 429
    await gate.unlock("root")
    assert (await call("POST", "/auth/token", data={**form, "password": ADMIN_PW})).is_success


async def test_a_grant_other_than_password_is_refused_oauth2_style(api: Any) -> None:
    call, _, _ = api
    for grant in ("client_credentials", "authorization_code", "refresh_token", "PASSWORD"):
        form = {"grant_type": grant, "username": "root", "password": ADMIN_PW}
        refused = await call("POST", "/auth/token", data=form)
        assert refused.status_code == 400
        assert refused.json()["error"] == "unsupported_grant_type", grant


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ("", "'grant_type' is required"),
        ("grant_type=password&username=root", "'password' is required"),
        ("grant_type=password&username=&password=x", "'username' is required"),  # blank: unsent
        ("grant_type=password&username=root&password=x&username=root", "given twice"),
        ("grant_type=password&username=root&password=x&role=admin", "unknown field 'role'"),
        ("grant_type=password&username=root&password", "form-encoded"),
        ("grant_type=password&&username=root&password=x", "form-encoded"),
        ("grant_type=password&username=%ff&password=x", "form-encoded"),  # not UTF-8
        ('{"username": "root", "password": "x"}', "form-encoded"),  # JSON is /auth/login's
        ("grant_type=password&username=root&password=" + "x" * 4097, "at most 4096"),
        ("grant_type=password&username=root&password=x&" + "a" * 70_000, "larger than"),
    ],
    ids=[
        "empty", "no password", "blank username", "twice", "unknown field", "no equals sign",
        "empty pair", "not utf-8", "json", "password too long", "too large",
    ],
)  # fmt: skip
async def test_a_malformed_token_request_is_a_400(api: Any, body: str, detail: str) -> None:
    call, _, _ = api
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    refused = await call("POST", "/auth/token", content=body, headers=headers)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "invalid_request" and detail in refused.json()["detail"]


async def test_the_token_request_is_documented_as_a_form(api: Any) -> None:
    checked, _, _ = api
    operation = checked.document["paths"]["/auth/token"]["post"]
    form = operation["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert form["required"] == ["grant_type", "username", "password"]
    assert form["properties"]["grant_type"]["enum"] == ["password"]
    assert form["additionalProperties"] is False
    assert set(form["properties"]) == {
        "grant_type", "username", "password", "scope", "client_id", "client_secret"
    }  # fmt: skip
    valid = {"grant_type": "password", "username": "root", "password": ADMIN_PW}
    assert not checked.schema_errors(form, valid)
    assert checked.schema_errors(form, {**valid, "grant_type": "client_credentials"})
    assert checked.schema_errors(form, {**valid, "username": ""})
    assert operation["responses"]["200"]["links"]["Refresh"]["operationId"] == "authgate_refresh"


# -- every status, every operation ---------------------------------------------------------


#: Operations without a path parameter that can still answer 404 or 429.
_MISSING = {"mfa_confirm", "mfa_recovery", "mfa_passkey_options"}
_THROTTLED = {"mfa_confirm", "mfa_recovery", "reauth"}
#: Public operations that check no secret, so nothing to throttle: they hand out options.
_UNTHROTTLED = {"mfa_passkey_options", "passkey_login_options"}
_PUBLIC = {"login", "token", "refresh", "scram", "mfa_complete", *_UNTHROTTLED, "passkey_login"}


async def test_every_operation_lists_every_status_it_can_answer(api: Any) -> None:
    """What each operation may answer besides its success: a malformed request or
    credential, a bad credential, the store down (any request, its credential checked
    first); the rest as the endpoint can refuse."""
    checked, gate, _ = api
    document = checked.document
    served = HttpApi.for_gate(gate)
    for template, method, name in served.operations():
        if not _served(served, name):
            continue  # 404 until configured: see the browser test below
        operation = document["paths"][template][method.lower()]
        statuses = set(operation["responses"])
        assert {"400", "401", "503"} <= statuses, name
        public = name in _PUBLIC
        # 403: mfa_required from a login, a form's CSRF from a browser endpoint's
        asks_a_factor = name in ("login", "token") or "303" in statuses
        assert ("403" in statuses) is (not public or asks_a_factor), name
        assert ("404" in statuses) is ("{" in template or name in _MISSING), name
        throttled = (public and name not in _UNTHROTTLED) or name in _THROTTLED
        assert ("429" in statuses) is throttled, name
        conditional = any(p["name"] == "If-Match" for p in operation.get("parameters", []))
        assert ("412" in statuses) is ("428" in statuses) is conditional, name
        for status, answer in operation["responses"].items():
            if status >= "400":
                assert answer["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/Error"
                }, (name, status)
        assert "Retry-After" in operation["responses"]["503"]["headers"]
        assert "WWW-Authenticate" in operation["responses"]["401"]["headers"]
        if throttled:
            assert "Retry-After" in operation["responses"]["429"]["headers"]
    for name in ("login", "token", "create_user", "update_user", "delete_user", "set_password"):
        assert any(
            "409" in op["responses"]
            for ops in document["paths"].values()
            for op in ops.values()
            if op["operationId"] == f"authgate_{name}"
        ), name


async def test_an_apps_own_routes_are_documented_the_same_way(api: Any) -> None:
    checked, _, _ = api
    mine = checked.document["paths"]["/mine"]["get"]["responses"]
    staff = checked.document["paths"]["/staff"]["get"]["responses"]
    authgates = checked.document["paths"]["/auth/me"]["get"]["responses"]
    assert {"400", "401", "503"} <= set(mine) and "403" not in mine
    assert {"400", "401", "403", "503"} <= set(staff)
    for status in ("401", "403"):
        assert staff[status] == authgates[status]
    assert (await checked("GET", "/mine")).status_code == 401
    token = await checked(
        "POST", "/auth/login", json={"username": "root", "password": ADMIN_PW}
    )  # root is an admin: admitted as an operator too
    auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
    assert (await checked("GET", "/staff", headers=auth)).status_code == 200
    bad = {"Authorization": "Bearer nope"}
    assert (await checked("GET", "/staff", headers=bad)).status_code == 401


def test_error_responses_add_the_statuses_asked_for() -> None:
    answers = error_responses(404, 409, public=True)
    assert list(answers) == ["400", "401", "404", "409", "503"]
    assert "valid one, or none" in answers["401"]["description"]
    with pytest.raises(ValueError, match="no refusal is described for 418"):
        error_responses(418)


# -- what the fuzzer found -----------------------------------------------------------------


async def test_a_405_says_which_methods_the_path_takes(api: Any) -> None:
    call, _, _ = api
    for method, path, allowed in [
        ("PUT", "/auth/login", "POST"),
        ("OPTIONS", "/auth/sessions/abc", "DELETE"),
        ("POST", "/api/users/bob", "GET, PATCH, PUT, DELETE"),
    ]:
        answer = await call.client.request(method, path)
        assert answer.status_code == 405, (method, path)
        assert answer.headers["allow"] == allowed
        assert answer.json()["error"] == "method_not_allowed"


async def test_a_path_with_a_newline_is_answered_by_the_api(api: Any) -> None:
    call, _, _ = api
    answer = await call.client.get("/api/users/a%0Ab/keys")
    assert answer.status_code == 401 and answer.json()["error"] == "not_authenticated"


async def test_a_plain_starlette_app_answers_those_as_fastapi_does() -> None:
    from starlette.applications import Starlette

    from authgate.integrations.starlette import AuthGate as StarletteAuthGate

    gate = AsyncGate(store="memory://", secret_key=SECRET)
    app = Starlette()
    StarletteAuthGate(gate).install(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        answer = await client.request("OPTIONS", "/auth/sessions/abc")
        assert answer.status_code == 405 and answer.headers["allow"] == "DELETE"
        newline = await client.get("/api/users/a%0Ab/keys")
        assert newline.status_code == 401 and newline.json()["error"] == "not_authenticated"
    await gate.close()


async def test_a_grant_refused_by_set_permissions_is_refused_on_create_and_update(
    api: Any,
) -> None:
    """The users API stored grants that the permission checks refuse, after which every
    request of that user was a 400."""
    call, _, _ = api
    login = await call("POST", "/auth/login", json={"username": "root", "password": ADMIN_PW})
    admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
    user = {"username": "erin", "password": "erin password 1"}
    for grant in ("a b:c", "docs/../bob:read", "docs/%2e%2e:read", "docs//x:read"):
        made = await call(
            "POST", "/api/users/", headers=admin, json={**user, "permissions": [grant]}
        )
        assert made.status_code == 400 and "permission" in made.json()["detail"], grant
    assert (await call("POST", "/api/users/", headers=admin, json=user)).status_code == 201
    patched = await call(
        "PATCH", "/api/users/erin", headers=admin, json={"permissions": ["docs/./x:read"]}
    )
    assert patched.status_code == 400
    erin = await call("POST", "/auth/login", json=user)
    as_erin = {"Authorization": f"Bearer {erin.json()['access_token']}"}
    assert (await call("GET", "/mine", headers=as_erin)).status_code == 200


async def test_an_integral_number_is_an_integer(api: Any) -> None:
    """JSON Schema's integer is a number with no fraction: 3600.0 is one."""
    call, _, _ = api
    login = await call("POST", "/auth/login", json={"username": "root", "password": ADMIN_PW})
    admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
    made = await call(
        "POST", "/auth/keys", headers=admin, json={"name": "ci", "expires_in": 3600.0}
    )
    assert made.status_code == 201
    fraction = await call(
        "POST", "/auth/keys", headers=admin, json={"name": "ci", "expires_in": 3600.5}
    )
    assert fraction.status_code == 400


@pytest.mark.parametrize(
    ("value", "server"),
    [("alice", True), ("Alice.B-1@x+y", True), ("josé", True), ("ab", False), ("a b c", False),
     ("a/b/c", False), ("x" * 65, False), ("l·l", False), ("under_score", True)],
)  # fmt: skip
def test_the_documented_username_is_the_one_the_api_takes(value: str, server: bool) -> None:
    from authgate.openapi import _NAME
    from authgate.users import normalize_username

    assert bool(re.fullmatch(_NAME["pattern"], value)) is server
    try:
        normalize_username(value)
    except ValueError:
        assert not server
    else:
        assert server


# Characters that decide whether a grant is one: separators, dots plain and
# percent-encoded, whitespace ASCII and not, a backslash, the wildcard.
_GRANT_PARTS = st.sampled_from(["a", "b", ".", "/", ":", "%2e", "%2E", "%", " ", "\t", "\\",
                                "\u00a0", "\u3000", "\x1c", "*", "-", "_", "é"])  # fmt: skip


@given(st.lists(_GRANT_PARTS, max_size=12).map("".join))
def test_the_documented_grant_is_the_one_the_api_takes(text: str) -> None:
    from authgate.openapi import _GRANT
    from authgate.permissions import parse_grant

    try:
        parse_grant(text)
    except ValidationError:
        assert not re.fullmatch(_GRANT["pattern"], text)
    else:
        assert re.fullmatch(_GRANT["pattern"], text)


async def test_browser_and_account_operations_are_described_once_turned_on() -> None:
    from authgate.mail import MemorySender, Outbox

    app, gate = _app(
        cookie_sessions=True,
        public_url="https://app.example",
        mail_url="memory://",
        signup=True,
        outbox=Outbox(MemorySender()),
    )
    transport = httpx.ASGITransport(app=app, client=("198.51.100.8", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
        document = (await client.get("/openapi.json")).json()
        validate(document)
        checked = Checked(client, document)
        paths = document["paths"]
        for path in ("/auth/csrf", "/auth/session", "/auth/password/forgot",
                     "/auth/password/reset", "/auth/email/resend", "/auth/email/verify",
                     "/auth/signup"):  # fmt: skip
            assert path in paths, path
        for path in ("/auth/session", "/auth/password/forgot", "/auth/password/reset",
                     "/auth/email/resend", "/auth/email/verify", "/auth/signup"):  # fmt: skip
            statuses = set(paths[path]["post"]["responses"])
            assert {"303", "400", "401", "403", "415", "503"} <= statuses, path
            assert "security" not in paths[path]["post"], path
        login = paths["/auth/session"]["post"]
        assert set(login["requestBody"]["content"]) == {
            "application/json",
            "application/x-www-form-urlencoded",
        }
        assert {"303", "403", "415"} <= set(login["responses"])
        await gate.create_user("carol", "carols password", email="carol@example.com")
        await checked("GET", "/auth/csrf")
        await checked(
            "POST", "/auth/session", json={"username": "carol", "password": "carols password"}
        )
        await checked("POST", "/auth/password/forgot", json={"username": "carol"})
        await checked(
            "POST", "/auth/password/reset", json={"token": "x", "new_password": "long enough 1"}
        )
        await checked(
            "POST", "/auth/signup", json={"username": "dave", "password": "daves password"}
        )
    await gate.close()
