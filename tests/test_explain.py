"""`gate.explain`: every grant with its source, the ones that decide, what would allow a
refusal, and always the same verdict as the gate's own decision: for a user, for an
identity (an API key's, narrowed by the key's list), and for one object (the model's
hooks, sync or ``async def``, or a policy)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authgate import AsyncGate, Gate
from authgate.errors import SessionRevoked, UserNotFound, ValidationError
from authgate.identity import ANONYMOUS, Identity
from authgate.permissions import (
    HasPermission,
    HasRole,
    IsOwner,
    Policy,
    RolePolicy,
    check_object,
    check_object_async,
)
from authgate.permissions.explain import Explanation, Source
from authgate.testing import cheap_hasher
from authgate.users import Group, RoleHierarchy
from conftest import SECRET
from test_role_graph import GRANTS, GRAPH

ROOT = Path(__file__).resolve().parent.parent
PW = "correct horse battery"


def _gate(store: str = "memory://") -> Gate:
    """The example of docs/permissions.md: edith, an editor in the policy group lab and
    the stored group ops, with a direct grant of notes:*."""
    policy = RolePolicy(
        GRANTS, hierarchy=RoleHierarchy.graph(GRAPH), groups={"lab": ["plants:read"]}
    )
    gate = Gate(store=store, policy=policy, secret_key=SECRET, hasher=cheap_hasher())
    gate.store.put_group(Group.new("ops", ["reports:read"]))
    gate.create_user("edith", PW, roles=["editor"], groups=["lab", "ops"], permissions=["notes:*"])
    return gate


def test_an_allowed_decision_names_the_grant_and_its_road() -> None:
    gate = _gate()
    told = gate.explain("edith", "items:read")
    assert told.allowed
    assert told.matched == (Source("items:read", "role", "viewer", through="editor"),)
    assert set(told.grants) == {
        Source("items:read", "role", "viewer", "editor"),
        Source("items:write", "role", "editor"),
        Source("plants:read", "group", "lab"),
        Source("reports:read", "group", "ops"),
        Source("notes:*", "direct"),
    }
    assert gate.explain("edith", "notes:delete").matched == (Source("notes:*", "direct"),)
    assert gate.explain("edith", "reports:read").matched == (
        Source("reports:read", "group", "ops"),
    )
    gate.close()


def test_a_refusal_says_what_would_allow_it() -> None:
    gate = _gate()
    told = gate.explain("edith", "invoices:read")
    assert not told.allowed and told.matched == ()
    assert told.would_allow == ("role billing", "role admin", "a direct grant of invoices:read")
    told = gate.explain("EDITH", "plants:write")  # the name is normalised
    assert told.would_allow == ("a direct grant of plants:write",)
    gate.close()


@pytest.mark.parametrize(
    "permission",
    ["items:read", "items:write", "items:delete", "invoices:read", "plants:read",
     "plants:write", "reports:read", "notes:anything", "users:manage", "x:y"],
)  # fmt: skip
def test_the_verdict_is_the_gates_own_decision(permission: str) -> None:
    gate = _gate()
    identity = gate.authenticate(gate.login("edith", PW).access_token)
    assert gate.explain("edith", permission).allowed == identity.can(permission)
    gate.close()


def test_unknown_users_and_malformed_permissions_are_refused() -> None:
    gate = _gate()
    with pytest.raises(UserNotFound):
        gate.explain("nobody", "items:read")
    with pytest.raises(ValidationError):
        gate.explain("edith", "items")
    gate.close()


def test_the_permissions_page_shows_what_explain_says() -> None:
    gate = _gate()
    readme = (ROOT / "docs" / "permissions.md").read_text()
    for permission in ("items:read", "invoices:read"):
        assert f"```text\n{gate.explain('edith', permission)}\n```" in readme
    gate.close()


def test_the_cli_explains_in_text_and_json(tmp_path: Path) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(
        json.dumps(
            {"roles": {"include": GRAPH, "permissions": GRANTS}, "groups": {"lab": ["plants:read"]}}
        )
    )
    store = f"sqlite:///{tmp_path / 'authgate.db'}"
    _gate(store).close()
    env: dict[str, Any] = {k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")}
    env.update(AUTHGATE_STORE=store, AUTHGATE_POLICY_FILE=str(policy), AUTHGATE_SECRET_KEY=SECRET)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "authgate", "policy", "explain", *args],
            capture_output=True, text=True, env=env, timeout=60, check=False,
        )  # fmt: skip

    text = cli("edith", "invoices:read")
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("invoices:read for edith: refused")
    assert "  role billing\n" in text.stdout
    data = json.loads(cli("edith", "items:write", "--json").stdout)
    assert data["allowed"] is True
    assert data["matched"] == [{"grant": "items:write", "via": "role", "name": "editor"}]
    unknown = cli("nobody", "items:read")
    assert unknown.returncode == 1 and "Traceback" not in unknown.stderr


# -- an identity: an API key narrows its owner's grants --------------------------------

KIM = Source("items:read", "role", "viewer", "editor")


@pytest.fixture
def kim() -> Iterator[tuple[Gate, Identity]]:
    """kim, an editor in the policy group lab with a direct grant of notes:*, and her
    session's identity.  In no group kept in the store: an API key's identity does not
    get those groups' grants today (`authgate.flows.apikeys._key_identity`)."""
    gate = _gate()
    gate.create_user("kim", PW, roles=["editor"], groups=["lab"], permissions=["notes:*"])
    yield gate, gate.authenticate(gate.login("kim", PW).access_token)
    gate.close()


