"""The model zoo benchmark: ``crackseg benchmark`` writing ``benchmarks/results/zoo_cpu.*``.

    python benchmarks/zoo_benchmark.py                 # the real run: idle machine, all cores
    python benchmarks/zoo_benchmark.py --accuracy benchmarks/results/zoo_deepcrack_scores.json
    python benchmarks/zoo_benchmark.py --quick --size 64 64 --models carnet,enet   # smoke test

Every model in ``crackseg models`` plus the torchvision references (LR-ASPP and DeepLabV3 on
MobileNetV3-Large), side by side in one run: params, FLOPs at 512x512 and 384x544 (HxW), CPU
latency at batch 1 (median / p90, round-robin) in eager fp32 and on each model's fastest verified
path, images/s at batch 8, peak memory, and GPU numbers when CUDA is present. Writes
``zoo_cpu.md``, ``zoo_cpu.json`` and ``zoo_cpu.png`` to ``benchmarks/results/`` (the JSON holds
the machine: CPU model, flags, threads, torch). Any other ``crackseg benchmark`` option passes
through (``--threads``, ``--runs``, ``--compile``, ...); see ``crackseg benchmark --help``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from crackseg.cli import main

RESULTS = Path(__file__).resolve().parent / "results"

if __name__ == "__main__":  # guarded: the memory measurement's child processes import this file
    args = sys.argv[1:]
    if "--out" not in args:
        args += ["--out", str(RESULTS)]
    if "--name" not in args:
        args += ["--name", "zoo_cpu"]
    sys.exit(main(["benchmark", *args]))
