"""Multi-step operations written once, as generators of small operations.

A flow never touches a store or argon2 itself: it yields an operation (`ops`: a typed
store call, a hash, a verification, an audit event) and receives the result.  `run`
drives a flow against a sync store, `arun` against an async one (`drive`).  The flows
themselves live by concept: `users` (administration and start-up seeding); logins,
sessions, API keys and SCRAM in their own modules.
"""

from __future__ import annotations

from .drive import Emitter, arun, hashing_pool, run
from .ops import (
    Call,
    DeriveScram,
    DummyVerify,
    Emit,
    Flow,
    Hash,
    Op,
    Pause,
    Settle,
    Verify,
    call,
)

__all__ = [
    "Call",
    "DeriveScram",
    "DummyVerify",
    "Emit",
    "Emitter",
    "Flow",
    "Hash",
    "Op",
    "Pause",
    "Settle",
    "Verify",
    "arun",
    "call",
    "hashing_pool",
    "run",
]