def _key(gate: Gate, owner: Identity, permissions: list[str] | None) -> Identity:
    raw, _ = gate.create_api_key(owner, "ci", permissions)
    return gate.authenticate(raw)


def _consistent(told: Explanation, identity: Identity) -> None:
    """What every explanation of an identity whose grants the store still gives says."""
    assert told.allowed == identity.can(told.permission)
    assert told.note == ""
    assert bool(told.matched) == told.allowed
    if not told.allowed:
        assert told.would_allow


def test_a_grant_the_key_lists_is_allowed_by_the_owners_grant_and_the_key(
    kim: tuple[Gate, Identity],
) -> None:
    gate, owner = kim
    key = _key(gate, owner, ["items:read", "notes:read"])
    told = gate.explain(key, "items:read")
    _consistent(told, key)
    assert told.allowed and told.api_key == "ci" and told.refused_by == ()
    assert told.matched == (KIM, Source("items:read", "api-key", "ci"))
    assert told.grants[-2:] == (
        Source("items:read", "api-key", "ci"),
        Source("notes:read", "api-key", "ci"),
    )
    # the owner's wider grant that makes the listed one held
    assert gate.explain(key, "notes:read").matched == (
        Source("notes:*", "direct"),
        Source("notes:read", "api-key", "ci"),
    )
    assert str(told).splitlines()[:4] == [
        "items:read for kim by API key ci: allowed",
        "because of:",
        "  items:read (from role viewer, included by role editor)",
        "  items:read (listed by API key ci)",
    ]
    data = told.to_dict()
    assert data["api_key"] == "ci" and "refused_by" not in data
    assert {"grant": "notes:read", "via": "api-key", "name": "ci"} in data["grants"]


def test_a_grant_the_owner_holds_but_the_key_does_not_list_is_narrowed_away(
    kim: tuple[Gate, Identity],
) -> None:
    gate, owner = kim
    key = _key(gate, owner, ["items:read"])
    assert gate.explain(owner, "items:write").allowed  # kim herself may
    told = gate.explain(key, "items:write")
    _consistent(told, key)
    assert not told.allowed and told.matched == ()
    assert told.refused_by == (Source("items:write", "api-key", "ci"),)
    assert told.would_allow == ("an API key listing items:write",)
    assert "refused by:\n  items:write (narrowed away by API key ci)\n" in str(told)
    assert told.to_dict()["refused_by"] == [
        {"grant": "items:write", "via": "api-key", "name": "ci"}
    ]
    # a key listing only an account right holds none of its owner's grants
    bare = _key(gate, owner, ["account:keys"])
    assert gate.explain(bare, "items:read").refused_by == (Source("items:read", "api-key", "ci"),)
    assert not bare.can("items:read")


def test_a_listed_grant_the_owner_no_longer_holds_is_refused(kim: tuple[Gate, Identity]) -> None:
    gate, owner = kim
    raw, _ = gate.create_api_key(owner, "ci", ["items:write"])
    gate.update_user("kim", roles=["viewer"])
    key = gate.authenticate(raw)
    told = gate.explain(key, "items:write")
    _consistent(told, key)
    assert told.refused_by == ()  # nothing refused it: the owner lacks it
    assert Source("items:write", "api-key", "ci") in told.grants
    assert told.would_allow == ("role editor", "role admin", "a direct grant of items:write")
    # neither holds it: the owner needs it, and a key listing it
    told = gate.explain(key, "invoices:read")
    _consistent(told, key)
    assert told.would_allow == (
        "role billing, with an API key listing invoices:read",
        "role admin, with an API key listing invoices:read",
        "a direct grant of invoices:read, with an API key listing invoices:read",
    )


