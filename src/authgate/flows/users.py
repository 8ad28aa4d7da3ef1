"""User administration and start-up seeding, as flows: create, update, set a
password, delete (never the last enabled admin), make sure an admin exists."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from ..audit import AuditEvent
from ..config import Settings
from ..errors import (
    ConfigError,
    LastAdminError,
    ProtectedUser,
    UserExists,
    UserNotFound,
    ValidationError,
    VersionConflict,
)
from ..permissions import RolePolicy, parse_grant
from ..stores.base import Store
from ..users import Group, RoleHierarchy, User, normalize_group_name, normalize_username
from .ops import DeriveScram, Emit, Flow, Hash, call

__all__ = [
    "BOOTSTRAP",
    "Bootstrap",
    "bootstrap",
    "create_user",
    "delete_user",
    "describe_change",
    "enabled_admins",
    "ensure_guest",
    "ensure_superuser",
    "iter_users",
    "password_fields",
    "set_password",
    "update_user",
]

T = TypeVar("T")


def password_fields(password: str, *, rehash: bool = False) -> Flow[dict[str, Any]]:
    """Everything derived from a password: the argon2id hash and the SCRAM-SHA-256
    credentials.  A new password is checked against the policy first; one rehashed at
    login (`rehash`) is not, having just matched its stored hash.  The password itself
    is dropped."""
    password_hash: str = yield Hash(password, rehash=rehash)
    scram: str = yield DeriveScram(password)
    return {"password_hash": password_hash, "scram_credentials": scram}


# -- user administration --------------------------------------------------------------


def iter_users(page_size: int = 200) -> Flow[list[User]]:
    """Every user, read page by page."""
    users: list[User] = []
    after: str | None = None
    while True:
        page = yield from call(Store.list_users, after, page_size)
        users.extend(page.items)
        if page.next_after is None:
            return users
        after = page.next_after


def enabled_admins(roles: RoleHierarchy) -> Flow[list[User]]:
    """The enabled users holding the top role of `roles`."""
    users = yield from iter_users()
    return [u for u in users if u.enabled and roles.top in u.roles]


def _get(username: str) -> Flow[User]:
    user = yield from call(Store.get_user, normalize_username(username))
    if user is None:
        raise UserNotFound()
    return user


def create_user(
    username: str,
    password: str | None,
    *,
    roles: Iterable[str] = (),
    actor: str = "",
    roles_order: RoleHierarchy | None = None,
    passwordless: bool = False,
    **fields: Any,
) -> Flow[User]:
    """Validate, hash the password and insert a new user; `actor` (who did it) goes into
    the ``user_created`` audit event.  With `roles_order`, every role must be one of its
    roles.

    A user without a password (say, a service account that only uses API keys) is
    created only when asked for with ``passwordless=True``: a forgotten password is an
    error, not an account nobody can log in to.
    """
    if password is None and not passwordless:
        raise ValidationError(
            "a password is required (an account without one, say for API keys only, "
            "is asked for as passwordless)",
            field="password",
        )
    if password is not None and passwordless:
        raise ValidationError("give a password or ask for passwordless, not both", field="password")
    if roles_order is not None:
        roles = roles_order.known(roles)
    _check_grants(fields.get("permissions"))
    user = User.new(username, roles=roles, **fields)  # validate before the costly hash
    if password is not None:
        secrets_ = yield from password_fields(password)
        user = User.new(username, roles=roles, **secrets_, **fields)
    created = yield from call(Store.create_user, user)
    detail = f"roles={','.join(sorted(created.roles)) or '-'}" + (
        "" if password is not None else " no password"
    )
    yield Emit(AuditEvent("user_created", created.username, actor=actor, detail=detail))
    return created


# Fields whose old and new values an audit event shows; others are only named.
_SHOWN = ("roles", "groups", "permissions", "enabled")


def describe_change(before: User, after: User) -> str:
    """What a write changed, for the audit line: ``roles: viewer -> admin; email``."""
    parts = []
    for name in ("roles", "groups", "permissions", "enabled", "email", "first_name",
                 "last_name", "display_name"):  # fmt: skip
        old, new = getattr(before, name), getattr(after, name)
        if old == new:
            continue
        if name in _SHOWN:
            shown = [",".join(sorted(v)) or "-" if isinstance(v, frozenset) else str(v).lower()
                     for v in (old, new)]  # fmt: skip
            parts.append(f"{name}: {shown[0]} -> {shown[1]}")
        else:
            parts.append(name)
    if before.password_hash != after.password_hash:
        parts.append("password")
    return "; ".join(parts) or "nothing"


# Changes that may remove an enabled admin take this counter as a lock, on every store:
# two admins demoting each other at the same moment must not both pass the check.
_ADMIN_LOCK = "admin-change-lock"
_ADMIN_LOCK_SECONDS = 10


def _admin_guarded(
    before: User, after: User | None, roles: RoleHierarchy, write: Flow[T]
) -> Flow[T]:
    """Make the `write` that changes `before` into `after` (None: deletes it), refusing
    it when it would leave no enabled admin.  The check and the write run under the
    admin lock, so concurrent changes to the admins are judged one at a time."""
    was_admin = before.enabled and roles.top in before.roles
    still_admin = after is not None and after.enabled and roles.top in after.roles
    if not was_admin or still_admin:
        return (yield from write)
    holders = yield from call(Store.incr, _ADMIN_LOCK, _ADMIN_LOCK_SECONDS)
    if holders > 1:
        raise VersionConflict("another change to the admins is under way: try again")
    try:
        admins = yield from enabled_admins(roles)
        if not [u for u in admins if u.username != before.username]:
            raise LastAdminError(
                f"refused: {before.username} is the last enabled {roles.top}; "
                f"make another user {roles.top} first"
            )
        result = yield from write
    except GeneratorExit:  # the driver gave up on the flow: the lock expires by itself
        raise
    except BaseException:
        yield from call(Store.reset_counter, _ADMIN_LOCK)
        raise
    yield from call(Store.reset_counter, _ADMIN_LOCK)
    return result


def update_user(
    username: str,
    roles_order: RoleHierarchy,
    *,
    expected_version: int | None = None,
    protected: frozenset[str] = frozenset(),
    password: str | None = None,
    actor: str = "",
    **changes: Any,
) -> Flow[User]:
    """Apply `changes` to a user (roles, groups, enabled, profile fields), and a new
    `password` in the same write (every session then ends).

    With `expected_version`, refuse (`VersionConflict`) if the user changed since the
    caller read it.  Refuses to remove or disable the last enabled admin.
    """
    if "password" in changes or "password_hash" in changes:
        raise ValidationError("use set_password to change a password", field="password")
    if changes.get("roles") is not None:
        changes["roles"] = roles_order.known(changes["roles"])
    _check_grants(changes.get("permissions"))
    user = yield from _get(username)
    if expected_version is not None and user.version != expected_version:
        raise VersionConflict()
    if password is not None:
        changes.update((yield from password_fields(password)))
    updated = user.changed(**changes)
    if user.username in protected and (
        not updated.enabled or not roles_order.admits(updated.roles, roles_order.top)
    ):
        raise ProtectedUser()
    saved: User = yield from _admin_guarded(
        user, updated, roles_order, call(Store.update_user, updated, user.version)
    )
    if (not updated.enabled and user.enabled) or password is not None:
        yield from call(Store.revoke_user_sessions, user.username, None)
    detail = describe_change(user, saved)
    yield Emit(AuditEvent("user_updated", saved.username, actor=actor, detail=detail))
    return saved


def set_password(
    username: str,
    password: str,
    *,
    keep_session: str | None = None,
    expected_version: int | None = None,
    actor: str = "",
) -> Flow[User]:
    """Set a new password; every session except `keep_session` is revoked.  With
    `expected_version`, refuse (`VersionConflict`) if the user changed since."""
    user = yield from _get(username)
    if expected_version is not None and user.version != expected_version:
        raise VersionConflict()
    secrets_ = yield from password_fields(password)
    saved = yield from call(Store.update_user, user.changed(**secrets_), user.version)
    yield from call(Store.revoke_user_sessions, user.username, keep_session)
    if actor:  # an admin's reset (a user's own change is audited as password_change)
        yield Emit(AuditEvent("password_reset", saved.username, actor=actor))
    return saved


def delete_user(
    username: str,
    roles_order: RoleHierarchy,
    *,
    acting: str | None = None,
    protected: frozenset[str] = frozenset(),
    expected_version: int | None = None,
    actor: str = "",
) -> Flow[None]:
    """Delete a user and its sessions; refuse to delete yourself, the last admin or a
    protected (root) user.  With `expected_version`, refuse (`VersionConflict`) if the
    user changed since."""
    user = yield from _get(username)
    if expected_version is not None and user.version != expected_version:
        raise VersionConflict()
    if user.username in protected:
        raise ProtectedUser()
    if acting is not None and normalize_username(acting) == user.username:
        raise LastAdminError("refused: you cannot delete your own account")
    # The record judged (protected? the last admin?) is the one deleted, or none is.
    delete = call(Store.delete_user, user.username, user.version)
    yield from _admin_guarded(user, None, roles_order, delete)
    roles = ",".join(sorted(user.roles)) or "-"
    yield Emit(AuditEvent("user_deleted", user.username, actor=actor, detail=f"roles={roles}"))


def _setting(parse: Callable[[str], T], value: str, variable: str) -> T:
    """`parse(value)`, a refusal naming the setting it came from."""
    try:
        return parse(value)
    except ValidationError as err:
        raise ConfigError(f"{variable}: {err.detail}") from None


def _seed_password(password: str, who: str) -> Flow[dict[str, Any]]:
    try:
        return (yield from password_fields(password))
    except ValidationError as err:
        raise ConfigError(f"AUTHGATE_{who}_PASSWORD: {err.detail}") from None


def ensure_guest(
    username: str,
    password: str | None,
    roles_order: RoleHierarchy,
    role: str | None = None,
) -> Flow[bool]:
    """Create the guest user (PlantDB's) on first run; True when it was created.  Its
    role is `role`, one of `roles_order`'s, else the lowest (read-only by default).
    Without a password the guest exists for ownership and sharing but cannot log in."""
    name = _setting(normalize_username, username, "AUTHGATE_GUEST_USERNAME")
    role = _guest_role(roles_order, role)
    existing = yield from call(Store.get_user, name)
    if existing is not None:
        return False
    secrets_ = {} if password is None else (yield from _seed_password(password, "GUEST"))
    try:
        yield from call(Store.create_user, User.new(name, roles=[role], **secrets_))
    except UserExists:  # another worker seeded it a moment ago
        return False
    yield Emit(AuditEvent("user_created", name, actor=BOOTSTRAP, detail=f"roles={role}"))
    return True


def _guest_role(roles_order: RoleHierarchy, role: str | None) -> str:
    if role is None:
        return roles_order.order[0]
    (known,) = _setting(roles_order.known, role, "AUTHGATE_GUEST_ROLE")
    return known


#: The actor of the changes start-up seeding makes, in audit events.
BOOTSTRAP = "bootstrap"


@dataclass(frozen=True, slots=True)
class Bootstrap:
    """What `ensure_superuser` did: ``"exists"``, ``"created"`` or ``"promoted"``."""

    action: str
    username: str


def ensure_superuser(
    username: str | None, password: str | None, roles_order: RoleHierarchy
) -> Flow[Bootstrap]:
    """Make sure an enabled admin exists, seeding one from the given credentials.

    An existing user of that name is made an enabled admin with the given password.
    With no admin and no credentials, raise `ConfigError` naming the variables.
    """
    admins = yield from enabled_admins(roles_order)
    if admins:
        return Bootstrap("exists", admins[0].username)
    if not username or not password:
        raise ConfigError(
            "no enabled admin exists: set AUTHGATE_SUPERUSER_USERNAME and "
            "AUTHGATE_SUPERUSER_PASSWORD to seed one (or run "
            "`authgate users create NAME --role admin`)"
        )
    name = _setting(normalize_username, username, "AUTHGATE_SUPERUSER_USERNAME")
    existing = yield from call(Store.get_user, name)
    secrets_ = yield from _seed_password(password, "SUPERUSER")
    # Every worker of a fresh deployment may get here at once: losing the race to create
    # or promote the admin is success, as long as the admin now exists.
    try:
        if existing is None:
            yield from call(Store.create_user, User.new(name, roles=[roles_order.top], **secrets_))
            detail = f"roles={roles_order.top}"
            yield Emit(AuditEvent("user_created", name, actor=BOOTSTRAP, detail=detail))
            return Bootstrap("created", name)
        promoted = existing.changed(
            roles=existing.roles | {roles_order.top}, enabled=True, **secrets_
        )
        saved = yield from call(Store.update_user, promoted, existing.version)
        detail = describe_change(existing, saved)
        yield Emit(AuditEvent("user_updated", name, actor=BOOTSTRAP, detail=detail))
        return Bootstrap("promoted", name)
    except (UserExists, VersionConflict):
        now = yield from call(Store.get_user, name)
        if now is None or not now.enabled or roles_order.top not in now.roles:
            raise
        return Bootstrap("exists", name)


def bootstrap(settings: Settings, roles: RoleHierarchy | None = None) -> Flow[Bootstrap]:
    """Everything start-up seeds from `settings`, the one way every entry point does it
    (`Gate.ensure_superuser`, `AsyncGate.ensure_superuser(_now)`,
    `authgate.bootstrap.ensure_superuser`, ``authgate bootstrap``): an enabled admin
    (`ensure_superuser`), then the guest user when one is configured.  Safe to run from
    every worker at once.  `roles`: the role order (default: the configured policy's)."""
    if roles is None:
        roles = RolePolicy.from_settings(settings).hierarchy
    if settings.guest_username:  # a bad guest setting is refused before the admin is made
        _setting(normalize_username, settings.guest_username, "AUTHGATE_GUEST_USERNAME")
        _guest_role(roles, settings.guest_role)
    done = yield from ensure_superuser(
        settings.superuser_username, settings.superuser_password, roles
    )
    if settings.guest_username:
        yield from ensure_guest(
            settings.guest_username, settings.guest_password, roles, settings.guest_role
        )
    return done


def _check_grants(grants: Iterable[str] | None) -> None:
    """Refuse a grant the permission checks would refuse: stored, it would make every
    request of its user a 400 (the HTTP API, the CLI and Python all write through here)."""
    if grants is None or isinstance(grants, str):
        return  # None: unchanged; one string: the record's own check names it
    for grant in grants:
        try:
            parse_grant(grant)
        except ValidationError as err:
            raise ValidationError(err.detail, field="permissions") from None


def save_group(group: Group, actor: str = "") -> Flow[Group]:
    """Create or replace a group kept in the store (its grants checked first)."""
    for grant in group.permissions:
        parse_grant(grant)
    saved = yield from call(Store.put_group, group)
    detail = f"permissions={','.join(sorted(group.permissions)) or '-'}"
    yield Emit(AuditEvent("group_saved", "", actor=actor, detail=f"group={group.name} {detail}"))
    return saved


def delete_group(name: str, actor: str = "") -> Flow[None]:
    """Delete a group kept in the store (`NotFound` when there is none); its members keep
    the name in their groups, granting nothing until a group of that name exists again."""
    group = normalize_group_name(name)
    yield from call(Store.delete_group, group)
    yield Emit(AuditEvent("group_deleted", "", actor=actor, detail=f"group={group}"))
