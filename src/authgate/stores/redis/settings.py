"""A Redis store URL read once: the topology (one server, a cluster, or a primary
behind Sentinel), the connection options redis-py takes, and authgate's own
parameters.

- ``redis://[user:password@]host:port/db`` (``rediss://``, ``unix:///path``): one server;
- ``redis+cluster://[user:password@]h1:p1,h2:p2/`` (``rediss+cluster://``): a Redis
  Cluster, any of whose nodes are named;
- ``redis+sentinel://[user:password@]s1:p1,s2:p2/MASTER[/db]`` (``rediss+sentinel://``):
  the primary that the named sentinels know as MASTER.

Query parameters authgate reads: ``prefix``, ``cache_ttl`` (0 turns the session cache
off), ``migrate`` (upgrade an older key layout at first use; default true),
``timeout`` (seconds any one command may take, default 10), ``wait`` (replicas that
must hold a write before it is acknowledged, default 0) and ``wait_timeout``
(seconds, default 1), and for Sentinel ``sentinel_username``, ``sentinel_password``
and ``sentinel_ssl``.  The rest (``ssl_ca_certs``, ``ssl_cert_reqs``,
``client_name``...) go to redis-py, which reads them as its own ``from_url`` does.
A user and password in the URL are the Redis servers' (the sentinels' are their own
parameters).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from redis.connection import SSLConnection, UnixDomainSocketConnection
from redis.connection import parse_url as _parse_url

from ...errors import ConfigError
from .. import urlparams
from ..cache import CACHE_TTL

__all__ = ["RedisSettings", "parse_redis_url"]

redis_parse_url: Any = _parse_url  # (untyped in redis-py)

SINGLE, CLUSTER, SENTINEL = "single", "cluster", "sentinel"
_SCHEMES = {
    "redis": SINGLE,
    "rediss": SINGLE,
    "unix": SINGLE,
    "redis+cluster": CLUSTER,
    "rediss+cluster": CLUSTER,
    "redis+sentinel": SENTINEL,
    "rediss+sentinel": SENTINEL,
}
SCHEMES = frozenset(_SCHEMES)
_SENTINEL_PARAMS = ("sentinel_username", "sentinel_password", "sentinel_ssl")


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """What a Redis store URL says.  ``url`` is the one-server URL redis-py opens (for
    a cluster or Sentinel, the options of every server, with the first address);
    ``options`` the same as keyword arguments; ``nodes`` the cluster's or the
    sentinels' addresses."""

    topology: str
    url: str = field(repr=False)
    options: dict[str, Any] = field(repr=False)
    nodes: tuple[tuple[str, int], ...] = ()
    master: str = ""
    sentinel_options: dict[str, Any] = field(default_factory=dict, repr=False)
    prefix: str = "authgate"
    cache_ttl: float = CACHE_TTL
    migrate: bool = True
    timeout: float = 10.0
    wait: int = 0
    wait_timeout: float = 1.0

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for every redis-py client of the store's servers."""
        return {
            "decode_responses": True,
            "socket_connect_timeout": min(5.0, self.timeout),
            "socket_timeout": self.timeout,
            "health_check_interval": 1,
            **self.options,
        }

    def sentinel_client_options(self) -> dict[str, Any]:
        """Keyword arguments for the clients of the sentinels themselves."""
        return {
            "socket_connect_timeout": min(5.0, self.timeout),
            "socket_timeout": min(5.0, self.timeout),
            **self.sentinel_options,
        }

    def where(self) -> str:
        """The servers, to name in a message: hosts and ports, never a password."""
        if self.nodes:
            return ",".join(f"{host}:{port}" for host, port in self.nodes)
        parts = urlsplit(self.url)
        if parts.scheme == "unix":
            return parts.path
        return f"{parts.hostname or 'localhost'}:{parts.port or 6379}"


