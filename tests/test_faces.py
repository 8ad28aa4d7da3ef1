"""The sync and async faces offer the same operations with the same signatures: a method
added to one face and not the other, or a parameter that drifts, fails here (the Redis
store's faces had drifted: only the async one had `ping`)."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from authgate.gate import AsyncGate, Gate
from authgate.stores import MemoryStore, SyncStoreAsAsync
from authgate.stores.base import AsyncStore, Store
from authgate.stores.redis import AsyncRedisStore, RedisStore

# Plain (not awaited) on both faces: they never touch the store.
NO_IO = {"jwks", "peek_session_user"}
# Sync helpers that only the async face needs: the middleware's cache-only first try
# and its steps of authenticate, and seeding the admin at import time, before an event
# loop runs.
ASYNC_ONLY = {"authenticate_nowait", "authentication", "ensure_superuser_now"}
PAIRS = [(Gate, AsyncGate), (RedisStore, AsyncRedisStore), (Store, AsyncStore)]


SECRET = "faces-test-secret-key-long-enough-for-hs256"


def face(cls: type) -> Any:
    """What a user holds: an instance for the concrete faces (whose operations are
    made per instance from one definition), the class for the protocols."""
    if cls is Gate:
        return Gate(store=MemoryStore(), secret_key=SECRET)
    if cls is AsyncGate:
        return AsyncGate(store=SyncStoreAsAsync(MemoryStore()), secret_key=SECRET)
    if cls is RedisStore:
        return RedisStore("redis://127.0.0.1:1/0", check=False)  # never connects
    if cls is AsyncRedisStore:
        return AsyncRedisStore("redis://127.0.0.1:1/0")
    return cls


def operations(cls: type) -> dict[str, Any]:
    held = face(cls)
    return {
        name: member
        for name, member in inspect.getmembers(held, callable)
        # (a mutation run adds its mutants' copies to the classes: "xǁ_Redisǁ...")
        if not name.startswith("_") and "ǁ" not in name and not inspect.isclass(member)
    }


def shape(member: Any) -> list[tuple[str, Any, Any]]:
    params = inspect.signature(member).parameters.values()
    return [(p.name, p.kind, p.default) for p in params]


@pytest.mark.parametrize(("sync", "async_"), PAIRS, ids=[s.__name__ for s, _ in PAIRS])
def test_both_faces_offer_the_same_operations(sync: type, async_: type) -> None:
    assert set(operations(sync)) == set(operations(async_)) - ASYNC_ONLY


@pytest.mark.parametrize(("sync", "async_"), PAIRS, ids=[s.__name__ for s, _ in PAIRS])
def test_each_operation_has_one_signature_awaited_on_the_async_face(
    sync: type, async_: type
) -> None:
    plain, awaited = operations(sync), operations(async_)
    for name, member in plain.items():
        other = awaited[name]
        assert shape(member) == shape(other), name
        assert not inspect.iscoroutinefunction(member), name
        if name in NO_IO or isinstance(inspect.getattr_static(async_, name, None), classmethod):
            assert not inspect.iscoroutinefunction(other), name
        else:
            assert inspect.iscoroutinefunction(other), f"{async_.__name__}.{name} is not async"


# What a face may define itself: how it drives an operation, how it opens its store, and
# the async face's sync helpers.  Every operation comes from the one shared definition.
# (Python 3.13 records __firstlineno__ and __static_attributes__ on every class.)
OWN = {"__doc__", "__module__", "__qualname__", "__parameters__", "__orig_bases__",
       "__annotations__", "__firstlineno__", "__static_attributes__",
       "_drive", "_open", "run", *ASYNC_ONLY}  # fmt: skip


@pytest.mark.parametrize("cls", [Gate, AsyncGate], ids=lambda c: c.__name__)
def test_a_gate_face_writes_no_operation_of_its_own(cls: type) -> None:
    assert set(vars(cls)) - OWN == set()


@pytest.mark.parametrize("cls", [RedisStore, AsyncRedisStore], ids=lambda c: c.__name__)
def test_a_redis_face_writes_only_its_connection(cls: type) -> None:
    """A face makes its client (`_connect`), sends one command with it (`_send`) and
    closes it: nothing of an operation."""
    assert set(vars(cls)) - OWN - {"__init__", "_connect", "_send", "close"} == set()


def test_an_answer_known_without_io_is_handed_back_undriven() -> None:
    """`returning` steps return at once, inside ``yield from`` and to both drivers,
    which never call their executor for them."""
    import asyncio

    from authgate.faces import adrive, drive, returning

    def flow() -> Any:
        got = yield from returning(7)
        return got + 1

    def never(op: Any) -> Any:
        raise AssertionError(f"asked to do {op!r}")

    async def anever(op: Any) -> Any:
        raise AssertionError(f"asked to do {op!r}")

    assert drive(flow(), never) == 8
    assert drive(returning("x"), never) == "x"
    assert asyncio.run(adrive(returning("y"), anever)) == "y"
    steps = returning(3)
    with pytest.raises(StopIteration) as done:
        next(steps)
    assert done.value.value == 3
    with pytest.raises(KeyError):
        steps.throw(KeyError("k"))
    steps.close()
