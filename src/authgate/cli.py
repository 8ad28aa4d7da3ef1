"""The ``authgate`` command: manage users and bootstrap an admin from a shell.

The store comes from ``--store URL`` or ``AUTHGATE_STORE``.  Passwords are never
taken from the command line: they are prompted for (twice, without echo) or read
from standard input with ``--password-stdin``.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from .config import Settings
from .errors import AuthGateError, StoreUnavailable, UserNotFound
from .flows import Flow
from .flows.apikeys import create_api_key, list_api_keys, revoke_api_key
from .flows.identity import group_grants, identity_from_user
from .flows.mfa import mfa_status, reset_factors
from .flows.sessions import LOGIN, revoke_session, revoke_sessions
from .flows.users import bootstrap as bootstrap_flow
from .flows.users import create_user as create_flow
from .flows.users import delete_user as delete_flow
from .flows.users import iter_users
from .flows.users import set_password as set_password_flow
from .flows.users import update_user as update_flow
from .gate import Gate
from .identity import Client, Identity
from .permissions import RolePolicy
from .stores import Store
from .tokens import Key, KeyRing
from .users import RoleHierarchy, User, normalize_group_name, normalize_username

__all__ = ["CliState", "bound_group", "main"]

T = TypeVar("T")
#: The actor of the CLI's changes in audit events.
CLI = "cli"


def _throwaway_ring() -> KeyRing:
    """The CLI administers the store and issues no token: its gate signs with a key
    made for the occasion, so it needs no AUTHGATE_SECRET_KEY."""
    return KeyRing([Key.hmac(secrets.token_urlsafe(48))])


class CliState:
    """What the commands run against: a `Gate` over the configured store, so they obey
    the same settings as the app (role order, protected users, hashing, audit log).
    Built on first use; the Flask adapter's ``flask authgate`` group hands in the app's
    own gate instead."""

    def __init__(self, store_url: str | None = None, *, gate: Gate | None = None) -> None:
        self._overrides: dict[str, Any] = {"store": store_url} if store_url else {}
        self._gate = gate
        self._owned = gate is None
        self._settings: Settings | None = gate.settings if gate is not None else None

    @property
    def settings(self) -> Settings:
        """The configuration (``AUTHGATE_*``, ``--store``), read without opening the store."""
        if self._settings is None:
            self._settings = Settings.from_env(None, **self._overrides)
        return self._settings

    @property
    def gate(self) -> Gate:
        """The gate, opening the store on first use."""
        if self._gate is None:
            self._gate = Gate(self.settings, ring=_throwaway_ring())
        return self._gate

    @property
    def policy(self) -> RolePolicy:
        """The gate's role policy."""
        return self.gate.policy

    @property
    def roles(self) -> RoleHierarchy:
        """The gate's role order."""
        return self.gate.roles

    @property
    def store(self) -> Store:
        """The gate's store."""
        return self.gate.store

    def run(self, flow: Flow[T]) -> T:
        """Run `flow` on the gate; its audit events (by ``cli``) go to its audit log."""
        return self.gate.run(flow)

    def close(self) -> None:
        """Close the store, unless the gate was handed in."""
        if self._owned and self._gate is not None:
            self._gate.close()


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn authgate's errors into one-line messages and exit code 1."""
    try:
        yield
    except StoreUnavailable as err:  # the operator may see where: the client never does
        raise click.ClickException(err.reason) from None
    except AuthGateError as err:
        raise click.ClickException(err.detail) from None


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise click.ClickException("--password-stdin: standard input is empty")
        return line.rstrip("\r\n")
    value: str = click.prompt(
        "Password", hide_input=True, confirmation_prompt="Repeat the password"
    )
    return value


def _split(values: tuple[str, ...]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--store",
    "store_url",
    envvar="AUTHGATE_STORE",
    metavar="URL",
    help="Store URL (memory://, sqlite:///file.db, redis://host:port/db, "
    "postgresql://user@host/db, mysql://user@host/db). "
    "Default: $AUTHGATE_STORE or sqlite:///authgate.db.",
)
@click.version_option(package_name="authgate")
@click.pass_context
def main(ctx: click.Context, store_url: str | None) -> None:
    """authgate: manage users and API keys, and seed the admin, in any store."""
    state = CliState(store_url)
    ctx.obj = state
    ctx.call_on_close(state.close)


