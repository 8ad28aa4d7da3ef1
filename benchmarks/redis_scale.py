"""What the Redis store needs at scale, measured: memory per user and per live session
at 1,000,000 sessions, how users spread over a 3-primary cluster, and session-check
throughput against the cluster from 1, 2 and 4 client processes.

Run: ``python benchmarks/redis_scale.py`` (starts its own redis-server and cluster;
about 5 minutes); ``--sessions`` and ``--users`` set the population.  Records are
written by the store's own operations (their commands sent in pipelines of 1,000, so
populating a million sessions takes a minute, not an hour); memory is Redis's
``used_memory`` before and after.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import redis
import redis.cluster

from authgate.faces import Steps
from authgate.stores.redis import RedisStore
from authgate.stores.redis.commands import _Cmd
from authgate.testing import cheap_hasher, redis_cluster, redis_server
from authgate.users import Session, User, new_session_id, utcnow

#: An API client and a browser, as the session records keep them.
AGENTS = {
    "API client": ("203.0.113.7", "python-httpx/0.27.0"),
    "browser": (
        "2001:db8:85a3::8a2e:370:7334",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.1 Safari/605.1.15",
    ),
}
_HASH = cheap_hasher().hash("correct horse battery")


def _commands(steps: Steps[Any]) -> list[_Cmd]:
    """The commands an operation sends, each answered as a success would be (1)."""
    sent: list[_Cmd] = []
    try:
        step = next(steps)
        while True:
            sent.append(step)
            step = steps.send(1)
    except StopIteration:
        return sent


def _pipelined(client: Any, commands: Iterator[_Cmd], batch: int = 1_000) -> int:
    count = 0
    pipe = client.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command.args)
        count += 1
        if count % batch == 0:
            pipe.execute()
    pipe.execute()
    return count


def _users(store: RedisStore, count: int, tag: str) -> Iterator[_Cmd]:
    for i in range(count):
        user = User.new(f"{tag}{i:07d}@example.com", roles=["viewer"], password_hash=_HASH)
        yield from _commands(store._create_user(user))


def _sessions(store: RedisStore, users: int, per_user: int, tag: str, agent: str) -> Iterator[_Cmd]:
    ip, ua = AGENTS[agent]
    now = utcnow()
    for i in range(users):
        name = f"{tag}{i:07d}@example.com"
        for _ in range(per_user):
            session = Session(
                id=new_session_id(name), username=name, expires_at=now + timedelta(days=14),
                created_at=now, last_seen=now, client_ip=ip, user_agent=ua,
                refresh_hash=f"{random.getrandbits(256):064x}",
            )  # fmt: skip
            yield from _commands(store._create_session(session))


def memory(users: int, per_user: int, agent: str) -> tuple[float, float]:
    """Bytes of Redis memory per user and per live session."""
    with redis_server() as url:
        raw = redis.Redis.from_url(url)
        store = RedisStore(f"{url}?prefix=authgate&cache_ttl=0")
        store.create_user(User.new("warm-up"))  # loads the scripts
        store.create_session(
            Session(id=new_session_id("warm-up"), username="warm-up",
                    expires_at=utcnow() + timedelta(days=1))
        )  # fmt: skip
        before: int = raw.info("memory")["used_memory"]
        _pipelined(store._client, _users(store, users, "u"))
        with_users: int = raw.info("memory")["used_memory"]
        _pipelined(store._client, _sessions(store, users, per_user, "u", agent))
        after: int = raw.info("memory")["used_memory"]
        store.close()
        raw.close()
    return (with_users - before) / users, (after - with_users) / (users * per_user)


def spread(cluster_url: str, nodes: list[str], users: int) -> dict[str, int]:
    """Users created through the store on the cluster: how many records each primary holds."""
    store = RedisStore(cluster_url + "?prefix=spread&cache_ttl=0")
    for i in range(users):
        store.create_user(User.new(f"s{i:06d}@example.com", password_hash=_HASH))
    store.close()
    counts: dict[str, int] = {}
    for node in nodes:
        client = redis.Redis.from_url(node)
        counts[node.rpartition("/")[2]] = sum(
            1 for _ in client.scan_iter(match="{spread:*}:u:*", count=1000)
        )
        client.close()
    return counts


def _check_worker(cluster_url: str, users: int, seconds: float, out: Any) -> None:
    store = RedisStore(cluster_url + "?prefix=checks&cache_ttl=0")
    sessions = [s for i in range(users) for s in store.list_sessions(f"c{i:06d}@example.com")]
    rng = random.Random()  # noqa: S311 - picks which session to check, not a secret
    done = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for _ in range(100):
            session = sessions[rng.randrange(len(sessions))]
            found, user = store.get_session_user(session.id, session.username)
            if found is None or user is None:
                raise RuntimeError(f"session {session.id} was not found")
        done += 100
    store.close()
    out.put(done)


def throughput(cluster_url: str, users: int, seconds: float) -> dict[int, float]:
    """Session checks a second (each one round trip to the user's primary, no cache)."""
    store = RedisStore(cluster_url + "?prefix=checks&cache_ttl=0")
    now = utcnow()
    for i in range(users):
        name = f"c{i:06d}@example.com"
        store.create_user(User.new(name, password_hash=_HASH))
        store.create_session(
            Session(id=new_session_id(name), username=name, expires_at=now + timedelta(days=1))
        )
    store.close()
    ctx = multiprocessing.get_context("spawn")
    rates: dict[int, float] = {}
    for processes in (1, 2, 4):
        out = ctx.Queue()
        workers = [
            ctx.Process(target=_check_worker, args=(cluster_url, users, seconds, out))
            for _ in range(processes)
        ]
        for w in workers:
            w.start()
        total = sum(out.get(timeout=seconds + 120) for _ in workers)
        for w in workers:
            w.join()
        rates[processes] = total / seconds
    return rates


def run(
    sessions: int = 1_000_000,
    users: int = 100_000,
    spread_users: int = 10_000,
    seconds: float = 10.0,
) -> str:
    """The section of the benchmark results, as markdown."""
    per_user = max(1, sessions // users)
    lines = [
        "### Redis at scale",
        "",
        f"Memory (`used_memory` of a private redis-server, records written by the store's "
        f"own operations): {users:,} users with {per_user} live sessions each "
        f"({users * per_user:,} sessions).",
        "",
        "| sessions from | bytes per user | bytes per live session |",
        "|---|---:|---:|",
    ]
    for agent in AGENTS:
        count = users if agent == "API client" else max(1, users // 10)
        user_bytes, session_bytes = memory(count, per_user, agent)
        label = agent if count == users else f"{agent} ({count * per_user:,} sessions)"
        lines.append(f"| {label} | {user_bytes:,.0f} | {session_bytes:,.0f} |")
    with redis_cluster(primaries=3) as cluster:
        counts = spread(cluster.url(), cluster.primary_urls, spread_users)
        third = spread_users / 3
        worst = max(abs(c - third) / third for c in counts.values())
        lines += [
            "",
            f"Spread: {spread_users:,} users created on a 3-primary cluster hold "
            + ", ".join(f"{c:,}" for c in counts.values())
            + f" records per primary (at most {worst:.1%} from a third).",
        ]
        rates = throughput(cluster.url(), spread_users, seconds)
        lines += [
            "",
            "Session checks against the cluster (`get_session_user` of random sessions of "
            f"{spread_users:,} users, the cache off, so each is one round trip to the "
            "user's primary; the client processes and the three primaries share this "
            "machine's cores):",
            "",
            "| client processes | checks per second |",
            "|---:|---:|",
            *[f"| {n} | {rate:,.0f} |" for n, rate in rates.items()],
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sessions", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--spread-users", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10.0, help="per throughput round")
    args = parser.parse_args()
    print(run(args.sessions, args.users, args.spread_users, args.seconds))


if __name__ == "__main__":
    main()
