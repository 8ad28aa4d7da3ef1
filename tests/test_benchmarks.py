"""The benchmarks' traffic model (`benchmarks/population.py`): what every production-
shaped figure in the README rests on."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

from authgate import Gate
from authgate.testing import cheap_hasher
from conftest import SECRET

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import population


def test_a_population_replays_the_same_requests_every_time() -> None:
    first = population.Population(1_000, 5_000)
    again = population.Population(1_000, 5_000)
    assert first.users == again.users and first.epochs == again.epochs
    assert population.Population(1_000, 5_000, seed=7).users != first.users


def test_requests_follow_zipf_hot_users_first() -> None:
    drawn = population.Population(1_000, 50_000)
    counts = Counter(drawn.users)
    # Rank r is drawn with probability 1/(r * H_1000): rank 1 about 13%, rank 10 about 1.3%.
    harmonic = sum(1 / r for r in range(1, 1_001))
    assert counts[0] / 50_000 == pytest.approx(1 / harmonic, rel=0.1)
    assert counts[9] / 50_000 == pytest.approx(1 / (10 * harmonic), rel=0.25)
    assert len(counts) > 900  # the cold tail shows up too


def test_each_user_moves_to_a_new_token_as_the_modelled_time_passes() -> None:
    drawn = population.Population(100, 200_000)  # 200 s of modelled traffic
    assert 200_000 / population.MODEL_RATE == 200
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for user, epoch in zip(drawn.users, drawn.epochs, strict=True):
        assert epoch >= last.get(user, epoch)  # never back to an older token
        first.setdefault(user, epoch)
        last[user] = epoch
    # Each token lives ACCESS_TTL s from a random phase: within `span` s a user seen
    # throughout turns to a new token with probability span / ACCESS_TTL (22%).
    turned = sum(1 for user in last if last[user] != first[user]) / len(last)
    assert 0.08 < turned < 0.4
    assert all(last[user] - first[user] <= 1 for user in last)


def test_authgate_tokens_are_logins_then_refreshes_of_the_same_session() -> None:
    gate = Gate(store="memory://", secret_key=SECRET, hasher=cheap_hasher())
    drawn = population.Population(5, 2_000)
    drawn.epochs = [e + (i >= 1_000) for i, e in enumerate(drawn.epochs)]  # force a refresh
    tokens = population.authgate_tokens(gate, drawn)
    assert len(tokens) == 2_000
    by_key: dict[tuple[int, int], str] = {}
    for key, token in zip(zip(drawn.users, drawn.epochs, strict=True), tokens, strict=True):
        assert by_key.setdefault(key, token) == token  # one token per (user, epoch)
    sessions: dict[int, set[str]] = {}
    for (user, _), token in by_key.items():
        identity = gate.authenticate(token)
        assert identity.username == population.username(user)
        sessions.setdefault(user, set()).add(identity.session_id or "")
    assert all(len(ids) == 1 for ids in sessions.values())  # refreshed, not logged in again
    assert len(set(by_key.values())) > len(sessions)
    gate.close()


def test_a_faster_row_runs_the_clocks_of_session_state_faster() -> None:
    assert population.time_scale(population.MODEL_RATE) == 1
    assert population.time_scale(population.MODEL_RATE * 40) == pytest.approx(1 / 40)
