"""The SQL databases the benchmarks measure: the servers ``AUTHGATE_TEST_POSTGRES_URL``
and ``AUTHGATE_TEST_MYSQL_URL`` name, else private ones started here (a PostgreSQL
from the system's or pgserver's programs, a MariaDB from Debian's); each run works in
a database of its own, dropped at the end."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from authgate.testing import (
    env_mysql_url,
    env_postgres_url,
    mariadb_server,
    postgres_server,
    scratch_database,
)


@contextlib.contextmanager
def sql_databases(*, mariadb: bool = True) -> Iterator[dict[str, str]]:
    """``{"PostgreSQL": url, "MariaDB": url}``: store URLs of fresh databases."""
    with contextlib.ExitStack() as stack:
        postgres = env_postgres_url() or stack.enter_context(postgres_server())
        urls = {"PostgreSQL": stack.enter_context(scratch_database(postgres))}
        if mariadb:
            server = env_mysql_url() or stack.enter_context(mariadb_server())
            urls["MariaDB"] = stack.enter_context(scratch_database(server)).replace(
                "mysql://", "mariadb://", 1
            )
        yield urls
