"""Expected failures, and how the command line reports them.

Every failure a user can cause (a bad file, a bad config value, a missing folder) is raised as a
:class:`CrackSegError` (a ``ValueError``, so ``except ValueError`` keeps working) whose message
names the file, key or value and says how to fix it in CLI terms. ``crackseg`` prints such an
error as one line, ``crackseg COMMAND: error: MESSAGE``, and exits with code 2. Anything else is
a bug and keeps its traceback (exit code 1); ``CRACKSEG_DEBUG=1`` shows the traceback of
expected errors too.
"""

from __future__ import annotations

import linecache
import os
import traceback
from pathlib import Path

__all__ = ["CrackSegError", "ConfigError", "user_message"]


class CrackSegError(ValueError):
    """An expected failure: the message names the culprit and the fix."""


def writable_folder(
    path: str | os.PathLike, error: type[CrackSegError] = CrackSegError, purpose: str = ""
) -> Path:
    """Create the ``--out`` folder ``path`` now and check it is writable, before any work is done;
    ``error`` (naming the flag and the fix) otherwise. ``purpose`` ends the "is a file" message."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise error(f"--out {out} is a file: give a folder{purpose}")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise error(f"--out {out}: cannot create the folder ({e.strerror})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise error(f"--out {out} is not writable: choose another folder")
    return out


class ConfigError(CrackSegError):
    """A training config (file, ``--set`` value or saved run config) is unusable."""


_PACKAGE = str(Path(__file__).resolve().parent)


def _deliberate(exc: BaseException) -> bool:
    """True when ``exc`` was raised by a ``raise`` statement in crackseg's own code.

    Such errors (``raise ValueError(f"... got {x!r}")``) are messages written for the user; a
    ``KeyError`` from ``d["x"]`` or a ``ValueError`` from inside numpy is a bug and keeps its
    traceback.
    """
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return False
    last = frames[-1]
    try:
        inside = str(Path(last.filename).resolve()).startswith(_PACKAGE)
    except OSError:
        return False
    line = (last.line or linecache.getline(last.filename, last.lineno or 0)).strip()
    return inside and line.startswith("raise")


#: the modules of the ``train`` extra: a missing one is an install to name, not a bug
TRAINING_MODULES = ("torch", "torchvision", "timm", "tensorboard", "matplotlib")


def user_message(exc: BaseException) -> str | None:
    """The one-line message for an expected failure, or None for a bug (keep the traceback)."""
    if isinstance(exc, CrackSegError):
        msg = str(exc)
    elif isinstance(exc, ImportError) and (exc.name or "").split(".")[0] in TRAINING_MODULES:
        msg = (
            f"this needs {exc.name.split('.')[0]}, which is not installed here: "
            f'pip install "crackseg[train]" (an exported model runs without it: '
            "crackseg predict --checkpoint FILE.onnx)"
        )
    elif isinstance(exc, OSError) and getattr(exc, "filename", None) is not None:
        # the OS refused a file operation: the file name and the reason are the message
        what = exc.strerror or type(exc).__name__
        msg = f"{exc.filename}: {what}"
        if isinstance(exc, PermissionError):
            msg += " (check the folder's permissions, or choose another path)"
    elif isinstance(exc, ValueError | KeyError | OSError | ImportError) and _deliberate(exc):
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    else:
        return None
    # one line: lists that were laid out over several lines are joined with "; "
    parts = [p.strip() for p in str(msg).splitlines() if p.strip()]
    return "; ".join(parts) if parts else type(exc).__name__


def debug_enabled() -> bool:
    return bool(os.environ.get("CRACKSEG_DEBUG"))
