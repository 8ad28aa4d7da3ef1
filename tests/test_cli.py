"""The ``authgate`` command, in real separate processes and in process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from authgate.cli import main
from authgate.errors import SessionRevoked
from authgate.stores import open_store

CHEAP = {
    "AUTHGATE_ARGON2_TIME_COST": "1",
    "AUTHGATE_ARGON2_MEMORY_COST": "8",
    "AUTHGATE_ARGON2_PARALLELISM": "1",
}


def authgate(*args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would, in its own process."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")}
    with tempfile.TemporaryDirectory(prefix="authgate-cli-") as cwd:
        return subprocess.run(
            [sys.executable, "-m", "authgate", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env={**base, **CHEAP, **env},
            cwd=cwd,
            timeout=60,
            check=False,
        )


def test_create_in_one_process_list_in_another_and_duplicate_refused(
    persistent_url: str,
) -> None:
    made = authgate(
        "--store",
        persistent_url,
        "users",
        "create",
        "alice",
        "--role",
        "operator",
        "--password-stdin",
        stdin="correct horse\n",
    )
    assert made.returncode == 0, made.stderr
    assert "created user alice" in made.stdout

    listed = authgate("--store", persistent_url, "users", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0].split() == [
        "USERNAME",
        "ROLES",
        "GROUPS",
        "ENABLED",
        "EMAIL",
    ]
    assert listed.stdout.splitlines()[1].split()[:2] == ["alice", "operator"]

    again = authgate(
        "--store",
        persistent_url,
        "users",
        "create",
        "ALICE",
        "--password-stdin",
        stdin="another pass\n",
    )
    assert again.returncode == 1
    assert again.stderr.strip() == "Error: user 'alice' already exists"
    assert "Traceback" not in again.stderr

    store = open_store(persistent_url)
    user = store.get_user("alice")
    assert user is not None and user.roles == {"operator"}
    assert "correct horse" not in user.password_hash
    store.close()


def test_store_url_from_environment(persistent_url: str) -> None:
    made = authgate("users", "create", "bob", "--no-password", AUTHGATE_STORE=persistent_url)
    assert made.returncode == 0, made.stderr
    shown = authgate("users", "show", "BOB", AUTHGATE_STORE=persistent_url)
    assert '"username": "bob"' in shown.stdout
    assert "password" not in shown.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--store", "nope://x", "users", "list"), "unsupported store URL"),
        (("--store", "redis://127.0.0.1:1/0", "users", "list"), "cannot reach Redis"),
        (("--store", "memory://", "users", "show", "x"), "3 to 64 characters"),
        (("--store", "redis://127.0.0.1:notaport/0", "users", "list"), "bad Redis URL"),
        (("--store", "redis://:hunter2@h:99999/0", "users", "list"), "Port out of range"),
        (("--store", "memory://", "users", "show", "nobody"), "no user named 'nobody'"),
        (("--store", "memory://", "keys", "list", "nobody"), "no user named 'nobody'"),
        (("--store", "memory://", "keys", "revoke", "nobody", "k1"), "no user named 'nobody'"),
        (("--store", "memory://", "users", "passwd", "nobody"), "no user named 'nobody'"),
    ],
)
def test_user_errors_are_one_line_without_traceback(args: tuple[str, ...], message: str) -> None:
    result = authgate(*args)
    assert result.returncode == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


@pytest.fixture
def cli(tmp_path: Any) -> Any:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    runner = CliRunner()

    def invoke(*args: str, stdin: str | None = None) -> Any:
        return runner.invoke(main, ["--store", url, *args], input=stdin, env=CHEAP)

    invoke.url = url  # type: ignore[attr-defined]
    return invoke


def test_password_is_prompted_twice_and_must_match(cli: Any) -> None:
    result = cli(
        "users", "create", "carol", stdin="first pass\nother pass\nfirst pass\nfirst pass\n"
    )
    assert result.exit_code == 0, result.output
    assert result.output.count("Password") >= 2
    assert "first pass" not in result.output  # no echo
    assert "do not match" in result.output.lower() or "match" in result.output.lower()


def test_short_password_is_refused_and_nothing_written(cli: Any) -> None:
    result = cli("users", "create", "dave", "--password-stdin", stdin="short\n")
    assert result.exit_code == 1
    assert "at least 8 characters" in result.output
    assert "dave" not in cli("users", "list").output


def test_set_email_and_verify_email(cli: Any) -> None:
    assert cli("users", "create", "erin", "--password-stdin", stdin="erin pass 1\n").exit_code == 0
    none = cli("users", "verify-email", "erin")
    assert none.exit_code == 1 and "no email address" in none.output
    unconfirmed = cli("users", "set-email", "erin", "erin@example.com")
    assert unconfirmed.exit_code == 0 and "not confirmed yet" in unconfirmed.output
    store = open_store(cli.url)
    user = store.get_user("erin")
    assert user is not None and user.email == "erin@example.com" and not user.email_verified
    confirmed = cli("users", "verify-email", "erin")
    assert confirmed.exit_code == 0, confirmed.output
    user = store.get_user("erin")
    assert user is not None and user.email_verified
    assert cli("users", "set-email", "erin", "new@example.com", "--verified").exit_code == 0
    user = store.get_user("erin")
    assert user is not None and user.email == "new@example.com" and user.email_verified
    store.close()


def test_role_enable_disable_passwd_delete_and_last_admin_guard(cli: Any) -> None:
    assert (
        cli(
            "users", "create", "root", "--role", "admin", "--password-stdin", stdin="admin pass 1\n"
        ).exit_code
        == 0
    )
    assert cli("users", "create", "erin", "--password-stdin", stdin="erin pass 1\n").exit_code == 0

    refused = cli("users", "set-role", "root", "viewer")
    assert refused.exit_code == 1 and "last enabled admin" in refused.output
    assert cli("users", "disable", "root").exit_code == 1
    assert cli("users", "delete", "root", "--yes").exit_code == 1

    assert cli("users", "set-role", "erin", "admin,operator").exit_code == 0
    assert cli("users", "disable", "root").exit_code == 0
    assert "no" in [line.split()[3] for line in cli("users", "list").output.splitlines()[1:]]
    assert cli("users", "enable", "root").exit_code == 0
    assert cli("users", "passwd", "erin", "--password-stdin", stdin="new erin pw\n").exit_code == 0
    assert cli("users", "delete", "erin", "--yes").exit_code == 0
    assert cli("users", "passwd", "erin", "--password-stdin", stdin="x" * 9 + "\n").exit_code == 1

    store = open_store(cli.url)
    root = store.get_user("root")
    assert root is not None and root.enabled and root.roles == {"admin"}
    assert store.get_user("erin") is None
    store.close()


def test_bootstrap_without_variables_exits_non_zero_naming_them(cli: Any) -> None:
    result = cli("bootstrap")
    assert result.exit_code == 1
    assert "AUTHGATE_SUPERUSER_USERNAME" in result.output
    assert "AUTHGATE_SUPERUSER_PASSWORD" in result.output


def test_bootstrap_seeds_an_admin_from_the_environment(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'boot.db'}"
    first = authgate(
        "--store",
        url,
        "bootstrap",
        AUTHGATE_SUPERUSER_USERNAME="Boss",
        AUTHGATE_SUPERUSER_PASSWORD="boss password",
    )
    assert first.returncode == 0, first.stderr
    assert "created admin boss" in first.stdout
    second = authgate("--store", url, "bootstrap")
    assert second.returncode == 0
    assert "nothing to do" in second.stdout


def test_api_keys_from_the_cli(cli: Any) -> None:
    assert (
        cli(
            "users",
            "create",
            "svc",
            "--role",
            "admin",
            "--password-stdin",
            stdin="svc password 1\n",
        ).exit_code
        == 0
    )
    made = cli("keys", "create", "svc", "--name", "nightly", "--permission", "reports:read")
    assert made.exit_code == 0, made.output
    key = made.output.splitlines()[0]
    assert key.startswith("agk_")
    listed = cli("keys", "list", "svc")
    assert "nightly" in listed.output and "reports:read" in listed.output
    assert key not in listed.output
    key_id = listed.output.splitlines()[1].split()[0]
    assert cli("keys", "revoke", "svc", key_id).exit_code == 0
    assert cli("keys", "revoke", "svc", key_id).exit_code == 1


def test_the_protected_root_cannot_be_deleted_disabled_or_demoted_from_the_cli(
    tmp_path: Path,
) -> None:
    env = {
        "AUTHGATE_STORE": f"sqlite:///{tmp_path / 'root.db'}",
        "AUTHGATE_SUPERUSER_USERNAME": "root",
        "AUTHGATE_SUPERUSER_PASSWORD": "root password 1",
        "AUTHGATE_PROTECT_ROOT": "true",
    }
    assert authgate("bootstrap", **env).returncode == 0
    assert authgate("users", "create", "second", "--role", "admin", "--password-stdin",
                    stdin="second password 1\n", **env).returncode == 0  # fmt: skip
    for command in (
        ["delete", "root", "--yes"],
        ["disable", "root"],
        ["set-role", "root", "viewer"],
    ):
        done = authgate("users", *command, **env)
        assert done.returncode == 1, done
        assert "root user cannot be deleted, disabled or demoted" in done.stderr
        assert "Traceback" not in done.stderr
    store = open_store(env["AUTHGATE_STORE"])
    root = store.get_user("root")
    assert root is not None and root.enabled and "admin" in root.roles
    # an unprotected admin may still go
    assert authgate("users", "delete", "second", "--yes", **env).returncode == 0


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AUTHGATE_SUPERUSER_PASSWORD": "short"}, "AUTHGATE_SUPERUSER_PASSWORD: password must"),
        ({"AUTHGATE_SUPERUSER_USERNAME": "bad name!"}, "AUTHGATE_SUPERUSER_USERNAME: username"),
    ],
)
def test_bootstrap_errors_name_the_variable_at_fault(
    cli: Any, env: dict[str, str], message: str
) -> None:
    base = {"AUTHGATE_SUPERUSER_USERNAME": "root", "AUTHGATE_SUPERUSER_PASSWORD": "root pw 12"}
    done = CliRunner().invoke(main, ["--store", cli.url, "bootstrap"], env={**CHEAP, **base, **env})
    assert done.exit_code == 1
    assert message in done.output


def test_a_key_wider_than_its_owner_names_the_owner(cli: Any) -> None:
    assert cli("users", "create", "carol", "--no-password").exit_code == 0
    done = cli("keys", "create", "carol", "--name", "k", "--permission", "*:*")
    assert done.exit_code == 1
    assert "a key cannot hold *:*: carol does not hold it" in done.output


def test_unknown_roles_are_refused_listing_the_known_ones(cli: Any) -> None:
    made = cli("users", "create", "erin", "--role", "opertor", "--no-password")
    assert made.exit_code == 1
    assert "unknown role 'opertor': the roles are viewer, operator, admin" in made.output
    assert cli("users", "create", "erin", "--role", "operator", "--no-password").exit_code == 0
    moved = cli("users", "set-role", "erin", "root")
    assert moved.exit_code == 1 and "unknown role 'root'" in moved.output
    assert (
        "erin" in cli("users", "list").output and "root" not in cli("users", "show", "erin").output
    )


def test_policy_check_validates_a_file_without_starting_anything(tmp_path: Path) -> None:
    good = tmp_path / "policy.toml"
    good.write_text('[roles]\nviewer = ["items:read"]\nadmin = ["*:*"]\n[groups]\nlab = ["x:y"]\n')
    done = CliRunner().invoke(main, ["policy", "check", str(good)])
    assert done.exit_code == 0
    assert "ok (roles viewer < operator < admin; 2 role grants, 1 groups)" in done.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("roles:\n  veiwer: [items:read]\n")
    done = CliRunner().invoke(main, ["policy", "check", str(bad)])
    assert done.exit_code == 1
    assert f"{bad}: invalid role policy: unknown role 'veiwer'" in done.output


def _store_with_alice(tmp_path: Path) -> tuple[str, Any]:
    from authgate.gate import Gate
    from authgate.testing import cheap_hasher
    from conftest import SECRET

    url = f"sqlite:///{tmp_path / 'admin.db'}"
    gate = Gate(store=url, hasher=cheap_hasher(), secret_key=SECRET)
    gate.create_user("alice", "correct horse battery")
    gate.create_user("bob", "correct horse battery")
    return url, gate


def test_an_admin_lists_and_ends_any_users_sessions(tmp_path: Path) -> None:
    url, gate = _store_with_alice(tmp_path)
    first, second, third = (gate.login("alice", "correct horse battery") for _ in range(3))
    listed = authgate("--store", url, "sessions", "list", "alice", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [s["id"] for s in json.loads(listed.stdout)] == [
        first.session_id, second.session_id, third.session_id
    ]  # fmt: skip
    one = authgate("--store", url, "sessions", "revoke", "alice", first.session_id)
    assert one.returncode == 0 and f"ended session {first.session_id}" in one.stdout
    with pytest.raises(SessionRevoked):
        gate.authenticate(first.access_token)
    # Bob cannot be made to lose alice's session, nor anyone a session that is not there.
    theirs = authgate("--store", url, "sessions", "revoke", "bob", second.session_id)
    assert theirs.returncode == 1 and "bob has no session" in theirs.stderr
    assert gate.authenticate(second.access_token).username == "alice"
    rest = authgate("--store", url, "sessions", "revoke", "alice", "--all")
    assert rest.returncode == 0 and "ended 2 sessions of alice" in rest.stdout
    with pytest.raises(SessionRevoked):
        gate.authenticate(third.access_token)
    both = authgate("--store", url, "sessions", "revoke", "alice")
    assert both.returncode == 2  # neither an id nor --all
    gate.close()


def test_groups_are_made_filled_emptied_and_deleted_from_the_cli(tmp_path: Path) -> None:
    url, gate = _store_with_alice(tmp_path)
    made = authgate("--store", url, "groups", "create", "ops", "reports:read", "logs:*")
    assert made.returncode == 0 and "saved group ops (2 permissions)" in made.stdout
    bad = authgate("--store", url, "groups", "create", "lab", "no-colon")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert authgate("--store", url, "groups", "add", "ops", "alice", "bob").returncode == 0
    listed = json.loads(authgate("--store", url, "groups", "list", "--json").stdout)
    assert listed == [{"name": "ops", "permissions": "logs:* reports:read", "kept in": "store"}]
    token = gate.login("alice", "correct horse battery").access_token
    assert gate.authenticate(token).can("reports:read")
    assert authgate("--store", url, "groups", "remove", "ops", "alice").returncode == 0
    assert not gate.authenticate(gate.login("alice", "correct horse battery").access_token).can(
        "reports:read"
    )
    bob = gate.store.get_user("bob")
    assert bob is not None and bob.groups == {"ops"}
    assert authgate("--store", url, "groups", "delete", "ops").returncode == 0
    again = authgate("--store", url, "groups", "delete", "ops")
    assert again.returncode == 1 and "no such group" in again.stderr
    gate.close()


def test_roles_list_and_show_a_graph(tmp_path: Path) -> None:
    policy = tmp_path / "roles.toml"
    policy.write_text(
        '[roles.include]\nadmin = ["editor", "billing"]\neditor = ["viewer"]\n'
        'billing = ["viewer"]\n[roles.permissions]\nviewer = ["items:read"]\n'
        'editor = ["items:write"]\nbilling = ["invoices:read"]\nadmin = ["*:*"]\n'
    )
    url = f"sqlite:///{tmp_path / 'roles.db'}"
    listed = authgate("--store", url, "roles", "list", AUTHGATE_POLICY_FILE=str(policy))
    assert listed.returncode == 0, listed.stderr
    rows = {
        line.split()[0]: line.split(None, 1)[1].split() for line in listed.stdout.splitlines()[1:]
    }
    assert rows == {
        "viewer": ["-"], "billing": ["viewer"], "editor": ["viewer"],
        "admin": ["billing,", "editor", "yes"],
    }  # fmt: skip
    shown = authgate("--store", url, "roles", "show", "billing", AUTHGATE_POLICY_FILE=str(policy))
    assert shown.returncode == 0, shown.stderr
    assert "  includes: viewer\n" in shown.stdout
    assert "  included by: admin\n" in shown.stdout
    assert "  grants items:read (from viewer)\n" in shown.stdout
    assert "  grants invoices:read\n" in shown.stdout
    unknown = authgate("--store", url, "roles", "show", "root", AUTHGATE_POLICY_FILE=str(policy))
    assert unknown.returncode == 1 and "unknown role" in unknown.stderr


def test_a_key_may_be_narrowed_to_a_grant_of_a_stored_group(cli: Any) -> None:
    """The CLI judges a key's grants as the gate does: a stored group's grant is the
    user's, so the key may carry it; a grant the user lacks is still refused."""
    made = cli("users", "create", "vic", "--role", "viewer", "--no-password")
    assert made.exit_code == 0, made.output
    assert cli("groups", "create", "ops", "reports:read").exit_code == 0
    assert cli("groups", "add", "ops", "vic").exit_code == 0
    key = cli("keys", "create", "vic", "--name", "reader", "--permission", "reports:read")
    assert key.exit_code == 0, key.output
    refused = cli("keys", "create", "vic", "--name", "writer", "--permission", "reports:write")
    assert refused.exit_code == 1