pass_state = click.make_pass_decorator(CliState)


@main.group()
def users() -> None:
    """Create, list and change users."""


@users.command("create")
@click.argument("username")
@click.option("--role", "roles", multiple=True, help="Role to grant (repeatable, or a,b).")
@click.option("--group", "groups", multiple=True, help="Group to join (repeatable).")
@click.option("--permission", "permissions", multiple=True, help="Direct grant resource:action.")
@click.option("--email", default="")
@click.option("--first-name", default="")
@click.option("--last-name", default="")
@click.option("--disabled", is_flag=True, help="Create the user disabled.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--no-password", is_flag=True, help="Create without a password (cannot log in).")
@pass_state
def users_create(
    state: CliState,
    username: str,
    roles: tuple[str, ...],
    groups: tuple[str, ...],
    permissions: tuple[str, ...],
    email: str,
    first_name: str,
    last_name: str,
    disabled: bool,
    password_stdin: bool,
    no_password: bool,
) -> None:
    """Create a user."""
    with _user_errors():
        # Validate the name before asking for a password nobody will use.
        name = normalize_username(username)
        if state.store.get_user(name) is not None:
            raise click.ClickException(f"user {name!r} already exists")
        password = None if no_password else _read_password(password_stdin)
        user = state.run(
            create_flow(
                name,
                password,
                actor=CLI,
                passwordless=no_password,
                roles_order=state.roles,
                roles=_split(roles),
                groups=_split(groups),
                permissions=_split(permissions),
                email=email,
                first_name=first_name,
                last_name=last_name,
                enabled=not disabled,
            )
        )
    click.echo(f"created user {user.username} (roles: {', '.join(sorted(user.roles)) or '-'})")


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_state
def users_list(state: CliState, as_json: bool) -> None:
    """List users."""
    with _user_errors():
        everyone = state.run(iter_users())
    if as_json:
        click.echo(json.dumps([u.to_public_dict() for u in everyone], indent=2))
        return
    rows = [
        (
            u.username,
            ",".join(sorted(u.roles)) or "-",
            ",".join(sorted(u.groups)) or "-",
            "yes" if u.enabled else "no",
            u.email or "-",
        )
        for u in everyone
    ]
    _table(("USERNAME", "ROLES", "GROUPS", "ENABLED", "EMAIL"), rows)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


@users.command("show")
@click.argument("username")
@pass_state
def users_show(state: CliState, username: str) -> None:
    """Show one user as JSON (never the password hash)."""
    with _user_errors():
        user = _existing(state, username)
    click.echo(json.dumps(user.to_public_dict(), indent=2))


def _existing(state: CliState, username: str) -> User:
    """The user named, or the CLI's one "no user named ..." error."""
    user = state.store.get_user(normalize_username(username))
    if user is None:
        raise UserNotFound(f"no user named {username!r}")
    return user


def _update(state: CliState, username: str, **changes: Any) -> User:
    with _user_errors():
        protected = state.settings.protected_usernames
        flow = update_flow(username, state.roles, protected=protected, actor=CLI, **changes)
        return state.run(flow)


@users.command("set-role")
@click.argument("username")
@click.argument("roles", nargs=-1, required=True)
@pass_state
def users_set_role(state: CliState, username: str, roles: tuple[str, ...]) -> None:
    """Replace a user's roles (refuses to demote the last enabled admin)."""
    user = _update(state, username, roles=_split(roles))
    click.echo(f"{user.username}: roles {', '.join(sorted(user.roles))}")


@users.command("enable")
@click.argument("username")
@pass_state
def users_enable(state: CliState, username: str) -> None:
    """Enable a user."""
    user = _update(state, username, enabled=True)
    click.echo(f"{user.username}: enabled")


@users.command("disable")
@click.argument("username")
@pass_state
def users_disable(state: CliState, username: str) -> None:
    """Disable a user and end their sessions (refuses the last enabled admin)."""
    user = _update(state, username, enabled=False)
    click.echo(f"{user.username}: disabled")


