"""Object-level rules and the permission cache at their edges, found by mutation testing
(docs/mutation.md): composed object checks, ownership, the hooks' arguments."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from authgate.caches import PERMISSION_DECISIONS
from authgate.errors import ConfigError
from authgate.identity import ANONYMOUS, Identity
from authgate.permissions import (
    HasPermission,
    HasRole,
    IsOwner,
    PermissionSet,
    RolePolicy,
    check_object,
)


def person(name: str, roles: set[str] = frozenset(), groups: set[str] = frozenset()) -> Identity:  # type: ignore[assignment]
    return Identity(
        username=name,
        roles=frozenset(roles),
        groups=frozenset(groups),
        is_authenticated=True,
        grants=PermissionSet({"doc:read"} if "reader" in roles else set()),
    )


@pytest.mark.parametrize(
    ("who", "allowed"),
    [
        (person("olga", {"admin"}), True),  # admin and owner
        (person("olga"), False),  # owner only
        (person("adam", {"admin"}), False),  # admin only
        (person("eve"), False),
    ],
)
def test_and_needs_both_object_checks(who: Identity, allowed: bool) -> None:
    policy = HasRole("admin") & IsOwner()
    doc = {"owner": "olga"}
    assert policy.allows_object(who, doc) is allowed


def test_and_passes_each_operand_the_identity_and_the_object() -> None:
    seen: list[tuple[Any, Any]] = []

    class Spy(IsOwner):
        def allows_object(self, identity: Identity, obj: object) -> bool:
            seen.append((identity, obj))
            return True

    who, doc = person("olga"), {"owner": "olga"}
    assert (Spy() & Spy()).allows_object(who, doc)
    assert seen == [(who, doc), (who, doc)]


def test_ownership_rules() -> None:
    doc = {"owner": "olga", "shared_with": ["lab"]}
    assert IsOwner().allows_object(person("olga"), doc)
    assert IsOwner().allows_object(person("lou", groups={"lab"}), doc)
    assert not IsOwner().allows_object(person("lou", groups={"ops"}), doc)
    assert not IsOwner(groups_attr=None).allows_object(person("lou", groups={"lab"}), doc)
    assert not IsOwner().allows_object(ANONYMOUS, {"owner": None})
    assert not IsOwner().allows_object(ANONYMOUS, doc)


@dataclass
class Doc:
    owner: str


@dataclass
class Report:
    __authgate_resource__ = "reports/annual"
    owner: str


def test_without_hooks_the_resource_is_the_lower_cased_class_name_or_its_own() -> None:
    reader = person("rita", {"reader"})
    assert check_object(reader, Doc("x"), "read")  # doc:read
    assert not check_object(reader, Doc("x"), "write")
    annual = Identity(
        username="ann", is_authenticated=True, grants=PermissionSet({"reports/annual:read"})
    )
    assert check_object(annual, Report("x"), "read")
    assert not check_object(reader, Report("x"), "read")


def test_a_class_hook_alone_decides_and_the_object_hook_gets_the_action() -> None:
    calls: list[str] = []

    class Classy:
        @classmethod
        def has_permission(cls, identity: Identity, action: str) -> bool:
            return action == "read"

    class Owned:
        def has_object_permission(self, identity: Identity, action: str) -> bool:
            calls.append(action)
            return action == "edit"

    nobody = person("nobody")
    assert check_object(nobody, Classy(), "read")
    assert not check_object(nobody, Classy(), "write")
    assert check_object(nobody, Owned(), "edit") and not check_object(nobody, Owned(), "drop")
    assert calls == ["edit", "drop"]


def test_the_permission_cache_is_bounded_and_answers_from_memory() -> None:
    grants = PermissionSet({"items:*"})
    for n in range(5000):
        grants.allows(f"things{n}:read")
    assert len(grants._decided) == PERMISSION_DECISIONS.bound
    assert "things4999:read" in grants._decided and "things0:read" not in grants._decided
    grants._decided.put("items:read", False)  # a remembered answer is the answer
    assert grants.allows("items:read") is False
    fresh = PermissionSet({"items:*"})
    assert fresh.allows("items:read") and fresh._decided.get("items:read") is True
    assert len(fresh._decided) == 1


# -- a second round (the full run of this session) ----------------------------------------


def test_every_guard_says_what_it_requires() -> None:
    """The words of a 403's detail and of the permission_denied audit line."""
    from authgate.permissions import AllowAll, DenyAll, IsAuthenticated, IsOwner, Policy

    class Custom(Policy):
        def allows(self, identity: Identity) -> bool:
            return False

    assert [p.describe() for p in (AllowAll(), DenyAll(), IsAuthenticated(), IsOwner())] == [
        "nothing",
        "an impossible condition",
        "authentication",
        "ownership of the object (or a group it is shared with)",
    ]
    assert HasPermission("items:read", "items:create").describe() == (
        "items:read and items:create permission"
    )
    assert HasRole("viewer").describe() == "viewer or operator or admin role"
    assert HasRole("operator").describe() == "operator or admin role"
    assert HasRole("admin").describe() == "admin role"
    assert Custom().describe() == "Custom"
    assert (~IsAuthenticated()).describe() == "not authentication"


