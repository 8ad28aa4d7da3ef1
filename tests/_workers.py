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


def open_and_close(url: str) -> str:
    """Open a store (a SQL one migrates its tables if needed) and close it."""
    open_store(url).close()
    return "ok"


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


def conditional_increments(base_url: str, token: str, username: str, times: int) -> int:
    """Add one to the user's ``display_name`` `times` times over HTTP, each a read and a
    PATCH with ``If-Match``, retried on 412; the number of 412s seen."""
    import httpx

    refused = 0
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_keepalive_connections=0)  # spread over every worker
    with httpx.Client(base_url=base_url, timeout=30, headers=headers, limits=limits) as client:
        done = 0
        while done < times:
            got = client.get(f"/api/users/{username}")
            got.raise_for_status()
            value = int(got.json()["display_name"] or 0)
            sent = client.patch(
                f"/api/users/{username}",
                json={"display_name": str(value + 1)},
                headers={"If-Match": got.headers["etag"]},
            )
            if sent.status_code == 412:
                refused += 1
                continue
            sent.raise_for_status()
            done += 1
    return refused


def open_at(url: str, start: float) -> str:
    """Open the store at the wall-clock time `start` (with the others); what happened."""
    import time

    from authgate.errors import StoreUnavailable

    time.sleep(max(0.0, start - time.time()))
    try:
        store = open_store(url)
    except StoreUnavailable as err:
        return f"unavailable: {err.reason}"
    store.create_user(User.new(f"u{time.time_ns()}"))
    store.close()
    return "ok"


def spray_logins(url: str, secret: str, ip: str, usernames: list[str], limit: int) -> list[str]:
    """Try a wrong password on each of `usernames` from address `ip`, 10 threads at a
    time, with at most `limit` failures allowed per address; name each outcome."""
    from concurrent.futures import ThreadPoolExecutor

    from authgate.errors import AuthGateError
    from authgate.gate import Gate
    from authgate.identity import Client
    from authgate.testing import cheap_hasher

    gate = Gate(
        store=open_store(url),
        hasher=cheap_hasher(),
        secret_key=secret,
        max_failures_per_address=limit,
    )

    def attempt(username: str) -> str:
        try:
            gate.login(username, "wrong password", Client(ip))
            return "success"
        except AuthGateError as err:
            return type(err).__name__

    try:
        with ThreadPoolExecutor(10) as pool:
            return list(pool.map(attempt, usernames))
    finally:
        gate.close()
