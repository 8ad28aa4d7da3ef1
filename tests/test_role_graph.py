"""Roles as a graph: a role may include several (editor and billing both include
viewer; admin includes both), from code, TOML, YAML and JSON; what each grants is
inherited along the graph only; cycles and graphs without an admin role are refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from authgate.api import ApiRequest, HttpApi
from authgate.errors import ConfigError, PermissionDenied, ValidationError
from authgate.gate import Gate
from authgate.identity import Identity
from authgate.permissions import HasRole, RolePolicy
from authgate.testing import cheap_hasher
from authgate.users import RoleHierarchy
from conftest import SECRET

GRAPH = {"admin": ["editor", "billing"], "editor": ["viewer"], "billing": ["viewer"]}
GRANTS = {
    "viewer": ["items:read"],
    "editor": ["items:write"],
    "billing": ["invoices:read"],
    "admin": ["users:manage"],
}
TOML = """
[roles.include]
admin = ["editor", "billing"]
editor = ["viewer"]
billing = ["viewer"]

[roles.permissions]
viewer = ["items:read"]
editor = ["items:write"]
billing = ["invoices:read"]
admin = ["users:manage"]
"""
YAML = """
roles:
  include:
    admin: [editor, billing]
    editor: [viewer]
    billing: [viewer]
  permissions:
    viewer: [items:read]
    editor: [items:write]
    billing: [invoices:read]
    admin: [users:manage]
