"""Start-up check: make sure an enabled admin exists (seed one from the environment)."""

from __future__ import annotations

from .audit import AuditLog
from .config import Settings
from .flows import arun, run
from .flows.users import Bootstrap, bootstrap
from .stores import AsyncStore, Store, open_async_store, open_store

__all__ = ["Bootstrap", "aensure_superuser", "ensure_superuser"]


def ensure_superuser(store: Store | None = None, settings: Settings | None = None) -> Bootstrap:
    """Ensure an enabled admin exists, seeding one from ``AUTHGATE_SUPERUSER_USERNAME`` /
    ``AUTHGATE_SUPERUSER_PASSWORD`` (and the guest from ``AUTHGATE_GUEST_*``: the same
    start-up as a Gate's); raise `ConfigError` naming them when neither helps.
    """
    settings = settings or Settings.from_env()
    owned = store is None
    target = store or open_store(settings.store)
    try:
        return run(bootstrap(settings), target, settings.password_hasher(), AuditLog().emit)
    finally:
        if owned:
            target.close()


async def aensure_superuser(
    store: AsyncStore | None = None, settings: Settings | None = None
) -> Bootstrap:
    """The async face of `ensure_superuser` (argon2 runs off the event loop)."""
    settings = settings or Settings.from_env()
    owned = store is None
    target = store or open_async_store(settings.store)
    try:
        return await arun(bootstrap(settings), target, settings.password_hasher(), AuditLog().emit)
    finally:
        if owned:
            await target.close()
