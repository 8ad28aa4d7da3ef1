"""Settings from keywords, the environment and TOML files."""

from __future__ import annotations

import base64
import os
import secrets
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


SECRET_KEY = "Zq7-distinctive-secret-value-9f3c1e5a7b2d4f6081"
OLD_KEY = "Old1-previous-secret-value-5e7a9c1b3d"
SUPERUSER_PASSWORD = "Su9-superuser-password-value-2b4d6f"
GUEST_PASSWORD = "Gu3-guest-password-value-8a0c2e"
SECRET_VALUES = (SECRET_KEY, OLD_KEY, SUPERUSER_PASSWORD, GUEST_PASSWORD)


def _leaked(settings: Settings) -> list[str]:
    """The secret values that repr() or str() of `settings` shows."""
    shown = f"{settings!r}\n{settings!s}\n{settings}"
    return [value for value in SECRET_VALUES if value in shown]


def test_repr_and_str_never_show_secrets_or_passwords() -> None:
    settings = Settings(
        store="memory://",
        secret_key=SECRET_KEY,
        previous_secret_keys=(OLD_KEY,),
        superuser_username="root",
        superuser_password=SUPERUSER_PASSWORD,
        guest_username="guest",
        guest_password=GUEST_PASSWORD,
    )
    # The values are really held...
    assert (settings.secret_key, settings.previous_secret_keys) == (SECRET_KEY, (OLD_KEY,))
    assert (settings.superuser_password, settings.guest_password) == (
        SUPERUSER_PASSWORD,
        GUEST_PASSWORD,
    )
    # ...and never shown, while the harmless fields are.
    assert _leaked(settings) == []
    assert "store='memory://'" in repr(settings)
    assert "superuser_username='root'" in repr(settings)
    assert _leaked(settings.replace(access_ttl=60)) == []


def test_settings_read_from_env_or_toml_never_show_secrets(tmp_path: Path) -> None:
    from_env = Settings.from_env(
        {
            "AUTHGATE_SECRET_KEY": SECRET_KEY,
            "AUTHGATE_PREVIOUS_SECRET_KEYS": OLD_KEY,
            "AUTHGATE_SUPERUSER_PASSWORD": SUPERUSER_PASSWORD,
            "AUTHGATE_GUEST_PASSWORD": GUEST_PASSWORD,
        }
    )
    assert (from_env.secret_key, from_env.superuser_password) == (SECRET_KEY, SUPERUSER_PASSWORD)
    assert _leaked(from_env) == []
    path = tmp_path / "authgate.toml"
    path.write_text(
        f'secret_key = "{SECRET_KEY}"\nsuperuser_password = "{SUPERUSER_PASSWORD}"\n'
        f'previous_secret_keys = ["{OLD_KEY}"]\nguest_password = "{GUEST_PASSWORD}"\n'
    )
    from_toml = Settings.from_toml(path)
    assert (from_toml.secret_key, from_toml.guest_password) == (SECRET_KEY, GUEST_PASSWORD)
    assert _leaked(from_toml) == []


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


@pytest.mark.parametrize(
    "secret",
    [
        "a" * 32,
        "secret" * 6,
        "secretsecretsecretsecretsecretsecret",
        "changemechangemechangemechangeme",
        "your-secret-key-here-change-me-please",
        "abcdefghijklmnopqrstuvwxyz012345",
        "0123456789" * 4,
        "abcdabcdabcdabcdabcdabcdabcdabcd",
        "ab" * 16 + "cd" * 16,
        "9876543210zyxwvutsrqponmlkjihgfedcba",
    ],
)
def test_a_weak_secret_is_refused_with_a_hint(secret: str) -> None:
    from authgate import Gate

    with pytest.raises(ConfigError, match="weak") as info:
        Gate(store="memory://", secret_key=secret)
    assert "secrets.token_urlsafe" in str(info.value)
    assert secret not in str(info.value)


def test_every_configured_hmac_key_is_checked_and_dev_mode_allows_weak_ones() -> None:
    from authgate import Gate
    from authgate.tokens import KeyRing

    good = secrets.token_urlsafe(48)
    with pytest.raises(ConfigError, match="weak"):
        KeyRing.from_settings(Settings(secret_key=good, previous_secret_keys=("a" * 40,)))
    assert len(KeyRing.from_settings(Settings(secret_key=good)).keys) == 1
    Gate(store="memory://", secret_key="a" * 40, dev_mode=True)


def test_random_secrets_of_every_usual_shape_pass() -> None:
    from authgate.tokens import secret_weakness

    made = [secrets.token_hex(16) for _ in range(2000)]
    made += [secrets.token_urlsafe(n) for n in (24, 32, 48) for _ in range(700)]
    made += [base64.b64encode(os.urandom(32)).decode() for _ in range(500)]
    assert [s for s in made if secret_weakness(s.encode())] == []
    assert secret_weakness(os.urandom(32)) is None