@users.command("set-email")
@click.argument("username")
@click.argument("address")
@click.option(
    "--verified", is_flag=True, help="Mark the address confirmed (you checked it yourself)."
)
@pass_state
def users_set_email(state: CliState, username: str, address: str, verified: bool) -> None:
    """Set a user's email address: unconfirmed until they follow a verification link,
    or with --verified."""
    user = _update(state, username, email=address, email_verified=verified)
    state_word = "confirmed" if user.email_verified else "not confirmed yet"
    click.echo(f"{user.username}: email {user.email or '-'} ({state_word})")


@users.command("verify-email")
@click.argument("username")
@pass_state
def users_verify_email(state: CliState, username: str) -> None:
    """Mark a user's email address confirmed (for accounts made before
    AUTHGATE_REQUIRE_VERIFIED_EMAIL was turned on, say)."""
    with _user_errors():
        if not _existing(state, username).email:
            raise click.ClickException(f"{username!r} has no email address: set-email first")
    user = _update(state, username, email_verified=True)
    click.echo(f"{user.username}: email {user.email} confirmed")


@users.command("passwd")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@pass_state
def users_passwd(state: CliState, username: str, password_stdin: bool) -> None:
    """Set a user's password (ends all their sessions)."""
    with _user_errors():
        name = _existing(state, username).username
        user = state.run(set_password_flow(name, _read_password(password_stdin), actor=CLI))
    click.echo(f"{user.username}: password changed")


@users.command("delete")
@click.argument("username")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_state
def users_delete(state: CliState, username: str, yes: bool) -> None:
    """Delete a user and their sessions (refuses the last enabled admin)."""
    with _user_errors():
        name = normalize_username(username)
        if not yes and sys.stdin.isatty():
            click.confirm(f"Delete user {name}?", abort=True)
        protected = state.settings.protected_usernames
        state.run(delete_flow(name, state.roles, protected=protected, actor=CLI))
    click.echo(f"deleted user {name}")


@main.group()
def keys() -> None:
    """Create, list and revoke API keys."""


def _owner(state: CliState, username: str) -> Identity:
    """The user as a login would make them: with the grants of their stored groups too,
    so a key may be narrowed to any of them (as `Gate.create_api_key` allows)."""
    user = _existing(state, username)
    extra = state.run(group_grants(state.policy, user.groups))
    return identity_from_user(state.policy, user, "", {"sub": user.username}, extra)


@keys.command("create")
@click.argument("username")
@click.option("--name", required=True, help="What the key is for.")
@click.option(
    "--permission",
    "permissions",
    multiple=True,
    help="Narrow the key to this grant (repeatable); default: all of the user's.",
)
@click.option("--expires-in", type=int, default=None, help="Lifetime in seconds.")
@pass_state
def keys_create(
    state: CliState,
    username: str,
    name: str,
    permissions: tuple[str, ...],
    expires_in: int | None,
) -> None:
    """Create an API key; it is printed once and cannot be shown again."""
    with _user_errors():
        owner = _owner(state, username)
        key, described = state.run(
            create_api_key(owner, name, _split(permissions) or None, expires_in, Client())
        )
    click.echo(key)
    click.echo(
        f"created key {described.id} for {owner.username}: store it now, it is shown only once",
        err=True,
    )


@keys.command("list")
@click.argument("username")
@pass_state
def keys_list(state: CliState, username: str) -> None:
    """List a user's API keys (never the keys themselves)."""
    with _user_errors():
        found = state.run(list_api_keys(_existing(state, username).username))
    rows = [
        (
            k.id,
            k.name,
            " ".join(k.permissions) or "(all)",
            k.expires_at.isoformat() if k.expires_at else "never",
        )
        for k in found
    ]
    _table(("ID", "NAME", "PERMISSIONS", "EXPIRES"), rows)


@keys.command("revoke")
@click.argument("username")
@click.argument("key_id")
@pass_state
def keys_revoke(state: CliState, username: str, key_id: str) -> None:
    """Revoke one of a user's API keys."""
    with _user_errors():
        owner = _existing(state, username).username
        done = state.run(revoke_api_key(owner, key_id, Client()))
    if not done:
        raise click.ClickException(f"{username} has no API key {key_id!r}")
    click.echo(f"revoked key {key_id}")


@main.group()
def sessions() -> None:
    """Any user's login sessions: list them, end one or all."""


