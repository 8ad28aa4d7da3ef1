"""Object-level rules and the permission cache at their edges, found by mutation testing
(docs/mutation.md): composed object checks, ownership, the hooks' arguments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from authgate.identity import ANONYMOUS, Identity
from authgate.permissions import HasRole, IsOwner, PermissionSet, check_object


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
    assert len(grants._decided) == 4096
    grants._decided["items:read"] = False  # a remembered answer is the answer
    assert grants.allows("items:read") is False
    fresh = PermissionSet({"items:*"})
    assert fresh.allows("items:read") and fresh._decided == {"items:read": True}
