"""ensure_superuser: seed an admin at start-up, or stop with a clear message."""

from __future__ import annotations

from typing import Any

import pytest

from authgate import Settings, aensure_superuser, ensure_superuser, flows
from authgate.errors import AuthGateError, ConfigError, UserExists, ValidationError
from authgate.flows.users import ensure_guest
from authgate.flows.users import ensure_superuser as ensure_superuser_flow
from authgate.permissions import RolePolicy
from authgate.stores import MemoryStore, SyncStoreAsAsync
from authgate.testing import cheap_hasher
from authgate.users import RoleHierarchy, User

CHEAP: dict[str, Any] = {"argon2_time_cost": 1, "argon2_memory_cost": 8, "argon2_parallelism": 1}
# An admin and a guest to seed, hashed cheaply: what the start-up tests set.
SEED_ENV = {
    "AUTHGATE_SUPERUSER_USERNAME": "root",
    "AUTHGATE_SUPERUSER_PASSWORD": "root password",
    "AUTHGATE_GUEST_USERNAME": "visitor",
    "AUTHGATE_ARGON2_TIME_COST": "1",
    "AUTHGATE_ARGON2_MEMORY_COST": "8",
    "AUTHGATE_ARGON2_PARALLELISM": "1",
}


def test_without_admin_or_variables_the_message_names_them() -> None:
    with pytest.raises(ConfigError) as info:
        ensure_superuser(MemoryStore(), Settings(**CHEAP))
    assert "AUTHGATE_SUPERUSER_USERNAME" in info.value.detail
    assert "AUTHGATE_SUPERUSER_PASSWORD" in info.value.detail


def test_seeds_an_admin_from_the_environment() -> None:
    store = MemoryStore()
    settings = Settings.from_env(
        {"AUTHGATE_SUPERUSER_USERNAME": "Root", "AUTHGATE_SUPERUSER_PASSWORD": "root password"},
        **CHEAP,
    )
    done = ensure_superuser(store, settings)
    assert (done.action, done.username) == ("created", "root")
    root = store.get_user("root")
    assert root is not None and root.roles == {"admin"} and root.enabled
    assert cheap_hasher().verify(root.password_hash, "root password")
    assert ensure_superuser(store, settings).action == "exists"


def test_a_disabled_admin_does_not_count_and_is_promoted() -> None:
    store = MemoryStore()
    store.create_user(User.new("root", roles=["admin"], enabled=False))
    settings = Settings(superuser_username="root", superuser_password="new root pw", **CHEAP)
    assert ensure_superuser(store, settings).action == "promoted"
    root = store.get_user("root")
    assert root is not None and root.enabled and root.version == 2


async def test_async_face_seeds_too() -> None:
    store = SyncStoreAsAsync(MemoryStore(), offload=False)
    settings = Settings(superuser_username="root", superuser_password="root password", **CHEAP)
    assert (await aensure_superuser(store, settings)).action == "created"
    assert (await aensure_superuser(store, settings)).action == "exists"


def test_guest_user_is_created_on_first_run_when_configured() -> None:
    from authgate.gate import Gate

    store = MemoryStore()
    gate = Gate(
        store=store,
        hasher=cheap_hasher(),
        secret_key="Gq8vR2mT7xK4pL9sW3nB6yH1cF5jD0zA",
        superuser_username="root",
        superuser_password="root password",
        guest_username="Guest",
    )
    gate.ensure_superuser()
    guest = store.get_user("guest")
    assert guest is not None and guest.roles == {"viewer"} and guest.password_hash == ""
    gate.ensure_superuser()  # second run: nothing changes
    assert store.get_user("guest") == guest
    plain = Gate(
        store=MemoryStore(),
        hasher=cheap_hasher(),
        secret_key="Gq8vR2mT7xK4pL9sW3nB6yH1cF5jD0zA",
        superuser_username="root",
        superuser_password="root password",
    )
    plain.ensure_superuser()
    assert plain.store.get_user("guest") is None


@pytest.mark.parametrize(
    ("role", "seeded"), [(None, {"viewer"}), ("Operator", {"operator"}), ("guest", None)]
)
def test_the_guest_role_must_be_one_of_the_roles(role: str | None, seeded: Any) -> None:
    """A misspelt or unknown guest role would grant nothing, silently: refused at start-up,
    naming the variable and the known roles; none given is the lowest role."""
    store = MemoryStore()
    settings = Settings(
        superuser_username="root",
        superuser_password="root password",
        guest_username="visitor",
        guest_role=role,
        **CHEAP,
    )
    if seeded is None:
        with pytest.raises(ConfigError) as refused:
            ensure_superuser(store, settings)
        assert refused.value.detail == (
            "AUTHGATE_GUEST_ROLE: unknown role 'guest': the roles are viewer, operator, admin"
        )
        assert list(store.list_users().items) == []  # refused before the admin was made
        return
    ensure_superuser(store, settings)
    guest = store.get_user("visitor")
    assert guest is not None and guest.roles == seeded


def _race(flow: Any, store: MemoryStore, meanwhile: Any) -> Any:
    """Drive a seeding flow; just before its write, another worker acts (`meanwhile`)."""
    hasher = cheap_hasher()
    op = next(flow)
    raced = False
    try:
        while True:
            if isinstance(op, flows.Call):
                if op.method in ("create_user", "update_user") and not raced:
                    raced = True
                    meanwhile()
                try:
                    result = getattr(store, op.method)(*op.args)
                except AuthGateError as err:
                    op = flow.throw(err)
                    continue
            else:
                result = flows.drive._cpu(op, hasher)
            op = flow.send(result)
    except StopIteration as done:
        return done.value


