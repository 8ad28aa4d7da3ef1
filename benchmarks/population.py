"""Production-shaped traffic for the benchmarks: many users, each with a live token of
their own, a Zipf mix of hot and cold users, and tokens refreshed as they expire.

The model, stated with every table it feeds:

- `Population.size` users; a request comes from the user of rank r with probability
  proportional to 1/r (Zipf, s = 1), drawn with a fixed seed, so every row of one
  population replays the same requests in the same order.
- One process serves `MODEL_RATE` requests per second of modelled time: request i
  happens at i / `MODEL_RATE` s.
- Access tokens live `ACCESS_TTL` s (900, the default).  Each user's token was issued
  at a random phase and is refreshed when it expires, so request i carries its user's
  token for epoch ``floor((i / MODEL_RATE + phase) / ACCESS_TTL)``.  The first token is
  a real login, each later one a real refresh (the refresh token rotates).
- A row runs faster than the modelled `MODEL_RATE` requests per second (1,000: a busy
  worker), so the clocks of session state run faster too (`time_scale`): the session
  cache's 60 s lifetime and the ``last_seen`` touch interval (300 s) are scaled by
  `MODEL_RATE` / the row's measured rate.  Bounded caches (the verified tokens, the
  identities) are modelled by count and need no scaling.
"""

from __future__ import annotations

import argparse
import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from authgate import Gate, User
from authgate.testing import cheap_hasher

MODEL_RATE = 1_000.0
ACCESS_TTL = 900.0
ZIPF_S = 1.0
PW = "correct horse battery"

#: Tokens are minted long-lived in real time (the modelled lifetime is ACCESS_TTL): a
#: whole benchmark run must not outlive them.
MINT_TTL = 6 * 3600


def username(index: int) -> str:
    """The name of the user of rank `index` (0 is the hottest)."""
    return f"user{index:06d}"


@dataclass
class Population:
    """`length` requests from `size` users: who sends each, and which token epoch."""

    size: int
    length: int
    seed: int = 2026
    users: list[int] = field(init=False, repr=False)
    epochs: list[int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        rng = random.Random(self.seed * 1_000_003 + self.size)  # noqa: S311 - a replayable draw
        weights = itertools.accumulate(1 / rank**ZIPF_S for rank in range(1, self.size + 1))
        self.users = rng.choices(range(self.size), cum_weights=list(weights), k=self.length)
        phase = [rng.random() * ACCESS_TTL for _ in range(self.size)]
        self.epochs = [
            int((i / MODEL_RATE + phase[user]) // ACCESS_TTL) for i, user in enumerate(self.users)
        ]

    @property
    def label(self) -> str:
        return f"{self.size:,} users"

    def keys(self) -> Iterator[tuple[int, int]]:
        """Each distinct (user, epoch) once, in the order requests first use it."""
        seen: set[tuple[int, int]] = set()
        for key in zip(self.users, self.epochs, strict=True):
            if key not in seen:
                seen.add(key)
                yield key

    def describe(self) -> str:
        keys = list(self.keys())
        hot = sum(1 for u in self.users if u < max(1, self.size // 100))
        return (
            f"{self.label}: {self.length:,} requests from {len({u for u, _ in keys}):,} "
            f"distinct users carrying {len(keys):,} distinct tokens; the hottest 1% of "
            f"users send {hot / self.length:.0%} of the requests"
        )

    def tokens(self, mint: Callable[[int, int], str]) -> list[str]:
        """The token each request carries, `mint(user, epoch)` called once per key in
        order of first use."""
        minted = {key: mint(*key) for key in self.keys()}
        return [minted[key] for key in zip(self.users, self.epochs, strict=True)]


def ensure_users(gate: Gate, count: int) -> None:
    """Users 0..count-1 in the gate's store, written straight to the store with one
    shared (cheap) password hash: creating them through the gate would derive SCRAM
    credentials for each, minutes for 100,000 users that no benchmark logs in with."""
    hashed = cheap_hasher().hash(PW)
    store: Any = gate.store
    for index in range(count):
        name = username(index)
        if store.get_user(name) is None:
            store.create_user(User.new(name, roles=["viewer"], password_hash=hashed))


def authgate_tokens(gate: Gate, population: Population) -> list[str]:
    """The population's tokens from `gate`: a login for each user's first epoch, a
    refresh (rotating the refresh token) for each later one."""
    ensure_users(gate, max(population.users) + 1)
    refresh: dict[int, str] = {}

    def mint(user: int, epoch: int) -> str:
        known = refresh.get(user)
        pair = gate.login(username(user), PW) if known is None else gate.refresh(known)
        refresh[user] = pair.refresh_token
        return pair.access_token

    return population.tokens(mint)


def time_scale(real_rate: float) -> float:
    """How much faster than configured a row that serves `real_rate` requests per
    second must run the clocks of session state (the session cache lifetime, the
    ``last_seen`` touch interval) to stand for the modelled traffic."""
    return MODEL_RATE / real_rate


MODEL = f"""\
- A population of N users; a request comes from the user of rank r with probability
  proportional to 1/r (Zipf, s = {ZIPF_S:g}), drawn with a fixed seed: every row of a
  population replays the same requests in the same order.
- One process serves {MODEL_RATE:g} requests per second of modelled time.  Access tokens
  live {ACCESS_TTL:g} s; each user's token was issued at a random phase and is refreshed
  when it expires (a real login for the first, a real refresh after).
- Rows run faster than the model, so the clocks of session state run faster too: the
  session cache lifetime (60 s) and the ``last_seen`` touch interval (300 s) are scaled
  by {MODEL_RATE:g} / the row's measured rate.  The verified-token and identity caches
  are bounded by count and need no scaling."""


def command(run: Callable[[tuple[int, ...]], str], doc: str, sizes: tuple[int, ...]) -> None:
    """A benchmark's command line: ``--sizes 1000,10000`` chooses the populations; the
    markdown `run` returns is printed."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(map(str, sizes)))
    print(run(tuple(int(size) for size in parser.parse_args().sizes.split(","))))
