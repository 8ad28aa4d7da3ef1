"""Decisions about objects: the models' own hooks (`check_object`) and lists filtered
down to what an identity may see (`filter_objects`, `afilter_objects`).

A model may define the class hook ``has_permission(cls, identity, action)`` and the
object hook ``has_object_permission(self, identity, action)`` (the AMSDAL / Django REST
framework hooks); both must allow when defined.  With neither, the permission
``<resource>:<action>`` decides.  The decision is written once, as steps
(`object_verdict`) that yield a `Settle` for each answer still to be awaited (a hook
written with ``async def``): the async drivers await it, the sync ones refuse it.  A
Gate's flows yield the same `Settle`, so ``gate.filter`` is one definition too.
"""

from __future__ import annotations

import inspect
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
)
from dataclasses import dataclass
from typing import NoReturn, Protocol, TypeVar, cast, runtime_checkable

from ..identity import Identity
from .policies import Policy, _And, _Not, _Or

__all__ = [
    "Judge",
    "ObjectHooks",
    "Settle",
    "afilter_objects",
    "check_object",
    "check_object_async",
    "decide",
    "decide_async",
    "filter_objects",
    "object_test",
    "object_verdict",
    "refuse_to_wait",
    "split_action",
]

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Settle:
    """A hook's answer still to be awaited (the hook is ``async def``)."""

    answer: Awaitable[bool]


Verdict = Generator[Settle, bool, bool]


@runtime_checkable
class ObjectHooks(Protocol):
    """What a model may define (the AMSDAL / Django REST framework hooks)."""

    def has_object_permission(self, identity: Identity, action: str) -> bool: ...


def split_action(action: str) -> tuple[str | None, str]:
    """``"items:read"`` -> ``("items", "read")``; ``"read"`` -> ``(None, "read")``."""
    resource, sep, verb = action.rpartition(":")
    return (resource, verb) if sep else (None, action)


def object_verdict(
    identity: Identity,
    obj: object,
    action: str,
    policy: Policy | None = None,
    *,
    asked: list[tuple[str, bool]] | None = None,
) -> Verdict:
    """The steps deciding `action` on `obj`: asks the hooks in order and yields a
    `Settle` for each answer still to be awaited (an ``async def`` hook), receiving it
    back as a bool; plain answers never leave the steps.

    `action` is ``"read"`` (the resource is the class's ``__authgate_resource__`` or its
    lower-cased name) or ``"items:read"`` (the resource is given; hooks receive
    ``"read"``).  A `policy`, when given, decides instead of the hooks: its class and
    object checks together, as the guards judge it.  `asked`, when given, receives each
    hook asked and its answer, in order (`explain` shows them).
    """
    if policy is not None:
        return policy.allows(identity) and policy.allows_object(identity, obj)
    resource, verb = split_action(action)
    cls = type(obj)
    class_hook: Callable[[Identity, str], object] | None = getattr(cls, "has_permission", None)
    object_hook: Callable[[Identity, str], object] | None = getattr(
        obj, "has_object_permission", None
    )
    if class_hook is None and object_hook is None:
        if resource is None:
            resource = getattr(cls, "__authgate_resource__", cls.__name__.lower())
        return identity.can(f"{resource}:{verb}")
    if class_hook is not None:
        allowed = yield from _answer(class_hook(identity, verb))
        if asked is not None:
            asked.append(("has_permission", allowed))
        if not allowed:
            return False
    if object_hook is None:
        return True
    allowed = yield from _answer(object_hook(identity, verb))
    if asked is not None:
        asked.append(("has_object_permission", allowed))
    return allowed


def _answer(value: object) -> Verdict:
    if inspect.isawaitable(value):
        return bool((yield Settle(value)))
    return bool(value)


def refuse_to_wait(op: Settle) -> NoReturn:
    """What a sync driver does with an answer to await: a `TypeError` that says where
    to go (and the coroutine closed, so Python does not warn it was never awaited)."""
    if inspect.iscoroutine(op.answer):
        op.answer.close()
    raise TypeError(
        "an async has_permission/has_object_permission hook needs the async driver: "
        "check_object_async, afilter_objects, AsyncGate.filter or AsyncGate.explain"
    )


def decide(steps: Generator[Settle, bool, R]) -> R:
    """Drive `object_verdict` (or steps built on it) with plain hooks."""
    try:
        refuse_to_wait(next(steps))
    except StopIteration as done:
        return cast(R, done.value)


async def decide_async(steps: Generator[Settle, bool, R]) -> R:
    """Drive `object_verdict` (or steps built on it), awaiting the hooks written with
    ``async def``."""
    try:
        op = next(steps)
        while True:
            op = steps.send(bool(await op.answer))
    except StopIteration as done:
        return cast(R, done.value)


def check_object(identity: Identity, obj: object, action: str) -> bool:
    """Decide `action` on `obj` for `identity` by the model's hooks (or, with none,
    the permission ``<resource>:<action>``)."""
    return decide(object_verdict(identity, obj, action))


async def check_object_async(identity: Identity, obj: object, action: str) -> bool:
    """`check_object` for models whose hooks may be ``async def``."""
    return await decide_async(object_verdict(identity, obj, action))


