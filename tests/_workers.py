"""Functions run in child processes by the cross-process tests."""

from __future__ import annotations

from authgate.stores import open_store
from authgate.users import User


def increment(url: str, key: str, times: int) -> list[int]:
    store = open_store(url)
    try:
        return [store.incr(key, 60) for _ in range(times)]
    finally:
        store.close()


def write_user(url: str, username: str) -> str:
    store = open_store(url)
    try:
        return store.create_user(User.new(username, roles=["viewer"], email="w@example.com")).id
    finally:
        store.close()
