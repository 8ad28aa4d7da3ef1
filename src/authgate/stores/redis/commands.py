"""The Redis commands the store sends: one command, or a Lua script (atomic) sent by
its SHA and loaded when the server lacks it."""

from __future__ import annotations

import functools
from collections.abc import Generator
from dataclasses import dataclass
from hashlib import sha1
from typing import Any, TypeVar

from redis.exceptions import NoScriptError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Cmd:
    """One Redis command (what the store's steps yield; a face sends it).  ``route``,
    when set, is a key whose server must run it (a keyless command such as SCAN, on a
    cluster); ``write`` marks a command that may change data (what a face told to
    wait for replicas waits after)."""

    args: tuple[Any, ...]
    route: str = ""
    write: bool = False


@dataclass(frozen=True, slots=True)
class _Pause:
    """A wait of some seconds (while another process upgrades the store's layout)."""

    seconds: float


_Steps = Generator[_Cmd | _Pause, Any, T]


@functools.cache
def _sha(script: str) -> str:
    return sha1(script.encode(), usedforsecurity=False).hexdigest()


def _lua(script: str, keys: tuple[str, ...], args: tuple[Any, ...]) -> _Steps[Any]:
    """Run a Lua script: by its SHA, loading it first when the server lacks it."""
    write = script not in _READ_ONLY
    try:
        return (yield _Cmd(("EVALSHA", _sha(script), len(keys), *keys, *args), write=write))
    except NoScriptError:
        return (yield _Cmd(("EVAL", script, len(keys), *keys, *args), write=write))


#: What a script answers when the session it was sent for lives under its owner's
#: shard (an id that does not begin with that shard): ``{MOVED, owner}``.
MOVED = "authgate:moved"


# Every script's keys share one hash tag: a user's shard (``{prefix:1a2b}:``) for
# whatever belongs to a user, the store's own (``{prefix}:``) for groups.  No script
# names a key it was not given in KEYS.

# A user is one string, ``id|version|record`` (`records`); a session one string whose
# first fields are ``user|refresh|seen|expires``.  FIELDS splits off the first n.
_FIELDS = """
local function fields(v, n)
  local out, at = {}, 1
  for i = 1, n do
    local j = string.find(v, '|', at, true)
    out[i] = string.sub(v, at, j - 1)
    at = j + 1
  end
  return out, string.sub(v, at)
end
"""

# 1 when made, or when the record there is this very one (a create sent again after
# its answer was lost); 0 when another user holds the name.
_CREATE_USER = (
    _FIELDS
    + """
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then return 1 end
local v = redis.call('GET', KEYS[1])
if v and fields(v, 1)[1] == ARGV[2] then return 1 end
return 0
"""
)

_UPDATE_USER = (
    _FIELDS
    + """
local v = redis.call('GET', KEYS[1])
if not v then return -1 end
local cur = fields(v, 2)
if cur[1] ~= ARGV[1] then return -1 end
if cur[2] ~= ARGV[2] then return 0 end
redis.call('SET', KEYS[1], ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
"""
)

# Answers the deleted user's id (for the lookups kept beside), 0 when there was no
# such user, -1 on a version conflict.
_DELETE_USER = (
    _FIELDS
    + """
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
local cur = fields(v, 2)
if ARGV[2] ~= '' and cur[2] ~= ARGV[2] then return -1 end
redis.call('DEL', KEYS[1])
local all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  if fields(all[i + 1], 1)[1] == ARGV[1] then redis.call('HDEL', KEYS[2], all[i]) end
end
redis.call('PUBLISH', ARGV[3], ARGV[1])
return cur[1]
"""
)

_PUT_GROUP = """
redis.call('SET', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return 1
"""

_DELETE_GROUP = """
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"""

# A user's sessions are one hash, sid -> ``user|refresh|seen|expires|...``, which lives
# as long as its longest session (so the hash of a made-up name, a SCRAM HELLO's, goes
# by itself): its expiry is only ever put later, never earlier, and a hash without one
# (left so by an interrupted upgrade) keeps none.  Expects locals idx (the hash),
# exp_ms and now_ms.
_EXTEND_HASH = """
local left = redis.call('PTTL', idx)
if left >= 0 and now_ms + left < exp_ms then redis.call('PEXPIREAT', idx, exp_ms) end
"""

# Drops the sessions of hash `key` that expired by `now` (microseconds, base 36 as the
# records keep them); returns the others, sid, record, sid, record...
_PURGE = """
local function purge(key, now)
  local all, live = redis.call('HGETALL', key), {}
  local cutoff = tonumber(now, 36)
  for i = 1, #all, 2 do
    if tonumber(fields(all[i + 1], 4)[4], 36) <= cutoff then
      redis.call('HDEL', key, all[i])
    else
      table.insert(live, all[i]); table.insert(live, all[i + 1])
    end
  end
  return live
end
"""

