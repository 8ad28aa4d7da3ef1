"""The same with `AsyncGate` (ASGI apps): argon2 runs on a bounded thread pool, never
on the event loop.

Run it: ``python examples/sessions_async.py``
"""

from __future__ import annotations

import asyncio
import secrets

from authgate import AsyncGate, SessionRevoked


async def main() -> None:
    gate = AsyncGate(store="memory://", secret_key=secrets.token_urlsafe(48))
    await gate.create_user("alice", "correct horse battery", roles=["operator"])

    pair = await gate.login("alice", "correct horse battery")
    who = await gate.authenticate(pair.access_token)
    print("authenticated:", who.username, sorted(who.roles))

    fresh = await gate.refresh(pair.refresh_token)
    print("refreshed, same session:", fresh.session_id == pair.session_id)

    await gate.logout(await gate.authenticate(fresh.access_token))
    try:
        await gate.authenticate(fresh.access_token)
    except SessionRevoked as err:
        print("after logout:", err.detail)
    await gate.close()


if __name__ == "__main__":
    asyncio.run(main())
