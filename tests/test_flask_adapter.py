"""The Flask adapter's own pieces: app.config settings and the ``flask authgate`` commands."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from authgate.integrations.flask import AuthGate
from authgate.stores import open_store


def make_app(tmp_path: Path) -> Flask:
    app = Flask(__name__)
    app.config.update(
        AUTHGATE_STORE=f"sqlite:///{tmp_path / 'flask.db'}",
        AUTHGATE_SECRET_KEY="flask-adapter-secret-key-long-enough-0123",
        AUTHGATE_ARGON2_TIME_COST=1,
        AUTHGATE_ARGON2_MEMORY_COST=8,
        AUTHGATE_ARGON2_PARALLELISM=1,
    )
    AuthGate(app)
    return app


def test_settings_come_from_app_config(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    with app.app_context():
        gate = app.extensions["authgate"].gate
        assert gate.settings.store == f"sqlite:///{tmp_path / 'flask.db'}"
        assert gate.settings.argon2_time_cost == 1


def test_flask_authgate_commands_mirror_the_cli(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    runner = app.test_cli_runner()
    made = runner.invoke(
        args=["authgate", "users", "create", "alice", "--role", "operator", "--password-stdin"],
        input="correct horse\n",
    )
    assert made.exit_code == 0, made.output
    listed = runner.invoke(args=["authgate", "users", "list"])
    assert listed.output.splitlines()[1].split()[:2] == ["alice", "operator"]
    dup = runner.invoke(args=["authgate", "users", "create", "ALICE", "--no-password"])
    assert dup.exit_code == 1
    assert "already exists" in dup.output
    store = open_store(f"sqlite:///{tmp_path / 'flask.db'}")
    user = store.get_user("alice")
    assert user is not None and user.password_hash.startswith("$argon2id$v=19$m=8,t=1,p=1$")
    store.close()


def test_a_204_from_the_api_carries_no_content_type(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    with app.app_context():
        app.extensions["authgate"].gate.create_user("alice", "correct horse battery")
    client = app.test_client()
    pair = client.post(
        "/auth/login", json={"username": "alice", "password": "correct horse battery"}
    ).get_json()
    out = client.post("/auth/logout", headers={"Authorization": f"Bearer {pair['access_token']}"})
    assert out.status_code == 204
    assert "Content-Type" not in out.headers
    assert out.data == b""