def test_a_key_that_lists_nothing_acts_as_its_owner(kim: tuple[Gate, Identity]) -> None:
    gate, owner = kim
    key = _key(gate, owner, None)
    told = gate.explain(key, "items:write")
    _consistent(told, key)
    mine = gate.explain("kim", "items:write")
    assert told.api_key == "ci"
    assert (told.allowed, told.matched, told.grants) == (mine.allowed, mine.matched, mine.grants)
    assert not any(source.via == "api-key" for source in told.grants)


OWNER_GRANTS = ["notes:*", "notes:read", "items:*", "reports:read"]
LISTABLE = ["items:read", "items:write", "invoices:read", "users:manage", "plants:read",
            "notes:read", "notes:*", "account:keys", "account:sessions"]  # fmt: skip
ASKED = ["items:read", "items:write", "items:delete", "invoices:read", "users:manage",
         "plants:read", "notes:read", "notes:write", "reports:read"]  # fmt: skip


def test_the_verdict_for_any_key_and_owner_is_the_identitys_own() -> None:
    """Keys made by an admin, whose roles, groups and direct grants then change: the
    explanation's verdict is always what the key's identity decides, and it reads
    consistently (no note, a match exactly when allowed, a way when refused)."""
    gate = _gate()
    gate.create_user("root", PW, roles=["admin"])
    gate.create_user("kim", PW, roles=["admin"], groups=["lab"], permissions=["notes:*"])
    owner = gate.authenticate(gate.login("kim", PW).access_token)

    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        listed=st.lists(st.sampled_from(LISTABLE), unique=True),
        roles=st.lists(st.sampled_from(["viewer", *GRAPH]), unique=True),
        groups=st.lists(st.just("lab"), unique=True),
        grants=st.lists(st.sampled_from(OWNER_GRANTS), unique=True),
        asked=st.sampled_from(ASKED),
    )
    def check(
        listed: list[str], roles: list[str], groups: list[str], grants: list[str], asked: str
    ) -> None:
        raw, made = gate.create_api_key(owner, "ci", listed or None)
        gate.update_user("kim", roles=roles, groups=groups, permissions=grants)
        key = gate.authenticate(raw)
        try:
            told = gate.explain(key, asked)
            _consistent(told, key)
            narrowing = [s for s in told.grants if s.via == "api-key"]
            assert {s.grant for s in narrowing} == set(listed) - {
                "account:keys",
                "account:sessions",
            }
        finally:
            gate.revoke_api_key("kim", made.id)

    check()
    gate.close()


def test_a_session_identity_made_before_a_change_keeps_its_verdict_with_a_note(
    kim: tuple[Gate, Identity],
) -> None:
    gate, before = kim
    gate.update_user("kim", roles=["viewer"])
    told = gate.explain(before, "items:write")
    assert told.allowed and before.can("items:write")  # the identity still holds it
    assert "made before they changed" in told.note
    assert not gate.explain(gate.recheck(before), "items:write").allowed
    assert gate.explain(gate.recheck(before), "items:write").note == ""


def test_a_revoked_key_or_an_anonymous_identity_is_explained_or_refused(
    kim: tuple[Gate, Identity],
) -> None:
    gate, owner = kim
    raw, made = gate.create_api_key(owner, "ci", ["items:read"])
    key = gate.authenticate(raw)
    gate.revoke_api_key("kim", made.id)
    with pytest.raises(SessionRevoked):
        gate.explain(key, "items:read")
    told = gate.explain(ANONYMOUS, "items:read")
    assert not told.allowed and told.grants == () and told.would_allow
    assert str(told).startswith("items:read for an anonymous identity: refused")


# -- one object: the model's hooks, or a policy ----------------------------------------


@dataclass(frozen=True)
class Plain:
    """No hooks: the permission ``plain:<action>`` decides."""

    owner: str


@dataclass(frozen=True)
class Guarded:
    """Both hooks: the class hook asks for items:<action>, the object hook for owning."""

    owner: str
    asked: list[str]

    @classmethod
    def has_permission(cls, identity: Identity, action: str) -> bool:
        return identity.can(f"items:{action}")

    def has_object_permission(self, identity: Identity, action: str) -> bool:
        self.asked.append(action)
        return identity.username == self.owner


@dataclass(frozen=True)
class Owned:
    """Only the object hook."""

    owner: str

    def has_object_permission(self, identity: Identity, action: str) -> bool:
        return identity.username == self.owner


@dataclass(frozen=True)
class Classy:
    """Only the class hook (async def), which admits editors."""

    owner: str

    @classmethod
    async def has_permission(cls, identity: Identity, action: str) -> bool:
        await asyncio.sleep(0)
        return "editor" in identity.roles


