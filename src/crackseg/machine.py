"""The machine a number was measured on: CPU model, the flags that decide inference speed, cores.

Needs no torch (the light install records it too); :func:`crackseg.models.summary.machine_info`
adds the torch version for training-side records.
"""

from __future__ import annotations

import os
import platform

__all__ = ["cpu_info"]

#: /proc/cpuinfo flags kept in records: the vector and matrix extensions int8 / bf16 kernels use
SPEED_FLAGS = ("avx", "fma", "amx", "vnni", "bf16", "sse4")


def cpu_info() -> dict:
    """``{"cpu", "flags", "cores", "python", "platform"}`` of this machine."""
    model, flags = platform.processor() or "unknown", []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model in ("unknown", "", "x86_64"):
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    all_flags = line.split(":", 1)[1].split()
                    flags = sorted(f for f in all_flags if f.startswith(SPEED_FLAGS) or "vnni" in f)
                    break
    except OSError:
        pass
    return {
        "cpu": model,
        "flags": flags,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
