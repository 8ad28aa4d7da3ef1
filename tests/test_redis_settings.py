"""Redis store URLs: one server, Cluster and Sentinel, with authgate's own parameters
taken off and the rest (passwords, TLS) passed to redis-py."""

from __future__ import annotations

import pytest

from authgate.errors import ConfigError, StoreUnavailable
from authgate.stores import open_store
from authgate.stores.redis.settings import parse_redis_url
from authgate.testing import free_port


def test_a_cluster_url_names_its_nodes_and_passes_credentials_and_tls_on() -> None:
    s = parse_redis_url(
        "rediss+cluster://app:s3cret@n1:7000,n2:7001,[::1]:7002/"
        "?prefix=acme&timeout=2&ssl_ca_certs=/etc/ca.pem&ssl_cert_reqs=required"
    )
    assert s.topology == "cluster"
    assert s.nodes == (("n1", 7000), ("n2", 7001), ("::1", 7002))
    assert (s.prefix, s.timeout) == ("acme", 2.0)
    options = s.client_options()
    assert options["username"] == "app" and options["password"] == "s3cret"
    assert options["ssl"] is True and options["ssl_ca_certs"] == "/etc/ca.pem"
    assert options["socket_timeout"] == 2.0 and "host" not in options and "db" not in options
    assert "s3cret" not in repr(s) and "s3cret" not in s.where()


def test_a_sentinel_url_names_the_primary_and_the_sentinels_own_credentials() -> None:
    s = parse_redis_url(
        "redis+sentinel://:serverpw@s1:26379,s2/mymaster/3"
        "?sentinel_username=watch&sentinel_password=sentinelpw&wait=1&wait_timeout=0.5"
    )
    assert (s.topology, s.master) == ("sentinel", "mymaster")
    assert s.nodes == (("s1", 26379), ("s2", 26379))  # the sentinels' default port
    assert s.client_options()["password"] == "serverpw" and s.client_options()["db"] == 3
    assert s.sentinel_client_options()["password"] == "sentinelpw"
    assert s.sentinel_client_options()["username"] == "watch"
    assert (s.wait, s.wait_timeout) == (1, 0.5)
    assert "serverpw" not in repr(s) and "sentinelpw" not in repr(s)


def test_tls_to_the_primary_means_tls_to_the_sentinels_unless_said_otherwise() -> None:
    assert parse_redis_url("rediss+sentinel://s1/m").sentinel_client_options()["ssl"] is True
    plain = parse_redis_url("rediss+sentinel://s1/m?sentinel_ssl=false")
    assert plain.sentinel_client_options()["ssl"] is False


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis+sentinel://s1:26379/", "names the primary"),
        ("redis+cluster://n1:7000/2", "only database 0"),
        ("redis+cluster://n1:notaport/", "bad address"),
        ("redis+cluster://n1:7000/?wait=1", "not offered on Redis Cluster"),
        ("redis://h/0?timeout=0", "timeout must be a number of seconds"),
        ("redis://h/0?wait=-1", "wait must be a whole number"),
        ("redis://h/0?migrate=perhaps", "migrate must be true or false"),
        ("redis://h/0?prefix={x}", "no braces"),
        ("redis://h:port/0", "bad Redis URL"),
    ],
)
def test_bad_redis_urls_are_config_errors_that_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_redis_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "redis+cluster://app:s3cret@127.0.0.1:{port}/?timeout=0.5",
        "redis+sentinel://:s3cret@127.0.0.1:{port}/primary?timeout=0.5",
    ],
)
def test_unreachable_topologies_are_unavailable_naming_hosts_never_passwords(url: str) -> None:
    with pytest.raises(StoreUnavailable) as raised:
        open_store(url.format(port=free_port()))
    assert "127.0.0.1" in str(raised.value)
    assert "s3cret" not in str(raised.value)


def test_a_redis_at_its_memory_limit_is_unavailable_not_an_error() -> None:
    """``maxmemory`` reached with ``noeviction``: writes are refused with OOM, which is
    a 503 (the store cannot take writes now), never a 500; reads still answer."""
    import redis

    from authgate.testing import redis_server
    from authgate.users import User

    with redis_server() as url:
        store = open_store(f"{url}?prefix=full")
        store.create_user(User.new("alice"))
        raw = redis.Redis.from_url(url)
        raw.config_set("maxmemory-policy", "noeviction")
        raw.config_set("maxmemory", 1)
        try:
            with pytest.raises(StoreUnavailable, match="OOM|memory"):
                store.create_user(User.new("bob"))
            assert store.get_user("alice") is not None
        finally:
            raw.config_set("maxmemory", 0)
            raw.close()
            store.close()


def test_too_few_replicas_to_write_is_unavailable_not_an_error() -> None:
    """``min-replicas-to-write`` unmet (Sentinel's usual guard against a cut-off
    primary): the NOREPLICAS refusal is a 503."""
    import redis

    from authgate.testing import redis_server
    from authgate.users import User

    with redis_server() as url:
        store = open_store(f"{url}?prefix=lonely")
        raw = redis.Redis.from_url(url)
        raw.config_set("min-replicas-to-write", 1)
        try:
            with pytest.raises(StoreUnavailable, match="NOREPLICAS"):
                store.create_user(User.new("alice"))
        finally:
            raw.config_set("min-replicas-to-write", 0)
            raw.close()
            store.close()
