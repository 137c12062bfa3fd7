"""Timing primitives: round-robin timing, summaries, thread counts (the one timing
implementation in crackseg: ``crackseg benchmark``, ``crackseg info --latency`` and the scripts in
``benchmarks/`` use it).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

# ------------------------------------------------------------------------------------ timing


def time_round_robin(
    runners: Mapping[str, Callable[[], Any]],
    runs: int,
    warmup: int = 3,
    *,
    timer: Callable[[], float] = time.perf_counter,
    sync: Callable[[], None] | None = None,
    desc: str | None = None,
    progress: bool = False,
) -> dict[str, list[float]]:
    """Time every runner ``runs`` times, interleaved: each round calls every runner once.

    The first ``warmup`` rounds are not timed. The start of each round rotates through the
    runners, so no runner always follows the same neighbour. ``sync`` (e.g.
    ``torch.cuda.synchronize``) is called before starting and before stopping the clock.

    Returns:
        Milliseconds per call, by runner key, in the order they were measured.
    """
    keys = list(runners)
    times: dict[str, list[float]] = {k: [] for k in keys}
    if not keys:
        return times
    from tqdm import tqdm

    rounds = tqdm(range(warmup + runs), desc=desc, disable=not progress, leave=False, unit="round")
    for r in rounds:
        start = r % len(keys)
        for k in keys[start:] + keys[:start]:
            if sync:
                sync()
            t0 = timer()
            runners[k]()
            if sync:
                sync()
            dt = timer() - t0
            if r >= warmup:
                times[k].append(dt * 1000.0)
    return times


def summarize(times_ms: Sequence[float], batch: int = 1) -> dict[str, float | int]:
    """Median, p90 (linear interpolation), mean and min in ms, and images/s at the median."""
    t = np.asarray(times_ms, dtype=float)
    med = float(np.median(t))
    return {
        "median_ms": med,
        "p90_ms": float(np.percentile(t, 90)),
        "mean_ms": float(t.mean()),
        "min_ms": float(t.min()),
        "runs": int(t.size),
        "batch": batch,
        "images_per_s": 1000.0 * batch / med if med > 0 else float("inf"),
    }


@contextlib.contextmanager
def num_threads(n: int | None) -> Iterator[int]:
    """Run the block with ``n`` intra-op CPU threads (None: leave as is); restore afterwards."""
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(old)


def default_threads() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
