"""Grant parsing and matching, role policies, composable guards, object hooks."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authgate.errors import ConfigError, ValidationError
from authgate.identity import ANONYMOUS, Identity
from authgate.permissions import (
    HasPermission,
    HasRole,
    IsAuthenticated,
    IsOwner,
    PermissionSet,
    RolePolicy,
    check_object,
    parse_grant,
)


def who(
    name: str = "alice",
    roles: tuple[str, ...] = (),
    groups: tuple[str, ...] = (),
    perms: tuple[str, ...] = (),
    policy: RolePolicy | None = None,
) -> Identity:
    policy = policy or RolePolicy({"admin": ["*:*"]})
    grants = policy.permissions_for(frozenset(roles), frozenset(groups), frozenset(perms))
    return Identity(
        username=name,
        roles=frozenset(roles),
        groups=frozenset(groups),
        permissions=grants.grants,
        is_authenticated=True,
        grants=grants,
    )


@pytest.mark.parametrize(
    ("grant", "target", "allowed"),
    [
        ("items:read", "items:read", True),
        ("items:read", "items:write", False),
        ("items:*", "items:write", True),
        ("*:read", "items:read", True),
        ("*:read", "streams/1/topics/7:read", True),
        ("*:*", "anything/at/all:do", True),
        ("streams/1:send", "streams/1/topics/7:send", True),
        ("streams/1:send", "streams/1:send", True),
        ("streams/1:send", "streams/2/topics/7:send", False),
        ("streams/1:send", "streams:send", False),
        ("streams/1/topics/7:send", "streams/1:send", False),
        ("streams/*:read", "streams/9/topics/2:read", True),
        ("streams/*:read", "streams:read", False),
        ("streams/*/topics/2:read", "streams/9/topics/2:read", True),
        ("streams/*/topics/2:read", "streams/9/topics/3:read", False),
        ("Model:*", "Model:create", True),
        ("model:create", "Model:create", False),
        ("streams/10:send", "streams/1:send", False),
    ],
)
def test_grant_matching(grant: str, target: str, allowed: bool) -> None:
    assert PermissionSet([grant]).allows(target) is allowed
    assert parse_grant(grant).covers(parse_grant(target)) is allowed


@pytest.mark.parametrize("bad", ["", "items", ":read", "items:", "a b:c", "a//b:c", "/:x"])
def test_bad_grants_are_refused(bad: str) -> None:
    with pytest.raises(ValidationError):
        parse_grant(bad)


segment = st.sampled_from(["a", "b", "1", "2", "*"])
grant_text = st.builds(
    lambda parts, action: "/".join(parts) + ":" + action,
    st.lists(segment, min_size=1, max_size=4),
    st.sampled_from(["read", "write", "*"]),
)


@given(st.lists(grant_text, max_size=6), grant_text.filter(lambda g: "*" not in g))
def test_fast_path_agrees_with_the_definition(grants: list[str], target: str) -> None:
    expected = any(parse_grant(g).covers(parse_grant(target)) for g in grants)
    assert PermissionSet(grants).allows(target) is expected


def test_effective_permissions_are_roles_groups_and_direct_grants() -> None:
    policy = RolePolicy(
        {"viewer": ["items:read"], "operator": ["items:create"], "admin": ["*:*"]},
        groups={"lab": ["plants:read"]},
    )
    operator = policy.permissions_for(
        frozenset({"operator"}), frozenset({"lab"}), frozenset({"reports:export"})
    )
    assert operator.grants == {"items:read", "items:create", "plants:read", "reports:export"}
    assert policy.permissions_for(frozenset({"operator"})) is policy.permissions_for(
        frozenset({"operator"})
    )  # memoised per distinct combination


def test_role_policy_from_toml_yaml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "p.toml"
    toml.write_text(
        '[roles]\norder = ["guest", "member", "boss"]\n'
        '[roles.permissions]\nguest = ["docs:read"]\nboss = ["*:*"]\n'
        '[groups]\nlab = ["plants:read"]\n'
    )
    yaml_file = tmp_path / "p.yaml"
    yaml_file.write_text("roles:\n  viewer: [items:read]\n  operator: [items:create]\n")
    json_file = tmp_path / "p.json"
    json_file.write_text('{"roles": {"admin": ["*:*"]}}')
    t = RolePolicy.from_file(toml)
    assert t.hierarchy.order == ("guest", "member", "boss")
    assert t.permissions_for(frozenset({"member"})).allows("docs:read")
    assert t.group_permissions == {"lab": frozenset({"plants:read"})}
    y = RolePolicy.from_file(yaml_file)
    assert y.permissions_for(frozenset({"operator"})).grants == {"items:read", "items:create"}
    assert RolePolicy.from_file(json_file).permissions_for(frozenset({"admin"})).allows("x:y")
    bad = tmp_path / "bad.toml"
    bad.write_text('[roles]\nviewer = ["no-colon"]\n')
    with pytest.raises(ConfigError, match="invalid role policy"):
        RolePolicy.from_file(bad)
    ini = tmp_path / "p.ini"
    ini.write_text("[roles]\n")
    with pytest.raises(ConfigError, match="unknown file type"):
        RolePolicy.from_file(ini)


def test_composed_policies() -> None:
    admin, operator, viewer = (
        who(roles=("admin",)),
        who(roles=("operator",)),
        who(roles=("viewer",)),
    )
    op_or_perm = HasRole("operator") | HasPermission("reports:export")
    assert op_or_perm.allows(admin)
    assert op_or_perm.allows(operator)
    assert not op_or_perm.allows(viewer)
    assert op_or_perm.allows(who(perms=("reports:export",)))
    both = IsAuthenticated() & ~HasRole("admin")
    assert both.allows(operator)
    assert not both.allows(admin)
    assert not both.allows(ANONYMOUS)
    assert HasRole("operator").describe() == "operator or admin role"


@dataclass
class Doc:
    owner: str
    shared_with: tuple[str, ...] = ()


def test_owner_or_shared_group_and_drf_trap() -> None:
    doc = Doc("alice", ("lab",))
    rule = HasRole("admin") | IsOwner()
    assert rule.allows_object(who("alice"), doc)
    assert rule.allows_object(who("bob", groups=("lab",)), doc)
    assert rule.allows_object(who("root", roles=("admin",)), doc)
    # DRF's trap: a non-admin non-owner must not get through the "or".
    assert not rule.allows_object(who("mallory"), doc)
    assert not rule.allows_object(ANONYMOUS, doc)
    assert not (~IsOwner()).allows_object(who("alice"), doc)
    assert IsOwner().allows_object(who("alice"), {"owner": "alice"})


class Invoice:
    def __init__(self, owner: str) -> None:
        self.owner = owner

    @classmethod
    def has_permission(cls, identity: Identity, action: str) -> bool:
        return action in ("read", "update") and identity.is_authenticated

    def has_object_permission(self, identity: Identity, action: str) -> bool:
        return identity.username == self.owner or "admin" in identity.roles


class Note:
    __authgate_resource__ = "notes"


def test_object_hooks_both_must_allow_and_missing_hooks_fall_back_to_grants() -> None:
    inv = Invoice("alice")
    assert check_object(who("alice"), inv, "read")
    assert not check_object(who("alice"), inv, "delete")  # class hook refuses
    assert not check_object(who("bob"), inv, "read")  # object hook refuses
    assert check_object(who("root", roles=("admin",)), inv, "update")
    assert not check_object(who("bob"), Note(), "read")
    assert check_object(who("bob", perms=("notes:read",)), Note(), "read")
    assert not check_object(ANONYMOUS, Note(), "read")


def test_a_grant_splits_at_its_last_colon() -> None:
    grant = parse_grant("urn:docs/7:read")
    assert (grant.resource, grant.action) == (("urn:docs", "7"), "read")


def test_a_grant_string_is_parsed_once() -> None:
    from authgate.caches import PARSED_GRANTS

    text = f"reports/{uuid.uuid4().hex}:read"
    PARSED_GRANTS.reset()
    first = parse_grant(text)
    assert parse_grant(text) is first
    assert (PARSED_GRANTS.hits, PARSED_GRANTS.misses) == (1, 1)
