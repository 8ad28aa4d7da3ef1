"""Static access control (bluesky-httpserver's DictionaryAPIAccessControl)."""

from __future__ import annotations

from pathlib import Path

import pytest

from authgate.errors import BadCredentials, ConfigError, StoreError
from authgate.gate import Gate
from authgate.static import StaticAccess, StaticUserStore
from authgate.stores import MemoryStore
from authgate.testing import cheap_hasher

YAML = """
users:
  bob:
    roles:
      - admin
      - expert
    email: bob@gmail.com
  jdoe:
    roles: advanced
    dislayed_name: Doe, John
    email: jdoe@gmail.com
  ann:
    displayed_name: Ann
  carl: None
roles:
  advanced:
    scopes_add: ["read:config"]
    scopes_remove: ["write:queue:control"]
  auditor: ["read:status"]
"""


@pytest.fixture
def access(tmp_path: Path) -> StaticAccess:
    path = tmp_path / "users.yaml"
    path.write_text(YAML)
    return StaticAccess.from_file(path)


def test_known_users_roles_and_scopes(access: StaticAccess) -> None:
    assert access.is_user_known("bob")
    assert access.is_user_known("JDOE")
    assert not access.is_user_known("mallory")
    assert access.get_user_roles("bob") == {"admin", "expert"}
    assert access.get_user_roles("jdoe") == {"advanced"}  # a single string works
    assert access.get_user_roles("carl") == set()  # known, no roles
    assert "read:config" in access.get_user_scopes("jdoe")
    assert "write:queue:control" not in access.get_user_scopes("jdoe")
    assert access.get_user_scopes("mallory") == set()


def test_displayed_names(access: StaticAccess) -> None:
    assert access.get_displayed_user_name("jdoe") == 'jdoe "Doe, John <jdoe@gmail.com>"'
    assert access.get_displayed_user_name("bob") == 'bob "<bob@gmail.com>"'
    assert access.get_displayed_user_name("ann") == 'ann "Ann"'
    assert access.get_displayed_user_name("carl") == "carl"
    assert access.get_displayed_user_name("mallory") == "mallory"
    info = access.get_user_info("jdoe")
    assert info["roles"] == ["advanced"] and info["displayed_name"].startswith("jdoe")


def test_users_none_means_nobody(tmp_path: Path) -> None:
    for text in ("users: None\n", "users:\n", "{}\n"):
        path = tmp_path / "none.yaml"
        path.write_text(text)
        nobody = StaticAccess.from_file(path)
        assert not nobody.is_user_known("bob")
        assert nobody.get_user_scopes("bob") == set()


def test_bad_configuration_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown keys"):
        StaticAccess({"bob": {"rolez": ["admin"]}})
    with pytest.raises(ConfigError, match="role 'x'"):
        StaticAccess({}, {"x": 42})
    toml = tmp_path / "users.toml"
    toml.write_text('[users.bob]\nroles = "admin"\n')
    assert StaticAccess.from_file(toml).get_user_roles("bob") == {"admin"}


def test_static_users_behind_a_gate() -> None:
    hasher = cheap_hasher()
    access = StaticAccess(
        {
            "jdoe": {"roles": "expert", "password_hash": hasher.hash("jdoe password")},
            "bob": {"roles": ["admin"]},  # no password: cannot log in
        }
    )
    gate = Gate(
        store=StaticUserStore(access, MemoryStore()),
        hasher=hasher,
        secret_key="static-users-secret-key-long-enough-42",
    )
    pair = gate.login("JDoe", "jdoe password")
    who = gate.authenticate(pair.access_token)
    assert who.username == "jdoe" and who.roles == {"expert"}
    assert who.can("write:execute")
    assert not who.can("read:config")
    with pytest.raises(BadCredentials):
        gate.login("bob", "anything at all")
    with pytest.raises(StoreError, match="static configuration"):
        gate.create_user("new-user", "some password")
    assert [u.username for u in gate.store.list_users().items] == ["bob", "jdoe"]


def test_a_user_with_an_unknown_role_is_refused_listing_the_roles() -> None:
    with pytest.raises(ConfigError, match="user 'bob': unknown role 'admn': the roles are"):
        StaticAccess.from_dict({"users": {"bob": {"roles": ["admn"]}}})
    custom = StaticAccess.from_dict(
        {"users": {"bob": {"roles": ["lab"]}}, "roles": {"lab": ["read:status"]}}
    )
    assert custom.get_user_roles("bob") == {"lab"}
