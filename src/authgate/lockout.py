"""Login lock-out: a bounded number of password guesses per account and window.

Each attempt first *reserves* a guess with an atomic store increment, before any
password is checked.  So however many processes try at once, at most
``max_attempts`` verifications happen per window; the failure that reaches the limit
locks the account for ``lockout_seconds``.  A success clears the count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .audit import AuditEvent
from .errors import AccountLocked
from .flows import Call, Emit, Flow

__all__ = ["LockoutPolicy"]


@dataclass(frozen=True, slots=True)
class LockoutPolicy:
    """``max_attempts`` failures within ``window`` seconds lock for ``lockout_seconds``;
    ``max_attempts=0`` turns lock-out off."""

    max_attempts: int = 5
    window: int = 300
    lockout_seconds: int = 300

    def _fail_key(self, username: str) -> str:
        return f"login-failures:{username}"

    def _lock_key(self, username: str) -> str:
        return f"login-lock:{username}"

    def reserve(self, username: str, client_ip: str = "") -> Flow[int]:
        """Take one guess for `username`, or raise `AccountLocked` with ``retry_after``."""
        if not self.max_attempts:
            return 0
        locked: int = yield Call("get_counter", (self._lock_key(username),))
        if locked:
            ttl: float = yield Call("counter_ttl", (self._lock_key(username),))
            raise AccountLocked(max(1, math.ceil(ttl)))
        taken: int = yield Call("incr", (self._fail_key(username), self.window))
        if taken > self.max_attempts:
            # Over the limit while the guess that reached it is still being checked.
            raise AccountLocked(self.lockout_seconds)
        return taken

    def failed(self, username: str, taken: int, client_ip: str = "") -> Flow[None]:
        """Record a failed guess; the one that reaches the limit locks the account."""
        if not self.max_attempts or taken < self.max_attempts:
            return
        yield Call("incr", (self._lock_key(username), self.lockout_seconds))
        yield Call("reset_counter", (self._fail_key(username),))
        yield Emit(
            AuditEvent(
                "lockout",
                username,
                client_ip=client_ip,
                detail=f"{self.max_attempts} failed logins; locked for {self.lockout_seconds} s",
            )
        )

    def succeeded(self, username: str) -> Flow[None]:
        """Clear the failure count after a good password."""
        if self.max_attempts:
            yield Call("reset_counter", (self._fail_key(username),))

    def unlock(self, username: str) -> Flow[None]:
        """Lift a lock-out (an admin action)."""
        yield Call("reset_counter", (self._lock_key(username),))
        yield Call("reset_counter", (self._fail_key(username),))