"""


def _policies(tmp_path: Path) -> dict[str, RolePolicy]:
    (tmp_path / "p.toml").write_text(TOML)
    (tmp_path / "p.yaml").write_text(YAML)
    (tmp_path / "p.json").write_text(
        json.dumps({"roles": {"include": GRAPH, "permissions": GRANTS}})
    )
    return {
        "code": RolePolicy(GRANTS, hierarchy=RoleHierarchy.graph(GRAPH)),
        "toml": RolePolicy.from_file(tmp_path / "p.toml"),
        "yaml": RolePolicy.from_file(tmp_path / "p.yaml"),
        "json": RolePolicy.from_file(tmp_path / "p.json"),
    }


@pytest.mark.parametrize("source", ["code", "toml", "yaml", "json"])
def test_two_roles_include_a_third_and_a_fourth_includes_both(source: str, tmp_path: Path) -> None:
    policy = _policies(tmp_path)[source]
    roles = policy.hierarchy
    assert roles.top == "admin"
    assert roles.order.index("viewer") < roles.order.index("editor") < roles.order.index("admin")
    # What each role holder may do: its own grants and those of what it includes, only.
    assert policy.permissions_for(frozenset({"editor"})).grants == {"items:read", "items:write"}
    assert policy.permissions_for(frozenset({"billing"})).grants == {
        "items:read", "invoices:read"
    }  # fmt: skip
    assert policy.permissions_for(frozenset({"admin"})).grants == {
        "items:read", "items:write", "invoices:read", "users:manage"
    }  # fmt: skip
    assert policy.permissions_for(frozenset({"viewer"})).grants == {"items:read"}
    # require_role("viewer") admits every role that includes viewer; editor not billing.
    for holder in ("viewer", "editor", "billing", "admin"):
        assert roles.admits({holder}, "viewer")
    assert roles.admits({"admin"}, "billing") and roles.admits({"editor"}, "editor")
    assert not roles.admits({"billing"}, "editor")
    assert not roles.admits({"editor"}, "billing")
    assert not roles.admits({"viewer"}, "editor")
    assert roles.implied({"billing"}) == {"billing", "viewer"}
    assert roles.including("viewer") == {"editor", "billing", "admin"}
    assert HasRole("billing", hierarchy=roles).describe() == "billing or admin role"


def test_the_chain_of_the_seeds_is_the_same_as_before() -> None:
    chain = RoleHierarchy()
    assert chain.order == ("viewer", "operator", "admin") and chain.top == "admin"
    assert chain.admits({"admin"}, "viewer") and not chain.admits({"viewer"}, "operator")
    assert chain.implied({"operator"}) == {"operator", "viewer"}
    assert chain.describe() == "viewer < operator < admin"
    assert chain == RoleHierarchy(("Viewer", "OPERATOR", "admin"))
    same_as_graph = RoleHierarchy.graph({"admin": ["operator"], "operator": ["viewer"]})
    assert same_as_graph.order == chain.order
    assert all(
        same_as_graph.admits({held}, need) == chain.admits({held}, need)
        for held in chain.order
        for need in chain.order
    )


@pytest.mark.parametrize(
    ("graph", "message"),
    [
        ({"admin": ["editor"], "editor": ["admin"]}, "cycle: admin includes editor includes admin"),
        ({"admin": ["admin"]}, "cycle: admin includes admin"),
        (
            {"a": ["b"], "b": ["c"], "c": ["a"], "root": ["a"]},
            "cycle: a includes b includes c includes a",
        ),
        ({"editor": ["viewer"], "billing": ["viewer"]}, "no role includes every other"),
        ({"admin": "viewer"}, "must be a list"),
        ({"admin": ["bad role"]}, "invalid role name"),
    ],
)
def test_a_bad_graph_is_refused_at_load(graph: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RoleHierarchy.graph(graph)


def test_a_cycle_in_a_policy_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "cycle.toml"
    path.write_text('[roles.include]\nadmin = ["editor"]\neditor = ["admin"]\n')
    with pytest.raises(ConfigError, match=r"cycle\.toml: invalid role policy: roles form a cycle"):
        RolePolicy.from_file(path)
    both = tmp_path / "both.toml"
    both.write_text('[roles]\norder = ["a", "b"]\n[roles.include]\nb = ["a"]\n')
    with pytest.raises(ConfigError, match="not both"):
        RolePolicy.from_file(both)


def _api(tmp_path: Path) -> tuple[Gate, HttpApi]:
    (tmp_path / "p.toml").write_text(TOML)
    policy = RolePolicy.from_file(tmp_path / "p.toml")
    gate = Gate(store="memory://", hasher=cheap_hasher(), secret_key=SECRET, policy=policy)
    assert gate.roles is policy.hierarchy
    return gate, HttpApi.for_gate(gate)


def test_nobody_grants_a_role_their_own_roles_do_not_include(tmp_path: Path) -> None:
    """The grant limit of the users API: an actor may hand out the roles its own roles
    include, and no other (an editor could not make anyone billing)."""
    gate, api = _api(tmp_path)
    editor = Identity(username="ed", roles=frozenset({"editor"}), is_authenticated=True)
    assert api._roles_from({"roles": ["viewer", "editor"]}, editor) == ["viewer", "editor"]
    with pytest.raises(PermissionDenied, match="cannot grant the billing role"):
        api._roles_from({"role": "billing"}, editor)
    admin = Identity(username="root", roles=frozenset({"admin"}), is_authenticated=True)
    assert api._roles_from({"roles": ["billing", "editor"]}, admin) == ["billing", "editor"]
    gate.close()


def test_the_users_api_takes_and_shows_the_graphs_roles(tmp_path: Path) -> None:
    gate, api = _api(tmp_path)
    gate.create_user("root", "root password 1", roles=["admin"])
    root = gate.authenticate(gate.login("root", "root password 1").access_token)
    body = {"username": "bill", "password": "bill password 1", "roles": ["billing"]}
    made = gate.run(
        api.answer(ApiRequest("POST", "/api/users/", root, body=json.dumps(body).encode()))
    )
    assert made is not None and made.status == 201
    assert made.data()["role"] == "billing"
    bill = gate.authenticate(gate.login("bill", "bill password 1").access_token)
    assert bill.can("invoices:read") and bill.can("items:read") and not bill.can("items:write")
    gate.close()
