"""Guards as decorators, for route handlers and plain functions alike.

Each decorator reads the current identity (`authgate.context.current_identity`),
raises `NotAuthenticated` (401) when a guard needs a user and there is none, and
`PermissionDenied` (403) naming what was required otherwise.  Sync and async functions
and methods are supported; ``functools.wraps`` keeps the signature visible, so Flask
and FastAPI still see the real parameters.

Order: put the guard *below* the framework's route decorator, so the framework
registers the guarded function::

    @app.get("/admin")
    @require_role("admin")
    def admin_page(): ...

and *above* decorators that start work a guard should prevent (a transaction)::

    @require_auth
    @transaction
    def transfer(...): ...
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Generator
from typing import Any, ParamSpec, TypeVar, cast, overload

from .audit import record_denial
from .context import current_identity, hiding_objects, note_refusal
from .errors import NotAuthenticated, NotFound, PermissionDenied, StepUpRequired
from .identity import Identity
from .permissions import HasPermission, HasRole, IsAuthenticated, Policy
from .permissions.objects import Settle, decide, decide_async, object_verdict
from .users import RoleHierarchy

__all__ = [
    "check",
    "check_fresh",
    "check_object_permission",
    "check_object_permission_async",
    "require",
    "require_auth",
    "require_fresh",
    "require_object_permission",
    "require_permission",
    "require_role",
]

P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])


def check(policy: Policy, identity: Identity | None = None) -> Identity:
    """Raise unless `policy` allows `identity` (default: the current one); return it."""
    who = identity if identity is not None else current_identity()
    if policy.allows(who):
        return who
    if not who.is_authenticated:
        if isinstance(policy, IsAuthenticated):
            raise note_refusal(NotAuthenticated())  # "authentication required", said once
        raise note_refusal(NotAuthenticated(f"authentication required: {policy.describe()}"))
    record_denial(who.username or "", policy.describe())
    raise note_refusal(PermissionDenied(f"requires {policy.describe()}"))


def check_fresh(max_age: int, identity: Identity | None = None) -> Identity:
    """Raise unless `identity` (default: the current one) proved who they are within
    the last `max_age` seconds (the ``auth_time`` of its login, a password, a second
    factor or a passkey): `NotAuthenticated` without one, `StepUpRequired` (401
    ``insufficient_user_authentication``, RFC 9470) when it is older.  An API key never
    passes: it proves no person's presence.  Returns the identity."""
    if max_age < 0:
        raise ValueError("max_age must be zero or more seconds")
    who = identity if identity is not None else current_identity()
    if not who.is_authenticated:
        raise note_refusal(NotAuthenticated("authentication required: a recent login"))
    auth_time = who.claims.get("auth_time")
    if (
        type(auth_time) is not int  # bool is not a time; an API key has none
        or not 0 <= time.time() - auth_time <= max_age
    ):
        record_denial(who.username, f"a login within {max_age} s")
        raise note_refusal(StepUpRequired(max_age))
    return who


def _wrap(checking: Callable[[], object], policy: Policy | None) -> Callable[[F], F]:
    def decorate(fn: F) -> F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def guarded_async(*args: Any, **kwargs: Any) -> Any:
                checking()
                return await fn(*args, **kwargs)

            if policy is not None:
                guarded_async.__dict__["__authgate_policy__"] = policy
            return cast(F, guarded_async)

        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            checking()
            return fn(*args, **kwargs)

        if policy is not None:
            guarded.__dict__["__authgate_policy__"] = policy
        return cast(F, guarded)

    return decorate


def _guard(policy: Policy) -> Callable[[F], F]:
    return _wrap(lambda: check(policy), policy)


def require_fresh(max_age: int = 300) -> Callable[[F], F]:
    """Require a login (or ``POST /auth/reauth``) within the last `max_age` seconds, for
    operations an old or stolen session must not reach: changing a second factor,
    deleting the account, moving money.  A refusal is 401
    ``insufficient_user_authentication`` with ``max_age``; a page request goes to the
    login page, whose login is recent.  Stack it under `require_role` and the like."""
    if max_age < 0:
        raise ValueError("max_age must be zero or more seconds")
    return _wrap(lambda: check_fresh(max_age), None)


@overload
def require_auth(fn: F) -> F: ...
@overload
def require_auth(fn: None = None) -> Callable[[F], F]: ...
def require_auth(fn: F | None = None) -> F | Callable[[F], F]:
    """Require an authenticated identity; usable as ``@require_auth`` or ``@require_auth()``."""
    decorate = _guard(IsAuthenticated())
    return decorate(fn) if fn is not None else decorate


def require_role(*roles: str, hierarchy: RoleHierarchy | None = None) -> Callable[[F], F]:
    """Require one of `roles` or a role ranked above it (``"operator"`` admits admin)."""
    return _guard(HasRole(*roles, hierarchy=hierarchy))


