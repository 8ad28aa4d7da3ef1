# mypy: disable-error-code="unused-coroutine"
"""A user's own flow, as mypy sees it: store calls typed by the protocol, and each
gate face typed its own way from the one definition."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, assert_type

from authgate.flows import Flow, call, run
from authgate.gate import AsyncGate, Gate
from authgate.identity import Identity
from authgate.stores import Session, Store, open_store
from authgate.testing import cheap_hasher
from authgate.users import User


def enabled_user(name: str) -> Flow[User | None]:
    user = yield from call(Store.get_user, name)
    assert_type(user, User | None)
    sessions = yield from call(Store.list_sessions, name)
    assert_type(sessions, list[Session])
    return user if user is not None and user.enabled else None


def use(gate: Gate, agate: AsyncGate) -> None:
    assert_type(run(enabled_user("alice"), open_store("memory://"), cheap_hasher()), User | None)
    assert_type(gate.authenticate("token"), Identity)
    pending = agate.authenticate("token")
    assert_type(pending, Coroutine[Any, Any, Identity])
    pending.close()
    assert_type(gate.store, Store)


def read_the_current_identity() -> None:
    """One proxy in every framework, typed as the identity it stands for."""
    from authgate import current_identity
    from authgate.integrations.flask import current_identity as in_flask

    assert_type(current_identity.username, str)
    assert_type(current_identity(), Identity)
    assert_type(in_flask.can("items:read"), bool)
