"""Login lock-out: a bounded number of password guesses per account and window.

One counter per account does it all.  Each attempt first *reserves* a guess with an
atomic increment, before any password is checked; an attempt whose number is above
``max_attempts`` is refused unchecked.  So however many processes try at once, at most
``max_attempts`` verifications happen per window.  The failure that reaches the limit
stretches the counter's life to ``lockout_seconds``: that is the lock.  A success
clears the counter.
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

    def key(self, username: str) -> str:
        """The counter that holds `username`'s recent failures."""
        return f"login-failures:{username}"

    def reserve(self, username: str) -> Flow[int]:
        """Take one guess for `username`, or raise `AccountLocked` with ``retry_after``."""
        if not self.max_attempts:
            return 0
        taken: int = yield Call("incr", (self.key(username), self.window))
        if taken > self.max_attempts:
            ttl: float = yield Call("counter_ttl", (self.key(username),))
            raise AccountLocked(max(1, math.ceil(ttl)))
        return taken

    def failed(self, username: str, taken: int, client_ip: str = "") -> Flow[None]:
        """Record a failed guess; the one that reaches the limit locks the account."""
        if not self.max_attempts or taken != self.max_attempts:
            return
        yield Call("expire_counter", (self.key(username), self.lockout_seconds))
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
            yield Call("reset_counter", (self.key(username),))

    def unlock(self, username: str) -> Flow[None]:
        """Lift a lock-out (an admin action)."""
        yield Call("reset_counter", (self.key(username),))
