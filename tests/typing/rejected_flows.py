"""Mistakes mypy must catch: each line whose comment names an error code (E: code) is
reported with that code, and no other line is."""

from __future__ import annotations

from authgate.flows import Flow, call
from authgate.gate import AsyncGate, Gate
from authgate.stores import Store
from authgate.users import User


def misspelt(name: str) -> Flow[User | None]:
    return (yield from call(Store.get_usr, name))  # E: attr-defined


def wrong_argument() -> Flow[User | None]:
    return (yield from call(Store.get_user, 42))  # E: arg-type


def missing_argument() -> Flow[bool]:
    return (yield from call(Store.touch_session, "sid"))  # E: call-arg


def wrong_result(name: str) -> Flow[int]:
    return (yield from call(Store.get_user, name))  # E: return-value


def faces(gate: Gate, agate: AsyncGate) -> None:
    gate.login("alice")  # E: call-arg
    assert agate.authenticate("token").username  # E: attr-defined
