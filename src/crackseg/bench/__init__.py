"""Benchmark the model zoo side by side: params, FLOPs, CPU latency on the fastest path, memory.

    crackseg benchmark                                   # every registered model + 2 references
    crackseg benchmark --models carnet,enet --runs 30    # a few models
    crackseg benchmark --quick --size 64 64              # smoke test in seconds
    crackseg benchmark --profile carnet                  # where a model spends its time

This is the one timing implementation in crackseg (``crackseg info --latency`` and the scripts
in ``benchmarks/`` call :func:`time_round_robin` / :func:`measure_latency`). Its rooms:
:mod:`.timing` (round-robin timing, summaries, threads), :mod:`.paths` (the CPU fast paths and
their output checks), :mod:`.zoo` (the side-by-side run and its outputs), :mod:`.profile` (one
model's time by stage, block and op) and :mod:`.cli` (``crackseg benchmark``). What it measures:

- params; FLOPs (2 per multiply-add, conv/matmul only) at each ``flops_sizes`` (H x W), by
  :func:`crackseg.models.summary.count_flops`;
- CPU latency at batch 1, median and p90 of ``runs`` timed forward passes after ``warmup``
  untimed rounds. Every timing phase is round-robin: one round times every model (and path) once,
  so a drift in machine load hits all of them alike;
- each model in eager fp32 and on its fastest CPU path. Candidates (:func:`candidate_paths`):
  channels-last tensors, BatchNorm folded into the preceding convolution
  (:func:`fold_batchnorm`), both, bf16 autocast on top (only where the CPU has native bf16),
  ``torch.compile`` (only with ``compile=True``). Every candidate's output is checked against
  eager on the same input first (:func:`output_error`); a candidate that fails the check is never
  timed as a win. The fastest is picked by a short per-model screen, then timed with the others;
- images/s at batch ``batch`` (eager and fastest path);
- peak memory: growth of the resident set (VmHWM - VmRSS from ``/proc/self/status``, after
  resetting the high-water mark) during one forward pass at batch 1 after an untimed one, in a
  fresh child process per model and path: activations and workspaces; weights and persistent
  caches are in the baseline and not included;
- GPU latency (synchronised, fp32 and fp16 autocast) and peak allocated memory when CUDA is
  present;
- optional accuracy columns (ODS/OIS/AP at 2 px and 0 px) merged from a JSON file.

Models are randomly initialised; BatchNorm running statistics are randomised (seeded) before
anything is measured so that the folding check compares real arithmetic, not identity layers.
"""

import importlib
from typing import Any

#: public name -> the room (sub-module) that defines it, imported on first use: importing the
#: package (as the command line does to build its parser) loads no torch
_ROOMS = {
    "BF16_TOL": "paths",
    "BenchConfig": "zoo",
    "BenchmarkError": "zoo",
    "COLUMNS": "zoo",
    "EAGER": "paths",
    "FP32_TOL": "paths",
    "FastPath": "paths",
    "QUICK": "zoo",
    "Variant": "paths",
    "build_model": "zoo",
    "candidate_paths": "paths",
    "default_out_dir": "zoo",
    "default_threads": "timing",
    "fold_batchnorm": "paths",
    "format_profile": "profile",
    "gpu_latency": "zoo",
    "load_accuracy": "zoo",
    "markdown_table": "zoo",
    "measure_latency": "paths",
    "num_threads": "timing",
    "output_error": "paths",
    "pick_fastest": "paths",
    "plot": "zoo",
    "prepare": "paths",
    "prepare_out": "zoo",
    "profile_model": "profile",
    "randomize_bn_stats": "zoo",
    "read_json": "zoo",
    "rescore": "zoo",
    "run_benchmark": "zoo",
    "summarize": "timing",
    "time_round_robin": "timing",
    "write_outputs": "zoo",
}

__all__ = sorted(_ROOMS)


def __getattr__(name: str) -> Any:
    if name not in _ROOMS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_ROOMS[name]}", __name__), name)
