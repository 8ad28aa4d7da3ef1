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


def wrong_logins(url: str, secret: str, threads: int) -> list[str]:
    """Try `threads` wrong passwords for alice at once; name each outcome."""
    import threading

    from authgate.errors import AuthGateError
    from authgate.gate import Gate
    from authgate.testing import cheap_hasher

    gate = Gate(
        store=open_store(url), hasher=cheap_hasher(), secret_key=secret, max_login_attempts=5
    )
    barrier = threading.Barrier(threads)
    outcomes: list[str] = []

    def attempt() -> None:
        barrier.wait()
        try:
            gate.login("alice", "wrong password")
            outcomes.append("success")
        except AuthGateError as err:
            outcomes.append(type(err).__name__)

    workers = [threading.Thread(target=attempt) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    gate.close()
    return outcomes


def revoke_user_sessions(url: str, username: str) -> int:
    store = open_store(url)
    try:
        return store.revoke_user_sessions(username)
    finally:
        store.close()


def disable_user(url: str, username: str) -> None:
    store = open_store(url)
    try:
        user = store.get_user(username)
        assert user is not None
        store.update_user(user.changed(enabled=False), user.version)
    finally:
        store.close()
