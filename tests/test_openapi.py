"""authgate's routes in FastAPI's OpenAPI document: a valid OpenAPI 3.1 document, and
every answer of a live app (every operation, success and refusal) matches it: its
status is documented, its body validates against the schema, its documented headers
(ETag, Retry-After) are there, and a request body the schema refuses is refused."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from authgate import AsyncGate, Identity
from authgate.api import HttpApi
from authgate.errors import StoreUnavailable
from authgate.integrations.fastapi import AuthGate, require_auth
from authgate.testing import cheap_hasher

SECRET = "Gq8vR2mT7xK4pL9sW3nB6yH1cF5jD0zA"
ADMIN_PW = "openapi admin password"


def _app(**settings: Any) -> tuple[FastAPI, AsyncGate]:
    gate = AsyncGate(store="memory://", secret_key=SECRET, hasher=cheap_hasher(), **settings)
    app = FastAPI(title="openapi test")
    AuthGate(gate).install(app)

    @app.get("/mine")
    async def mine(me: Identity = Depends(require_auth())) -> dict[str, str]:
        return {"username": me.username}

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
        if not path.startswith(("/auth", "/api/users")):
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
    answered = {(t, m) for t, m, _ in HttpApi.for_gate(gate).operations()}
    assert answered <= described and "/mine" in document["paths"]
    # One bearer scheme for the app's own routes and authgate's: one "Authorize" button.
    assert list(document["components"]["securitySchemes"]) == ["HTTPBearer"]
    assert document["paths"]["/mine"]["get"]["security"] == [{"HTTPBearer": []}]
    patch = document["paths"]["/api/users/{username}"]["patch"]
    assert patch["security"] == [{"HTTPBearer": []}]
    assert {"If-Match", "username"} <= {p["name"] for p in patch["parameters"]}
    assert {"200", "412", "428"} <= set(patch["responses"])
    assert (
        "ETag" in document["paths"]["/api/users/{username}"]["get"]["responses"]["200"]["headers"]
    )
    assert "security" not in document["paths"]["/auth/login"]["post"]
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
    again = await call("POST", "/auth/login", json={"username": "root", "password": ADMIN_PW})
    admin = {"Authorization": f"Bearer {again.json()['access_token']}"}

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


_API = HttpApi.for_gate(AsyncGate(store="memory://", secret_key=SECRET))


@pytest.mark.parametrize("operation", sorted(
    (t, m, n) for t, m, n in _API.operations() if n not in ("scram",)
))  # fmt: skip
async def test_a_body_the_schema_refuses_is_refused(api: Any, operation: Any) -> None:
    """Each documented body is closed (no unknown field) and its required fields are
    required: the server refuses what the schema refuses, with a 400 naming the field."""
    call, _, _ = api
    template, method, _ = operation
    schema = call.document["paths"][template][method.lower()].get("requestBody")
    if schema is None:
        return  # takes no body
    body_schema = schema["content"]["application/json"]["schema"]
    assert body_schema["additionalProperties"] is False
    login = await call("POST", "/auth/login", json={"username": "root", "password": ADMIN_PW})
    admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
    path = template.replace("{username}", "root")
    valid = {
        name: {"string": "x1y2z3", "boolean": True, "integer": 60, "array": []}[spec["type"]]
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
        wrong = {"string": 7, "boolean": "yes", "integer": "60", "array": "a"}[spec["type"]]
        refused = await call(method, path, headers=admin, json={**valid, name: wrong})
        assert refused.status_code == 400 and name in refused.json()["detail"], name
        longest = spec.get("maxLength") or spec.get("items", {}).get("maxLength")
        if longest is not None:
            value = "x" * (longest + 1)
            long = await call(
                method, path, headers=admin,
                json={**valid, name: value if spec["type"] == "string" else [value]},
            )  # fmt: skip
            assert long.status_code == 400 and f"at most {longest}" in long.json()["detail"]


def test_the_api_modules_route_table_lists_every_route() -> None:
    import authgate.api

    documented = set(re.findall(r"``([A-Z]+)\s+(/\S+)``", authgate.api.__doc__ or ""))
    assert documented == {(m, t) for t, m, _ in _API.operations()}
