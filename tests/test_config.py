"""Settings from keywords, the environment and TOML files."""

from __future__ import annotations

from pathlib import Path

import pytest

from authgate import Settings
from authgate.errors import ConfigError


def test_defaults_have_no_secret() -> None:
    settings = Settings()
    assert settings.secret_key is None
    assert settings.store == "sqlite:///authgate.db"
    assert (settings.access_ttl, settings.refresh_ttl) == (900, 1_209_600)
    assert (settings.max_login_attempts, settings.lockout_seconds) == (5, 300)
    assert "secret" not in repr(Settings(secret_key="x" * 40)).replace("secret_key", "")


def test_environment_variables_are_parsed() -> None:
    settings = Settings.from_env(
        {
            "AUTHGATE_STORE": "memory://",
            "AUTHGATE_ACCESS_TTL": "60",
            "AUTHGATE_STATELESS": "true",
            "AUTHGATE_ROLES": "guest, member, boss",
            "UNRELATED": "x",
        }
    )
    assert settings.store == "memory://"
    assert settings.access_ttl == 60
    assert settings.stateless is True
    assert settings.roles == ("guest", "member", "boss")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AUTHGATE_ACCESS_TTL": "soon"}, "AUTHGATE_ACCESS_TTL must be an integer"),
        ({"AUTHGATE_STATELESS": "maybe"}, "AUTHGATE_STATELESS must be true or false"),
        ({"AUTHGATE_ACCESS_TTL": "0"}, "access_ttl must be a positive"),
        ({"AUTHGATE_SESSION_LIMIT_POLICY": "x"}, "session_limit_policy"),
    ],
)
def test_bad_values_are_clear_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "authgate.toml"
    path.write_text('[authgate]\nstore = "memory://"\nroles = ["a", "b"]\nmax_sessions = 3\n')
    settings = Settings.from_toml(path)
    assert (settings.store, settings.roles, settings.max_sessions) == ("memory://", ("a", "b"), 3)
    path.write_text('stroe = "typo"\n')
    with pytest.raises(ConfigError, match="unknown settings.*stroe"):
        Settings.from_toml(path)
    with pytest.raises(ConfigError, match="cannot read"):
        Settings.from_toml(tmp_path / "missing.toml")
