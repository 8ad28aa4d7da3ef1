"""Audit events: one structured record per security-relevant thing that happens.

Each event goes to the stdlib logger ``authgate.audit`` (the event's fields are in the
record's ``audit`` attribute, ready for a JSON formatter) and to every subscriber.  No
event ever carries a password, a hash or a token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .users import utcnow

__all__ = ["AuditEvent", "AuditLog"]

logger = logging.getLogger("authgate.audit")

EVENTS = frozenset(
    {
        "login_success",
        "login_failure",
        "lockout",
        "logout",
        "refresh",
        "refresh_token_reuse",
        "password_change",
        "session_revoked",
        "sessions_revoked",
        "api_key_created",
        "api_key_revoked",
    }
)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """What happened, to whom, when, from where."""

    event: str
    username: str
    session_id: str = ""
    client_ip: str = ""
    detail: str = ""
    at: datetime = field(default_factory=utcnow)

    def to_dict(self) -> dict[str, Any]:
        """The event as a flat JSON-ready dict."""
        return {
            "event": self.event,
            "username": self.username,
            "session_id": self.session_id,
            "client_ip": self.client_ip,
            "detail": self.detail,
            "at": self.at.isoformat(),
        }


Subscriber = Callable[[AuditEvent], None]


class AuditLog:
    """Sends events to ``logging`` and to subscribers; a failing subscriber is logged,
    never allowed to break a login."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, callback: Subscriber) -> Subscriber:
        """Call `callback` with every event; usable as a decorator."""
        self._subscribers.append(callback)
        return callback

    def unsubscribe(self, callback: Subscriber) -> None:
        """Stop calling `callback`."""
        self._subscribers.remove(callback)

    def emit(self, event: AuditEvent) -> None:
        """Record one event."""
        level = (
            logging.INFO
            if event.event in ("login_success", "logout", "refresh")
            else (logging.WARNING)
        )
        logger.log(
            level,
            "%s user=%s session=%s ip=%s %s",
            event.event,
            event.username,
            event.session_id or "-",
            event.client_ip or "-",
            event.detail,
            extra={"audit": event.to_dict()},
        )
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:
                logger.exception("an audit subscriber failed on %s", event.event)
