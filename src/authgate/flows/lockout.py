"""Login lock-out: a bounded number of password guesses per account and window.

Each attempt first *reserves* a guess with an atomic increment of the account's
counter, before any password is checked; an attempt whose number is above
``max_attempts`` is not checked.  So however many processes try at once, at most
``max_attempts`` verifications happen per window until one of them succeeds: a success
clears the counter.  Failures are counted apart, once checked: the failure that brings
them to ``max_attempts`` sets the account's lock marker (and stretches the counters) for
``lockout_seconds``: that is the lock.  A correct login still in flight holds a
reservation but is no failure, so it can never be what locks its own account.

An attempt over the limit with no lock set is one of several logins in flight at once
(a user's six tabs all logging in): it waits, up to `WAIT_SECONDS`, for the ones before
it to finish, taking a new number as they do, and is checked as soon as a success frees
the counter; it is refused only if the account locks or the wait runs out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..audit import AuditEvent
from ..errors import AccountLocked
from ..stores.base import Store
from .ops import Emit, Flow, Pause, call

__all__ = ["LockoutPolicy"]

#: How long an attempt over the limit waits for the attempts in flight before it.
WAIT_SECONDS = 2.0
_WAIT_STEP = 0.05


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    """``max_attempts`` failures within ``window`` seconds lock for ``lockout_seconds``;
    ``max_attempts=0`` turns lock-out off."""

    max_attempts: int = 5
    window: int = 300
    lockout_seconds: int = 300

    def key(self, username: str) -> str:
        """The counter of `username`'s guesses since the last success."""
        return f"login-failures:{username}"

    def failures_key(self, username: str) -> str:
        """The counter of `username`'s checked and failed guesses since the last success."""
        return f"login-failed:{username}"

    def lock_key(self, username: str) -> str:
        """The marker that is set while `username` is locked out."""
        return f"login-locked:{username}"

    def reserve(self, username: str) -> Flow[int]:
        """Take one guess for `username`, or raise `AccountLocked` with ``retry_after``."""
        if not self.max_attempts:
            return 0
        waited = 0.0
        while True:
            taken = yield from call(Store.incr, self.key(username), self.window)
            if taken <= self.max_attempts:
                return taken
            locked = yield from call(Store.get_counter, self.lock_key(username))
            if locked or waited >= WAIT_SECONDS:
                ttl = yield from call(Store.counter_ttl, self.lock_key(username))
                raise AccountLocked(max(1, math.ceil(ttl)))
            yield Pause(_WAIT_STEP)  # attempts in flight: a success frees the counter
            waited += _WAIT_STEP

    def give_back(self, username: str) -> Flow[None]:
        """Return a reservation whose guess was never checked (the store failed)."""
        if self.max_attempts:
            yield from call(Store.incr, self.key(username), self.window, -1)

    def failed(self, username: str, client_ip: str = "") -> Flow[None]:
        """Record a failed guess; the one that brings the failures to the limit locks
        the account."""
        if not self.max_attempts:
            return
        failures = yield from call(Store.incr, self.failures_key(username), self.window)
        if failures != self.max_attempts:
            return
        yield from call(Store.incr, self.lock_key(username), self.lockout_seconds)
        # The reservations' window may have started afresh while this guess was checked:
        # fill it, so that every attempt during the lock is over the limit and sees it.
        yield from call(Store.incr, self.key(username), self.lockout_seconds, self.max_attempts)
        yield from call(Store.expire_counter, self.key(username), self.lockout_seconds)
        yield from call(Store.expire_counter, self.failures_key(username), self.lockout_seconds)
        yield Emit(
            AuditEvent(
                "lockout",
                username,
                client_ip=client_ip,
                detail=f"{self.max_attempts} failed logins; locked for {self.lockout_seconds} s",
            )
        )

    def succeeded(self, username: str) -> Flow[None]:
        """Clear the counts after a good password."""
        if self.max_attempts:
            yield from call(Store.reset_counter, self.key(username))
            yield from call(Store.reset_counter, self.failures_key(username))

    def unlock(self, username: str) -> Flow[None]:
        """Lift a lock-out (an admin action)."""
        yield from call(Store.reset_counter, self.lock_key(username))
        yield from call(Store.reset_counter, self.key(username))
        yield from call(Store.reset_counter, self.failures_key(username))
