"""The SQL store: authgate's users, groups, sessions and counters in PostgreSQL, MySQL
or MariaDB, through SQLAlchemy Core, with tables made and upgraded by Alembic.

=====================================  ==========================================
``postgresql://user@host/db``          psycopg 3 (both faces)
``postgresql+asyncpg://user@host/db``  asyncpg (async face), psycopg (sync face)
``mysql://user@host/db``,              PyMySQL (sync face), aiomysql (async face)
``mariadb://user@host/db``
=====================================  ==========================================

Query parameters: ``prefix`` (table name prefix), ``schema``, ``cache_ttl``,
``migrate`` (create or upgrade the tables at start, default true), ``pool_size``,
``max_overflow``, ``timeout``, ``users`` (the app's own users table: ``fastapi-users``,
``flask-security`` or ``package.module:attribute`` naming a `UserTable`); anything
else goes to the driver (``sslmode=...``).
"""

from __future__ import annotations

from .faces import SCHEMES, AsyncSQLStore, SQLSettings, SQLStore, parse_sql_url
from .usertable import Joined, UserTable

__all__ = [
    "SCHEMES",
    "AsyncSQLStore",
    "Joined",
    "SQLSettings",
    "SQLStore",
    "UserTable",
    "parse_sql_url",
]