def require_permission(*permissions: str) -> Callable[[F], F]:
    """Require every one of the ``resource:action`` permissions."""
    return _guard(HasPermission(*permissions))


def require(policy: Policy) -> Callable[[F], F]:
    """Require a composed policy, e.g. ``require(HasRole("admin") | HasPermission("x:y"))``."""
    return _guard(policy)


def _call_loader(load: Callable[..., Any], fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    """Call `load` with the arguments of `fn`'s call that `load` names."""
    bound = inspect.signature(fn).bind_partial(*args, **kwargs)
    wanted = inspect.signature(load).parameters
    if any(p.kind is p.VAR_KEYWORD for p in wanted.values()):
        return load(**bound.arguments)
    return load(**{name: value for name, value in bound.arguments.items() if name in wanted})


def _object_check(
    obj: Any,
    action: str,
    policy: Policy | None,
    identity: Identity | None,
    hide: bool | None,
    missing: str | None,
) -> Generator[Settle, bool, Identity]:
    """The steps of `check_object_permission`, for the sync and the async driver."""
    who = identity if identity is not None else current_identity()
    if not who.is_authenticated:
        raise note_refusal(NotAuthenticated(f"authentication required to {action} this object"))
    if obj is not None and (yield from object_verdict(who, obj, action, policy)):
        return who
    hidden = hide if hide is not None else hiding_objects()
    if obj is None:
        if hidden:
            raise note_refusal(NotFound(missing or "no such object"))
        raise note_refusal(PermissionDenied(f"{action} requires an existing object"))
    what = policy.describe() if policy is not None else f"permission to {action} it"
    kind = type(obj).__name__
    record_denial(
        who.username or "", f"{action}: {what}", f"{kind} {getattr(obj, 'id', '')}".strip()
    )
    if hidden:  # answered as a missing one would be: nothing says it exists
        raise note_refusal(NotFound(missing or "no such object"))
    raise note_refusal(PermissionDenied(f"{action} on this {kind} requires {what}"))


def check_object_permission(
    obj: Any,
    action: str,
    policy: Policy | None = None,
    identity: Identity | None = None,
    *,
    hide: bool | None = None,
    missing: str | None = None,
) -> Identity:
    """Raise unless `identity` (default: the current one) may do `action` on `obj`:
    `policy` judged on the object, or the object's own hooks (`check_object`).

    A refusal is 403 (`PermissionDenied`), or 404 (`NotFound`, with `missing` as its
    detail, default ``"no such object"``) when `hide` is true, or when `hide` is None
    and the gate's ``hide_objects`` setting is on (`authgate.context.hiding_objects`):
    make `missing` what your app answers for an object that does not exist, so the
    two cannot be told apart.
    """
    return decide(_object_check(obj, action, policy, identity, hide, missing))


async def check_object_permission_async(
    obj: Any,
    action: str,
    policy: Policy | None = None,
    identity: Identity | None = None,
    *,
    hide: bool | None = None,
    missing: str | None = None,
) -> Identity:
    """`check_object_permission` for models whose hooks may be ``async def``."""
    return await decide_async(_object_check(obj, action, policy, identity, hide, missing))


def require_object_permission(
    action: str,
    load: Callable[..., Any],
    *,
    policy: Policy | None = None,
    hide: bool | None = None,
    missing: str | None = None,
) -> Callable[[F], F]:
    """Load the object the call is about and check `action` on it before running.

    `load` receives those of the function's arguments it names (``item_id`` for
    ``def show(item_id)``) and may be async for async functions.  The check is the
    object's hooks (`authgate.permissions.check_object`; ``async def`` hooks on async
    functions) or, when given, `policy` (e.g. ``HasRole("admin") | IsOwner()``).
    `hide` and `missing` are `check_object_permission`'s: 404 instead of 403.
    """

    def decorate(fn: F) -> F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def guarded_async(*args: Any, **kwargs: Any) -> Any:
                if not current_identity().is_authenticated:
                    raise note_refusal(
                        NotAuthenticated(f"authentication required to {action} this object")
                    )
                obj = _call_loader(load, fn, args, kwargs)
                if inspect.isawaitable(obj):
                    obj = await obj
                await check_object_permission_async(obj, action, policy, hide=hide, missing=missing)
                return await fn(*args, **kwargs)

            return cast(F, guarded_async)

        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if not current_identity().is_authenticated:
                raise note_refusal(
                    NotAuthenticated(f"authentication required to {action} this object")
                )
            obj = _call_loader(load, fn, args, kwargs)
            check_object_permission(obj, action, policy, hide=hide, missing=missing)
            return fn(*args, **kwargs)

        return cast(F, guarded)

    return decorate