def object_test(policy: Policy, identity: Identity) -> bool | Callable[[object], bool]:
    """`policy` decided once for `identity`: a constant when the identity alone decides
    (an admin, a refused role), else a test of one object.  The same decision as
    ``policy.allows(identity) and policy.allows_object(identity, obj)``, with the
    identity's part hoisted out of the loop (`authgate.permissions.sql` writes the same
    reduction as SQL)."""
    if isinstance(policy, _And | _Or):
        left, right = object_test(policy.left, identity), object_test(policy.right, identity)
        absorbing = isinstance(policy, _Or)  # True absorbs an "or", False an "and"
        if left is absorbing or right is absorbing:
            return absorbing
        if isinstance(left, bool):
            return right
        if isinstance(right, bool):
            return left
        l_test, r_test = left, right
        if absorbing:
            return lambda obj: l_test(obj) or r_test(obj)
        return lambda obj: l_test(obj) and r_test(obj)
    if isinstance(policy, _Not):  # ~p allows an object exactly when p refuses the class
        return not policy.inner.allows(identity)
    if not policy.allows(identity):
        return False
    if type(policy).allows_object is Policy.allows_object:  # decides on the identity alone
        return True
    allows_object = policy.allows_object
    return lambda obj: allows_object(identity, obj)


_ASK_EACH = object()  # a class whose instances' own hook decides
_WHOLE = object()  # a class whose instances are each judged whole (an async class hook)
_REFUSED = object()  # a class whose class hook refused: every instance refused


class Judge:
    """Decides one list's objects: `steps` gives a verdict, or the steps to one.  What
    depends on the identity or the class alone is decided once: a policy's class-level
    part (`object_test`), a class without hooks (the identity's permission), a class
    hook's answer."""

    __slots__ = ("_by_class", "_test", "action", "identity", "policy", "resource", "verb")

    def __init__(self, identity: Identity, action: str, policy: Policy | None) -> None:
        self.identity, self.action, self.policy = identity, action, policy
        self.resource, self.verb = split_action(action)
        self._test = object_test(policy, identity) if policy is not None else None
        self._by_class: dict[type, object] = {}

    def steps(self, obj: object) -> Verdict | bool:
        """`obj`'s verdict, or (an ``async def`` hook to await) the steps to it."""
        test = self._test
        if test is not None:
            return test if isinstance(test, bool) else test(obj)
        cls = type(obj)
        plan = self._by_class.get(cls)
        if plan is None:
            plan = self._by_class[cls] = self._plan(cls)
        if plan is _REFUSED:
            return False
        if plan is not _ASK_EACH and hasattr(obj, "has_object_permission"):
            # A hook set on this instance, not its class: judged whole, as check_object
            # judges it (a class's cached answer never covers it).
            return object_verdict(self.identity, obj, self.action)
        if plan is _ASK_EACH:
            hook = getattr(obj, "has_object_permission", None)
            if hook is None:  # an instance without the hook its class-mates have
                return object_verdict(self.identity, obj, self.action)
            answer = hook(self.identity, self.verb)
            return _answer(answer) if inspect.isawaitable(answer) else bool(answer)
        if isinstance(plan, bool):
            return plan
        return object_verdict(self.identity, obj, self.action)  # _WHOLE

    def _plan(self, cls: type) -> object:
        """What decides the instances of `cls`: `_REFUSED` (the class hook refused: all
        of them); True or False for those that carry no hook of their own; `_ASK_EACH`
        (the object hook, the class hook having allowed); or `_WHOLE`: each judged
        whole (an ``async def`` class hook)."""
        class_hook = getattr(cls, "has_permission", None)
        on_class = hasattr(cls, "has_object_permission")
        if class_hook is None and not on_class:
            resource = self.resource
            if resource is None:
                resource = getattr(cls, "__authgate_resource__", cls.__name__.lower())
            return self.identity.can(f"{resource}:{self.verb}")
        if class_hook is not None:
            answer = class_hook(self.identity, self.verb)
            if inspect.isawaitable(answer):
                if inspect.iscoroutine(answer):
                    answer.close()
                return _WHOLE
            if not answer:
                return _REFUSED
        return _ASK_EACH if on_class else True


def filter_objects(
    identity: Identity, action: str, objects: Iterable[T], *, policy: Policy | None = None
) -> list[T]:
    """The objects `identity` may do `action` on, in their order: each judged by its
    model's hooks, or by `policy` (``HasRole("admin") | IsOwner()``) when given."""
    judge = Judge(identity, action, policy)
    kept: list[T] = []
    for obj in objects:
        verdict = judge.steps(obj)
        if verdict if isinstance(verdict, bool) else decide(verdict):
            kept.append(obj)
    return kept


async def afilter_objects(
    identity: Identity,
    action: str,
    objects: Iterable[T] | AsyncIterable[T],
    *,
    policy: Policy | None = None,
) -> list[T]:
    """`filter_objects` for async code: `objects` may be an async iterable (rows
    streamed from a database) and the models' hooks may be ``async def``."""
    judge = Judge(identity, action, policy)
    kept: list[T] = []
    async for obj in _each(objects):
        verdict = judge.steps(obj)
        if verdict if isinstance(verdict, bool) else await decide_async(verdict):
            kept.append(obj)
    return kept


async def _each(objects: Iterable[T] | AsyncIterable[T]) -> AsyncIterator[T]:
    if isinstance(objects, AsyncIterable):
        async for obj in objects:
            yield obj
    else:
        for obj in objects:
            yield obj
