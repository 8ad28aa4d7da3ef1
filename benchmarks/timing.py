"""How the in-process benchmarks time a call: interleaved rounds, one figure per round
(the median is reported); never a timed assertion."""

from __future__ import annotations

import time
from collections.abc import Callable

#: Rounds per figure (``run.py --quick`` lowers it).
ROUNDS = 3

Samples = list[float]


def measure(fn: Callable[[], object], number: int) -> Samples:
    """µs per call of `fn`, one figure per round of `number` calls, after one warm-up."""
    fn()
    samples = []
    for _ in range(ROUNDS * 2 + 1):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number * 1e6)
    return samples