_CREATE_SESSION = (
    _FIELDS
    + """
-- A few sessions picked at random are dropped if expired: a write costs the same
-- however many sessions (API keys) the user has; listing them drops them all.
local before = redis.call('PTTL', KEYS[1])
local sample = redis.call('HRANDFIELD', KEYS[1], 8, 'WITHVALUES')
for i = 1, #sample, 2 do
  if tonumber(fields(sample[i + 1], 4)[4], 36) <= tonumber(ARGV[5], 36) then
    redis.call('HDEL', KEYS[1], sample[i])
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local idx, exp_ms, now_ms = KEYS[1], tonumber(ARGV[3]), tonumber(ARGV[4])
if before == -2 or redis.call('PTTL', KEYS[1]) == -1 and before ~= -1 then
  redis.call('PEXPIREAT', idx, exp_ms)
end
"""
    + _EXTEND_HASH
    + """
return 1
"""
)

_GET_SESSION_USER = """
return {redis.call('HGET', KEYS[1], ARGV[1]), redis.call('GET', KEYS[2])}
"""

# The scripts sent for a session id alone start here: KEYS[1] is the hash the id
# names, KEYS[2] the forwarding address beside it, ARGV[1] the id.  A session not
# found there but forwarded answers {MOVED, owner}: it is in its owner's hash.
_FORWARDED = f"""
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then
  local owner = redis.call('GET', KEYS[2])
  if owner then return {{'{MOVED}', owner}} end
end
"""

_GET_SESSION = (
    _FORWARDED
    + """
return v
"""
)

_TOUCH_SESSION = (
    _FIELDS
    + _FORWARDED
    + """
if not v then return 0 end
local f, rest = fields(v, 3)
redis.call('HSET', KEYS[1], ARGV[1], f[1] .. '|' .. f[2] .. '|' .. ARGV[2] .. '|' .. rest)
return 1
"""
)

_ROTATE_REFRESH = (
    _FIELDS
    + _FORWARDED
    + """
if not v then return 0 end
local f, rest = fields(v, 4)
if f[2] ~= ARGV[2] then return 0 end
local fresh = f[1] .. '|' .. ARGV[3] .. '|' .. ARGV[4] .. '|' .. ARGV[5] .. '|' .. rest
redis.call('HSET', KEYS[1], ARGV[1], fresh)
local idx, exp_ms, now_ms = KEYS[1], tonumber(ARGV[6]), tonumber(ARGV[7])
"""
    + _EXTEND_HASH
    + """
return 1
"""
)

_REVOKE_SESSION = (
    _FIELDS
    + _FORWARDED
    + """
if not v then return 0 end
local user = fields(v, 1)[1]
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[2], user)
return 1
"""
)

# Answers sid, record, sid, record...: the user's live sessions (two users whose tags
# agree share the hash: each record names its user).
_LIST_SESSIONS = (
    _FIELDS
    + _PURGE
    + """
local live, out = purge(KEYS[1], ARGV[2]), {}
for i = 1, #live, 2 do
  if fields(live[i + 1], 1)[1] == ARGV[1] then
    table.insert(out, live[i]); table.insert(out, live[i + 1])
  end
end
return out
"""
)

_REVOKE_USER_SESSIONS = (
    _FIELDS
    + """
local all, n = redis.call('HGETALL', KEYS[1]), 0
for i = 1, #all, 2 do
  if all[i] ~= ARGV[2] and fields(all[i + 1], 1)[1] == ARGV[1] then
    n = n + redis.call('HDEL', KEYS[1], all[i])
  end
end
if n > 0 then redis.call('PUBLISH', ARGV[3], ARGV[1]) end
return n
"""
)

_INCR = """
local fresh = redis.call('EXISTS', KEYS[1]) == 0
local v = redis.call('INCRBY', KEYS[1], ARGV[2])
if v < 0 then
  v = 0
  redis.call('SET', KEYS[1], 0, 'KEEPTTL')
end
if fresh or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return v
"""

#: Pieces the scripts above are made of, not scripts themselves.
_FRAGMENTS = frozenset({"_FIELDS", "_EXTEND_HASH", "_PURGE", "_FORWARDED"})

#: The scripts that change nothing (a face waiting for replicas does not wait after them).
_READ_ONLY = frozenset({_GET_SESSION_USER, _GET_SESSION})
