"""Every per-process cache authgate keeps, in one place.

Each cache is an `LRU`: a bounded mapping that forgets its least recently used entry
when full (never everything at once, so a population larger than the bound still hits
on its recent part).  Each belongs to a `Kind`, declared below with its bound, whose
hit and miss counters `stats` reads (the benchmarks print them).  The caches
themselves live in the objects that own them (a gate, a token verifier, a policy):
no bearer token or claim is kept in a module global, or outlives the object it served.
(Parsed grant strings, which come from code and user records, are the one
module-level cache.)

========================  ========  =====================================================
kind                      bound     holds
========================  ========  =====================================================
``verified tokens``       16,384    access token -> its verified claims (`TokenVerifier`)
``token headers``         64        JWT header segment -> the ring's key for it
``identities``            16,384    access token -> the identity built for it (`Gate`)
``permission sets``       10,000    (roles, groups, grants) -> `PermissionSet` (`RolePolicy`)
``permission decisions``  1,024     per `PermissionSet`: permission -> allowed?
``parsed grants``         4,096     grant string -> parsed `Grant`
``session checks``        50,000    session id -> (session, user) (`SessionCache`, per store)
``outage reasons``        256       503 reason -> last logged (`http`'s log throttle)
``configured gates``      8         (settings, policy) -> `Gate` (Django's `get_gate`)
========================  ========  =====================================================

Sizes: a verified token's claims and an identity take about a kilobyte each, so the
token caches of one process hold at most some 35 MB.  The counters are plain integers
bumped without a lock: exact in one thread, close enough under many (they are for
reading, never for decisions).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["KINDS", "LRU", "Kind", "stats"]

K = TypeVar("K")
V = TypeVar("V")


@dataclass(eq=False)
class Kind:
    """A kind of cache: its name, the bound of each cache of the kind, and the hit and
    miss counts of all of them together."""

    name: str
    bound: int
    hits: int = field(default=0, init=False)
    misses: int = field(default=0, init=False)

    def reset(self) -> None:
        """Start counting again (for a benchmark's next row)."""
        self.hits = self.misses = 0


VERIFIED_TOKENS = Kind("verified tokens", 16_384)
TOKEN_HEADERS = Kind("token headers", 64)
IDENTITIES = Kind("identities", 16_384)
EXTERNAL_IDENTITIES = Kind("external identities", 16_384)
PERMISSION_SETS = Kind("permission sets", 10_000)
PERMISSION_DECISIONS = Kind("permission decisions", 1_024)
PARSED_GRANTS = Kind("parsed grants", 4_096)
SESSION_CHECKS = Kind("session checks", 50_000)
OUTAGE_REASONS = Kind("outage reasons", 256)
CONFIGURED_GATES = Kind("configured gates", 8)

KINDS = (
    VERIFIED_TOKENS,
    EXTERNAL_IDENTITIES,
    TOKEN_HEADERS,
    IDENTITIES,
    PERMISSION_SETS,
    PERMISSION_DECISIONS,
    PARSED_GRANTS,
    SESSION_CHECKS,
    OUTAGE_REASONS,
    CONFIGURED_GATES,
)


def stats() -> dict[str, tuple[int, int]]:
    """Hits and misses so far, by kind."""
    return {kind.name: (kind.hits, kind.misses) for kind in KINDS}


class LRU(Generic[K, V]):
    """A mapping of at most ``kind.bound`` entries (or `bound`) that forgets the least
    recently used one to make room.  Safe to share between threads: a race can cost a
    miss, never a wrong answer."""

    __slots__ = ("_entries", "_to_end", "bound", "kind")

    def __init__(self, kind: Kind, bound: int | None = None) -> None:
        self.kind = kind
        self.bound = kind.bound if bound is None else bound
        self._entries: OrderedDict[K, V] = OrderedDict()
        # Bound once: `get` runs several times a request.
        self._to_end = self._entries.move_to_end

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def get(self, key: K) -> V | None:
        """The entry for `key` (now the most recently used), or None."""
        value = self._entries.get(key)
        if value is None:
            self.kind.misses += 1
            return None
        try:  # noqa: SIM105 - contextlib.suppress costs more than the lookup
            self._to_end(key)
        except KeyError:  # another thread evicted it a moment ago
            pass
        self.kind.hits += 1
        return value

    def unanswered(self) -> None:
        """The entry `get` just returned could not answer (its owner found it stale):
        count that lookup as a miss, not a hit."""
        self.kind.hits -= 1
        self.kind.misses += 1

    def put(self, key: K, value: V) -> tuple[K, V] | None:
        """Remember `value` for `key`; the entry evicted to make room, if any."""
        if self.bound <= 0:
            return None
        entries = self._entries
        entries[key] = value
        entries.move_to_end(key)
        if len(entries) <= self.bound:
            return None
        try:
            return entries.popitem(last=False)
        except KeyError:  # emptied meanwhile by another thread
            return None

    def pop(self, key: K) -> V | None:
        """Forget `key`; its entry, or None."""
        return self._entries.pop(key, None)

    def invalidate(self) -> None:
        """Forget every entry: for a change that makes them all wrong (a new key ring),
        never to make room."""
        self._entries.clear()