@sessions.command("list")
@click.argument("username")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_state
def sessions_list(state: CliState, username: str, as_json: bool) -> None:
    """List a user's live login sessions, oldest first."""
    with _user_errors():
        found = state.gate.list_sessions(_existing(state, username).username)
    if as_json:
        click.echo(json.dumps([s.to_public_dict() for s in found], indent=2))
        return
    rows = [
        (s.id, s.created_at.isoformat(timespec="seconds"),
         s.last_seen.isoformat(timespec="seconds"), s.client_ip or "-", s.user_agent or "-")
        for s in found
    ]  # fmt: skip
    _table(("ID", "CREATED", "LAST SEEN", "ADDRESS", "USER AGENT"), rows)


@sessions.command("revoke")
@click.argument("username")
@click.argument("session_id", required=False)
@click.option("--all", "every", is_flag=True, help="End every session of the user.")
@pass_state
def sessions_revoke(state: CliState, username: str, session_id: str | None, every: bool) -> None:
    """End one of a user's sessions (SESSION_ID), or all of them (--all)."""
    if bool(session_id) == every:
        raise click.UsageError("name one SESSION_ID, or give --all")
    with _user_errors():
        owner = _existing(state, username).username
        if every:
            count = state.run(revoke_sessions(owner, Client(), actor=CLI))
            click.echo(f"ended {count} session{'s' if count != 1 else ''} of {owner}")
            return
        assert session_id is not None
        done = state.run(revoke_session(owner, session_id, Client(), actor=CLI, kind=LOGIN))
    if not done:
        raise click.ClickException(f"{username} has no session {session_id!r}")
    click.echo(f"ended session {session_id}")


@main.group()
def mfa() -> None:
    """Users' second factors: what they have, and an admin's reset."""


@mfa.command("status")
@click.argument("username")
@pass_state
def mfa_status_command(state: CliState, username: str) -> None:
    """What second factors a user has (never a secret)."""
    with _user_errors():
        user = _existing(state, username)
    status = mfa_status(None, state.gate.rules, user)
    click.echo(json.dumps(status, indent=2))


@mfa.command("reset")
@click.argument("username")
@pass_state
def mfa_reset(state: CliState, username: str) -> None:
    """Remove a user's second factors: they log in with the password alone, and enrol
    again when a role of theirs requires it."""
    with _user_errors():
        name = _existing(state, username).username
        state.run(reset_factors(name, CLI, Client()))
    click.echo(f"{name}: second factors removed")


@main.group()
def groups() -> None:
    """Groups kept in the store: list, create, delete; add and remove members."""


@groups.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_state
def groups_list(state: CliState, as_json: bool) -> None:
    """List the groups kept in the store, and the policy's own."""
    with _user_errors():
        kept = state.gate.list_groups()
    defined = state.policy.group_permissions
    rows = [(g.name, " ".join(sorted(g.permissions)) or "-", "store") for g in kept]
    rows += [(name, " ".join(sorted(p)) or "-", "policy") for name, p in sorted(defined.items())]
    if as_json:
        keys = ("name", "permissions", "kept in")
        click.echo(json.dumps([dict(zip(keys, row, strict=True)) for row in rows], indent=2))
        return
    _table(("GROUP", "PERMISSIONS", "KEPT IN"), rows)


@groups.command("create")
@click.argument("name")
@click.argument("permissions", nargs=-1)
@click.option("--description", default="", help="What the group is for.")
@pass_state
def groups_create(
    state: CliState, name: str, permissions: tuple[str, ...], description: str
) -> None:
    """Create (or replace) a group granting PERMISSIONS (resource:action ...)."""
    with _user_errors():
        saved = state.gate.save_group(name, list(permissions), description, actor=CLI)
    click.echo(f"saved group {saved.name} ({len(saved.permissions)} permissions)")


@groups.command("delete")
@click.argument("name")
@pass_state
def groups_delete(state: CliState, name: str) -> None:
    """Delete a group kept in the store."""
    with _user_errors():
        state.gate.delete_group(name, actor=CLI)
    click.echo(f"deleted group {name}")


def _members(state: CliState, name: str, usernames: tuple[str, ...], add: bool) -> None:
    group = normalize_group_name(name)
    with _user_errors():
        for username in usernames:
            user = _existing(state, username)
            changed = user.groups | {group} if add else user.groups - {group}
            if changed != user.groups:
                _update(state, user.username, groups=sorted(changed))
    click.echo(f"{'added to' if add else 'removed from'} {group}: {', '.join(usernames)}")


