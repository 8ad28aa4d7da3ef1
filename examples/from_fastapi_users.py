"""Moving from fastapi-users: authgate in front of a FastAPI app whose users are already
in fastapi-users' ``user`` table, with their bcrypt hashes.  Nothing is migrated: the
users log in through authgate as they are, and each one's hash becomes argon2id at
their first login.

Run: ``python examples/from_fastapi_users.py postgresql://user@host/db`` (or
``mysql://...``).  It makes a fastapi-users table of its own (``user_<random>``) with
two users as fastapi-users would have stored them, calls the app in process (httpx),
and drops what it made.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import uuid
from typing import Any

import bcrypt
import httpx
import sqlalchemy as sa
from fastapi import Depends, FastAPI

from authgate import AsyncGate, Identity
from authgate.integrations.fastapi import AuthGate, require_auth, require_role
from authgate.stores.sql import AsyncSQLStore, UserTable, parse_sql_url
from authgate.testing import cheap_hasher


def fastapi_users_table(engine: sa.Engine, name: str) -> sa.Table:
    """The table fastapi-users-db-sqlalchemy's ``SQLAlchemyBaseUserTableUUID`` makes."""
    guid: sa.types.TypeEngine[Any] = (
        sa.Uuid() if engine.dialect.name == "postgresql" else sa.CHAR(36)
    )
    table = sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", guid, primary_key=True),
        sa.Column("email", sa.String(320), unique=True, index=True, nullable=False),
        sa.Column("hashed_password", sa.String(1024), nullable=False),
        sa.Column("is_active", sa.Boolean, nullable=False),
        sa.Column("is_superuser", sa.Boolean, nullable=False),
        sa.Column("is_verified", sa.Boolean, nullable=False),
    )
    table.create(engine)
    return table


def existing_user(
    engine: sa.Engine, table: sa.Table, email: str, password: str, **flags: bool
) -> None:
    """A row as fastapi-users wrote it (its bcrypt hasher: a plain ``$2b$`` hash)."""
    user_id = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(
            table.insert().values(
                id=user_id if engine.dialect.name == "postgresql" else str(user_id),
                email=email,
                hashed_password=bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode(),
                is_active=True,
                is_superuser=flags.get("superuser", False),
                is_verified=True,
            )
        )


def make_app(store_url: str, table: str) -> tuple[FastAPI, AsyncGate]:
    """The app: your routes, with fastapi-users' dependencies swapped for authgate's."""
    app = FastAPI()
    gate = AsyncGate(
        # fastapi-users' table is named "user": then AUTHGATE_STORE=...?users=fastapi-users
        # says the same as this line, from the environment.
        store=AsyncSQLStore(store_url, users=UserTable.fastapi_users(table)),
        secret_key=secrets.token_urlsafe(48),
        hasher=cheap_hasher(),  # the example's speed; leave it out in an app
    )
    AuthGate(gate).install(app)

    @app.get("/me")  # was: Depends(current_active_user)
    async def me(user: Identity = Depends(require_auth())) -> dict[str, object]:
        return {"email": user.username, "roles": sorted(user.roles)}

    @app.get("/admin")  # was: Depends(fastapi_users.current_user(superuser=True))
    async def admin(user: Identity = Depends(require_role("admin"))) -> dict[str, str]:
        return {"hello": user.username}

    return app, gate


async def try_it(url: str, table: str) -> None:
    """Log in as the users fastapi-users stored, over the app."""
    app, gate = make_app(url, table)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:

        async def login(email: str, password: str) -> dict[str, str]:
            body = {"username": email, "password": password}
            token = (await client.post("/auth/login", json=body)).json()["access_token"]
            return {"Authorization": f"Bearer {token}"}

        alice = await login("alice@example.com", "alice's password")  # any case
        print("alice:", (await client.get("/me", headers=alice)).json())
        print("alice at /admin:", (await client.get("/admin", headers=alice)).status_code)
        root = await login("root@example.com", "root's password")
        print("root at /admin:", (await client.get("/admin", headers=root)).json())
    await gate.close()


def main(url: str) -> None:
    settings = parse_sql_url(url)
    engine = sa.create_engine(settings.sync_url)
    name = f"user_{uuid.uuid4().hex[:8]}"
    table = fastapi_users_table(engine, name)
    try:
        existing_user(engine, table, "Alice@Example.com", "alice's password")
        existing_user(engine, table, "root@example.com", "root's password", superuser=True)
        asyncio.run(try_it(url, name))
        with engine.connect() as conn:
            stored = conn.execute(
                sa.select(table.c.hashed_password).where(table.c.email == "Alice@Example.com")
            ).scalar_one()
        print("alice's hash now:", stored.split("$")[1])
    finally:
        with engine.begin() as conn:
            extras = sa.table(f"{settings.prefix}user_extras", sa.column("user_id"))
            ids = [str(i) for i in conn.execute(sa.select(table.c.id)).scalars()]
            conn.execute(extras.delete().where(extras.c.user_id.in_(ids)))
        table.drop(engine)
        engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "postgresql://postgres@127.0.0.1:5432/postgres")
