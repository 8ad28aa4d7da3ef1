"""API keys: shown once, stored hashed, narrowing only, killed with their owner."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from authgate.api import ApiRequest, HttpApi
from authgate.errors import MalformedToken, PermissionDenied, SessionRevoked, ValidationError
from authgate.gate import AsyncGate
from authgate.middleware.asgi import AuthGateMiddleware
from authgate.permissions import RolePolicy
from authgate.stores import MemoryStore, SyncStoreAsAsync
from authgate.testing import cheap_hasher
from conftest import SECRET

PW = "correct horse battery"
POLICY = RolePolicy({"operator": ["items:create", "items:read"], "admin": ["*:*"]})


@pytest.fixture
def gate(make_gate: Any) -> Any:
    g = make_gate(policy=POLICY)
    g.create_user("olga", PW, roles=["operator"])
    return g


def test_key_acts_as_its_owner_and_is_stored_hashed(gate: Any) -> None:
    owner = gate.authenticate(gate.login("olga", PW).access_token)
    key, described = gate.create_api_key(owner, "ci job")
    assert key.startswith("agk_") and len(key) > 70
    who = gate.authenticate(key)
    assert (who.username, who.roles) == ("olga", {"operator"})
    assert who.can("items:create")
    listed = gate.list_api_keys("olga")
    assert [k.id for k in listed] == [described.id]
    secret = key.split("_", 2)[2]  # agk_<id>_<secret>; the secret may hold "_" itself
    assert len(secret) == 43
    assert secret not in json.dumps([k.to_public_dict() for k in listed])
    assert gate.list_sessions("olga") != [] and all(
        s.kind == "login" for s in gate.list_sessions("olga")
    )


def test_a_key_narrows_and_never_widens(gate: Any) -> None:
    owner = gate.authenticate(gate.login("olga", PW).access_token)
    key, described = gate.create_api_key(owner, "reader", ["items:read"])
    who = gate.authenticate(key)
    assert who.can("items:read")
    assert not who.can("items:create")
    assert who.roles == frozenset()
    assert described.permissions == ("items:read",)
    with pytest.raises(PermissionDenied, match="users:delete"):
        gate.create_api_key(owner, "sneaky", ["users:delete"])
    with pytest.raises(ValidationError):
        gate.create_api_key(owner, "", None)


def test_a_key_holds_its_owners_stored_group_grants(gate: Any) -> None:
    """Grants from a group kept in the store reach a key as they reach a login: a key
    listing nothing acts as its owner, one listing such a grant holds it; leaving the
    group takes it from both."""
    gate.save_group("reporting", ["reports:read"])
    gate.update_user("olga", groups=["reporting"])
    owner = gate.authenticate(gate.login("olga", PW).access_token)
    assert owner.can("reports:read")
    everything, _ = gate.create_api_key(owner, "as me")
    narrow, _ = gate.create_api_key(owner, "reports", ["reports:read"])
    assert gate.authenticate(everything).can("reports:read")
    assert gate.authenticate(narrow).can("reports:read")
    assert not gate.authenticate(narrow).can("items:read")
    gate.update_user("olga", groups=[])
    assert not gate.authenticate(everything).can("reports:read")
    assert not gate.authenticate(narrow).can("reports:read")


def test_revoked_expired_and_ownerless_keys_are_refused(gate: Any) -> None:
    owner = gate.authenticate(gate.login("olga", PW).access_token)
    key, described = gate.create_api_key(owner, "one")
    assert gate.revoke_api_key("olga", described.id)
    with pytest.raises(SessionRevoked):
        gate.authenticate(key)
    key2, _ = gate.create_api_key(owner, "two")
    gate.update_user("olga", enabled=False)
    with pytest.raises(SessionRevoked):
        gate.authenticate(key2)
    gate.update_user("olga", enabled=True)
    key3, _ = gate.create_api_key(owner, "three")
    gate.delete_user("olga")
    with pytest.raises(SessionRevoked):
        gate.authenticate(key3)
    with pytest.raises(MalformedToken):
        gate.authenticate("agk_short")
    forged = key3[:-4] + "AAAA"
    with pytest.raises(SessionRevoked):
        gate.authenticate(forged)


async def test_keys_through_the_http_api_and_the_middleware() -> None:
    memory = MemoryStore()
    gate = AsyncGate(
        store=SyncStoreAsAsync(memory, offload=False),
        hasher=cheap_hasher(),
        secret_key=SECRET,
        policy=POLICY,
    )
    await gate.create_user("olga", PW, roles=["operator"])
    owner = await gate.authenticate((await gate.login("olga", PW)).access_token)

    async def api(method: str, path: str, body: Any = None, who: Any = owner) -> Any:
        raw = json.dumps(body).encode() if body is not None else b""
        return await gate.run(HttpApi.for_gate(gate).answer(ApiRequest(method, path, who, raw)))

    made = await api(
        "POST", "/auth/keys", {"name": "script", "permissions": ["items:read"], "expires_in": 3600}
    )
    assert made.status == 201
    key = made.data()["key"]
    assert made.data()["expires_at"] is not None
    listed = await api("GET", "/auth/keys")
    assert [k["name"] for k in listed.data()["items"]] == ["script"]
    assert key not in listed.body.decode()
    assert (await api("POST", "/auth/keys", {"name": "x", "expires_in": "soon"})).status == 400
    assert (await api("POST", "/auth/keys", {"name": "x", "permissions": ["a:b"]})).status == 403

    async def whoami(scope: Any, receive: Any, send: Any) -> None:
        user = scope["user"]
        body = json.dumps([user.username, user.can("items:read"), user.can("items:create")])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body.encode()})

    app = AuthGateMiddleware(whoami, gate)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        for header in (f"ApiKey {key}", f"Bearer {key}", f"apikey {key}"):
            r = await client.get("/", headers={"Authorization": header})
            assert r.json() == ["olga", True, False], header
        key_id = made.data()["id"]
        assert (await api("DELETE", f"/auth/keys/{key_id}")).status == 204
        r = await client.get("/", headers={"Authorization": f"ApiKey {key}"})
        assert r.status_code == 401
        assert (await api("DELETE", f"/auth/keys/{key_id}")).status == 404
