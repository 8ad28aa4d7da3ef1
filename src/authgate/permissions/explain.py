"""Why a user may or may not do something: every effective grant with where it comes
from (a role, and the role that brought it in; a group; a direct grant; the list of the
API key the request came with), those that decide, and, for a refusal, what refused it
(the key's narrowing, a model's hook, a policy) and what would allow it.

`explain` is the decision on a permission; `explain_object` adds the decision on one
object, written as steps like `authgate.permissions.objects.object_verdict` (an
``async def`` hook's answer is a `Settle` for the driver to await)."""

from __future__ import annotations

import dataclasses
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..identity import Identity
from ..users import User
from .grants import PermissionSet, parse_grant
from .objects import Settle, object_verdict, split_action
from .policies import Policy
from .roles import RolePolicy

__all__ = [
    "Explanation",
    "Source",
    "anonymous",
    "as_decided",
    "explain",
    "explain_object",
    "object_permission",
]


@dataclass(frozen=True, slots=True)
class Source:
    """One reason in an explanation.  For a grant the user holds: ``via`` is
    ``"role"``, ``"group"`` or ``"direct"``, ``name`` the role or group, ``through``
    the role the user holds that includes ``name`` (empty when the user holds ``name``
    itself).  ``via="api-key"``: ``grant`` is a permission the API key ``name`` lists.
    ``via="object-hook"``: the hook ``name`` (``Doc.has_object_permission``) was asked
    about the action ``grant``; ``via="policy"``: the policy ``name`` judged the object.
    In `Explanation.matched` a source allowed, in `Explanation.refused_by` it refused."""

    grant: str
    via: str
    name: str = ""
    through: str = ""

    def __str__(self) -> str:
        if self.via == "direct":
            return f"{self.grant} (a direct grant)"
        if self.via == "api-key":
            return f"{self.grant} (listed by API key {self.name})"
        if self.via == "object-hook":
            return f"{self.grant} (allowed by {self.name})"
        if self.via == "policy":
            return f"{self.grant} (allowed by the policy: {self.name})"
        where = f"{self.via} {self.name}"
        if self.through:
            where += f", included by role {self.through}"
        return f"{self.grant} (from {where})"

    def refusal(self) -> str:
        """How this source reads as the reason for a refusal."""
        if self.via == "api-key":
            return f"{self.grant} (narrowed away by API key {self.name})"
        if self.via == "policy":
            return f"{self.grant} (refused by the policy: {self.name})"
        return f"{self.grant} (refused by {self.name})"

    def to_dict(self) -> dict[str, str]:
        """A JSON-ready view."""
        out = {"grant": self.grant, "via": self.via}
        if self.name:
            out["name"] = self.name
        if self.through:
            out["through"] = self.through
        return out


