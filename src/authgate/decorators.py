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
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, cast, overload

from .audit import record_denial
from .context import current_identity
from .errors import NotAuthenticated, PermissionDenied
from .identity import Identity
from .permissions import HasPermission, HasRole, IsAuthenticated, Policy, check_object
from .users import RoleHierarchy

__all__ = [
    "check",
    "check_object_permission",
    "require",
    "require_auth",
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
            raise NotAuthenticated()  # "authentication required", said once
        raise NotAuthenticated(f"authentication required: {policy.describe()}")
    record_denial(who.username or "", policy.describe())
    raise PermissionDenied(f"requires {policy.describe()}")


def _guard(policy: Policy) -> Callable[[F], F]:
    def decorate(fn: F) -> F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def guarded_async(*args: Any, **kwargs: Any) -> Any:
                check(policy)
                return await fn(*args, **kwargs)

            guarded_async.__dict__["__authgate_policy__"] = policy
            return cast(F, guarded_async)

        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            check(policy)
            return fn(*args, **kwargs)

        guarded.__dict__["__authgate_policy__"] = policy
        return cast(F, guarded)

    return decorate


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


def check_object_permission(
    obj: Any, action: str, policy: Policy | None = None, identity: Identity | None = None
) -> Identity:
    """Raise unless `identity` (default: the current one) may do `action` on `obj`:
    `policy` judged on the object, or the object's own hooks (`check_object`)."""
    who = identity if identity is not None else current_identity()
    if not who.is_authenticated:
        raise NotAuthenticated(f"authentication required to {action} this object")
    if obj is None:
        raise PermissionDenied(f"{action} requires an existing object")
    allowed = (
        policy.allows(who) and policy.allows_object(who, obj)
        if policy is not None
        else check_object(who, obj, action)
    )
    if not allowed:
        what = policy.describe() if policy is not None else f"permission to {action} it"
        resource = f"{type(obj).__name__} {getattr(obj, 'id', '')}".strip()
        record_denial(who.username or "", f"{action}: {what}", resource)
        raise PermissionDenied(f"{action} on this {type(obj).__name__} requires {what}")
    return who


def require_object_permission(
    action: str,
    load: Callable[..., Any],
    *,
    policy: Policy | None = None,
) -> Callable[[F], F]:
    """Load the object the call is about and check `action` on it before running.

    `load` receives those of the function's arguments it names (``item_id`` for
    ``def show(item_id)``) and may be async for async functions.  The check is the
    object's hooks (`authgate.permissions.check_object`) or, when given, `policy`
    (e.g. ``HasRole("admin") | IsOwner()``).
    """

    def decorate(fn: F) -> F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def guarded_async(*args: Any, **kwargs: Any) -> Any:
                if not current_identity().is_authenticated:
                    raise NotAuthenticated(f"authentication required to {action} this object")
                obj = _call_loader(load, fn, args, kwargs)
                if inspect.isawaitable(obj):
                    obj = await obj
                check_object_permission(obj, action, policy)
                return await fn(*args, **kwargs)

            return cast(F, guarded_async)

        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if not current_identity().is_authenticated:
                raise NotAuthenticated(f"authentication required to {action} this object")
            check_object_permission(_call_loader(load, fn, args, kwargs), action, policy)
            return fn(*args, **kwargs)

        return cast(F, guarded)

    return decorate