@groups.command("add")
@click.argument("name")
@click.argument("usernames", nargs=-1, required=True)
@pass_state
def groups_add(state: CliState, name: str, usernames: tuple[str, ...]) -> None:
    """Make users members of a group."""
    _members(state, name, usernames, add=True)


@groups.command("remove")
@click.argument("name")
@click.argument("usernames", nargs=-1, required=True)
@pass_state
def groups_remove(state: CliState, name: str, usernames: tuple[str, ...]) -> None:
    """Take users out of a group."""
    _members(state, name, usernames, add=False)


@main.group()
def roles() -> None:
    """The deployment's roles: which include which, and what each grants."""


@roles.command("list")
@pass_state
def roles_list(state: CliState) -> None:
    """Every role, lowest first, with the roles it includes."""
    hierarchy = state.policy.hierarchy
    direct = dict(hierarchy.includes) if hierarchy.includes else {}
    rows = []
    for i, name in enumerate(hierarchy.order):
        below = direct.get(name, ()) if direct else hierarchy.order[i - 1 : i]
        rows.append((name, ", ".join(below) or "-", "yes" if name == hierarchy.top else ""))
    _table(("ROLE", "INCLUDES", "TOP"), rows)


@roles.command("show")
@click.argument("role")
@pass_state
def roles_show(state: CliState, role: str) -> None:
    """What a role grants (its own and through the roles it includes), and which
    roles include it."""
    hierarchy = state.policy.hierarchy
    with _user_errors():
        (name,) = hierarchy.known([role])
    click.echo(f"role {name}")
    click.echo(f"  includes: {', '.join(sorted(hierarchy.implied({name}) - {name})) or '-'}")
    click.echo(f"  included by: {', '.join(sorted(hierarchy.including(name))) or '-'}")
    for source in sorted(hierarchy.implied({name}), key=lambda r: (hierarchy.rank(r), r)):
        grants = sorted(state.policy.role_permissions.get(source, ()))
        via = "" if source == name else f" (from {source})"
        for grant in grants:
            click.echo(f"  grants {grant}{via}")


@main.group()
def policy() -> None:
    """Role policies: check a file before deploying it; explain a decision."""


@policy.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
def policy_check(file: str) -> None:
    """Load a role policy file (.toml, .yaml, .json) as the Gate would, starting nothing;
    exit 1 with the file and key at fault."""
    with _user_errors():
        loaded = RolePolicy.from_file(file)
    order = loaded.hierarchy.describe()
    grants = sum(len(p) for p in loaded.role_permissions.values())
    groups = len(loaded.group_permissions)
    click.echo(f"{file}: ok (roles {order}; {grants} role grants, {groups} groups)")


@policy.command("explain")
@click.argument("username")
@click.argument("permission")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@pass_state
def policy_explain(state: CliState, username: str, permission: str, as_json: bool) -> None:
    """Say whether USERNAME holds PERMISSION (resource:action) and why: every grant with
    its role, group or direct source; for a refusal, what would allow it.  Exit 0
    either way (1 for an unknown user or a malformed permission)."""
    with _user_errors():
        explained = state.gate.explain(username, permission)
    click.echo(json.dumps(explained.to_dict(), indent=2) if as_json else str(explained))


@main.group()
def db() -> None:
    """A store's schema: a SQL store's tables or a Redis store's key layout; create,
    upgrade, and say which revision they are at."""


def _redis_store(state: CliState) -> Any:
    """The Redis store the URL names (not yet checked), or None for another store."""
    from urllib.parse import urlsplit

    url = state.settings.store
    if urlsplit(url).scheme.lower().partition("+")[0] not in ("redis", "rediss", "unix"):
        return None
    from .stores.redis import RedisStore

    with _user_errors():
        return RedisStore(url, check=False)


def _redis_schema(state: CliState, upgrade: bool) -> bool:
    """`db upgrade` or `db current` on a Redis store; False when the store is not one."""
    store = _redis_store(state)
    if store is None:
        return False
    from .stores.redis.faces import layout_version, upgrade_layout
    from .stores.redis.layout import LAYOUT

    try:
        with _user_errors():
            found = upgrade_layout(store) if upgrade else layout_version(store)
    finally:
        store.close()
    if upgrade:
        done = "nothing to do" if found in (LAYOUT, None) else f"upgraded from layout {found}"
        click.echo(f"the Redis store's keys are at layout {LAYOUT}; {done}")
    else:
        none = f"no authgate keys here yet (they will be written at layout {LAYOUT})"
        _say_current(found and f"layout {found}", f"layout {LAYOUT}", none)
    return True