@dataclass(frozen=True)
class Awaited:
    """Both hooks async def."""

    owner: str

    @classmethod
    async def has_permission(cls, identity: Identity, action: str) -> bool:
        return identity.can(f"items:{action}")

    async def has_object_permission(self, identity: Identity, action: str) -> bool:
        await asyncio.sleep(0)
        return identity.username == self.owner


def test_a_class_hook_that_refuses_is_named_and_the_object_hook_is_not_asked(
    kim: tuple[Gate, Identity],
) -> None:
    gate, kim_ = kim
    doc = Guarded("kim", [])
    told = gate.explain(kim_, "delete", obj=doc)  # kim may not items:delete
    assert not told.allowed and not check_object(kim_, doc, "delete")
    assert told.refused_by == (Source("delete", "object-hook", "Guarded.has_permission"),)
    assert doc.asked == [] and told.matched == () and told.on == "Guarded"
    assert str(told).startswith(
        "guarded:delete on Guarded for kim: refused\n"
        "refused by:\n  delete (refused by Guarded.has_permission)\n"
    )
    assert told.to_dict()["object"] == "Guarded"


def test_an_object_hook_that_refuses_is_named(kim: tuple[Gate, Identity]) -> None:
    gate, kim_ = kim
    doc = Guarded("lee", [])
    told = gate.explain(kim_, "write", obj=doc)
    assert doc.asked == ["write"]  # after the class hook allowed
    assert not told.allowed and not check_object(kim_, doc, "write")
    assert told.refused_by == (Source("write", "object-hook", "Guarded.has_object_permission"),)
    owned = gate.explain(kim_, "read", obj=Owned("lee"))
    assert owned.refused_by == (Source("read", "object-hook", "Owned.has_object_permission"),)


def test_both_hooks_allowing_are_the_reasons(kim: tuple[Gate, Identity]) -> None:
    gate, kim_ = kim
    doc = Guarded("kim", [])
    told = gate.explain(kim_, "items:write", obj=doc)  # the hooks receive "write"
    assert told.allowed and check_object(kim_, doc, "items:write")
    assert told.permission == "items:write" and told.refused_by == () and told.would_allow == ()
    assert told.matched == (
        Source("write", "object-hook", "Guarded.has_permission"),
        Source("write", "object-hook", "Guarded.has_object_permission"),
    )
    assert "  write (allowed by Guarded.has_object_permission)" in str(told)


def test_without_hooks_the_permission_decides(kim: tuple[Gate, Identity]) -> None:
    gate, kim_ = kim
    told = gate.explain(kim_, "notes:read", obj=Plain("lee"))
    assert told.allowed and told.matched == (Source("notes:*", "direct"),)
    assert gate.explain(kim_, "notes:read").matched == told.matched
    refused = gate.explain(kim_, "read", obj=Plain("kim"))  # the resource: the class's name
    assert refused.permission == "plain:read" and not refused.allowed
    assert not check_object(kim_, Plain("kim"), "read")
    assert refused.would_allow == ("a direct grant of plain:read",)
    # an API key's narrowing still applies to the permission
    key = _key(gate, kim_, ["notes:read"])
    assert gate.explain(key, "notes:write", obj=Plain("kim")).refused_by == (
        Source("notes:write", "api-key", "ci"),
    )


@pytest.mark.parametrize(
    ("policy", "owner", "allowed"),
    [(IsOwner(), "kim", True), (IsOwner(), "lee", False),
     (HasRole("admin") | IsOwner(), "lee", False), (HasPermission("items:write"), "lee", True)],
    ids=["owner", "not-owner", "admin-or-owner", "permission"],
)  # fmt: skip
def test_a_policy_given_decides_and_is_named(
    kim: tuple[Gate, Identity], policy: Policy, owner: str, allowed: bool
) -> None:
    gate, kim_ = kim
    doc = Guarded(owner, [])  # the policy decides: the hooks are not asked
    told = gate.explain(kim_, "items:read", obj=doc, policy=policy)
    assert told.allowed is allowed
    assert allowed == (policy.allows(kim_) and policy.allows_object(kim_, doc))
    source = Source("items:read", "policy", policy.describe())
    assert (told.matched, told.refused_by) == (((source,), ()) if allowed else ((), (source,)))
    assert doc.asked == []
    if not allowed:
        assert told.would_allow == (f"meeting the policy: {policy.describe()}",)
    with pytest.raises(TypeError, match="obj="):
        gate.explain(kim_, "items:read", policy=policy)


