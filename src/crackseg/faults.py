"""Crash points: deterministic places where a test can kill the process.

``CRACKSEG_CRASH_AT=NAME@N`` in the environment makes the N-th pass through
``crash_point("NAME")`` send this process SIGKILL (or ``CRACKSEG_CRASH_SIGNAL``), so the tests
of exact resume, interrupted predicts and atomic outputs stop a run at a named line instead of
racing a clock. Without the variable a crash point costs one dictionary lookup.
"""

from __future__ import annotations

import os

__all__ = ["crash_point"]

_crash_counts: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Test hook: ``CRACKSEG_CRASH_AT=NAME@N`` kills this process with SIGKILL the N-th time
    (default 1st) it passes crash point NAME; ``CRACKSEG_CRASH_SIGNAL`` (e.g. ``SIGINT``, a
    Ctrl-C) sends another signal instead, and ``CRACKSEG_CRASH_GROUP=1`` sends it to the whole
    process group (as ``kill -- -PGID`` or a scheduler would). Does nothing when the variable is
    unset."""
    spec = os.environ.get("CRACKSEG_CRASH_AT")
    if not spec:
        return
    target, _, nth = spec.partition("@")
    if target != name:
        return
    _crash_counts[name] = _crash_counts.get(name, 0) + 1
    if _crash_counts[name] == int(nth or 1):
        import signal

        sig = getattr(signal, os.environ.get("CRACKSEG_CRASH_SIGNAL", "SIGKILL"))
        if os.environ.get("CRACKSEG_CRASH_GROUP") == "1":
            os.killpg(os.getpgrp(), sig)
        else:
            os.kill(os.getpid(), sig)
