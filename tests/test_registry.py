"""AMSDAL's registered-permission mode, row by row of its table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from authgate.context import as_identity
from authgate.decorators import require
from authgate.errors import ConfigError, NotAuthenticated, PermissionDenied
from authgate.identity import ANONYMOUS, Identity
from authgate.permissions import PermissionSet
from authgate.registry import PermissionRegistry, RequiresRegistered

ACTIONS = ("create", "read", "update", "delete")


def user(*grants: str) -> Identity:
    held = PermissionSet(grants)
    return Identity(username="u", is_authenticated=True, permissions=held.grants, grants=held)


# (user's grants, registered permissions, actions the user may do on Model)
TABLE = [
    ((), ("Model:create",), {"read", "update", "delete"}),
    ((), ("Model:*",), set(ACTIONS)),
    (("Model:create",), ("Model:create",), set(ACTIONS)),
    (("Model:create",), ("Model:create", "Model:read"), {"create", "update", "delete"}),
    (("*:*",), ("Model:create",), set(ACTIONS)),
    (("Model:*",), ("Model:create",), set(ACTIONS)),
]


@pytest.mark.parametrize(
    ("grants", "registered", "allowed"),
    TABLE,
    ids=[
        "none-vs-create",
        "none-vs-star",
        "create-vs-create",
        "create-vs-create+read",
        "starstar-vs-create",
        "modelstar-vs-create",
    ],
)
def test_amsdal_table(
    grants: tuple[str, ...], registered: tuple[str, ...], allowed: set[str]
) -> None:
    registry = PermissionRegistry(registered)
    who = user(*grants)
    assert {a for a in ACTIONS if registry.allows(who, "Model", a)} == allowed


def test_require_by_default_enforces_everything() -> None:
    registry = PermissionRegistry(require_by_default=True)
    assert not registry.allows(user(), "Model", "read")
    assert registry.allows(user("Model:read"), "Model", "read")
    assert registry.allows(user("*:*"), "Other", "delete")
    with pytest.raises(NotAuthenticated):
        registry.check(ANONYMOUS, "Model", "read")
    with pytest.raises(PermissionDenied, match="requires Model:read permission"):
        registry.check(user(), "Model", "read")


def test_fixture_file(tmp_path: Path) -> None:
    fixture = tmp_path / "permissions.json"
    fixture.write_text(
        json.dumps(
            {
                "Permission": [
                    {"external_id": "user_create", "model": "User", "action": "create"},
                    {"external_id": "user_update", "model": "User", "action": "update"},
                    {"external_id": "user_delete", "model": "User", "action": "delete"},
                ]
            }
        )
    )
    registry = PermissionRegistry.from_fixture(fixture)
    nobody_special = user()
    assert registry.allows(nobody_special, "User", "read")
    for action in ("create", "update", "delete"):
        assert not registry.allows(nobody_special, "User", action)
    fixture.write_text('{"Permission": [{"model": "User"}]}')
    with pytest.raises(ConfigError, match="entry 0"):
        PermissionRegistry.from_fixture(fixture)


def test_as_a_decorator_on_a_transaction() -> None:
    registry = PermissionRegistry(["Invoice:create"])

    @require(RequiresRegistered(registry, "Invoice", "create"))
    def create_invoice() -> str:
        return "created"

    with as_identity(user("Invoice:create")):
        assert create_invoice() == "created"
    with as_identity(user()), pytest.raises(PermissionDenied, match="Invoice:create"):
        create_invoice()
    registry.unregister("Invoice:create")
    with as_identity(user()):
        assert create_invoice() == "created"