@dataclass(frozen=True, slots=True)
class Explanation:
    """A decision on ``permission`` for ``username``, with its reasons."""

    username: str
    permission: str
    allowed: bool
    #: Every grant the user holds, with its source (and what their API key lists).
    grants: tuple[Source, ...]
    #: What decided for ``permission`` (empty: refused).
    matched: tuple[Source, ...]
    #: For a refusal: what would allow it (``role editor``, ``group lab``, a direct grant).
    would_allow: tuple[str, ...] = field(default=())
    #: For a refusal despite a grant, or by an object's judge: who refused.
    refused_by: tuple[Source, ...] = field(default=())
    #: The name of the API key the identity came with.
    api_key: str = ""
    #: The class of the object judged.
    on: str = ""
    #: Said when the identity's own decision differs from the store's grants today.
    note: str = ""

    def __str__(self) -> str:
        verdict = "allowed" if self.allowed else "refused"
        who = self.username or "an anonymous identity"
        head = self.permission + (f" on {self.on}" if self.on else "") + f" for {who}"
        lines = [head + (f" by API key {self.api_key}" if self.api_key else "") + f": {verdict}"]
        if self.note:
            lines.append(f"note: {self.note}")
        if self.matched:
            lines += ["because of:", *(f"  {source}" for source in self.matched)]
        if self.refused_by:
            lines += ["refused by:", *(f"  {source.refusal()}" for source in self.refused_by)]
        if self.would_allow:
            lines += ["it would be allowed by:", *(f"  {way}" for way in self.would_allow)]
        lines += ["grants held:", *(f"  {source}" for source in self.grants or ("(none)",))]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (the HTTP API's and the CLI's ``--json``); the keys of an
        API key, an object or a note appear only when they apply."""
        out: dict[str, Any] = {
            "username": self.username,
            "permission": self.permission,
            "allowed": self.allowed,
            "matched": [source.to_dict() for source in self.matched],
            "would_allow": list(self.would_allow),
            "grants": [source.to_dict() for source in self.grants],
        }
        if self.refused_by:
            out["refused_by"] = [source.to_dict() for source in self.refused_by]
        for key, value in (("api_key", self.api_key), ("object", self.on), ("note", self.note)):
            if value:
                out[key] = value
        return out


def explain(
    policy: RolePolicy,
    user: User,
    permission: str,
    store_groups: Mapping[str, frozenset[str]] | None = None,
    *,
    key_name: str = "",
    key_lists: frozenset[str] | None = None,
) -> Explanation:
    """Explain whether `user` holds `permission` under `policy` (`store_groups`: the
    grants of the user's groups kept in the store).  For an API key's identity,
    `key_name` names the key and `key_lists` is what it lists (account rights left out;
    None when it lists nothing and acts as its owner): the identity holds the listed
    permissions its owner holds, as `authgate.flows.apikeys` decides.  The decision is
    the one `RolePolicy.permissions_for` makes; a malformed permission is a
    `ValidationError`."""
    parse_grant(permission)
    hierarchy = policy.hierarchy
    sources: list[Source] = []
    for role in sorted(hierarchy.implied(user.roles), key=lambda r: (hierarchy.rank(r), r)):
        through = "" if role in user.roles else _holder(hierarchy, user.roles, role)
        for grant in sorted(policy.role_permissions.get(role, ())):
            sources.append(Source(grant, "role", role, through))
    for group in sorted(user.groups):
        defined = policy.group_permissions.get(group)
        kept = (store_groups or {}).get(group, frozenset()) if defined is None else defined
        sources += [Source(grant, "group", group) for grant in sorted(kept)]
    sources += [Source(grant, "direct") for grant in sorted(user.permissions)]
    matched = tuple(s for s in sources if _covers(s.grant, permission))
    would: tuple[str, ...] = ()
    if not matched:
        roles = [
            f"role {role}"
            for role in hierarchy.order
            if PermissionSet(
                [g for r in hierarchy.implied({role}) for g in policy.role_permissions.get(r, ())]
            ).allows(permission)
        ]
        groups = [
            f"group {name}"
            for name, grants in sorted(policy.group_permissions.items())
            if PermissionSet(grants).allows(permission)
        ]
        would = (*roles, *groups, f"a direct grant of {permission}")
    told = Explanation(user.username, permission, bool(matched), tuple(sources), matched, would)
    if key_lists is None:
        return dataclasses.replace(told, api_key=key_name)
    return _narrowed(told, key_name, key_lists)


def _narrowed(owner: Explanation, key: str, lists: frozenset[str]) -> Explanation:
    """`owner`'s explanation for the identity of an API key listing `lists`: it holds
    each listed permission its owner holds, and nothing else."""
    held = PermissionSet(s.grant for s in owner.grants)
    listed = tuple(Source(grant, "api-key", key) for grant in sorted(lists))
    covering = [s for s in listed if _covers(s.grant, owner.permission)]
    usable = [s for s in covering if held.allows(s.grant)]
    told = dataclasses.replace(owner, grants=owner.grants + listed, api_key=key)
    if usable:  # the owner's grants that make the listed ones held, and those
        why = tuple(s for s in owner.grants if any(_covers(s.grant, u.grant) for u in usable))
        return dataclasses.replace(told, allowed=True, matched=why + tuple(usable))
    listing = f"an API key listing {owner.permission}"
    if owner.allowed:  # the owner holds it; the key does not pass it on
        refusal = (Source(owner.permission, "api-key", key),)
        return dataclasses.replace(
            told, allowed=False, matched=(), refused_by=refusal, would_allow=(listing,)
        )
    if covering:  # listed, but the owner lacks it: what would give it to the owner
        return told
    return dataclasses.replace(
        told, would_allow=tuple(f"{w}, with {listing}" for w in told.would_allow)
    )


def as_decided(told: Explanation, identity: Identity) -> Explanation:
    """`told` with `identity`'s own decision: the store's grants explain it, and when
    the identity decides otherwise (it was made before they changed: a stateless token,
    a long-lived connection) a note says so."""
    own = identity.can(told.permission)
    if own == told.allowed:
        return told
    verdict = "allowed" if own else "refused"
    note = (
        f"this identity is {verdict}, unlike what its grants in the store give today: it "
        "was made before they changed (a stateless token, or a long-lived connection) "
        "and keeps its own until it authenticates again"
    )
    return dataclasses.replace(told, allowed=own, note=note)


def disabled(told: Explanation) -> Explanation:
    """`told` for a disabled account: whatever its grants say, it is refused (it cannot
    log in, and its sessions and keys are refused)."""
    return dataclasses.replace(
        told,
        allowed=False,
        matched=(),
        would_allow=("enabling the account",),
        note="the account is disabled: it can do nothing until an admin enables it",
    )


def anonymous(permission: str) -> Explanation:
    """The explanation for an identity that is not authenticated: it holds nothing."""
    parse_grant(permission)
    return Explanation("", permission, False, (), (), ("an authenticated user holding it",))


def object_permission(obj: object, action: str) -> str:
    """The permission that decides `action` (``"read"`` or ``"items:read"``) on `obj`
    when its model has no hooks, as `object_verdict` names it."""
    resource, verb = split_action(action)
    if resource is None:
        cls = type(obj)
        resource = getattr(cls, "__authgate_resource__", cls.__name__.lower())
    return f"{resource}:{verb}"


def explain_object(
    told: Explanation,
    identity: Identity,
    obj: object,
    action: str,
    policy: Policy | None = None,
) -> Generator[Settle, bool, Explanation]:
    """`told` (the explanation of `object_permission(obj, action)` for `identity`)
    with the decision on `obj`: the `policy` when given, else the model's hooks, asked
    in `object_verdict`'s order (the class hook, then the object hook), each recorded
    with its answer; with neither, the permission decides.  Yields a `Settle` for each
    ``async def`` hook's answer."""
    cls = type(obj)
    told = dataclasses.replace(told, on=cls.__name__)
    if policy is not None:
        allowed = yield from object_verdict(identity, obj, action, policy)
        source = Source(action, "policy", policy.describe())
        if allowed:
            return dataclasses.replace(
                told, allowed=True, matched=(source,), refused_by=(), would_allow=()
            )
        meeting = (f"meeting the policy: {policy.describe()}",)
        return dataclasses.replace(
            told, allowed=False, matched=(), refused_by=(source,), would_allow=meeting
        )
    verb = split_action(action)[1]
    asked: list[tuple[str, bool]] = []
    allowed = yield from object_verdict(identity, obj, action, asked=asked)
    if not asked:  # no hooks: the permission decided
        return told if allowed == told.allowed else as_decided(told, identity)
    sources = tuple(Source(verb, "object-hook", f"{cls.__name__}.{name}") for name, _ in asked)
    if allowed:
        return dataclasses.replace(
            told, allowed=True, matched=sources, refused_by=(), would_allow=()
        )
    return dataclasses.replace(  # the last hook asked is the one that refused
        told, allowed=False, matched=(), refused_by=sources[-1:], would_allow=()
    )


def _covers(grant: str, permission: str) -> bool:
    return PermissionSet([grant]).allows(permission)


def _holder(hierarchy: Any, held: frozenset[str], role: str) -> str:
    """The held role that includes `role` (the first in order)."""
    for name in sorted(held, key=lambda r: (hierarchy.rank(r), r)):
        if hierarchy.admits({name}, role):
            return name
    return ""
