"""Redis Cluster and Sentinel: the key layout keeps every script in one slot while
users spread over the primaries; the session cache hears changes on a cluster and
after a failover; a failover under load answers 503, never 500, and what an
acknowledged write can lose, with and without ``wait=``.

The contract suites run on both topologies too (``[redis-cluster-sync]``,
``[redis-sentinel-async]``...): see conftest.py.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from authgate.api import ApiRequest, HttpApi
from authgate.errors import AuthGateError, SessionRevoked, StoreUnavailable
from authgate.gate import Gate
from authgate.identity import Identity
from authgate.stores import open_store
from authgate.stores.redis import RedisStore, commands
from authgate.stores.redis.invalidator import DEAF_AFTER
from authgate.testing import ClusterSet, SentinelSet, cheap_hasher, redis_cluster, redis_sentinel
from authgate.users import Group, User, utcnow
from conftest import SECRET
from test_outage import SERVERS, under_load

PW = "correct horse battery"


def _scripts() -> dict[str, str]:
    """Every Lua script the store sends, by SHA."""
    return {
        commands._sha(text): name
        for name, text in vars(commands).items()
        if name.isupper() and isinstance(text, str) and "redis.call" in text
        and name not in commands._FRAGMENTS
    }  # fmt: skip


def test_no_script_or_command_touches_two_hash_tags(redis_cluster_set: ClusterSet) -> None:
    """Every script the store has, sent by the flows that use it against a real cluster:
    each one's keys hash to one slot (the cluster would refuse it with CROSSSLOT, or a
    key a script builds itself on another node), and the flows' users spread."""
    url = redis_cluster_set.url(f"prefix=slots-{uuid.uuid4().hex[:8]}")
    gate = Gate(store=url, hasher=cheap_hasher(), secret_key=SECRET, max_sessions=2)
    store = gate.store
    assert isinstance(store, RedisStore)
    sent: list[tuple[str, tuple[str, ...]]] = []
    command = store._command

    def record(*args: Any, **options: Any) -> Any:
        if args[0] in ("EVALSHA", "EVAL"):
            keys = tuple(args[3 : 3 + int(args[2])])
            sha = args[1] if args[0] == "EVALSHA" else commands._sha(args[1])
            sent.append((sha, keys))
        return command(*args, **options)

    store._command = record
    store.put_group(Group.new("ops", ["items:read"]))
    for name in ("alice", "bob", "carol"):
        gate.create_user(name, PW, groups=["ops"])
    pairs = [gate.login("alice", PW) for _ in range(3)]  # the third evicts the first
    who = gate.authenticate(pairs[-1].access_token)
    gate.refresh(pairs[-1].refresh_token)
    key, _ = gate.create_api_key(who, "ci")
    assert gate.authenticate(key).username == "alice"
    with pytest.raises(AuthGateError):
        gate.login("bob", "wrong password")
    gate.change_password(gate.authenticate(gate.login("bob", PW).access_token), PW, PW + " 2")
    store.revoke_session(pairs[1].session_id)
    store.list_sessions("alice")
    store.touch_session(pairs[-1].session_id, utcnow())
    api = HttpApi.for_gate(gate)
    hello = base64.urlsafe_b64encode(b"carol").decode()
    reply = gate.run(
        api.answer(
            ApiRequest("GET", "/auth/scram", Identity(), authorization=f"HELLO username={hello}")
        )
    )
    assert reply is not None and reply.status == 401
    gate.update_user("carol", roles=["operator"])
    gate.delete_user("carol")
    store.delete_group("ops")
    missing = set(_scripts()) - {sha for sha, _ in sent}
    assert not missing, f"scripts this test never sent: {sorted(_scripts()[m] for m in missing)}"
    for sha, keys in sent:
        assert len({key_slot(k.encode()) for k in keys}) == 1, (_scripts()[sha], keys)
    user_slots = {key_slot(keys[0].encode()) for _, keys in sent if ":u:" in keys[0]}
    assert len(user_slots) >= 3  # alice, bob and carol on slots of their own
    gate.close()


def test_ten_thousand_users_spread_evenly_over_three_primaries(
    redis_cluster_set: ClusterSet,
) -> None:
    """Where the cluster puts 10,000 users' records: each primary within 10% of a third."""
    client: Any = redis.cluster.RedisCluster.from_url(redis_cluster_set.node_urls[0])
    try:
        store = RedisStore(redis_cluster_set.url("prefix=spread"), check=False)
        owners = Counter(
            client.get_node_from_key(store.keys.user(f"user{i:05d}")).name for i in range(10_000)
        )
        store.close()
    finally:
        client.close()
    assert len(owners) == 3
    for count in owners.values():
        assert abs(count - 10_000 / 3) <= 0.1 * 10_000 / 3, owners


@pytest.fixture
def sentinel_set() -> Iterator[SentinelSet]:
    """A set of its own: these tests kill its primary."""
    with redis_sentinel() as started:
        yield started