@pytest.mark.parametrize("existing", [False, True])
def test_a_worker_that_loses_the_seeding_race_succeeds(existing: bool) -> None:
    store = MemoryStore()
    if existing:
        store.create_user(User.new("root", roles=["viewer"]))

    def other_worker() -> None:
        ensure_superuser(
            store, Settings(superuser_username="root", superuser_password="root password", **CHEAP)
        )

    flow = ensure_superuser_flow("root", "root password", RoleHierarchy())
    result = _race(flow, store, other_worker)

    assert (result.action, result.username) == ("exists", "root")
    admins = [u for u in store.list_users().items if "admin" in u.roles]
    assert [u.username for u in admins] == ["root"]


def test_a_lost_race_to_a_user_who_is_not_admin_still_fails() -> None:
    store = MemoryStore()

    def other_worker() -> None:
        store.create_user(User.new("root", roles=["viewer"]))

    with pytest.raises(UserExists):
        _race(ensure_superuser_flow("root", "root password", RoleHierarchy()), store, other_worker)


def test_a_guest_seeded_by_another_worker_is_not_an_error() -> None:
    store = MemoryStore()

    def other_worker() -> None:
        store.create_user(User.new("guest", roles=["viewer"]))

    assert _race(ensure_guest("guest", None, RoleHierarchy()), store, other_worker) is False


@pytest.mark.parametrize("entry", ["module", "module-async", "cli"])
def test_every_entry_point_seeds_the_same_admin_and_guest(
    entry: str, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """One start-up, whichever way it is called: admin and guest, audited as bootstrap."""
    import asyncio
    import logging

    from click.testing import CliRunner

    from authgate.cli import main
    from authgate.stores import open_async_store, open_store

    url = f"sqlite:///{tmp_path / 'boot.db'}"
    env = {"AUTHGATE_STORE": url, **SEED_ENV}
    caplog.set_level(logging.INFO, logger="authgate.audit")
    if entry == "cli":
        done = CliRunner().invoke(main, ["bootstrap"], env=env)
        assert done.exit_code == 0, done.output
    elif entry == "module":
        assert ensure_superuser(None, Settings.from_env(env)).action == "created"
    else:

        async def seed() -> str:
            store = open_async_store(url)
            try:
                return (await aensure_superuser(store, Settings.from_env(env))).action
            finally:
                await store.close()

        assert asyncio.run(seed()) == "created"
    store = open_store(url)
    try:
        root, guest = store.get_user("root"), store.get_user("visitor")
    finally:
        store.close()
    assert root is not None and "admin" in root.roles
    assert guest is not None and guest.roles == {"viewer"}
    seeded = [
        (r.audit["event"], r.audit["username"], r.audit["actor"])
        for r in caplog.records
        if hasattr(r, "audit")
    ]
    assert seeded == [
        ("user_created", "root", "bootstrap"),
        ("user_created", "visitor", "bootstrap"),
    ]


def test_a_policy_files_role_order_is_the_deployments_everywhere(tmp_path: Any) -> None:
    """A policy file's ``roles.order`` names the roles for the Gate, the CLI and
    start-up alike (its top role is the admin role); a file without one ranks its
    roles as ``AUTHGATE_ROLES`` says."""
    from click.testing import CliRunner

    from authgate.cli import main
    from authgate.gate import Gate
    from authgate.stores import open_store

    ordered = tmp_path / "ordered.toml"
    ordered.write_text(
        '[roles]\norder = ["guest", "member", "boss"]\n'
        '[roles.permissions]\nmember = ["docs:read"]\nboss = ["*:*"]\n'
    )
    url = f"sqlite:///{tmp_path / 'roles.db'}"
    env = {"AUTHGATE_STORE": url, "AUTHGATE_POLICY_FILE": str(ordered), **SEED_ENV}
    runner = CliRunner()
    assert runner.invoke(main, ["bootstrap"], env=env).exit_code == 0
    made = runner.invoke(
        main, ["users", "create", "mia", "--role", "member", "--no-password"], env=env
    )
    assert made.exit_code == 0, made.output
    typo = runner.invoke(
        main, ["users", "create", "ola", "--role", "viewer", "--no-password"], env=env
    )
    assert typo.exit_code == 1 and "the roles are guest, member, boss" in typo.output
    store = open_store(url)
    try:
        roles = {n: store.get_user(n).roles for n in ("root", "visitor", "mia")}  # type: ignore[union-attr]
    finally:
        store.close()
    assert roles == {"root": {"boss"}, "visitor": {"guest"}, "mia": {"member"}}
    gate = Gate(Settings.from_env(env), secret_key="Gq8vR2mT7xK4pL9sW3nB6yH1cF5jD0zA")
    try:
        assert gate.roles.order == ("guest", "member", "boss")
        assert gate.create_user("ned", "ned password", roles=["member"]).roles == {"member"}
        with pytest.raises(ValidationError, match="the roles are guest, member, boss"):
            gate.create_user("oli", "oli password", roles=["operator"])
    finally:
        gate.close()

    unordered = tmp_path / "unordered.toml"
    unordered.write_text('[roles]\nreader = ["docs:read"]\nchief = ["*:*"]\n')
    policy = RolePolicy.from_settings(
        Settings(policy_file=str(unordered), roles=("reader", "writer", "chief"))
    )
    assert policy.hierarchy.order == ("reader", "writer", "chief")
    assert policy.permissions_for(frozenset({"writer"})).allows("docs:read")
