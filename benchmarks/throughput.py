"""Requests per second over real HTTP, at production shape: uvicorn (h11 and httptools)
and gunicorn (sync worker), one worker each, serving the bare app, authgate (stateless,
and session-checked on SQLite and on Redis) and the peers (Starlette's
AuthenticationMiddleware + pyjwt, Flask-JWT-Extended, each with and without a Redis
blocklist), loaded by wrk with 16 connections replaying a population's tokens in order
(`population.py`; `replay.lua` sends each request with the next token).

Run: ``pip install -e '.[all,dev,bench]' && python benchmarks/throughput.py`` (needs
``wrk``: ``apt-get install wrk``; starts a private redis-server).  Everything stays on
127.0.0.1, and wrk shares the machine's cores with the server.
"""

from __future__ import annotations

import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import flask
import httpx
import jwt
from flask_jwt_extended import JWTManager, create_access_token
from population import MINT_TTL, Population, authgate_tokens, command, time_scale

from authgate import Gate
from authgate.testing import cheap_hasher, free_port, redis_server

ROOT = Path(__file__).resolve().parent
SECRET = "benchmark-secret-key-that-is-long-enough-000"
SECONDS, ROUNDS, CONNECTIONS, THREADS = 4, 3, 16, 2
WARM_SECONDS = 3
SIZES = (1_000, 10_000, 100_000)
# Enough requests that no run of wrk comes back to the start of the replay.
LENGTH = 300_000


@dataclass
class App:
    """One served app: its name, its target in http_apps, the tokens it is sent."""

    name: str
    target: str
    tokens: Path | None
    env: dict[str, str] = field(default_factory=dict)
    url: str = ""
    process: subprocess.Popen[bytes] | None = None
    offset: int = 0
    rates: list[float] = field(default_factory=list)


