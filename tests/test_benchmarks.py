"""The benchmarks' traffic model (`benchmarks/population.py`): what every production-
shaped figure in the README rests on; and the authorization benchmark, run small."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from collections.abc import Callable
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


# -- benchmarks/authorization.py: tiny sizes, the real code path -----------------------------
# Each test imports the module itself: it needs casbin, which the dev extra brings (the
# bench extra too); a machine without it skips them.

needs_peers = pytest.mark.skipif(
    importlib.util.find_spec("casbin") is None,
    reason="the authorization benchmark's peer is pycasbin: pip install -e '.[all,dev]'",
)


@needs_peers
def test_the_authorization_benchmark_prints_its_tables(capsys: pytest.CaptureFixture[str]) -> None:
    import authorization

    authorization.main(["--quick"])
    out = capsys.readouterr().out
    assert "answered the same by both systems, as were all the cold ones" in out
    for header in (
        "| permission decisions, same role graph | per second | µs each | vs pycasbin |",
        "| start-up, then one decision | ms |",
        "| `filter` on 100 objects | kept | µs per list | objects per second | vs by hand |",
        "| visible rows of 2,000 (SQLite in memory) | rows kept | ms per query |",
    ):
        assert header in out
    assert "| pycasbin `enforce`, warm" in out and "| authgate `Identity.can`, warm" in out


@needs_peers
def test_casbin_and_authgate_answer_every_benchmark_question_the_same(tmp_path: Path) -> None:
    import authorization

    world = authorization.World.draw(authorization.QUICK)
    files = authorization.CasbinFiles.write(tmp_path, authorization.casbin_policy(world))
    policy = authorization.role_policy()
    identities = [authorization.identity_of(policy, member) for member in world.members]
    allowed = authorization.agree(world, identities, files.enforcer())
    assert 0 < allowed < len(world.questions)  # both answers are asked about
    assert any(member.direct for member in world.members)
    assert any(member.groups for member in world.members)


@pytest.mark.parametrize(
    ("tamper", "answers"),
    [
        pytest.param(
            lambda lines: [line for line in lines if line != "g, editor, viewer"],
            "authgate answers True, casbin False",
            id="casbin-lacks-a-link",
        ),
        pytest.param(
            lambda lines: ["p, viewer, invoices/*, read", *lines],
            "authgate answers False, casbin True",
            id="casbin-grants-more",
        ),
    ],
)
@needs_peers
def test_the_authorization_benchmark_stops_when_the_two_policies_differ(
    tmp_path: Path, tamper: Callable[[list[str]], list[str]], answers: str
) -> None:
    import authorization

    world = authorization.World.draw(authorization.QUICK)
    lines = authorization.casbin_policy(world)
    tampered = tamper(lines)
    assert tampered != lines
    files = authorization.CasbinFiles.write(tmp_path, tampered)
    policy = authorization.role_policy()
    identities = [authorization.identity_of(policy, member) for member in world.members]
    with pytest.raises(authorization.Disagreement, match=answers):
        authorization.agree(world, identities, files.enforcer())


def test_the_reset_request_timing_benchmark_runs_small(monkeypatch: pytest.MonkeyPatch) -> None:
    import accounts

    monkeypatch.setattr(accounts, "USERS", 200)
    monkeypatch.setattr(accounts, "PER_ROUND", 10)
    monkeypatch.setattr(accounts, "ROUNDS", 2)
    table = accounts.run()
    assert "| name | µs per request | ratio |" in table
    for kind in accounts.KINDS:
        assert f"| {kind} |" in table
