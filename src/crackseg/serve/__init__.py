"""The HTTP service and its upload page: ``crackseg serve`` (``pip install "crackseg[serve]"``).

:func:`create_app` (in :mod:`.app`) builds the FastAPI app around one loaded predictor;
:mod:`.cli` runs it under uvicorn. FastAPI is imported when :func:`create_app` or
:class:`ServeSettings` is first used, so ``crackseg --help`` works without it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ACCEPTED_TYPES", "ServeSettings", "create_app"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