def test_a_grant_the_checks_would_refuse_is_never_stored(cli: Any) -> None:
    """Stored, such a grant would make every request of its user a 400: the CLI and
    Python refuse it as the HTTP API does."""
    from authgate import Gate
    from authgate.errors import ValidationError

    made = cli("users", "create", "vic", "--no-password", "--permission", "docs/../x:read")
    assert made.exit_code == 1
    gate = Gate(store=cli.url, secret_key="cli-suite-secret-key-long-enough-for-it")
    try:
        assert gate.store.get_user("vic") is None
        with pytest.raises(ValidationError):
            gate.create_user("vic", "vic password 1", permissions=["docs/../x:read"])
        gate.create_user("vic", "vic password 1", permissions=["docs:read"])
        with pytest.raises(ValidationError):
            gate.update_user("vic", permissions=["docs:read", "docs/./x:write"])
        user = gate.store.get_user("vic")
        assert user is not None and user.permissions == {"docs:read"}
    finally:
        gate.close()


def test_mfa_status_and_reset(cli: Any) -> None:
    import pyotp

    from authgate import Gate
    from authgate.errors import SecondFactorRequired
    from authgate.testing import cheap_hasher

    assert cli("users", "create", "erin", "--password-stdin", stdin="erin pass 1\n").exit_code == 0
    gate = Gate(
        store=cli.url, secret_key="cli-mfa-secret-Pq4Wr7Ty0Ui3Op6As9Df2Gh5", hasher=cheap_hasher()
    )
    me = gate.authenticate(gate.login("erin", "erin pass 1").access_token)
    gate.confirm_totp(me, pyotp.TOTP(gate.begin_totp(me).secret).now())
    with pytest.raises(SecondFactorRequired):
        gate.login("erin", "erin pass 1")
    shown = cli("mfa", "status", "erin")
    assert shown.exit_code == 0 and '"totp": true' in shown.output
    done = cli("mfa", "reset", "erin")
    assert done.exit_code == 0 and "second factors removed" in done.output
    gate.login("erin", "erin pass 1")
    assert cli("mfa", "reset", "nobody").exit_code == 1
    gate.close()
