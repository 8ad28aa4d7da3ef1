"""A list filtered by object permission, as a flow: ``gate.filter``'s one definition.

Each object's verdict comes from `authgate.permissions.objects` (the model's hooks, or
a policy); an ``async def`` hook's answer reaches the driver as a `Settle` op, which
`arun` awaits and `run` refuses with a message that says where to go.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from ..identity import Identity
from ..permissions import Policy
from ..permissions.objects import Judge
from .ops import Flow

__all__ = ["visible_objects"]

T = TypeVar("T")


def visible_objects(
    identity: Identity, action: str, objects: Iterable[T], policy: Policy | None = None
) -> Flow[list[T]]:
    """The objects `identity` may do `action` on, in their order."""
    judge = Judge(identity, action, policy)
    kept: list[T] = []
    for obj in objects:
        verdict = judge.steps(obj)
        if verdict if isinstance(verdict, bool) else (yield from verdict):
            kept.append(obj)
    return kept
