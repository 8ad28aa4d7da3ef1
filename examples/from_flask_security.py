"""Moving from Flask-Security: authgate in front of a Flask app whose users, roles and
password hashes are already in Flask-Security's ``user``, ``role`` and ``roles_users``
tables.  Nothing is migrated: with the app's ``SECURITY_PASSWORD_SALT`` authgate checks
the hashes Flask-Security made (of the password's HMAC, its default) and replaces each
with argon2id at that user's first login.

Run: ``python examples/from_flask_security.py postgresql://user@host/db`` (or
``mysql://...``) on a database without such tables: it makes them as Flask-Security's
``fsqla_v3`` models do, with two users, calls the app in process (Flask's test
client), and drops them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import sys
import unicodedata
import uuid

import argon2
import bcrypt
import sqlalchemy as sa
from flask import Flask

from authgate import require_role
from authgate.integrations.flask import AuthGate, current_identity
from authgate.stores.sql import parse_sql_url

SALT = "the app's SECURITY_PASSWORD_SALT"


def flask_security_tables(engine: sa.Engine) -> sa.MetaData:
    """The tables of Flask-Security's ``fsqla_v3`` models (the columns authgate meets)."""
    md = sa.MetaData()
    user = sa.Table(
        "user",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("email", sa.String(255), unique=True, nullable=False),
        sa.Column("username", sa.String(255), unique=True),
        sa.Column("password", sa.String(255)),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("fs_uniquifier", sa.String(64), unique=True, nullable=False),
        sa.Column("confirmed_at", sa.DateTime),
        sa.Column("create_datetime", sa.DateTime, nullable=False, server_default=sa.func.now()),
        sa.Column("update_datetime", sa.DateTime, nullable=False, server_default=sa.func.now()),
    )
    role = sa.Table(
        "role",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(80), unique=True, nullable=False),
        sa.Column("description", sa.String(255)),
        sa.Column("update_datetime", sa.DateTime, nullable=False, server_default=sa.func.now()),
    )
    sa.Table(
        "roles_users",
        md,
        sa.Column("user_id", sa.Integer, sa.ForeignKey(user.c.id)),
        sa.Column("role_id", sa.Integer, sa.ForeignKey(role.c.id)),
    )
    md.create_all(engine)
    return md


def flask_security_hash(password: str, scheme: str) -> str:
    """What Flask-Security stores by default: the scheme's hash of the base64 HMAC-SHA512
    of the (NFKD-normalised) password, keyed with SECURITY_PASSWORD_SALT."""
    normal = unicodedata.normalize("NFKD", password).encode()
    prehash = base64.b64encode(hmac.new(SALT.encode(), normal, hashlib.sha512).digest())
    if scheme == "bcrypt":  # bcrypt reads 72 bytes (passlib dropped the rest silently)
        return bcrypt.hashpw(prehash[:72], bcrypt.gensalt(4)).decode()
    return argon2.PasswordHasher(time_cost=2, memory_cost=1024, parallelism=2).hash(prehash)


def _new_id(result: sa.CursorResult[object]) -> object:
    key = result.inserted_primary_key
    assert key is not None
    return key[0]


def seed(engine: sa.Engine, md: sa.MetaData) -> None:
    user, role, link = (md.tables[name] for name in ("user", "role", "roles_users"))
    with engine.begin() as conn:
        admin = _new_id(conn.execute(role.insert().values(name="admin")))
        operator = _new_id(conn.execute(role.insert().values(name="operator")))
        for email, password, scheme, role_id in (
            ("ada@example.com", "ada's password", "argon2", admin),
            ("ben@example.com", "ben's password", "bcrypt", operator),
        ):
            made = conn.execute(
                user.insert().values(
                    email=email,
                    password=flask_security_hash(password, scheme),
                    active=True,
                    fs_uniquifier=uuid.uuid4().hex,
                )
            )
            conn.execute(link.insert().values(user_id=_new_id(made), role_id=role_id))


def make_app(store_url: str) -> Flask:
    """The app, configured as a Flask-Security app is: from app.config."""
    app = Flask(__name__)
    app.config["SECURITY_PASSWORD_SALT"] = SALT  # already in your config
    app.config.update(
        AUTHGATE_STORE=f"{store_url}{'&' if '?' in store_url else '?'}users=flask-security",
        AUTHGATE_SECRET_KEY=secrets.token_urlsafe(48),
        AUTHGATE_FLASK_SECURITY_SALT=app.config["SECURITY_PASSWORD_SALT"],
        AUTHGATE_ARGON2_TIME_COST=1,  # the example's speed; leave these out in an app
        AUTHGATE_ARGON2_MEMORY_COST=1024,
    )
    AuthGate(app)

    @app.get("/reports")  # was: @roles_required("operator")
    @require_role("operator")
    def reports() -> dict[str, str]:
        return {"for": current_identity.username}

    return app


def main(url: str) -> None:
    engine = sa.create_engine(parse_sql_url(url).sync_url)
    md = flask_security_tables(engine)
    try:
        seed(engine, md)
        app = make_app(url)
        client = app.test_client()
        for email, password in (
            ("ada@example.com", "ada's password"),
            ("ben@example.com", "ben's password"),
        ):
            login = client.post("/auth/login", json={"username": email, "password": password})
            token = (login.get_json() or {})["access_token"]
            reply = client.get("/reports", headers={"Authorization": f"Bearer {token}"})
            print(email, reply.status_code, reply.get_json())
        wrong = client.post("/auth/login", json={"username": "ben@example.com", "password": "no"})
        print("wrong password:", wrong.status_code)
        with engine.connect() as conn:
            user = md.tables["user"]
            stored = conn.execute(sa.select(user.c.email, user.c.password).order_by(user.c.email))
            print("hashes now:", [row.password.split("$")[1] for row in stored])
        app.extensions["authgate"]._gate.close()
    finally:
        with engine.begin() as conn:  # authgate's rows about these users, then the tables
            extras = sa.table(f"{parse_sql_url(url).prefix}user_extras", sa.column("user_id"))
            ids = [str(i) for i in conn.execute(sa.select(md.tables["user"].c.id)).scalars()]
            conn.execute(extras.delete().where(extras.c.user_id.in_(ids)))
        md.drop_all(engine)
        engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "postgresql://postgres@127.0.0.1:5432/postgres")
