"""Every benchmark in one run, written as one markdown file.

Run: ``pip install -e '.[all,dev,bench]' && python benchmarks/run.py`` (needs ``wrk``:
``apt-get install wrk``; starts its own redis-servers).  Writes
``benchmarks/RESULTS.md`` (or ``--out PATH``) and prints it.  ``--quick`` runs a
smaller version of everything (one population of 1,000 users, short rounds, 100
revocations) to check that the suite works; its figures are not for quoting.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import accounts
import authenticate
import authorization
import issuers
import memory
import population
import redis_scale
import request_cost
import revocation
import throughput
import timing

ROOT = Path(__file__).resolve().parent


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
        f"authgate at {commit or 'an unknown commit'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "RESULTS.md")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sizes: tuple[int, ...] = request_cost.SIZES
    trials = 1000
    if args.quick:
        sizes, trials = (1_000,), 100
        request_cost.WARM, request_cost.SLICE, request_cost.ROUNDS = 2_000, 1_000, 2
        timing.ROUNDS = 2
        throughput.SECONDS, throughput.ROUNDS, throughput.WARM_SECONDS = 1, 1, 1
        throughput.LENGTH = 80_000
    started = time.monotonic()
    sections = [
        "# authgate benchmarks",
        "",
        f"One run of `python benchmarks/run.py` on {machine()}. Ratios compare rows of "
        "this run only. The traffic (`benchmarks/population.py`):",
        "",
        population.MODEL,
        "",
        request_cost.run(sizes),
        "",
        authorization.run(authorization.QUICK if args.quick else authorization.FULL),
        "",
        authenticate.run(),
        "",
        accounts.run(),
        "",
        issuers.run(),
        "",
        memory.run(),
        "",
        revocation.run(trials),
        "",
        redis_scale.run(100_000, 10_000, 1_000, 2.0) if args.quick else redis_scale.run(),
        "",
        throughput.run(sizes),
    ]
    minutes = (time.monotonic() - started) / 60
    sections += ["", f"The whole run took {minutes:.0f} minutes."]
    text = "\n".join(sections) + "\n"
    args.out.write_text(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
