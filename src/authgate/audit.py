"""Audit events: one structured record per security-relevant thing that happens.

Each event goes to the stdlib logger ``authgate.audit`` (the event's fields are in the
record's ``audit`` attribute; `JSONFormatter` writes them as one JSON object a line) and
to every subscriber.  No event ever carries a password, a hash or a token.

Logins and sessions, API keys, every change to a user (who changed what about whom, from
the HTTP API, the CLI or Python) and every refusal of a guard (what was required, of
whom, for which resource) are recorded.  `configure_logging` gives the ``authgate``
loggers a handler with time and level when the application has configured none, so the
lines look the same under uvicorn, gunicorn and a plain script (``AUTHGATE_LOG_FORMAT``:
``text``, ``json`` or ``none`` to leave logging entirely to the application).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .users import utcnow

__all__ = [
    "AuditEvent",
    "AuditLog",
    "JSONFormatter",
    "bind_audit_log",
    "configure_logging",
    "record_denial",
    "unbind_audit_log",
]

logger = logging.getLogger("authgate.audit")

EVENTS = frozenset(
    {
        "login_success",
        "login_failure",
        "throttled",
        "lockout",
        "logout",
        "refresh",
        "refresh_token_reuse",
        "password_change",
        "session_revoked",
        "sessions_revoked",
        "api_key_created",
        "api_key_revoked",
        "user_created",
        "user_updated",
        "user_deleted",
        "password_reset",
        "permission_denied",
        "login_second_step",
        "mfa_enrolment_started",
        "mfa_enrolled",
        "mfa_success",
        "mfa_failure",
        "mfa_recovery_regenerated",
        "mfa_removed",
        "mfa_reset",
        "reauthenticated",
    }
)
# Everyday successes; every other event is a WARNING.
_INFO = frozenset(
    {
        "login_success",
        "logout",
        "refresh",
        "user_created",
        "user_updated",
        "login_second_step",
        "mfa_success",
        "reauthenticated",
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
    #: Who did it, when not `username` itself: the admin who changed a user ("cli" for
    #: the command line); empty for a user's own actions.
    actor: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The event as a flat JSON-ready dict."""
        return {
            "event": self.event,
            "username": self.username,
            "actor": self.actor,
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
        _log(event)
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:
                logger.exception("an audit subscriber failed on %s", event.event)


def _log(event: AuditEvent) -> None:
    logger.log(
        logging.INFO if event.event in _INFO else logging.WARNING,
        "%s user=%s by=%s session=%s ip=%s %s",
        event.event,
        event.username or "-",
        event.actor or "-",
        event.session_id or "-",
        event.client_ip or "-",
        event.detail,
        extra={"audit": event.to_dict()},
    )


# The audit log of the Gate serving the current request: guards run without a Gate at
# hand, so the HTTP API (`HttpApi.for_gate`) binds its gate's for what it calls.
_bound: ContextVar[AuditLog | None] = ContextVar("authgate.audit", default=None)


def bind_audit_log(log: AuditLog) -> Token[AuditLog | None]:
    """Send the events recorded in this context without a Gate (a guard's refusal) to
    `log` and its subscribers; pass the token to `unbind_audit_log`."""
    return _bound.set(log)


def unbind_audit_log(token: Token[AuditLog | None]) -> None:
    """Undo a `bind_audit_log`."""
    _bound.reset(token)


def record_denial(username: str, required: str, resource: str = "") -> None:
    """Record that a guard refused `username` (anonymous: empty) for want of `required`:
    to the bound Gate's audit log (its subscribers too), else to the logger alone."""
    detail = f"requires {required}" + (f" on {resource}" if resource else "")
    event = AuditEvent("permission_denied", username, detail=detail)
    log = _bound.get()
    if log is None:
        _log(event)
    else:
        log.emit(event)


class JSONFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, and an audit event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        audit = getattr(record, "audit", None)
        if isinstance(audit, dict):
            out.update(audit)
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_installed: logging.Handler | None = None


def configure_logging(style: str = "text", level: int = logging.INFO) -> logging.Handler | None:
    """Give the ``authgate`` loggers a stderr handler (``"text"``: time, level, logger,
    message; ``"json"``: `JSONFormatter`) unless the application already configured
    logging (a handler on ``authgate`` or on the root logger), or `style` is ``"none"``.
    Once per process; returns the handler installed, if any."""
    global _installed
    if style not in ("text", "json", "none"):
        raise ValueError(f"log format must be 'text', 'json' or 'none', not {style!r}")
    package = logging.getLogger("authgate")
    if style == "none" or _installed is not None:
        return _installed
    if package.handlers or logging.getLogger().handlers:
        return None
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if style == "json" else logging.Formatter(TEXT_FORMAT))
    package.addHandler(handler)
    if package.level == logging.NOTSET:
        package.setLevel(level)
    _installed = handler
    return handler
