"""Usernames, users, groups and the role hierarchy."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authgate.errors import InvalidUsername, ValidationError
from authgate.users import DEFAULT_ROLES, Group, Role, RoleHierarchy, User, normalize_username


@pytest.mark.parametrize("raw", ["Alice", "alice", "ALICE", "ａｌｉｃｅ", "ＡＬＩＣＥ", "ＡlIcE"])
def test_case_and_width_variants_are_one_username(raw: str) -> None:
    assert normalize_username(raw) == "alice"


def test_username_allows_dots_dashes_underscores_at_and_letters() -> None:
    assert normalize_username("Jane.Doe-2_x@Lab") == "jane.doe-2_x@lab"
    assert normalize_username("Müller") == "müller"
    assert normalize_username("Straße") == "strasse"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("ab", "3 to 64 characters"),
        ("a" * 65, "3 to 64 characters"),
        ("bad name", "may contain only"),
        ("semi;colon", "may contain only"),
        ("tab\tname", "may contain only"),
        ("", "3 to 64 characters"),
    ],
)
def test_bad_usernames_get_clear_errors(raw: str, message: str) -> None:
    with pytest.raises(InvalidUsername, match=message) as info:
        normalize_username(raw)
    assert info.value.field == "username"


def test_non_string_username_is_refused() -> None:
    with pytest.raises(InvalidUsername):
        normalize_username(42)  # type: ignore[arg-type]


@given(st.text(max_size=80))
def test_normalisation_is_idempotent_or_refuses(raw: str) -> None:
    try:
        once = normalize_username(raw)
    except InvalidUsername:
        return
    assert normalize_username(once) == once
    assert 3 <= len(once) <= 64


def test_repr_and_public_dict_never_show_the_hash() -> None:
    user = User.new("alice", password_hash="$argon2id$v=19$secret-hash")
    assert "argon2" not in repr(user)
    public = user.to_public_dict()
    assert "password_hash" not in public
    assert "argon2" not in json.dumps(public)


def test_changed_bumps_version_and_validates() -> None:
    user = User.new("alice", roles=["Viewer"])
    assert user.roles == {"viewer"}
    changed = user.changed(roles=["OPERATOR"], email="a@example.com")
    assert changed.version == user.version + 1
    assert changed.roles == {"operator"}
    assert changed.updated_at >= user.updated_at
    assert user.roles == {"viewer"}  # frozen original untouched
    with pytest.raises(ValidationError):
        user.changed(username="bob")
    with pytest.raises(ValidationError):
        user.changed(permissions=["no-colon"])
    with pytest.raises(ValidationError):
        user.changed(email=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        user.enabled = False  # type: ignore[misc]


def test_a_new_email_is_unverified_unless_the_change_says_otherwise() -> None:
    user = User.new("alice", email="a@example.com", email_verified=True)
    assert user.to_public_dict()["email_verified"] is True
    assert user.changed(display_name="Alice").email_verified is True
    assert user.changed(email="a@example.com").email_verified is True  # the same address
    assert user.changed(email="b@example.com").email_verified is False
    assert user.changed(email="b@example.com", email_verified=True).email_verified is True
    assert user.changed(email_verified=False).email_verified is False
    assert User.new("bob").email_verified is False


@pytest.mark.parametrize("value", [1, 0, "true", "false", None])
def test_email_verified_must_be_a_real_bool(value: object) -> None:
    with pytest.raises(ValidationError, match="email_verified") as info:
        User.new("alice", email_verified=value)  # type: ignore[arg-type]
    assert info.value.field == "email_verified"
    with pytest.raises(ValidationError, match="email_verified"):
        User.new("alice").changed(email_verified=value)


def test_role_hierarchy_orders_and_admits() -> None:
    roles = DEFAULT_ROLES
    assert roles["admin"] > roles["operator"] > roles["viewer"]
    assert roles["ADMIN"] == Role("admin", 2)
    assert roles.admits({"admin"}, "operator")
    assert roles.admits({"operator"}, "operator")
    assert not roles.admits({"viewer"}, "operator")
    assert not roles.admits(set(), "viewer")
    assert roles.admits({"auditor"}, "auditor")
    assert not roles.admits({"admin"}, "auditor")
    assert roles.highest({"viewer", "admin", "auditor"}) == "admin"
    assert roles.highest({"auditor"}) is None
    assert roles.implied({"operator"}) == {"operator", "viewer"}
    assert roles.top == "admin"


def test_role_hierarchy_is_configurable_and_validated() -> None:
    custom = RoleHierarchy(("guest", "member", "owner", "root"))
    assert custom.top == "root"
    assert custom.admits({"owner"}, "member")
    assert custom["guest"] < custom["root"]
    with pytest.raises(ValidationError):
        RoleHierarchy(("a", "A"))
    with pytest.raises(ValidationError):
        RoleHierarchy(())
    with pytest.raises(ValidationError):
        RoleHierarchy(("bad role",))


def test_group_names_are_normalised() -> None:
    group = Group.new("Lab-Team", ["plants:read"])
    assert group.name == "lab-team"
    with pytest.raises(ValidationError, match="group name"):
        Group.new("x")
