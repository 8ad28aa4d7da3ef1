"""Throttling per client address: a bounded number of failed credential checks (logins,
refresh tokens, SCRAM proofs) per address and window, beside the per-account lock-out.

The lock-out alone lets one address try four passwords on every account, or lock out
every account it can name; this bounds what one address may try across them all.  Each
attempt first *reserves* a slot on its address's counter with an atomic increment,
before any secret is checked, so however many processes serve one address at once, at
most ``per_address`` checks happen per window; an attempt over the limit is answered
429 with ``Retry-After`` without being checked.  A success gives its slot back (an
increment by -1), so only failures (and attempts in flight) count: an office behind
one address logging in all morning is never throttled by its own good logins.

Windows are aligned on the clock (``window`` seconds each, numbered in the counter's
key): a slot is always given back to the window it was taken from, and ``Retry-After``
is the time to the next window.  A refusal that checked nothing (the account locked,
the store unreachable) gives its slot back too.

Optionally, ``per_address_user`` bounds each (address, username) pair too: a way to keep
guessing on one account slow without the account lock-out (which anyone may trigger)
for deployments that turn that off.

IPv6 addresses count by their /64 network: one host commonly holds the whole /64, so
counting single addresses would let it rotate through 2**64 of them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import time
from dataclasses import dataclass
from typing import TypeVar

from ..audit import AuditEvent
from ..errors import AccountLocked, StoreError, TooManyAttempts
from ..stores.base import Store
from .ops import Emit, Flow, call

T = TypeVar("T")

__all__ = ["ClientThrottle", "Reservation", "client_network"]


def client_network(ip: str) -> str:
    """What one client is counted as: an IPv4 address, or an IPv6 address's /64
    network (an IPv4-mapped IPv6 address counts as its IPv4 address), without a port
    (``1.2.3.4:5678``, ``[2001:db8::1]:443``, as some proxies forward them) or a zone;
    anything else (a Unix socket's name, a test client's label) as itself, at most 64
    characters."""
    text = ip.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return ip.strip()[:64]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address)


@dataclass(frozen=True, slots=True)
class Reservation:
    """The counters one attempt took a slot on (given back by `ClientThrottle.passed`)."""

    keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ClientThrottle:
    """At most ``per_address`` failed checks per client address and ``window`` seconds
    (0: no limit), and ``per_address_user`` per address and username (0: no limit)."""

    per_address: int = 50
    per_address_user: int = 0
    window: int = 300

    def key(self, ip: str, username: str = "", *, now: float | None = None) -> str:
        """The counter of `ip`'s failures (with `username`: on that account) in the
        window that holds `now` (default: the present)."""
        window = int((time.time() if now is None else now) // self.window)
        who = f"{client_network(ip)}|{username}" if username else client_network(ip)
        return f"client-failures:{who}@{window}"

    def reserve(self, ip: str, username: str = "") -> Flow[Reservation]:
        """Take a slot for an attempt from `ip` (on `username`, when known), or raise
        `TooManyAttempts`; an attempt with no address (from Python) is not counted."""
        if not ip:
            return Reservation()
        now = time.time()
        limits = [(self.key(ip, now=now), self.per_address)]
        if username:
            limits.append((self.key(ip, username, now=now), self.per_address_user))
        taken: list[str] = []
        for key, limit in limits:
            if not limit:
                continue
            count = yield from call(Store.incr, key, self.window)
            if count > limit:
                for held in taken:  # refused unchecked: what it took elsewhere goes back
                    yield from call(Store.incr, held, self.window, -1)
                if count == limit + 1:  # once per window, not on every refused attempt
                    yield Emit(
                        AuditEvent(
                            "throttled",
                            username,
                            client_ip=ip,
                            detail=f"{limit} failed attempts from this address within "
                            f"{self.window} s",
                        )
                    )
                raise TooManyAttempts(max(1, math.ceil(self.window - now % self.window)))
            taken.append(key)
        return Reservation(tuple(taken))

    def passed(self, reservation: Reservation) -> Flow[None]:
        """The attempt succeeded: give its slots back."""
        for key in reservation.keys:
            yield from call(Store.incr, key, self.window, -1)

    def spared(self, reservation: Reservation, steps: Flow[T]) -> Flow[T]:
        """Run `steps` (an attempt up to its credential check); when they end in a
        refusal that checked no credential (a lock-out, a store outage), give the slots
        back before passing it on: only failed checks count against an address."""
        try:
            return (yield from steps)
        except (AccountLocked, StoreError):
            with contextlib.suppress(StoreError):  # unreachable: kept until the window ends
                yield from self.passed(reservation)
            raise
