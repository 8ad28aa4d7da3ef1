"""Grants (``resource:action``) and `PermissionSet`, which answers "is this allowed?".

A grant is ``resource:action``.  ``*`` as the action matches any action; ``*`` as a
resource segment matches any one segment, and a resource covers everything below it:
``streams/1:send`` allows ``streams/1/topics/7:send``, ``streams/*:read`` allows
``streams/9/topics/2:read``, ``*:*`` allows everything.  A `PermissionSet` caches its
decisions (`authgate.caches`), so a check on the hot path is one lookup.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

from ..caches import LRU, PARSED_GRANTS, PERMISSION_DECISIONS
from ..errors import ValidationError

__all__ = ["Grant", "PermissionSet", "parse_grant"]


@dataclass(frozen=True, slots=True)
class Grant:
    """A parsed ``resource:action``."""

    resource: tuple[str, ...]
    action: str

    def __str__(self) -> str:
        return "/".join(self.resource) + ":" + self.action

    def covers(self, other: Grant) -> bool:
        """True when holding this grant allows `other`."""
        if self.action not in ("*", other.action):
            return False
        if len(self.resource) > len(other.resource):
            return False
        return all(g in ("*", r) for g, r in zip(self.resource, other.resource, strict=False))


_grants: LRU[str, Grant] = LRU(PARSED_GRANTS)


def parse_grant(text: str) -> Grant:
    """Parse ``resource:action``; `ValidationError` for anything else."""
    if not isinstance(text, str):
        raise ValidationError(f"invalid permission {text!r}: expected 'resource:action'")
    grant = _grants.get(text)
    if grant is None:
        grant = _parse_grant(text)
        _grants.put(text, grant)
    return grant


def _parse_grant(text: str) -> Grant:
    resource, sep, action = text.rpartition(":")
    if not sep or not resource or not action or any(ch.isspace() for ch in text):
        raise ValidationError(f"invalid permission {text!r}: expected 'resource:action'")
    parts = tuple(resource.split("/"))
    if any(not part for part in parts):
        raise ValidationError(f"invalid permission {text!r}: empty path segment")
    # A grant on docs/alice must not cover docs/alice/../bob: an app that normalises the
    # path afterwards would serve bob's.  Percent-encoded dots are refused as well.
    if any(unquote(part) in (".", "..") or "\\" in part for part in parts):
        raise ValidationError(f"invalid permission {text!r}: '.' and '..' segments are refused")
    return Grant(parts, action)


class PermissionSet:
    """A set of grants that answers "is this allowed?" quickly, memoising answers."""

    __slots__ = ("_decided", "_exact", "_patterns", "grants")

    def __init__(self, grants: Iterable[str]) -> None:
        parsed = {parse_grant(g) for g in grants}
        self.grants = frozenset(str(g) for g in parsed)
        # Grants with no '*' segment: checked by looking up each prefix of the target.
        self._exact = frozenset(str(g) for g in parsed if "*" not in g.resource)
        self._patterns = tuple(g for g in parsed if "*" in g.resource)
        self._decided: LRU[str, bool] = LRU(PERMISSION_DECISIONS)

    def __repr__(self) -> str:
        return f"PermissionSet({sorted(self.grants)!r})"

    def __contains__(self, permission: object) -> bool:
        return isinstance(permission, str) and self.allows(permission)

    def allows(self, permission: str) -> bool:
        """True when some grant covers `permission`."""
        decided = self._decided.get(permission)
        if decided is None:
            decided = self._decide(parse_grant(permission))
            self._decided.put(permission, decided)
        return decided

    def _decide(self, target: Grant) -> bool:
        exact = self._exact
        if exact:
            prefix = ""
            for part in target.resource:
                prefix = f"{prefix}/{part}" if prefix else part
                if f"{prefix}:{target.action}" in exact or f"{prefix}:*" in exact:
                    return True
        return any(g.covers(target) for g in self._patterns)
