"""The inference gate: one model worker thread, a bounded number of waiting requests, a timeout.

The model runs in a single worker thread (torch uses ``--threads`` inside it), so the event loop
stays free to answer ``/healthz``, refuse what is over a limit and read the next uploads while a
photo is being predicted. A request takes a place at :meth:`InferenceGate.admit`, before its
upload is read; when one request is running and ``queue`` more hold places, the next is refused
at once (:class:`Busy`, HTTP 503) instead of piling up memory and latency. A request whose result
has not come within ``timeout_s`` of joining the worker's line gets :class:`TimedOut` (HTTP 504)
and its job is abandoned: one that has not started never starts, and a running one stops at its
next :meth:`InferenceGate.checkpoint` (the service checks after each batch of tiles and before
encoding), so the worker is soon free for the next request. A single forward pass cannot be
interrupted, which is why the worker is a single thread: an abandoned job can delay the next one
until its next check point but never run beside it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")


class Busy(Exception):
    """Every place in the line is taken."""


class TimedOut(Exception):
    """The result did not come in time."""


class Abandoned(Exception):
    """Raised in the worker at a check point of a job that nobody waits for any more."""


class InferenceGate:
    """Admission control and the model's worker thread.

    Args:
        queue: requests that may wait while one runs (``0``: one request at a time).
        timeout_s: longest wait for a result, counted from :meth:`run`.
    """

    def __init__(self, queue: int, timeout_s: float) -> None:
        self.queue = int(queue)
        self.timeout_s = float(timeout_s)
        self.admitted = 0  # requests holding a place: reading, decoding, waiting or running
        self._running = 0
        self._lock = threading.Lock()
        self._abandoned: threading.Event | None = None  # the running job's flag (worker only)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crackseg-model")

    @property
    def capacity(self) -> int:
        """Requests admitted at once: the running one and ``queue`` waiting."""
        return 1 + self.queue

    @property
    def running(self) -> int:
        """Jobs in the worker thread now (0 or 1; an abandoned job counts until it ends)."""
        return self._running

    @contextmanager
    def admit(self) -> Iterator[None]:
        """Hold a place for the duration of a request; :class:`Busy` when there is none.

        Called on the event loop only, so the counter needs no lock.
        """
        if self.admitted >= self.capacity:
            raise Busy(
                f"the server is busy ({self.admitted} request(s) in progress, at most "
                f"{self.capacity}): retry in a moment"
            )
        self.admitted += 1
        try:
            yield
        finally:
            self.admitted -= 1

    def _job(self, fn: Callable[..., T], args: tuple, abandoned: threading.Event) -> T:
        if abandoned.is_set():  # its request left while it waited in the executor's queue
            raise Abandoned("abandoned before it started")
        with self._lock:
            self._running += 1
        self._abandoned = abandoned
        try:
            return fn(*args)
        finally:
            self._abandoned = None
            with self._lock:
                self._running -= 1

    def checkpoint(self) -> None:
        """Called by a job in the worker thread: :class:`Abandoned` if its request has given up
        on it (timed out or cancelled), so that the worker is freed; nothing otherwise."""
        flag = self._abandoned
        if flag is not None and flag.is_set():
            raise Abandoned("abandoned by its request")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the worker thread; :class:`TimedOut` after ``timeout_s``.

        Once this returns or raises, nobody waits for the job: it is abandoned (it does not
        start, or stops at its next :meth:`checkpoint`) and whatever it would give is dropped.
        """
        loop = asyncio.get_running_loop()
        abandoned = threading.Event()
        future = loop.run_in_executor(self._executor, self._job, fn, args, abandoned)
        try:
            return await asyncio.wait_for(future, self.timeout_s)
        except TimeoutError:
            raise TimedOut(
                f"no result within {self.timeout_s:g} s (the server is busy or the image is "
                "large): retry later, or send a smaller image"
            ) from None
        finally:
            abandoned.set()

    def close(self) -> None:
        """Stop taking jobs; queued jobs are cancelled, a running one is left to finish."""
        self._executor.shutdown(wait=False, cancel_futures=True)
