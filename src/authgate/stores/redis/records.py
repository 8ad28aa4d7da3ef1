"""How the Redis store packs a session and a user into one string each.

A session is the value of one key that expires with it (layout 2):
``user|refresh|seen|expires|created|kind|extra``: the username; the refresh hash (a
SHA-256 in hex is kept as ``~`` and its 43 base64url characters); three times as
microseconds since the epoch in base 36 (11 characters where ISO text takes 32);
the kind (empty for a login); and, only when any is set, the client address, user
agent and data as a JSON array.  The scripts read and rewrite the first four fields
in place (`commands`); nothing before the last field may hold a ``|``, so text there
is escaped.  About 110 bytes for a login session without a client description,
where the JSON record of layout 1 took 330 and a hash of five fields around it 880
(measured in Redis: `docs/redis.md`).

A user is ``id|version|record``, the record the JSON every text store writes.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime, timedelta, timezone

from ...errors import StoreError
from ...users import Session, User
from .. import _codec

__all__ = [
    "escape",
    "micros",
    "pack_refresh",
    "pack_session",
    "pack_user",
    "unescape",
    "unpack_session",
    "unpack_user",
]

_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_LOGIN = "login"


def micros(value: datetime) -> str:
    """`value` as whole microseconds since the epoch, in base 36."""
    delta = value - _EPOCH
    number = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if number <= 0:
        return "0"
    out = []
    while number:
        number, digit = divmod(number, 36)
        out.append(_DIGITS[digit])
    return "".join(reversed(out))


def _time(text: str) -> datetime:
    return _EPOCH + timedelta(microseconds=int(text, 36))


def escape(text: str) -> str:
    """`text` with no ``|`` (a field the scripts split on) and no leading ``~``."""
    escaped = text.replace("%", "%25").replace("|", "%7C")
    return "%7E" + escaped[1:] if escaped.startswith("~") else escaped


def unescape(text: str) -> str:
    """The text `escape` was given."""
    return text.replace("%7E", "~").replace("%7C", "|").replace("%25", "%")


def pack_refresh(refresh_hash: str) -> str:
    """A refresh hash as the session record keeps it (what a script compares)."""
    if _HEX64.fullmatch(refresh_hash):
        return "~" + base64.urlsafe_b64encode(bytes.fromhex(refresh_hash)).decode()[:43]
    return escape(refresh_hash)


def _unpack_refresh(text: str) -> str:
    if text.startswith("~"):
        return base64.urlsafe_b64decode(text[1:] + "=").hex()
    return unescape(text)


def pack_session(session: Session) -> str:
    """The string a session is kept as (its id is the key's)."""
    extra = ""
    if session.client_ip or session.user_agent or session.data:
        extra = json.dumps(
            [session.client_ip, session.user_agent, session.data],
            separators=(",", ":"),
            ensure_ascii=False,
        )
    return "|".join(
        (
            escape(session.username),
            pack_refresh(session.refresh_hash),
            micros(session.last_seen),
            micros(session.expires_at),
            micros(session.created_at),
            "" if session.kind == _LOGIN else escape(session.kind),
            extra,
        )
    )


def unpack_session(session_id: str, raw: str) -> Session:
    """The session `pack_session` wrote; `StoreError` when the value is corrupt."""
    try:
        user, refresh, seen, expires, created, kind, extra = raw.split("|", 6)
        ip, agent, data = json.loads(extra) if extra else ("", "", {})
        return Session(
            id=session_id,
            username=unescape(user),
            expires_at=_time(expires),
            created_at=_time(created),
            last_seen=_time(seen),
            client_ip=str(ip),
            user_agent=str(agent),
            refresh_hash=_unpack_refresh(refresh),
            kind=unescape(kind) or _LOGIN,
            data={str(k): str(v) for k, v in dict(data).items()},
        )
    except (ValueError, TypeError, binascii.Error) as err:
        raise StoreError("a stored session record is corrupt") from err


def pack_user(user: User) -> str:
    """The string a user is kept as: id and version first, for the scripts."""
    return f"{escape(user.id)}|{user.version}|{_codec.user_to_json(user)}"


def unpack_user(raw: str) -> User:
    """The user `pack_user` wrote."""
    return _codec.user_from_json(raw.split("|", 2)[-1])
