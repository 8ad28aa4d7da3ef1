"""The Redis store's packed records read back exactly what was written, whatever the
text in them (a ``|`` or ``%`` cannot shift the fields the scripts split on)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from authgate.stores.redis import records
from authgate.users import Session, User

_TIMES = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(timezone.utc)
)
_TEXT = st.text(max_size=40)


@given(
    username=_TEXT.filter(bool),
    refresh=st.one_of(_TEXT, st.binary(min_size=32, max_size=32).map(lambda b: b.hex())),
    seen=_TIMES,
    created=_TIMES,
    ttl=st.integers(min_value=0, max_value=10**9),
    ip=_TEXT,
    agent=st.text(max_size=300),
    kind=st.sampled_from(["login", "apikey", "scram", "a|b%7C"]),
    data=st.dictionaries(_TEXT, _TEXT, max_size=3),
)
def test_a_session_packs_and_unpacks_to_itself(
    username: str,
    refresh: str,
    seen: datetime,
    created: datetime,
    ttl: int,
    ip: str,
    agent: str,
    kind: str,
    data: dict[str, str],
) -> None:
    session = Session(
        id="anything", username=username, expires_at=created + timedelta(seconds=ttl),
        created_at=created, last_seen=seen, client_ip=ip, user_agent=agent,
        refresh_hash=refresh, kind=kind, data=data,
    )  # fmt: skip
    packed = records.pack_session(session)
    assert records.unpack_session("anything", packed) == session
    assert records.unpack_session("anything", packed).data == data
    # The fields the scripts read: user, refresh, seen, expires, each without a "|".
    user, packed_refresh, packed_seen, packed_expires, _ = packed.split("|", 4)
    assert records.unescape(user) == username
    assert packed_refresh == records.pack_refresh(refresh)
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    assert int(packed_seen, 36) == (seen - epoch) // timedelta(microseconds=1)
    assert int(packed_expires, 36) == (session.expires_at - epoch) // timedelta(microseconds=1)


def test_a_login_session_without_a_client_fits_in_about_110_bytes() -> None:
    now = datetime(2026, 12, 4, tzinfo=timezone.utc)
    session = Session(
        id="x" * 32, username="alice@example.com", expires_at=now + timedelta(days=14),
        created_at=now, last_seen=now, refresh_hash=hashlib.sha256(b"r").hexdigest(),
    )  # fmt: skip
    assert len(records.pack_session(session)) <= 110


@given(user_id=_TEXT.filter(bool), version=st.integers(min_value=1, max_value=10**6))
def test_a_user_keeps_its_id_and_version_first_for_the_scripts(user_id: str, version: int) -> None:
    user = dataclasses.replace(User.new("alice"), id=user_id, version=version)
    packed = records.pack_user(user)
    first, second, _ = packed.split("|", 2)
    assert (records.unescape(first), int(second)) == (user_id, version)
    assert records.unpack_user(packed) == user


def test_a_user_written_before_email_verified_unpacks_as_unverified() -> None:
    user = User.new("alice", email="a@example.com", email_verified=True)
    record = json.loads(records.pack_user(user).split("|", 2)[-1])
    del record["email_verified"]
    old = f"{records.escape(user.id)}|{user.version}|{json.dumps(record)}"
    assert records.unpack_user(old) == dataclasses.replace(user, email_verified=False)