def serve(server: str, app: App, env: dict[str, str]) -> None:
    """Start `app` under `server` on a free port and wait until it answers."""
    port = free_port()
    if server == "gunicorn":
        cmd = [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}"]
        cmd += ["--workers", "1", "--worker-class", "sync", "--log-level", "warning"]
    else:
        http = server.partition(" ")[2]
        cmd = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port)]
        cmd += ["--http", http, "--loop", "asyncio", "--log-level", "warning", "--no-access-log"]
    cmd.append(f"http_apps:{app.target}")
    app.process = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env={**os.environ, **env, **app.env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    app.url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(app.url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    stop(app)
    raise RuntimeError(f"{server} {app.target} did not start")


def stop(app: App) -> None:
    if app.process is not None:
        app.process.terminate()
        app.process.wait(10)
        app.process = None


def wrk(app: App, seconds: float) -> float:
    """Load `app` for `seconds`, continuing its replay where the last run stopped;
    requests per second."""
    cmd = ["wrk", "-t", str(THREADS), "-c", str(CONNECTIONS), "-d", f"{seconds}s", app.url]
    if app.tokens is not None:
        cmd += ["-s", str(ROOT / "replay.lua"), "--", str(app.tokens), str(app.offset)]
        cmd += [str(THREADS), str(line_width(app.tokens))]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"non-2xx answers from {app.name}:\n{out}")
    done = re.search(r"(\d+) requests in", out)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if done is None or rate is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    app.offset += int(done.group(1))
    if app.tokens is not None and app.offset >= LENGTH:
        raise RuntimeError(f"{app.name}: the replay of {LENGTH:,} requests ran out")
    return float(rate.group(1))


def write_tokens(path: Path, tokens: list[str]) -> Path:
    """One token a line, every line padded to the same width (`replay.lua` seeks)."""
    width = max(map(len, tokens))
    path.write_text("".join(f"{token:<{width}}\n" for token in tokens))
    return path


def line_width(path: Path) -> int:
    with path.open() as lines:
        return len(lines.readline()) - 1


def peer_tokens(population: Population) -> tuple[list[str], list[str]]:
    """The population's tokens for the Starlette recipe and for Flask-JWT-Extended."""

    def starlette_token(user: int, epoch: int) -> str:
        now = int(time.time())
        claims = {"sub": f"user{user:06d}", "iss": "authgate", "aud": "authgate"}
        return jwt.encode(
            {**claims, "iat": now, "exp": now + MINT_TTL, "jti": os.urandom(16).hex()},
            SECRET,
            algorithm="HS256",
        )

    peer = flask.Flask("mint")
    peer.config["JWT_SECRET_KEY"] = SECRET
    JWTManager(peer)
    with peer.app_context():
        from datetime import timedelta

        flask_tokens = population.tokens(
            lambda user, epoch: create_access_token(
                f"user{user:06d}", expires_delta=timedelta(seconds=MINT_TTL)
            )
        )
    return population.tokens(starlette_token), flask_tokens


@contextmanager
def running(apps: list[App], server: str, env: dict[str, str]) -> Iterator[list[App]]:
    try:
        for app in apps:
            serve(server, app, env)
        yield apps
    finally:
        for app in apps:
            stop(app)


def calibrate(app: App, server: str, env: dict[str, str]) -> None:
    """Serve `app` once for WARM_SECONDS to learn its pace, then scale the clocks of
    its session state to the modelled traffic at that pace."""
    with running([app], server, env):
        rate = wrk(app, WARM_SECONDS)
    app.offset = 0
    app.env["BENCH_TIME_SCALE"] = f"{time_scale(rate):.5f}"


def measure(server: str, apps: list[App], env: dict[str, str]) -> None:
    for app in apps:
        if app.target.startswith("authgate") and "AUTHGATE_STATELESS" not in app.env:
            calibrate(app, server, env)
    with running(apps, server, env):
        for app in apps:
            wrk(app, WARM_SECONDS)  # the steady state: caches filled by the replay so far
        for _ in range(ROUNDS):
            for app in apps:
                app.rates.append(wrk(app, SECONDS))


def table(server: str, rows: list[tuple[str, str, list[float]]]) -> list[str]:
    base = statistics.median(rows[0][2])
    stateless = {
        pop: statistics.median(rates) for name, pop, rates in rows if name == "authgate, stateless"
    }
    lines = []
    for name, pop, rates in rows:
        med = statistics.median(rates)
        versus = f"{med / stateless[pop]:.2f}x" if pop in stateless and "session" in name else ""
        lines.append(
            f"| {server} | {name} | {pop} | {min(rates):,.0f} | {med:,.0f} | {max(rates):,.0f} "
            f"| {med / base:.2f}x | {versus} |"
        )
    return lines


def run(sizes: tuple[int, ...] = SIZES) -> str:
    """Every over-HTTP measurement, as a markdown section."""
    logging.getLogger("authgate.audit").setLevel(logging.WARNING)
    populations = [Population(size, LENGTH) for size in sizes]
    lines = [
        "### Requests per second over HTTP",
        "",
        f"One worker per server, wrk with {THREADS} threads and {CONNECTIONS} connections on "
        f"the same 2 cores, {ROUNDS} interleaved rounds of {SECONDS} s after {WARM_SECONDS} s "
        "of warm-up, each run continuing the population's replay where the last stopped. "
        "Session-checked rows first ran once to learn their pace, which scales the clocks of "
        "their session state (cache lifetime, touch interval) to the model.",
        "",
        "| server | app | population | min req/s | median req/s | max req/s | vs bare "
        "| vs authgate stateless |",
        "|---|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp, redis_server() as redis_url:
        folder = Path(tmp)
        stores = {
            "SQLite": f"sqlite:///{folder / 'http.db'}",
            "Redis": f"{redis_url}?prefix=http",
        }
        env = {"AUTHGATE_SECRET_KEY": SECRET, "BENCH_SECRET": SECRET, "BENCH_REDIS_URL": redis_url}
        files: dict[tuple[str, int], Path] = {}
        for population in populations:
            for name, url in stores.items():
                gate = Gate(
                    store=url, secret_key=SECRET, hasher=cheap_hasher(), access_ttl=MINT_TTL
                )
                tokens = authgate_tokens(gate, population)
                gate.close()
                files[name, population.size] = write_tokens(
                    folder / f"{name}-{population.size}.txt", tokens
                )
            starlette_tokens, flask_tokens = peer_tokens(population)
            files["starlette", population.size] = write_tokens(
                folder / f"starlette-{population.size}.txt", starlette_tokens
            )
            files["flask", population.size] = write_tokens(
                folder / f"flask-{population.size}.txt", flask_tokens
            )
        for server in ("uvicorn h11", "uvicorn httptools", "gunicorn"):
            face, peer = ("wsgi", "flask") if server == "gunicorn" else ("asgi", "starlette")
            peer_name = (
                "Flask-JWT-Extended" if peer == "flask" else "AuthenticationMiddleware + pyjwt"
            )
            rows: list[tuple[str, str, list[float]]] = []
            bare = App("bare", f"bare_{face}", None)
            measure(server, [bare], env)
            rows.append(("bare app", "-", bare.rates))
            for population in populations:
                size = population.size
                apps = [
                    App(
                        "authgate, stateless",
                        f"authgate_{face}",
                        files["SQLite", size],
                        {"AUTHGATE_STATELESS": "true", "AUTHGATE_STORE": stores["SQLite"]},
                    ),
                    *[
                        App(
                            f"authgate, session check on {name}",
                            f"authgate_{face}",
                            files[name, size],
                            {"AUTHGATE_STORE": url},
                        )
                        for name, url in stores.items()
                    ],
                    App(peer_name, f"peer_{face}", files[peer, size]),
                    App(
                        f"{peer_name} + Redis blocklist",
                        f"peer_{face}_blocklist",
                        files[peer, size],
                    ),
                ]
                measure(server, apps, env)
                rows += [(app.name, population.label, app.rates) for app in apps]
            lines += table(server, rows)
    return "\n".join(lines)


def main() -> None:
    command(run, __doc__ or "", SIZES)


if __name__ == "__main__":
    main()