def _promoted(sentinels: SentinelSet, old: tuple[str, int], within: float = 30.0) -> float:
    """Wait until the sentinels name another primary than `old`; when that was seen."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if sentinels.current_primary() != old:
                return time.monotonic()
        except RuntimeError:
            pass
        time.sleep(0.02)
    raise AssertionError(f"no replica was promoted within {within} s")


def test_session_cache_is_off_while_deaf_and_hears_again_after_a_failover(
    sentinel_set: SentinelSet,
) -> None:
    url = sentinel_set.url(f"prefix=cache-{uuid.uuid4().hex[:8]}&timeout=2")
    gate = Gate(store=url, hasher=cheap_hasher(), secret_key=SECRET)
    other = Gate(store=url, hasher=cheap_hasher(), secret_key=SECRET)  # "another process"
    gate.create_user("alice", PW)
    token = gate.login("alice", PW).access_token
    cache = gate.store._session_cache()  # type: ignore[attr-defined]
    deadline = time.monotonic() + 5
    while not cache.enabled:  # subscribed
        assert time.monotonic() < deadline
        time.sleep(0.01)
    for _ in range(3):
        gate.authenticate(token)
    old = sentinel_set.kill_primary()
    # The cache goes off with the subscription: no cached yes while nobody listens.
    deadline = time.monotonic() + 3
    while cache.enabled:
        assert time.monotonic() < deadline, "the cache stayed on with its listener gone"
        time.sleep(0.01)
    with pytest.raises(StoreUnavailable):
        gate.authenticate(token)
    _promoted(sentinel_set, old)
    deadline = time.monotonic() + 15
    while True:  # the app carries on without a restart, the listener subscribes anew
        try:
            gate.authenticate(token)
            if cache.enabled:
                break
        except StoreUnavailable:
            pass
        assert time.monotonic() < deadline, "no recovery after the promotion"
        time.sleep(0.05)
    gate.authenticate(token)  # cached again
    other.store.revoke_user_sessions("alice")
    _heard_within(gate, token, 2.0)
    gate.close()
    other.close()


def _heard_within(gate: Gate, token: str, seconds: float) -> None:
    """Check `token` in a tight loop until the gate refuses it, within `seconds` of now
    (a revocation just made elsewhere, heard through the cache's feed)."""
    revoked_at = time.monotonic()
    while True:
        try:
            gate.authenticate(token)
        except SessionRevoked:
            return
        assert time.monotonic() - revoked_at < seconds, "a cached session outlived its revocation"
        time.sleep(0.001)


def _listening(url: str) -> tuple[Gate, str, Any, Any]:
    """A gate on `url` with alice logged in and checked once, once its cache listens:
    the gate, her token, the cache and its listener."""
    gate = Gate(store=url, hasher=cheap_hasher(), secret_key=SECRET)
    gate.create_user("alice", PW)
    token = gate.login("alice", PW).access_token
    gate.authenticate(token)
    cache = gate.store._session_cache()  # type: ignore[attr-defined]
    listener = gate.store._invalidator  # type: ignore[attr-defined]
    deadline = time.monotonic() + 5
    while not (cache.enabled and listener.server):
        assert time.monotonic() < deadline, "the cache's listener did not subscribe"
        time.sleep(0.01)
    return gate, token, cache, listener


def test_session_cache_hears_again_after_its_cluster_node_fails() -> None:
    """The node the listener subscribed on is killed (a primary: its replica takes
    over its slots): the cache is off until the listener subscribes on another node,
    then hears changes made through the new topology."""
    with redis_cluster(primaries=3, replicas=1) as cluster:
        url = cluster.url(f"prefix=node-{uuid.uuid4().hex[:8]}&timeout=2")
        gate, token, cache, listener = _listening(url)
        other = Gate(store=url, hasher=cheap_hasher(), secret_key=SECRET)
        first = listener.server
        cluster.kill_node(int(first.rpartition(":")[2]))
        deadline = time.monotonic() + 3
        while cache.enabled and listener.server == first:
            assert time.monotonic() < deadline, "the cache stayed on with its node gone"
            time.sleep(0.01)
        deadline = time.monotonic() + 20
        while not (cache.enabled and listener.server != first):
            assert time.monotonic() < deadline, "the listener did not subscribe elsewhere"
            time.sleep(0.05)
        while True:  # until the cluster has promoted a replica for every slot
            try:
                assert gate.authenticate(token).username == "alice"
                other.store.get_user("alice")
                break
            except StoreUnavailable:
                assert time.monotonic() < deadline + 20, "the cluster did not recover"
                time.sleep(0.1)
        other.store.revoke_user_sessions("alice")
        _heard_within(gate, token, 2.0)
        gate.close()
        other.close()


def test_on_a_cluster_the_cache_hears_through_every_primary() -> None:
    """The heartbeat goes through every primary (a change made on another primary
    reaches the listener's node over the cluster bus, which a PING to that node does
    not prove): a primary lost anywhere, not only the listener's, turns the cache off
    until the cluster has promoted its replica."""
    with redis_cluster(primaries=3, replicas=1) as cluster:
        gate, _, cache, listener = _listening(
            cluster.url(f"prefix=beat-{uuid.uuid4().hex[:8]}&timeout=2")
        )
        elsewhere = next(url for url in cluster.primary_urls if not url.endswith(listener.server))
        cluster.kill_node(int(elsewhere.rpartition(":")[2]))
        deadline = time.monotonic() + DEAF_AFTER + 1.0
        while cache.enabled:
            assert time.monotonic() < deadline, "the cache stayed on without that primary"
            time.sleep(0.01)
        deadline = time.monotonic() + 30
        while not cache.enabled:
            assert time.monotonic() < deadline, "the cache did not come back after promotion"
            time.sleep(0.05)
        gate.close()


@pytest.mark.parametrize("server", list(SERVERS))
def test_sentinel_failover_under_load(
    server: str, sentinel_set: SentinelSet, tmp_path: Path
) -> None:
    """The primary SIGKILLed while two workers serve 4 clients: every answer during the
    failover is a 503 with Retry-After (none a 500, none slower than the timeout),
    service comes back after the promotion without a restart, and the figures (503s,
    longest answer, recovery, acknowledged writes lost) are printed for the notes."""
    timeout = 2.0
    store_url = sentinel_set.url(f"prefix=failover-{uuid.uuid4().hex[:8]}&timeout={timeout}")
    log = tmp_path / "server.log"
    with under_load(server, store_url, log) as answers:
        killed = time.monotonic()
        old = sentinel_set.kill_primary()
        promoted = _promoted(sentinel_set, old)
        time.sleep(5.0)
    refused = [a for a in answers if a.status == 503]
    longest = max(a.ended - a.started for a in answers)
    after = [a for a in answers if a.started >= promoted and a.status < 400]
    first_ok = min((a.started for a in after), default=float("inf"))
    late = [a for a in answers if a.started >= first_ok and a.status >= 500]
    acknowledged = [a.created for a in answers if a.created]
    store = open_store(store_url)
    try:
        lost = [name for name in acknowledged if store.get_user(name) is None]
    finally:
        store.close()
    print(
        f"\n{server}: {len(answers)} requests; primary killed, replica promoted after "
        f"{promoted - killed:.2f} s; {len(refused)} x 503; longest answer {longest:.3f} s; "
        f"first success {first_ok - promoted:.3f} s after the promotion; "
        f"{len(lost)} of {len(acknowledged)} acknowledged writes lost"
    )
    assert not [a for a in answers if a.status >= 500 and a.status != 503]
    assert not [a for a in answers if a.status == 0], "the app itself stopped answering"
    assert refused, "the failover went unnoticed: the test did not test it"
    for a in refused:
        assert a.retry_after is not None and int(a.retry_after) >= 1
        assert "127.0.0.1" not in a.body and '"store_unavailable"' in a.body, a.body
    assert longest < timeout + 1.0
    assert first_ok < promoted + 3.0, "service did not come back after the promotion"
    assert len(late) <= 4, [(round(a.started - first_ok, 2), a.status) for a in late]
    assert "Traceback" not in log.read_text(errors="replace"), log.read_text()[-3000:]


def test_what_an_acknowledged_write_can_lose_in_a_failover_and_what_wait_saves(
    sentinel_set: SentinelSet,
) -> None:
    """20 writes with the replica in sync, then 20 with its link cut (the primary
    drops it and asks new connections for a password it lacks), then the primary
    killed: without ``wait=`` the promoted replica lacks the second 20, acknowledged
    all the same; with ``wait=1`` none is lost, because none of the 20 was
    acknowledged (each answered 503 once the replica had not confirmed it in time)."""
    figures: dict[int, tuple[int, int, int]] = {}
    figures[0] = _writes_across_a_failover(sentinel_set, wait=0)
    with redis_sentinel() as fresh:
        figures[1] = _writes_across_a_failover(fresh, wait=1)
    for wait, (acked, refused, lost) in figures.items():
        print(f"\nwait={wait}: {acked} writes acknowledged, {refused} answered 503, {lost} lost")
    assert figures[0] == (40, 0, 20)
    assert figures[1] == (20, 20, 0)


def _writes_across_a_failover(sentinels: SentinelSet, wait: int) -> tuple[int, int, int]:
    url = sentinels.url(
        f"prefix=wait-{uuid.uuid4().hex[:8]}&timeout=2&wait={wait}&wait_timeout=0.2&cache_ttl=0"
    )
    store = RedisStore(url)
    host, port = sentinels.current_primary()
    acked: list[str] = []
    refused = 0

    def write(name: str) -> None:
        nonlocal refused
        try:
            store.create_user(User.new(name))
            acked.append(name)
        except StoreUnavailable:
            refused += 1

    for i in range(20):
        write(f"synced{i:02d}")
    primary: Any = redis.Redis(host=host, port=port)
    primary.config_set("requirepass", "the replica does not know this")
    primary.execute_command("CLIENT", "KILL", "TYPE", "replica")
    for i in range(20):
        write(f"cut{i:02d}")
    primary.close()
    old = sentinels.kill_primary()
    _promoted(sentinels, old)
    deadline = time.monotonic() + 15
    while True:
        try:
            lost = sum(1 for name in acked if store.get_user(name) is None)
            break
        except StoreUnavailable:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    store.close()
    return len(acked), refused, lost
