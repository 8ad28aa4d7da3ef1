"""The one cache layer: bounded, least recently used first out, counted."""

from __future__ import annotations

import threading

import pytest

from authgate import caches
from authgate.caches import LRU, Kind
from authgate.gate import Gate
from authgate.testing import cheap_hasher

SECRET = "caches-test-secret-key-long-enough-for-hs256"


def test_a_full_cache_forgets_the_least_recently_used_entry_only() -> None:
    lru: LRU[str, int] = LRU(Kind("test", 3))
    for n, key in enumerate("abc"):
        assert lru.put(key, n) is None
    assert lru.get("a") == 0  # a is now the most recent: b is the oldest
    assert lru.put("d", 3) == ("b", 1)
    assert "b" not in lru and len(lru) == 3
    assert [lru.get(k) for k in "acd"] == [0, 2, 3]


def test_putting_a_known_key_refreshes_it_without_growing() -> None:
    lru: LRU[str, int] = LRU(Kind("test", 2))
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.put("a", 10) is None
    assert lru.put("c", 3) == ("b", 2)
    assert lru.get("a") == 10


def test_hits_and_misses_are_counted_by_kind() -> None:
    kind = Kind("test", 10)
    one: LRU[str, int] = LRU(kind)
    other: LRU[str, int] = LRU(kind)
    one.put("a", 1)
    one.get("a")
    one.get("b")
    other.get("a")
    assert (kind.hits, kind.misses) == (1, 2)
    kind.reset()
    assert (kind.hits, kind.misses) == (0, 0)


def test_an_entry_found_stale_counts_as_a_miss() -> None:
    kind = Kind("test", 10)
    lru: LRU[str, int] = LRU(kind)
    lru.put("a", 1)
    assert lru.get("a") == 1
    lru.unanswered()
    assert (kind.hits, kind.misses) == (0, 1)


def test_a_bound_of_zero_keeps_nothing() -> None:
    lru: LRU[str, int] = LRU(Kind("test", 0))
    assert lru.put("a", 1) is None
    assert lru.get("a") is None and len(lru) == 0


def test_pop_and_invalidate_forget() -> None:
    lru: LRU[str, int] = LRU(Kind("test", 5))
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.pop("a") == 1 and lru.pop("a") is None
    lru.invalidate()
    assert len(lru) == 0


def test_threads_sharing_a_cache_never_exceed_its_bound_or_break_it() -> None:
    lru: LRU[int, int] = LRU(Kind("test", 64))
    failures: list[BaseException] = []

    def hammer(offset: int) -> None:
        try:
            for n in range(20_000):
                key = (n * 7 + offset) % 200
                if lru.get(key) is None:
                    lru.put(key, key)
                elif lru.get(key) != key:
                    raise AssertionError("a wrong answer")
        except BaseException as err:  # pragma: no cover - reported below
            failures.append(err)

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert len(lru) <= 64


def test_every_kind_is_listed_and_stats_read_them_all() -> None:
    declared = [v for v in vars(caches).values() if isinstance(v, Kind)]
    assert set(map(id, declared)) == set(map(id, caches.KINDS))
    assert set(caches.stats()) == {k.name for k in caches.KINDS}
    assert all(k.bound > 0 for k in caches.KINDS)


@pytest.mark.parametrize("stateless", [True, False], ids=["stateless", "session-checked"])
def test_a_population_larger_than_the_old_bound_keeps_hitting(stateless: bool) -> None:
    """5,000 live tokens (more than the 4,096 at which the old caches emptied
    themselves): after one pass, every further request is a hit."""
    gate = Gate(store="memory://", secret_key=SECRET, hasher=cheap_hasher(), stateless=stateless)
    gate.create_user("pat", "pat password 1")
    tokens = [gate.verifier.issue({"sub": "pat", "sid": f"s{n}", "ver": 1}, 600)
              for n in range(5000)]  # fmt: skip
    if not stateless:
        tokens = [gate.login("pat", "pat password 1").access_token for _ in range(5000)]
    for token in tokens:
        gate.authenticate(token)
    caches.VERIFIED_TOKENS.reset()
    caches.IDENTITIES.reset()
    for token in tokens:
        gate.authenticate(token)
    assert caches.VERIFIED_TOKENS.misses == 0 and caches.VERIFIED_TOKENS.hits == 5000
    assert caches.IDENTITIES.misses == 0 and caches.IDENTITIES.hits == 5000