def test_not_owner_on_an_object_is_true_for_everyone_but_the_owner() -> None:
    from authgate.permissions import IsOwner

    who = Identity(username="eve", roles=frozenset({"viewer"}), is_authenticated=True)
    theirs, mine = {"owner": "bob"}, {"owner": "eve"}
    assert (~IsOwner()).allows_object(who, theirs) is True
    assert (~IsOwner()).allows_object(who, mine) is False


def test_an_object_without_the_sharing_field_is_shared_with_nobody() -> None:
    from authgate.permissions import IsOwner

    @dataclass
    class Bare:
        owner: str

    who = Identity(username="eve", groups=frozenset({"lab"}), is_authenticated=True)
    assert IsOwner().allows_object(who, Bare("bob")) is False
    assert IsOwner().allows_object(who, Bare("eve")) is True


@pytest.mark.parametrize("name", [5, "", "   ", None])
def test_a_group_name_must_be_a_non_empty_string(name: object) -> None:
    with pytest.raises(ConfigError, match="a group name must be a non-empty string"):
        RolePolicy.from_dict({"groups": {name: ["docs:read"]}})


def test_membership_of_a_permission_set_is_its_answer() -> None:
    held = PermissionSet(["items:read", "streams/*:send"])
    assert "items:read" in held and "streams/4:send" in held
    assert "items:delete" not in held and 42 not in held
    assert repr(PermissionSet(["b:x", "a:y"])) == "PermissionSet(['a:y', 'b:x'])"


def test_a_role_policy_shows_its_order_and_roles() -> None:
    policy = RolePolicy({"viewer": ["a:b"], "admin": ["*:*"]})
    assert (
        repr(policy)
        == "RolePolicy(order=('viewer', 'operator', 'admin'), roles=['admin', 'viewer'])"
    )


@pytest.mark.parametrize("order", [{"a": 1}, 5, "viewer"], ids=["mapping", "number", "string"])
def test_a_role_order_must_be_a_list(order: object) -> None:
    with pytest.raises(ConfigError, match="'roles.order' must be a list of role names"):
        RolePolicy.from_dict({"roles": {"order": order}})


def test_a_policy_file_names_itself_in_errors_and_ranks_as_told(tmp_path: Path) -> None:
    from authgate.users import RoleHierarchy

    missing = tmp_path / "nowhere.toml"
    with pytest.raises(ConfigError, match=r"^cannot read the role policy .*nowhere\.toml"):
        RolePolicy.from_file(missing)
    unordered = tmp_path / "p.toml"
    unordered.write_text('[roles]\nreader = ["docs:read"]\n')
    ranks = RoleHierarchy(("reader", "writer", "chief"))
    policy = RolePolicy.from_file(unordered, ranks)
    assert policy.hierarchy is ranks
    assert policy.permissions_for(frozenset({"chief"})).allows("docs:read")


def test_allow_all_lets_anyone_through_and_deny_all_nobody() -> None:
    from authgate.permissions import AllowAll, DenyAll

    admin = Identity(username="root", roles=frozenset({"admin"}), is_authenticated=True)
    assert AllowAll().allows(ANONYMOUS) is True and AllowAll().allows(admin) is True
    assert DenyAll().allows(admin) is False and DenyAll().allows(ANONYMOUS) is False
    assert DenyAll().allows_object(admin, {"owner": "root"}) is False


def test_the_configured_policy_from_settings(tmp_path: Path) -> None:
    from authgate.config import Settings
    from authgate.errors import ValidationError

    plain = RolePolicy.from_settings(Settings())
    assert plain.hierarchy.order == ("viewer", "operator", "admin")
    assert plain.role_permissions == {"admin": frozenset({"*:*"})}
    custom = RolePolicy.from_settings(Settings(roles=("reader", "writer", "chief")))
    assert custom.hierarchy.order == ("reader", "writer", "chief")
    assert custom.role_permissions == {"chief": frozenset({"*:*"})}
    filed = tmp_path / "p.toml"
    filed.write_text('[roles]\nreader = ["docs:read"]\n')
    from_file = RolePolicy.from_settings(
        Settings(policy_file=str(filed), roles=("reader", "writer", "chief"))
    )
    assert from_file.hierarchy.order == ("reader", "writer", "chief")
    assert from_file.role_permissions == {"reader": frozenset({"docs:read"})}
    with pytest.raises(ValidationError) as bad:
        RolePolicy("viewer")  # type: ignore[arg-type]
    assert bad.value.detail == "'roles' must be a table/mapping of names to permission lists"
