"""The per-request session check and the identities it builds, as flows (the check
that needs no store read is a plain function, `quick_identity`)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from ..errors import SessionRevoked, UserNotFound
from ..identity import Identity
from ..permissions import Policy, RolePolicy
from ..permissions.explain import (
    Explanation,
    anonymous,
    as_decided,
    disabled,
    explain,
    explain_object,
    object_permission,
)
from ..stores.base import Session, Store
from ..users import User, normalize_username
from .ops import Flow, call
from .sessions import LOGIN, SessionRules


def identity_from_user(
    policy: RolePolicy,
    user: User,
    session_id: str,
    claims: Mapping[str, Any],
    group_grants: frozenset[str] = frozenset(),
) -> Identity:
    """The identity of a user as the store has it now, with effective permissions."""
    grants = policy.permissions_for(user.roles, user.groups, user.permissions | group_grants)
    return Identity(
        username=user.username,
        user_id=user.id,
        roles=user.roles,
        groups=user.groups,
        permissions=grants.grants,
        session_id=session_id,
        claims=claims,
        is_authenticated=True,
        email=user.email,
        full_name=user.display_name or user.full_name,
        user_version=user.version,
        grants=grants,
    )


def identity_from_claims(policy: RolePolicy, claims: Mapping[str, Any]) -> Identity:
    """The identity a token claims, trusted without a store read (stateless mode)."""
    roles = frozenset(claims.get("roles", ()))
    groups = frozenset(claims.get("groups", ()))
    grants = policy.permissions_for(roles, groups, frozenset(claims.get("perms", ())))
    return Identity(
        username=claims["sub"],
        user_id=str(claims.get("uid", "")),
        roles=roles,
        groups=groups,
        permissions=grants.grants,
        session_id=claims["sid"],
        claims=claims,
        is_authenticated=True,
        user_version=claims["ver"],
        grants=grants,
    )


def stored_groups(policy: RolePolicy, groups: frozenset[str]) -> Flow[dict[str, frozenset[str]]]:
    """The grants of each of `groups` kept in the store (those the policy does not
    define; a group that is nowhere is left out)."""
    kept: dict[str, frozenset[str]] = {}
    for name in sorted(groups - policy.group_permissions.keys()):
        found = yield from call(Store.get_group, name)
        if found is not None:
            kept[name] = found.permissions
    return kept


def group_grants(policy: RolePolicy, groups: frozenset[str]) -> Flow[frozenset[str]]:
    """Grants of the user's groups kept in the store (those the policy does not define)."""
    kept = yield from stored_groups(policy, groups)
    return frozenset().union(*kept.values())


def explain_decision(
    policy: RolePolicy,
    who: str | Identity,
    permission: str,
    obj: object | None = None,
    judge: Policy | None = None,
    *,
    key_name: str = "",
    key_lists: frozenset[str] | None = None,
) -> Flow[Explanation]:
    """`explain` for a username or an identity, its verdict the identity's own
    decision (for an API key's identity, `key_name` and `key_lists` are its key's, as
    `explain` takes them); with `obj`, the decision on that object (``permission`` is
    then an action, ``"read"`` or ``"items:read"``): by `judge` when given, else the
    model's hooks, as `check_object` decides."""
    if judge is not None and obj is None:
        raise TypeError("policy= judges an object: pass obj= as well")
    asked = permission if obj is None else object_permission(obj, permission)
    if isinstance(who, str):
        user, kept = yield from _user_and_groups(policy, who)
        told = explain(policy, user, asked, kept)
        if not user.enabled:  # no object is asked about: nothing would let it act
            return disabled(told)
        if obj is None:
            return told
        extra = frozenset().union(*kept.values())
        identity = identity_from_user(policy, user, "", {}, extra)
    elif not who.is_authenticated:
        told, identity = anonymous(asked), who
    else:
        identity = who
        user, kept = yield from _user_and_groups(policy, who.username)
        told = as_decided(
            explain(policy, user, asked, kept, key_name=key_name, key_lists=key_lists), who
        )
    if obj is None:
        return told
    return (yield from explain_object(told, identity, obj, permission, judge))


def _user_and_groups(
    policy: RolePolicy, username: str
) -> Flow[tuple[User, dict[str, frozenset[str]]]]:
    """The user and the grants of their groups kept in the store; `UserNotFound`."""
    user = yield from call(Store.get_user, normalize_username(username))
    if user is None:
        raise UserNotFound()
    kept = yield from stored_groups(policy, user.groups)
    return user, kept


def _live(claims: Mapping[str, Any], session: Session | None, user: User | None) -> User:
    """The user behind a live session, or `SessionRevoked`."""
    if session is None or session.kind != LOGIN or session.username != claims["sub"]:
        raise SessionRevoked()
    if user is None or not user.enabled or user.id != claims.get("uid", user.id):
        raise SessionRevoked()
    return user


def quick_identity(
    rules: SessionRules,
    claims: Mapping[str, Any],
    session: Session | None,
    user: User | None,
) -> Identity | None:
    """The identity when the answer needs no store write or extra read (no ``last_seen``
    due, no store-kept groups); None sends the caller to `load_identity`."""
    live = _live(claims, session, user)
    assert session is not None
    if time.time() - session.last_seen.timestamp() >= rules.touch_interval:
        return None
    if any(group not in rules.policy.group_permissions for group in live.groups):
        return None
    return identity_from_user(rules.policy, live, session.id, claims)


def load_identity(rules: SessionRules, claims: Mapping[str, Any]) -> Flow[Identity]:
    """Check a verified token's session and user in the store; build the identity from
    the user as it is now (so a role change shows on the very next request)."""
    session, user = yield from call(Store.get_session_user, claims["sid"], claims["sub"])
    live = _live(claims, session, user)
    assert session is not None
    now = time.time()
    if now - session.last_seen.timestamp() >= rules.touch_interval:
        yield from call(Store.touch_session, session.id, datetime.fromtimestamp(now, timezone.utc))
    extra = yield from group_grants(rules.policy, live.groups)
    return identity_from_user(rules.policy, live, session.id, claims, extra)