def parse_redis_url(url: str, *, prefix: str | None = None) -> RedisSettings:
    """Read a Redis store URL (see the module's table); `ConfigError` when it is bad."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise ConfigError(f"bad Redis URL scheme {scheme!r}: expected one of {sorted(SCHEMES)}")
    topology = _SCHEMES[scheme]
    own: dict[str, Any] = {}
    sentinel: dict[str, Any] = {}
    rest: list[tuple[str, str]] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name == "prefix":
            own[name] = value
        elif name == "cache_ttl":
            own[name] = urlparams.seconds(name, value, zero=True)
        elif name in ("timeout", "wait_timeout"):
            own[name] = urlparams.seconds(name, value)
        elif name == "migrate":
            own[name] = urlparams.flag(name, value)
        elif name == "wait":
            own[name] = urlparams.whole(name, value)
        elif name in _SENTINEL_PARAMS and topology == SENTINEL:
            key = name.removeprefix("sentinel_")
            sentinel[key] = urlparams.flag(name, value) if key == "ssl" else value
        else:
            rest.append((name, value))
    if prefix is not None:
        own["prefix"] = prefix
    chosen = own.get("prefix", "authgate")
    if not chosen or any(ch in chosen for ch in "{}*?[]\\"):
        raise ConfigError(
            "the Redis key prefix must be non-empty and contain no braces and none of * ? [ ] \\"
        )
    if own.get("wait") and topology == CLUSTER:
        raise ConfigError("wait= is not offered on Redis Cluster (see docs/redis.md)")
    query = urlencode(rest)
    if topology == SINGLE:
        one = urlunsplit(parts._replace(query=query))
        return RedisSettings(topology, one, _options(one), **own)
    nodes = _addresses(parts.netloc, scheme)
    path = [unquote(p) for p in parts.path.split("/") if p]
    master = ""
    if topology == SENTINEL:
        if not path:
            raise ConfigError(
                f"a {scheme}:// URL names the primary the sentinels watch: "
                f"{scheme}://host:26379,host:26380/MASTERNAME"
            )
        master, path = path[0], path[1:]
    if topology == CLUSTER and path and path != ["0"]:
        raise ConfigError("Redis Cluster has only database 0: leave the path empty")
    userinfo = parts.netloc.rpartition("@")[0]
    single = "rediss" if scheme.startswith("rediss") else "redis"
    host, port = nodes[0]
    one = urlunsplit(
        (single, (userinfo + "@" if userinfo else "") + f"{host}:{port}", "/".join(path), query, "")
    )
    options = _options(one)
    options.pop("host", None)
    options.pop("port", None)
    if topology == SENTINEL and options.get("ssl"):
        sentinel.setdefault("ssl", True)
    return RedisSettings(topology, one, options, nodes, master, sentinel, **own)


def _addresses(netloc: str, scheme: str) -> tuple[tuple[str, int], ...]:
    hosts = netloc.rpartition("@")[2]
    default = 26379 if "sentinel" in scheme else 6379
    out: list[tuple[str, int]] = []
    for item in hosts.split(","):
        host, colon, port = item.strip().rpartition(":") if ":" in item else (item, "", "")
        host = host.strip("[]") if colon else item.strip()
        try:
            number = int(port) if colon else default
        except ValueError:
            number = 0
        if not host or not 0 < number < 65536:
            # (not the text itself: a password with a '/' or '#' unencoded ends up here)
            raise ConfigError(
                f"bad address #{len(out) + 1} in a {scheme}:// URL: expected host:port "
                "(percent-encode a '/', '#', '?' or '@' in the password)"
            )
        out.append((host, number))
    return tuple(out)


def _options(one_url: str) -> dict[str, Any]:
    """redis-py's keyword arguments for a one-server URL (its own parser: TLS options,
    ``client_name``...), with the TLS connection class said as ``ssl=True``."""
    try:
        options: dict[str, Any] = redis_parse_url(one_url)
    except ValueError as err:
        raise ConfigError(f"bad Redis URL: {err}") from None
    kind = options.pop("connection_class", None)
    if kind is SSLConnection:
        options["ssl"] = True
    elif kind is UnixDomainSocketConnection:
        options["connection_class"] = kind
    return options