def _say_current(at: str | None, head: str, none: str) -> None:
    """What `db current` says: where the schema is, against the newest."""
    if at is None:
        click.echo(none)
    elif at == head:
        click.echo(f"{at} (head)")
    else:
        click.echo(f"{at} (behind {head}: run `authgate db upgrade`)")


def _sql_settings(state: CliState) -> Any:
    from .stores import is_sql_url

    url = state.settings.store
    if not is_sql_url(url):
        raise click.ClickException(
            "the store is neither a SQL database (postgresql://, mysql://, mariadb://) "
            "nor Redis: it has no schema to migrate"
        )
    from .stores.sql import parse_sql_url

    with _user_errors():
        return parse_sql_url(url)


@contextmanager
def _database(state: CliState) -> Iterator[tuple[Any, Any]]:
    """The SQL store's settings and a migration engine, with database failures told
    as one line (host and port, never the password)."""
    import sqlalchemy as sa

    from .stores.sql.faces import _failure, migration_engine

    settings = _sql_settings(state)
    engine = migration_engine(settings)
    try:
        with _user_errors():
            try:
                yield settings, engine
            except sa.exc.SQLAlchemyError as err:
                raise _failure(settings, err) from err
    finally:
        engine.dispose()


@db.command("upgrade")
@click.argument("revision", default="head")
@pass_state
def db_upgrade(state: CliState, revision: str) -> None:
    """Create authgate's tables or bring them to REVISION (default: the newest); on
    Redis, bring the key layout to this version's."""
    if _redis_schema(state, upgrade=True):
        return
    from .stores.sql import migrate

    with _database(state) as (settings, engine):
        before = migrate.current(engine, settings.prefix, settings.schema)
        migrate.upgrade(engine, revision, settings.prefix, settings.schema)
        after = migrate.current(engine, settings.prefix, settings.schema)
    if before == after:
        click.echo(f"authgate's tables are at {after}; nothing to do")
    else:
        click.echo(f"upgraded authgate's tables from {before or 'nothing'} to {after}")


@db.command("current")
@pass_state
def db_current(state: CliState) -> None:
    """Say which revision authgate's tables (or Redis key layout) are at, and whether
    it is the newest."""
    if _redis_schema(state, upgrade=False):
        return
    from .stores.sql import migrate

    with _database(state) as (settings, engine):
        at = migrate.current(engine, settings.prefix, settings.schema)
    head = migrate.head()
    _say_current(
        at, head, f"no authgate tables here; `authgate db upgrade` creates them (at {head})"
    )


@main.command("bootstrap")
@pass_state
def bootstrap(state: CliState) -> None:
    """Ensure an enabled admin exists, seeding one from AUTHGATE_SUPERUSER_*."""
    with _user_errors():
        done = state.run(bootstrap_flow(state.settings, state.roles))
    messages: dict[str, Callable[[str], str]] = {
        "exists": lambda name: f"an enabled admin exists ({name}); nothing to do",
        "created": lambda name: f"created admin {name}",
        "promoted": lambda name: f"made {name} an enabled admin with the given password",
    }
    click.echo(messages[done.action](done.username))


def bound_group(
    state: Callable[[], CliState],
    *,
    name: str = "authgate",
    wrap: Callable[[Callable[..., None]], Callable[..., None]] = lambda callback: callback,
) -> click.Group:
    """The CLI's commands as a group run against `state` (a framework's own gate):
    ``flask authgate ...``, ``manage.py authgate ...``.  `wrap` decorates the group's
    callback (Flask's ``with_appcontext``)."""

    @click.pass_context
    def callback(ctx: click.Context) -> None:
        ctx.obj = state()
        ctx.call_on_close(ctx.obj.close)

    group = click.Group(
        name,
        callback=wrap(callback),
        help="authgate: users, roles, groups, API keys and sessions of this app's store.",
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    for command_name, command in main.commands.items():
        group.add_command(command, command_name)
    return group


if __name__ == "__main__":  # pragma: no cover
    main()
