"""The current identity, and the guards as decorators on plain functions."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import threading
from collections.abc import Callable
from typing import Any

import pytest

from authgate.context import as_identity, current_identity
from authgate.decorators import (
    require,
    require_auth,
    require_object_permission,
    require_permission,
    require_role,
)
from authgate.errors import NotAuthenticated, PermissionDenied
from authgate.identity import ANONYMOUS, Identity
from authgate.permissions import HasRole, IsOwner, RolePolicy

POLICY = RolePolicy({"operator": ["items:create"], "admin": ["*:*"]})


def ident(name: str, *roles: str) -> Identity:
    grants = POLICY.permissions_for(frozenset(roles))
    return Identity(
        username=name,
        roles=frozenset(roles),
        permissions=grants.grants,
        is_authenticated=True,
        grants=grants,
    )


ADMIN, OPERATOR, VIEWER = ident("root", "admin"), ident("olga", "operator"), ident("vic", "viewer")

LEDGER: list[str] = []


def transaction(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Stands for AMSDAL's @transaction: records that work started."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        LEDGER.append("begin")
        return fn(*args, **kwargs)

    return run


@require_role("admin")
@transaction
def close_books(year: int, *, dry_run: bool = False) -> str:
    return f"closed {year}{' (dry)' if dry_run else ''}"


def test_as_identity_and_current_identity() -> None:
    assert current_identity() is ANONYMOUS
    with as_identity(ADMIN) as me:
        assert current_identity() is me
        with as_identity(VIEWER):
            assert current_identity() is VIEWER
        assert current_identity() is ADMIN
    assert current_identity() is ANONYMOUS


def test_decorated_plain_function_allowed_for_admin_refused_for_viewer_and_nobody() -> None:
    LEDGER.clear()
    with as_identity(ADMIN):
        assert close_books(2025, dry_run=True) == "closed 2025 (dry)"
    with as_identity(VIEWER), pytest.raises(PermissionDenied, match="requires admin role"):
        close_books(2025)
    with pytest.raises(NotAuthenticated, match="authentication required"):
        close_books(2025)
    assert LEDGER == ["begin"]  # the guard ran before the transaction started


def test_signature_is_kept() -> None:
    sig = inspect.signature(close_books, eval_str=True)
    assert str(sig) == "(year: int, *, dry_run: bool = False) -> str"
    assert close_books.__name__ == "close_books"


def test_role_order_and_permissions() -> None:
    @require_role("operator")
    def operate() -> str:
        return "ok"

    @require_permission("items:create")
    def create() -> str:
        return "created"

    @require_auth
    def anyone() -> str:
        return current_identity().username

    for person, can_operate in ((ADMIN, True), (OPERATOR, True), (VIEWER, False)):
        with as_identity(person):
            assert anyone() == person.username
            if can_operate:
                assert operate() == "ok"
                assert create() == "created"
            else:
                with pytest.raises(PermissionDenied, match="operator or admin role"):
                    operate()
                with pytest.raises(PermissionDenied, match="items:create permission"):
                    create()
    with pytest.raises(NotAuthenticated):
        anyone()


async def test_async_functions_and_methods() -> None:
    class Service:
        @require_role("admin")
        async def purge(self, days: int) -> int:
            await asyncio.sleep(0)
            return days

    with as_identity(ADMIN):
        assert await Service().purge(3) == 3
    with as_identity(VIEWER), pytest.raises(PermissionDenied):
        await Service().purge(3)
    assert inspect.iscoroutinefunction(Service.purge)
    assert list(inspect.signature(Service.purge).parameters) == ["self", "days"]


async def test_identity_follows_asyncio_tasks() -> None:
    async def whoami() -> str:
        await asyncio.sleep(0)
        return current_identity().username

    with as_identity(OPERATOR):
        task = asyncio.create_task(whoami())
    assert await task == "olga"
    assert current_identity() is ANONYMOUS


def test_identity_in_threads_started_with_a_copied_context() -> None:
    seen: dict[str, str] = {}

    def record(key: str) -> None:
        seen[key] = current_identity().username or "anonymous"

    with as_identity(ADMIN):
        ctx = contextvars.copy_context()
        copied = threading.Thread(target=ctx.run, args=(record, "copied"))
        plain = threading.Thread(target=record, args=("plain",))
        copied.start()
        plain.start()
        copied.join()
        plain.join()
    assert seen == {"copied": "root", "plain": "anonymous"}


ITEMS = {1: {"owner": "olga", "title": "a"}, 2: {"owner": "vic", "title": "b"}}


@require_object_permission(
    "read", load=lambda item_id: ITEMS.get(item_id), policy=HasRole("admin") | IsOwner()
)
def show(item_id: int) -> str:
    return ITEMS[item_id]["title"]


def test_object_permission_loads_and_checks() -> None:
    with as_identity(OPERATOR):
        assert show(1) == "a"
        with pytest.raises(PermissionDenied, match="read on this dict requires"):
            show(2)
        with pytest.raises(PermissionDenied, match="existing object"):
            show(3)
    with as_identity(ADMIN):
        assert show(2) == "b"
    with pytest.raises(NotAuthenticated):
        show(1)


async def test_object_permission_with_async_loader() -> None:
    async def load(item_id: int) -> dict[str, str]:
        return ITEMS[item_id]

    @require_object_permission("read", load=load, policy=IsOwner())
    async def fetch(item_id: int) -> str:
        return ITEMS[item_id]["title"]

    with as_identity(VIEWER):
        assert await fetch(2) == "b"
        with pytest.raises(PermissionDenied):
            await fetch(1)


def test_require_with_a_composed_policy() -> None:
    @require(HasRole("admin") | ~HasRole("operator"))
    def odd() -> bool:
        return True

    with as_identity(VIEWER):
        assert odd()
    with as_identity(OPERATOR), pytest.raises(PermissionDenied):
        odd()


def test_the_adapters_export_the_same_current_identity() -> None:
    pytest.importorskip("flask")  # the core's own tox env has neither framework
    pytest.importorskip("starlette")
    from authgate import current_identity
    from authgate.integrations.flask import current_identity as in_flask
    from authgate.integrations.starlette import current_identity as in_starlette

    assert in_flask is current_identity and in_starlette is current_identity


def test_one_current_identity_proxy_in_every_framework() -> None:
    """`current_identity` reads the identity being served on each access, in tasks and
    copied threads; calling it gives the identity itself."""
    import contextvars
    import threading

    from authgate import current_identity

    assert current_identity.username == "" and not current_identity.is_authenticated
    alice = Identity(username="alice", is_authenticated=True, roles=frozenset({"viewer"}))
    with as_identity(alice):
        assert current_identity.username == "alice"
        assert current_identity.has_role("viewer")
        assert isinstance(current_identity, Identity)
        assert type(current_identity()) is Identity and current_identity() is alice
        assert current_identity == alice

        async def in_a_task() -> str:
            return current_identity.username

        assert asyncio.run(in_a_task()) == "alice"
        seen: list[str] = []
        context = contextvars.copy_context()
        worker = threading.Thread(
            target=lambda: context.run(lambda: seen.append(current_identity.username))
        )
        worker.start()
        worker.join()
        assert seen == ["alice"]
        plain: list[str] = []
        worker = threading.Thread(target=lambda: plain.append(current_identity.username))
        worker.start()
        worker.join()
        assert plain == [""]  # a plain new thread starts anonymous
    assert current_identity.username == ""
