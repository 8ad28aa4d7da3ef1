"""`gate.explain`: every grant with its source, the ones that decide, what would allow a
refusal, and always the same verdict as the gate's own decision."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from authgate import Gate
from authgate.errors import UserNotFound, ValidationError
from authgate.permissions import RolePolicy
from authgate.permissions.explain import Source
from authgate.testing import cheap_hasher
from authgate.users import Group, RoleHierarchy
from conftest import SECRET
from test_role_graph import GRANTS, GRAPH

ROOT = Path(__file__).resolve().parent.parent
PW = "correct horse battery"


def _gate(store: str = "memory://") -> Gate:
    """The README's example: edith, an editor in the policy group lab and the stored
    group ops, with a direct grant of notes:*."""
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


def test_the_readme_shows_what_explain_says() -> None:
    gate = _gate()
    readme = (ROOT / "README.md").read_text()
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
