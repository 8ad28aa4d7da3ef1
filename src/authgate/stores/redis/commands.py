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
    """One Redis command (what the store's steps yield; a face sends it)."""

    args: tuple[Any, ...]


_Steps = Generator[_Cmd, Any, T]


@functools.cache
def _sha(script: str) -> str:
    return sha1(script.encode(), usedforsecurity=False).hexdigest()


def _lua(script: str, keys: tuple[str, ...], args: tuple[Any, ...]) -> _Steps[Any]:
    """Run a Lua script: by its SHA, loading it first when the server lacks it."""
    try:
        return (yield _Cmd(("EVALSHA", _sha(script), len(keys), *keys, *args)))
    except NoScriptError:
        return (yield _Cmd(("EVAL", script, len(keys), *keys, *args)))


_CREATE_USER = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'id', ARGV[2], 'version', ARGV[3], 'record', ARGV[4])
redis.call('ZADD', KEYS[2], 0, ARGV[1])
redis.call('SET', KEYS[3], ARGV[1])
return 1
"""

_UPDATE_USER = """
local cur = redis.call('HMGET', KEYS[1], 'id', 'version')
if not cur[1] or cur[1] ~= ARGV[1] then return -1 end
if cur[2] ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[3], 'record', ARGV[4])
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1
"""

_DELETE_USER = """
local cur = redis.call('HMGET', KEYS[1], 'id', 'version')
local id = cur[1]
if not id then return 0 end
if ARGV[3] ~= '' and cur[2] ~= ARGV[3] then return -1 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('DEL', ARGV[2] .. 'uid:' .. id)
for _, sid in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  redis.call('DEL', ARGV[2] .. 's:' .. sid)
end
redis.call('DEL', KEYS[3])
redis.call('PUBLISH', ARGV[2] .. 'changes', ARGV[1])
return 1
"""

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

# A user's session index lives as long as their longest session, so the index of a
# made-up name (a SCRAM HELLO) goes by itself.  Expects locals idx, exp_ms and now_ms.
_EXTEND_INDEX = """
local left = redis.call('PTTL', idx)
if left < 0 or now_ms + left < exp_ms then redis.call('PEXPIREAT', idx, exp_ms) end
"""

_CREATE_SESSION = (
    """
redis.call('HSET', KEYS[1], 'record', ARGV[1], 'user', ARGV[2], 'refresh', ARGV[3],
           'exp', ARGV[4], 'seen', ARGV[5])
redis.call('PEXPIREAT', KEYS[1], ARGV[8])
redis.call('ZADD', KEYS[2], ARGV[6], ARGV[7])
local idx, exp_ms, now_ms = KEYS[2], tonumber(ARGV[8]), tonumber(ARGV[9])
"""
    + _EXTEND_INDEX
    + """
return 1
"""
)

_GET_SESSION_USER = """
local row = redis.call('HMGET', KEYS[1], 'record', 'refresh', 'exp', 'seen')
return {row[1], row[2], row[3], row[4], redis.call('HGET', KEYS[2], 'record')}
"""

_TOUCH_SESSION = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'seen', ARGV[1])
return 1
"""

_ROTATE_REFRESH = (
    """
local cur = redis.call('HGET', KEYS[1], 'refresh')
if not cur or cur ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'refresh', ARGV[2], 'exp', ARGV[3], 'seen', ARGV[4])
redis.call('PEXPIREAT', KEYS[1], ARGV[5])
local idx = ARGV[7] .. 'us:' .. redis.call('HGET', KEYS[1], 'user')
local exp_ms, now_ms = tonumber(ARGV[5]), tonumber(ARGV[6])
"""
    + _EXTEND_INDEX
    + """
return 1
"""
)

_REVOKE_SESSION = """
local user = redis.call('HGET', KEYS[1], 'user')
if not user then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', ARGV[1] .. 'us:' .. user, ARGV[2])
redis.call('PUBLISH', ARGV[1] .. 'changes', user)
return 1
"""

_LIST_SESSIONS = """
local out = {}
for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local row = redis.call('HMGET', ARGV[1] .. 's:' .. sid, 'record', 'refresh', 'exp', 'seen')
  if row[1] then
    table.insert(out, row[1]); table.insert(out, row[2])
    table.insert(out, row[3]); table.insert(out, row[4])
  else
    redis.call('ZREM', KEYS[1], sid)
  end
end
return out
"""

_REVOKE_USER_SESSIONS = """
local n = 0
for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if sid ~= ARGV[2] then
    n = n + redis.call('DEL', ARGV[1] .. 's:' .. sid)
    redis.call('ZREM', KEYS[1], sid)
  end
end
if n > 0 then redis.call('PUBLISH', ARGV[1] .. 'changes', ARGV[3]) end
return n
"""

_INCR = """
local v = redis.call('INCR', KEYS[1])
if v == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return v
"""