def test_a_username_is_explained_on_an_object_as_its_session_would_be(
    kim: tuple[Gate, Identity],
) -> None:
    gate, kim_ = kim
    for doc in (Guarded("kim", []), Guarded("lee", []), Owned("kim"), Plain("kim")):
        for action in ("read", "write", "items:delete"):
            by_name = gate.explain("kim", action, obj=doc)
            assert by_name.allowed == check_object(kim_, doc, action)
            assert by_name == gate.explain(kim_, action, obj=doc)


IDENTITIES = ["kim", "key", "anonymous"]
OBJECTS = [Plain("kim"), Guarded("kim", []), Guarded("lee", []), Owned("kim"), Owned("lee")]
ACTIONS = ["read", "write", "delete", "notes:read", "items:read", "plants:read"]


def test_the_verdict_on_an_object_is_check_objects(kim: tuple[Gate, Identity]) -> None:
    gate, kim_ = kim
    who = {"kim": kim_, "key": _key(gate, kim_, ["items:read"]), "anonymous": ANONYMOUS}
    for name in IDENTITIES:
        for doc in OBJECTS:
            for action in ACTIONS:
                told = gate.explain(who[name], action, obj=doc)
                assert told.allowed == check_object(who[name], doc, action), (name, doc, action)
                assert bool(told.matched) == told.allowed


async def test_async_hooks_are_awaited_by_the_async_gate() -> None:
    policy = RolePolicy(GRANTS, hierarchy=RoleHierarchy.graph(GRAPH))
    gate = AsyncGate(store="memory://", policy=policy, secret_key=SECRET, hasher=cheap_hasher())
    await gate.create_user("kim", PW, roles=["editor"])
    await gate.create_user("lee", PW, roles=["billing"])
    kim_ = await gate.authenticate((await gate.login("kim", PW)).access_token)
    lee = await gate.authenticate((await gate.login("lee", PW)).access_token)
    for identity in (kim_, lee, ANONYMOUS):
        for doc in (Classy("kim"), Awaited("kim"), Awaited("lee"), Guarded("kim", [])):
            for action in ("read", "write"):
                told = await gate.explain(identity, action, obj=doc)
                assert told.allowed == await check_object_async(identity, doc, action)
    told = await gate.explain(kim_, "write", obj=Awaited("lee"))
    assert told.refused_by == (Source("write", "object-hook", "Awaited.has_object_permission"),)
    told = await gate.explain(lee, "read", obj=Classy("lee"))
    assert told.refused_by == (Source("read", "object-hook", "Classy.has_permission"),)
    assert (await gate.explain(kim_, "read", obj=Classy("x"))).matched == (
        Source("read", "object-hook", "Classy.has_permission"),
    )
    await gate.close()
    sync = _gate()
    with pytest.raises(TypeError, match="async"):
        sync.explain("edith", "read", obj=Awaited("edith"))
    sync.close()


def test_a_users_explanation_keeps_its_shape() -> None:
    """The HTTP API's and the CLI's JSON: no new key where nothing new applies."""
    gate = _gate()
    for permission in ("items:read", "invoices:read"):
        told = gate.explain("edith", permission)
        assert set(told.to_dict()) == {
            "username", "permission", "allowed", "matched", "would_allow", "grants",
        }  # fmt: skip
        assert told.refused_by == () and told.api_key == told.on == told.note == ""
    gate.close()


def test_the_permissions_pages_key_and_object_example_runs_and_says_what_is_shown() -> None:
    readme = (ROOT / "docs" / "permissions.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "obj=" in b)
    said: list[str] = []
    exec(compile(block, "docs/permissions.md", "exec"), {"print": said.append})  # noqa: S102
    assert len(said) == 2
    for told in said:
        assert f"```text\n{told}\n```" in readme


def test_a_disabled_account_is_explained_as_refused(tmp_path: Any) -> None:
    """Its grants are listed, but it can do nothing: the verdict says so, with a note."""
    from authgate.gate import Gate
    from authgate.testing import cheap_hasher
    from conftest import SECRET

    gate = Gate(store="memory://", secret_key=SECRET, hasher=cheap_hasher())
    gate.create_user("dora", "dora's password", roles=["admin"])
    gate.create_user("root", "root's password", roles=["admin"])
    assert gate.explain("dora", "items:read").allowed
    gate.update_user("dora", enabled=False)
    told = gate.explain("dora", "items:read")
    assert not told.allowed and told.matched == ()
    assert "disabled" in told.note and told.would_allow == ("enabling the account",)
    assert told.grants  # what the account would hold is still shown
    assert not gate.explain("dora", "read", obj={"owner": "dora"}).allowed
