"""What every benchmark times with: the best of repeated runs (the machine is shared, so
the minimum is the least noisy estimate of a run's own cost)."""

from __future__ import annotations

import time


def best_of(fn, repeat: int = 3) -> float:
    """The shortest wall time of ``repeat`` calls of ``fn`` (seconds)."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)
