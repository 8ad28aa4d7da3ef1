"""Requests per second over real HTTP: uvicorn (h11) and gunicorn (sync worker), each
serving the bare app, authgate, and the peer, loaded by wrk with 16 connections.

Run: ``pip install -e '.[all,dev,bench]' && python benchmarks/throughput.py`` (needs ``wrk``:
``apt-get install wrk``).  Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import jwt
from flask_jwt_extended import JWTManager, create_access_token

from authgate import Gate
from authgate.testing import cheap_hasher, free_port

ROOT = Path(__file__).resolve().parent
SECRET = "benchmark-secret-key-that-is-long-enough-000"
SECONDS, ROUNDS, CONNECTIONS = 5, 3, 16


def serve(server: str, target: str, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    target, _, mode = target.partition(" ")
    if mode == "stateless":
        env = {**env, "AUTHGATE_STATELESS": "true"}
    if server == "uvicorn":
        cmd = [
            sys.executable,
            "-m",
            "uvicorn",
            f"http_apps:{target}",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--http",
            "h11",
            "--log-level",
            "warning",
            "--no-access-log",
        ]
    else:
        cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--worker-class",
            "sync",
            "--log-level",
            "warning",
            f"http_apps:{target}",
        ]
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return proc, url
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{server} {target} did not start")


def wrk(url: str, token: str | None) -> float:
    cmd = ["wrk", "-t", "2", "-c", str(CONNECTIONS), "-d", f"{SECONDS}s", url]
    if token:
        cmd[1:1] = ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"non-2xx answers from {url}:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert match, out
    return float(match.group(1))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "AUTHGATE_STORE": f"sqlite:///{Path(tmp) / 'http.db'}",
            "AUTHGATE_SECRET_KEY": SECRET,
            "BENCH_SECRET": SECRET,
        }
        gate = Gate(store=env["AUTHGATE_STORE"], secret_key=SECRET, hasher=cheap_hasher())
        gate.create_user("alice", "correct horse battery")
        token = gate.login("alice", "correct horse battery").access_token
        gate.close()
        peer_asgi_token = jwt.encode(
            {"sub": "alice", "iss": "authgate", "aud": "authgate", "exp": int(time.time()) + 3600},
            SECRET,
            algorithm="HS256",
        )
        import flask

        app = flask.Flask("t")
        app.config["JWT_SECRET_KEY"] = SECRET
        JWTManager(app)
        with app.app_context():
            peer_wsgi_token = create_access_token(identity="alice")
        plans = [
            (
                "uvicorn",
                [
                    ("bare Starlette", "bare_asgi", None),
                    ("authgate, stateless", "authgate_asgi stateless", token),
                    ("authgate, session check on SQLite", "authgate_asgi", token),
                    ("Starlette AuthenticationMiddleware + pyjwt", "peer_asgi", peer_asgi_token),
                ],
            ),
            (
                "gunicorn",
                [
                    ("bare Flask", "bare_wsgi", None),
                    ("authgate, stateless", "authgate_wsgi stateless", token),
                    ("authgate, session check on SQLite", "authgate_wsgi", token),
                    ("Flask-JWT-Extended", "peer_wsgi", peer_wsgi_token),
                ],
            ),
        ]
        for server, apps in plans:
            running = [(name, *serve(server, target, env), tok) for name, target, tok in apps]
            results: dict[str, list[float]] = {name: [] for name, *_ in running}
            try:
                for _ in range(ROUNDS):
                    for name, _proc, url, tok in running:
                        results[name].append(wrk(url, tok))
            finally:
                for _name, proc, _url, _tok in running:
                    proc.terminate()
                    proc.wait(10)
            base = statistics.median(results[running[0][0]])
            print(
                f"\n{server} ({CONNECTIONS} connections, {ROUNDS} x {SECONDS} s, "
                "requests/s min / median / max)"
            )
            for name, values in results.items():
                med = statistics.median(values)
                print(
                    f"  {name:<45} {min(values):9.0f} {med:9.0f} {max(values):9.0f} "
                    f"{med / base:6.2f}x"
                )


if __name__ == "__main__":
    main()
