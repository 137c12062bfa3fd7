"""Benchmark the model zoo side by side: params, FLOPs, CPU latency on the fastest path, memory.

    crackseg benchmark                                   # every registered model + 2 references
    crackseg benchmark --models carnet,enet --runs 30    # a few models
    crackseg benchmark --quick --size 64 64              # smoke test in seconds
    crackseg benchmark --profile carnet                  # where a model spends its time

This is the one timing implementation in crackseg (``crackseg info --latency`` and the scripts
in ``benchmarks/`` call :func:`time_round_robin` / :func:`measure_latency`). What it measures:

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

from __future__ import annotations

import contextlib
import copy
import difflib
import fnmatch
import gc
import json
import math
import os
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from .errors import CrackSegError, writable_folder
from .models import create_model, list_models
from .models.summary import count_flops, count_params, machine_info

__all__ = [
    "BenchConfig",
    "FastPath",
    "candidate_paths",
    "fold_batchnorm",
    "measure_latency",
    "output_error",
    "pick_fastest",
    "profile_model",
    "run_benchmark",
    "time_round_robin",
    "write_outputs",
]

# output checks against eager (see output_error): fp32 paths by the worst pixel; bf16 (8
# mantissa bits) by the RMS, since a rounding can flip a max-pool choice and move single pixels
# far (ENet: 14 % at one pixel, 2 % RMS), while a broken path is off by ~100 % RMS
FP32_TOL = 1e-3  # max |out - eager| / max |eager|
BF16_TOL = 1e-1  # ||out - eager|| / ||eager||
COLUMNS = (
    "model", "source", "params", "flops",
    "cpu_eager_ms", "cpu_eager_p90_ms", "cpu_best_path", "cpu_best_ms", "cpu_best_p90_ms",
    "cpu_speedup", "cpu_eager_img_s", "cpu_best_img_s", "mem_eager_mb", "mem_best_mb",
    "gpu_fp32_ms", "gpu_fp32_p90_ms", "gpu_fp32_fps", "gpu_fp16_ms", "gpu_fp16_p90_ms",
    "gpu_fp16_fps", "gpu_fp16_error", "gpu_mem_mb",
    "ods_2px", "ois_2px", "ap_2px", "ods_0px", "ois_0px", "ap_0px",
    "candidates", "raw_ms",
)  # fmt: skip
ACCURACY_KEYS = ("ods_2px", "ois_2px", "ap_2px", "ods_0px", "ois_0px", "ap_0px")
# run counts and batch: the defaults, and those of --quick (a smoke test, not a measurement)
COUNTS = {"runs": 20, "warmup": 3, "screen_runs": 5, "batch": 8, "batch_runs": 3}
QUICK = {"runs": 3, "warmup": 1, "screen_runs": 2, "batch": 2, "batch_runs": 2}


class BenchmarkError(CrackSegError):
    """A benchmark option is unusable (unknown model, bad size, unwritable --out, bad file)."""


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


# ------------------------------------------------------------------------------- fast paths


@dataclass(frozen=True)
class FastPath:
    """One way of running a model on the CPU (or GPU: ``bf16`` then means fp16 autocast)."""

    name: str
    channels_last: bool = False
    fold_bn: bool = False
    bf16: bool = False
    compile: bool = False
    # an extra model transform applied last (experiments and tests); must keep eager's output
    transform: Callable[[nn.Module], nn.Module] | None = field(default=None, compare=False)

    @property
    def check(self) -> tuple[str, float]:
        """(metric of :func:`output_error`, tolerance) that this path's output must meet."""
        return ("rms", BF16_TOL) if self.bf16 else ("max", FP32_TOL)


EAGER = FastPath("eager")


def candidate_paths(
    *, compile: bool = False, bf16: bool | None = None
) -> tuple[list[FastPath], dict[str, str]]:
    """The CPU paths worth timing on this machine, and why the others are left out.

    Args:
        compile: include ``torch.compile`` (inductor: 1-2 minutes of compiling per model on two
            cores, so only on request); it is probed once and skipped with the reason if the
            compiler toolchain fails.
        bf16: include bf16 autocast; None decides by the CPU (native AVX512-BF16 or AMX only:
            elsewhere bf16 is emulated and slower than fp32).
    """
    from .inference.predictor import cpu_has_native_bf16

    paths = [
        EAGER,
        FastPath("channels_last", channels_last=True),
        FastPath("fold_bn", fold_bn=True),
        FastPath("fold_bn+channels_last", channels_last=True, fold_bn=True),
    ]
    skipped: dict[str, str] = {}
    native = cpu_has_native_bf16()
    if bf16 is None:
        bf16 = native
        if not native:
            skipped["bf16"] = "CPU lacks native bf16 (avx512_bf16 / amx_bf16): emulated, slower"
    elif not bf16:
        skipped["bf16"] = "disabled (--no-bf16)"
    if bf16:
        paths.append(FastPath("fold_bn+channels_last+bf16", True, True, bf16=True))
    if not compile:
        skipped["compile"] = (
            "not requested (--compile): inductor compiles each model for 1-2 min on 2 cores"
        )
    else:
        reason = compile_unavailable()
        if reason:
            skipped["compile"] = reason
        else:
            paths.append(FastPath("compile", channels_last=True, fold_bn=True, compile=True))
    return paths, skipped


_COMPILE_PROBE: list[str | None] = []


def compile_unavailable() -> str | None:
    """None when ``torch.compile`` (inductor) builds and runs a tiny CPU model, else the reason."""
    if not _COMPILE_PROBE:
        try:
            probe = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()).eval()
            with torch.inference_mode():
                torch.compile(probe)(torch.randn(1, 3, 8, 8))
            _COMPILE_PROBE.append(None)
        except Exception as e:  # noqa: BLE001 - any failure of the toolchain means "skip"
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            _COMPILE_PROBE.append(f"torch.compile failed on a probe model: {first}")
    return _COMPILE_PROBE[0]


class _TensorUses(TorchFunctionMode):
    """Counts, for watched tensors, the torch calls that take them and return a tensor.

    Calls that only read metadata (``x.shape``, ``x.dim()``) return no tensor and do not count.
    """

    def __init__(self) -> None:
        super().__init__()
        self.watched: set[int] = set()
        self.uses: Counter[int] = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if self.watched and any(isinstance(o, torch.Tensor) for o in tree_leaves(out)):
            for a in tree_leaves((args, kwargs or {})):
                if isinstance(a, torch.Tensor) and id(a) in self.watched:
                    self.uses[id(a)] += 1
        return out


def _conv_bn_pairs(model: nn.Module, example: torch.Tensor) -> list[tuple[str, str]]:
    """(conv, bn) module names where the conv's output feeds that BatchNorm and nothing else.

    Found by running ``example`` once with hooks (which module got which tensor) and a
    :class:`TorchFunctionMode` (every other op that reads the conv output), so it works on
    models with Python control flow that ``torch.fx`` cannot trace. Each module must run once.
    """
    names = {m: n for n, m in model.named_modules()}
    calls: Counter[nn.Module] = Counter()
    conv_out: dict[int, nn.Module] = {}  # id of a conv output -> that conv
    bn_from: dict[nn.Module, tuple[nn.Module, int]] = {}  # bn -> (conv, id) it read from
    keep: list[torch.Tensor] = []  # conv outputs stay alive so their ids stay unique
    mode = _TensorUses()

    def conv_hook(m, args, out):
        calls[m] += 1
        if isinstance(out, torch.Tensor):
            conv_out[id(out)] = m
            keep.append(out)
            mode.watched.add(id(out))

    def bn_hook(m, args):
        calls[m] += 1
        # look up now: a conv output is alive, so its id cannot belong to another tensor
        if args and isinstance(args[0], torch.Tensor) and id(args[0]) in conv_out:
            bn_from[m] = (conv_out[id(args[0])], id(args[0]))

    hooks = []
    for m in names:
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.BatchNorm2d) and m.track_running_stats and m.running_var is not None:
            hooks.append(m.register_forward_pre_hook(bn_hook))
    try:
        with torch.inference_mode(), mode:
            model(example)
    finally:
        for h in hooks:
            h.remove()
    pairs = []
    for bn, (conv, tid) in bn_from.items():
        if calls[conv] == 1 and calls[bn] == 1 and mode.uses[tid] == 1:
            pairs.append((names[conv], names[bn]))
    return pairs


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def fold_batchnorm(model: nn.Module, example: torch.Tensor) -> tuple[nn.Module, int]:
    """A copy of ``model`` (eval mode) with every BatchNorm that directly follows a convolution
    folded into that convolution's weights and bias (the BN becomes ``nn.Identity``).

    Pairs are found by running ``example`` through the model (:func:`_conv_bn_pairs`); folding
    uses :func:`torch.nn.utils.fusion.fuse_conv_bn_eval`. Returns the copy and the number of
    folded pairs.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    model = copy.deepcopy(model).eval()
    pairs = _conv_bn_pairs(model, example)
    for conv_name, bn_name in pairs:
        conv, bn = model.get_submodule(conv_name), model.get_submodule(bn_name)
        transpose = isinstance(conv, nn.ConvTranspose2d)
        _set_submodule(model, conv_name, fuse_conv_bn_eval(conv, bn, transpose=transpose))
        _set_submodule(model, bn_name, nn.Identity())
    return model, len(pairs)


@dataclass
class Variant:
    """A model prepared for one :class:`FastPath` on one device; ``bind(x)`` gives a runner."""

    module: Callable[[torch.Tensor], torch.Tensor]
    path: FastPath
    device: str = "cpu"
    folded: int = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.bind(x)()

    def bind(self, x: torch.Tensor) -> Callable[[], torch.Tensor]:
        x = x.to(self.device)
        if self.path.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        dtype = torch.float16 if self.device.startswith("cuda") else torch.bfloat16
        dev_type = self.device.split(":")[0]
        module, amp = self.module, self.path.bf16

        def run() -> torch.Tensor:
            with torch.inference_mode(), torch.autocast(dev_type, dtype=dtype, enabled=amp):
                return module(x)

        return run


def prepare(
    model: nn.Module, path: FastPath, example: torch.Tensor, device: str = "cpu"
) -> Variant:
    """A copy of ``model`` set up for ``path`` (the caller's model is left unchanged)."""
    folded = 0
    if path.fold_bn:
        model, folded = fold_batchnorm(model, example)
    else:
        model = copy.deepcopy(model).eval()
    model = model.to(device)
    if path.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if path.transform is not None:
        model = path.transform(model)
    module: Callable = torch.compile(model) if path.compile else model
    return Variant(module, path, device, folded)


def output_error(out: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
    """Relative errors of ``out`` against ``ref``, scaled by the output (randomly initialised
    models give logits of any size): ``max`` = max |out - ref| / max |ref|, ``rms`` =
    ||out - ref|| / ||ref||. Both inf for a wrong shape or a non-finite value."""
    inf = {"max": float("inf"), "rms": float("inf")}
    if not isinstance(out, torch.Tensor) or out.shape != ref.shape:
        return inf
    out, ref = out.float().cpu(), ref.float().cpu()
    if not torch.isfinite(out).all():
        return inf
    d = out - ref
    return {
        "max": float(d.abs().max()) / max(1e-12, float(ref.abs().max())),
        "rms": float(d.norm()) / max(1e-12, float(ref.norm())),
    }


def pick_fastest(candidates: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The candidate with the lowest ``screen_ms`` among those whose output check passed."""
    ok = [c for c in candidates if c.get("ok") and c.get("screen_ms") is not None]
    if not ok:
        raise RuntimeError("no candidate path passed the output check (eager always should)")
    return min(ok, key=lambda c: c["screen_ms"])


@torch.inference_mode()
def measure_latency(
    model: nn.Module,
    height: int = 512,
    width: int = 512,
    batch: int = 1,
    runs: int = 20,
    warmup: int = 3,
    threads: int | None = None,
    channels_last: bool = False,
    bf16: bool = False,
) -> dict:
    """Forward latency of one model on the CPU (median, p90, mean, min in ms, FPS at the median).

    ``channels_last`` runs NHWC tensors (faster oneDNN kernels); ``bf16`` runs under bfloat16
    autocast, fast on CPUs with AVX-512 BF16 or AMX and slow on those without. The caller's model
    is not modified.
    """
    name = "+".join(n for n, on in (("channels_last", channels_last), ("bf16", bf16)) if on)
    path = FastPath(name or "eager", channels_last=channels_last, bf16=bf16)
    with num_threads(threads) as n:
        x = torch.randn(batch, 3, height, width)
        run = prepare(model, path, x).bind(x)
        stats = summarize(time_round_robin({"m": run}, runs, warmup)["m"], batch)
    return {
        **stats,
        "fps": stats["images_per_s"],
        "threads": n,
        "channels_last": channels_last,
        "bf16": bf16,
        "input": [batch, 3, height, width],
    }


# ----------------------------------------------------------------------------------- models


class _OutOnly(nn.Module):
    """A torchvision segmentation model returning its ``'out'`` tensor, like crackseg's models."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]


def _torchvision(builder: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import torchvision.models.segmentation as seg

        fn = getattr(seg, builder)
        return _OutOnly(fn(weights=None, weights_backbone=None, num_classes=1))

    return build


# external references, outside crackseg's registry: random init, one output channel
REFERENCES: dict[str, Callable[[], nn.Module]] = {
    "tv_lraspp_mobilenet_v3_large": _torchvision("lraspp_mobilenet_v3_large"),
    "tv_deeplabv3_mobilenet_v3_large": _torchvision("deeplabv3_mobilenet_v3_large"),
}


def known_models(references: bool = True) -> list[str]:
    return list_models() + (list(REFERENCES) if references else [])


def resolve_models(spec: str | Sequence[str] | None, references: bool = True) -> list[str]:
    """Model names from ``"a,b,c"`` (shell patterns allowed) or a list; None: every model."""
    known = known_models(references)
    if spec is None:
        return known
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    items = [s.strip() for s in items if s.strip()]
    if not items:
        raise BenchmarkError("--models is empty: give names like carnet,enet (crackseg models)")
    every = known_models(True)
    names: list[str] = []
    for item in items:
        hits = [n for n in every if fnmatch.fnmatchcase(n, item)]
        if not hits:
            close = difflib.get_close_matches(item, every, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise BenchmarkError(f"unknown model {item!r}.{hint} Known models: {', '.join(every)}")
        names += [n for n in hits if n not in names]
    return names


def build_model(name: str, seed: int = 0) -> nn.Module:
    """A registered model or a reference, randomly initialised, eval mode, BN stats randomised."""
    torch.manual_seed(seed)
    model = REFERENCES[name]() if name in REFERENCES else create_model(name)
    randomize_bn_stats(model, seed)
    return model.eval()


@torch.no_grad()
def randomize_bn_stats(model: nn.Module, seed: int = 0) -> None:
    """Give every BatchNorm non-trivial running statistics and affine parameters (seeded)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_var is not None:
            c = m.running_var.numel()
            m.running_mean.copy_(0.1 * torch.randn(c, generator=g))
            m.running_var.copy_(0.5 + torch.rand(c, generator=g))
            if m.affine:
                m.weight.copy_(1 + 0.1 * torch.randn(c, generator=g))
                m.bias.copy_(0.1 * torch.randn(c, generator=g))


# ----------------------------------------------------------------------------------- memory


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise OSError(f"{key} not in /proc/self/status")


def _peak_rss_child(name: str, path: FastPath, height: int, width: int, threads: int) -> float:
    """Child process body: MB of resident-set growth during one batch-1 forward pass.

    One untimed forward first, so persistent state (oneDNN primitive caches, the BN-folding
    probe of some paths) is in the baseline for every path alike. glibc is told to give every
    buffer of 64 KiB or more its own mapping and to return freed memory, so activations freed
    before the baseline do not hide the next forward's growth.
    """
    import ctypes

    torch.set_num_threads(threads)
    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD (fixed: no dynamic raising)
    libc.mallopt(-1, 64 * 1024)  # M_TRIM_THRESHOLD
    x = torch.randn(1, 3, height, width)
    run = prepare(build_model(name), path, x).bind(x)
    run()
    gc.collect()
    libc.malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as f:  # "5": reset the peak RSS (VmHWM) to now
        f.write("5")
    base = _status_kb("VmRSS")
    run()
    return (_status_kb("VmHWM") - base) / 1024.0


def memory_unavailable() -> str | None:
    """None when the peak-RSS measurement works here (Linux, glibc, a resettable VmHWM)."""
    import ctypes

    try:
        if not hasattr(ctypes.CDLL("libc.so.6"), "malloc_trim"):
            return "peak RSS needs glibc (malloc_trim)"
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        _status_kb("VmHWM")
    except (OSError, AttributeError) as e:
        return f"peak RSS needs Linux (glibc, /proc/self/clear_refs, VmHWM): {e}"
    return None


def _memory_pool() -> ProcessPoolExecutor:
    import multiprocessing as mp

    # forkserver: children fork from a clean server that imported torch but never ran it, so
    # each measurement starts in a fresh process in a fraction of a second
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["crackseg.bench"])
    else:
        ctx = mp.get_context("spawn")
    return ProcessPoolExecutor(max_workers=1, mp_context=ctx, max_tasks_per_child=1)


# -------------------------------------------------------------------------------------- GPU


def gpu_latency(
    models: Mapping[str, nn.Module],
    height: int,
    width: int,
    runs: int,
    warmup: int,
    device: str = "cuda",
    progress: bool = False,
    timer: Callable[[], float] = time.perf_counter,
) -> dict[str, dict]:
    """Batch-1 latency on ``device`` in fp32 and fp16 autocast, round-robin over models.

    Timed with :func:`time_round_robin` and a device synchronisation around every call; peak
    allocated memory from ``torch.cuda.max_memory_allocated`` over what was allocated before
    (fp32, first forward: activations and workspaces, not weights).
    """
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else None
    x = torch.randn(1, 3, height, width)
    runners: dict[str, Callable] = {}
    out: dict[str, dict] = {}
    for name, model in models.items():
        fp32 = prepare(model, EAGER, x, device)
        fp16 = prepare(model, FastPath("fp16", bf16=True), x, device)
        base = 0
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()  # the weights already on the device
        ref = fp32.bind(x)()
        if sync:
            sync()
        mem = (torch.cuda.max_memory_allocated() - base) / 2**20 if cuda else None
        err = output_error(fp16.bind(x)(), ref)["rms"]
        out[name] = {"mem_mb": mem, "fp16_error": err}
        runners[f"{name}/fp32"] = fp32.bind(x)
        runners[f"{name}/fp16"] = fp16.bind(x)
    times = time_round_robin(
        runners, runs, warmup, timer=timer, sync=sync, desc=f"{device} latency", progress=progress
    )
    for name in models:
        for kind in ("fp32", "fp16"):
            out[name][kind] = summarize(times[f"{name}/{kind}"])
    return out


# ------------------------------------------------------------------------------------- run


@dataclass
class BenchConfig:
    """Settings of one benchmark run (the ``crackseg benchmark`` options)."""

    models: list[str] | None = None  # None: every registered model (+ references)
    references: bool = True
    height: int = 512
    width: int = 512
    flops_sizes: list[tuple[int, int]] = field(default_factory=lambda: [(512, 512), (384, 544)])
    threads: int | None = None  # None: all cores
    # None: COUNTS, or QUICK with quick=True (a value given here wins over both)
    runs: int | None = None  # timed rounds at batch 1
    warmup: int | None = None  # untimed rounds first
    screen_runs: int | None = None  # timed rounds per candidate path when picking the fastest
    batch: int | None = None  # batch for images/s
    batch_runs: int | None = None  # timed rounds at that batch
    compile: bool = False
    bf16: bool | None = None  # None: where the CPU has native bf16
    memory: bool = True
    gpu: bool = True
    accuracy: str | None = None
    quick: bool = False
    seed: int = 0

    def checked(self) -> BenchConfig:
        """Validated copy; counts left at None come from :data:`QUICK` or :data:`COUNTS`."""
        base = QUICK if self.quick else COUNTS
        cfg = replace(self, **{k: v for k, v in base.items() if getattr(self, k) is None})
        for h, w in [(cfg.height, cfg.width), *cfg.flops_sizes]:
            if not (8 <= h <= 16384 and 8 <= w <= 16384):
                raise BenchmarkError(f"size {h}x{w}: height and width must be 8..16384 pixels")
        for key in ("runs", "screen_runs", "batch", "batch_runs"):
            if getattr(cfg, key) < 1:
                raise BenchmarkError(f"--{key.replace('_', '-')} must be at least 1")
        if cfg.warmup < 0:
            raise BenchmarkError("--warmup must be 0 or more")
        if cfg.threads is not None and cfg.threads < 1:
            raise BenchmarkError("--threads must be at least 1")
        cfg.models = resolve_models(cfg.models, cfg.references)
        return cfg


def read_json(path: str | os.PathLike, flag: str) -> Any:
    """The JSON in ``path``; a one-line :class:`BenchmarkError` naming ``flag`` otherwise."""
    try:
        return json.loads(Path(path).read_text())
    except OSError as e:
        raise BenchmarkError(f"{flag} {path}: cannot read ({e.strerror})") from None
    except json.JSONDecodeError as e:
        raise BenchmarkError(f"{flag} {path}: not JSON ({e.msg}, line {e.lineno})") from None


def load_accuracy(path: str | os.PathLike) -> dict[str, dict[str, float]]:
    """Test metrics per model from JSON, as ``{model: {"ods_2px": .., ...}}``.

    Accepted: ``{model: {"2px": {"ODS", "OIS", "AP"}, "0px": {...}}}`` (the ``scores`` of the
    records in ``benchmarks/results/``), ``{model: {"ODS_2px": .., ...}}``, or a list of records
    ``[{"model": .., "scores": {...}}]``, or a record holding such an object under ``"models"``.
    """
    data = read_json(path, "--accuracy")
    if isinstance(data, list):
        data = {r.get("model"): r.get("scores", r) for r in data if isinstance(r, dict)}
    elif isinstance(data, dict) and isinstance(data.get("models"), dict):
        data = data["models"]  # a record such as benchmarks/results/zoo_deepcrack.json
    if not isinstance(data, dict):
        raise BenchmarkError(f"--accuracy {path}: expected an object of model -> metrics")
    out: dict[str, dict[str, float]] = {}
    for model, scores in data.items():
        if not isinstance(scores, dict):
            raise BenchmarkError(f"--accuracy {path}: metrics of {model!r} are not an object")
        flat: dict[str, float] = {}
        for k, v in scores.items():
            if isinstance(v, dict) and re.fullmatch(r"\d+px", str(k)):
                for m in ("ODS", "OIS", "AP"):
                    if isinstance(v.get(m), int | float):
                        flat[f"{m.lower()}_{k}"] = float(v[m])
            elif str(k).lower() in ACCURACY_KEYS and isinstance(v, int | float):
                flat[str(k).lower()] = float(v)
        if not flat:
            raise BenchmarkError(
                f"--accuracy {path}: no ODS/OIS/AP for {model!r} (keys like '2px': "
                "{'ODS': ..}, or 'ODS_2px')"
            )
        out[str(model)] = flat
    return out


def _merge_scores(
    rows: dict[str, dict[str, Any]], accuracy: dict[str, dict[str, float]]
) -> list[str]:
    """Put ``accuracy`` (from :func:`load_accuracy`) into the rows; notes for unknown models."""
    notes = []
    for name, scores in accuracy.items():
        if name in rows:
            rows[name].update(scores)
        else:
            notes.append(f"accuracy for {name!r} ignored: not benchmarked in this run")
    return notes


def rescore(record: dict, accuracy_path: str | os.PathLike) -> dict:
    """A copy of an earlier benchmark ``record`` with the accuracy columns of ``accuracy_path``.

    Nothing is timed again: the timings, machine and date stay those of the original run (the
    accuracy of a zoo trained over several sessions joins one timing run). Earlier accuracy
    columns and the notes about them are replaced.
    """
    if not isinstance(record, dict) or record.get("schema") != "crackseg-benchmark/1":
        raise BenchmarkError(
            "--rescore: not a crackseg benchmark JSON (schema crackseg-benchmark/1)"
        )
    accuracy = load_accuracy(accuracy_path)
    out = json.loads(json.dumps(record))
    rows = {r["model"]: r for r in out["models"]}
    for r in rows.values():
        r.update(dict.fromkeys(ACCURACY_KEYS))
    out["notes"] = [n for n in out["notes"] if not n.startswith("accuracy for ")]
    out["notes"] += _merge_scores(rows, accuracy)
    out["settings"]["accuracy_file"] = str(accuracy_path)
    return out


def _say(progress: bool, msg: str) -> None:
    if progress:
        from tqdm import tqdm

        tqdm.write(msg)


def _first_line(e: BaseException) -> str:
    return f"{type(e).__name__}: " + (str(e).strip().splitlines() or [""])[0][:200]


def _screen_model(
    name: str,
    cfg: BenchConfig,
    paths: Sequence[FastPath],
    x1: torch.Tensor,
    timer: Callable[[], float],
    progress: bool,
) -> tuple[nn.Module, dict[str, Any], Variant, Variant]:
    """Build ``name``, count its params and FLOPs, check every path's output against eager and
    time the passing paths for ``cfg.screen_runs`` rounds. Returns (model, row, eager, fastest)."""
    model = build_model(name, cfg.seed)
    row: dict[str, Any] = {k: None for k in COLUMNS}
    row.update(
        model=name,
        source="torchvision" if name in REFERENCES else "crackseg",
        params=count_params(model),
        flops={f"{a}x{b}": count_flops(model, (1, 3, a, b)) for a, b in cfg.flops_sizes},
    )
    with torch.inference_mode():
        ref = model(x1)
    variants: dict[str, Variant] = {}
    cands: list[dict[str, Any]] = []
    seen: dict[tuple, str] = {}  # what a path really does -> the first path doing it
    for p in paths:
        metric, tol = p.check
        c: dict[str, Any] = {"path": p.name, "check": f"{metric} <= {tol:g}", "screen_ms": None}
        try:
            v = prepare(model, p, x1)
            same = (p.channels_last, v.folded > 0, p.bf16, p.compile, p.transform)
            if same in seen:  # e.g. fold_bn on a model without Conv+BN pairs
                c.update(ok=False, error=None, folded_bn=0, note=f"same as {seen[same]}")
                cands.append(c)
                continue
            seen[same] = p.name
            err = output_error(v.bind(x1)(), ref)
            c.update(ok=err[metric] <= tol, folded_bn=v.folded)
            c["error"] = {k: e if math.isfinite(e) else None for k, e in err.items()}
            if not c["ok"]:
                c["note"] = f"output off eager: {metric} {err[metric]:.3g} > {tol:g}"
        except Exception as e:  # noqa: BLE001 - a path that cannot run is not a win
            if p is paths[0]:
                raise
            c.update(ok=False, error=None, note=f"failed: {_first_line(e)}")
        if c["ok"]:
            variants[p.name] = v
        cands.append(c)
    screen = time_round_robin(
        {k: v.bind(x1) for k, v in variants.items()},
        cfg.screen_runs,
        min(cfg.warmup, 2),
        timer=timer,
        desc=f"screen {name}",
        progress=progress,
    )
    for c in cands:
        if c["path"] in screen:
            c["screen_ms"] = statistics.median(screen[c["path"]])
    pick = pick_fastest(cands)
    row["candidates"] = cands
    row["cpu_best_path"] = pick["path"]
    return model, row, variants["eager"], variants[pick["path"]]


def run_benchmark(
    cfg: BenchConfig,
    *,
    paths: Sequence[FastPath] | None = None,
    timer: Callable[[], float] = time.perf_counter,
    progress: bool = False,
) -> dict:
    """Run the benchmark described by ``cfg`` and return the record (see :data:`COLUMNS`).

    Args:
        cfg: what to run.
        paths: CPU candidates (default :func:`candidate_paths`); the first must be eager.
        timer: clock in seconds for every timing (tests inject a fake one).
        progress: tqdm bars over the rounds and one line per phase.
    """
    cfg = cfg.checked()
    accuracy = load_accuracy(cfg.accuracy) if cfg.accuracy else {}
    skipped: dict[str, str] = {}
    if paths is None:
        paths, skipped = candidate_paths(compile=cfg.compile, bf16=cfg.bf16)
    if not paths or paths[0].name != "eager":
        raise ValueError("the first candidate path must be eager (the reference)")
    threads = cfg.threads or default_threads()
    notes: list[str] = []
    rows: dict[str, dict[str, Any]] = {}
    best: dict[str, Variant] = {}
    eager: dict[str, Variant] = {}
    models: dict[str, nn.Module] = {}
    h, w = cfg.height, cfg.width
    with num_threads(threads):
        torch.manual_seed(cfg.seed)
        x1 = torch.randn(1, 3, h, w)
        xb = torch.randn(cfg.batch, 3, h, w)
        # 1) facts, output checks and a short per-model screen of the candidate paths
        for name in cfg.models:
            _say(progress, f"{name}: FLOPs, output checks, screening {len(paths)} paths")
            try:
                model, row, eager[name], best[name] = _screen_model(
                    name, cfg, paths, x1, timer, progress
                )
            except Exception as e:  # noqa: BLE001 - one broken model must not sink the zoo run
                notes.append(f"{name} left out: eager fp32 failed: {_first_line(e)}")
                _say(progress, f"{name} left out: {_first_line(e)}")
                continue
            models[name], rows[name] = model, row
        if not rows:
            raise BenchmarkError("no model could run: " + "; ".join(notes))

        # 2) batch-1 latency, eager and fastest path of every model, round-robin
        _say(progress, f"batch-1 latency: {cfg.runs} rounds over {2 * len(rows)} runners")
        runners = {}
        for name in rows:
            runners[f"{name}/eager"] = eager[name].bind(x1)
            runners[f"{name}/best"] = best[name].bind(x1)
        t1 = time_round_robin(
            runners, cfg.runs, cfg.warmup, timer=timer, desc="batch 1", progress=progress
        )
        # 3) throughput at batch B
        _say(progress, f"batch-{cfg.batch} throughput: {cfg.batch_runs} rounds")
        runners = {}
        for name in rows:
            runners[f"{name}/eager"] = eager[name].bind(xb)
            runners[f"{name}/best"] = best[name].bind(xb)
        tb = time_round_robin(
            runners,
            cfg.batch_runs,
            min(cfg.warmup, 1),
            timer=timer,
            desc=f"batch {cfg.batch}",
            progress=progress,
        )
        for name, row in rows.items():
            e1, b1 = summarize(t1[f"{name}/eager"]), summarize(t1[f"{name}/best"])
            eb = summarize(tb[f"{name}/eager"], cfg.batch)
            bb = summarize(tb[f"{name}/best"], cfg.batch)
            row.update(
                cpu_eager_ms=e1["median_ms"],
                cpu_eager_p90_ms=e1["p90_ms"],
                cpu_best_ms=b1["median_ms"],
                cpu_best_p90_ms=b1["p90_ms"],
                cpu_speedup=e1["median_ms"] / b1["median_ms"] if b1["median_ms"] > 0 else None,
                cpu_eager_img_s=eb["images_per_s"],
                cpu_best_img_s=bb["images_per_s"],
                raw_ms={
                    "batch1_eager": t1[f"{name}/eager"],
                    "batch1_best": t1[f"{name}/best"],
                    f"batch{cfg.batch}_eager": tb[f"{name}/eager"],
                    f"batch{cfg.batch}_best": tb[f"{name}/best"],
                },
            )
        del eager, best, runners
        gc.collect()

        # 4) peak memory, one fresh child process per model and path
        mem_note = memory_unavailable() if cfg.memory else "disabled (--no-memory)"
        if mem_note is None:
            _say(progress, "peak memory: one child process per model and path")
            with _memory_pool() as pool:
                jobs = {}
                for name, row in rows.items():
                    best_path = next(p for p in paths if p.name == row["cpu_best_path"])
                    for key, p in (("mem_eager_mb", EAGER), ("mem_best_mb", best_path)):
                        if key == "mem_best_mb" and p.name == "eager":
                            continue
                        jobs[(name, key)] = pool.submit(_peak_rss_child, name, p, h, w, threads)
                for (name, key), job in jobs.items():
                    try:
                        rows[name][key] = job.result()
                    except Exception as e:  # noqa: BLE001 - e.g. an unpicklable test path
                        notes.append(f"memory of {name} ({key}) not measured: {e}")
                for row in rows.values():
                    if row["cpu_best_path"] == "eager":
                        row["mem_best_mb"] = row["mem_eager_mb"]
        else:
            notes.append(f"peak memory not measured: {mem_note}")

        # 5) GPU
        gpu_note = None
        if not cfg.gpu:
            gpu_note = "skipped (--no-gpu)"
        elif not torch.cuda.is_available():
            gpu_note = "skipped: no CUDA device"
        else:
            _say(progress, "GPU latency")
            g = gpu_latency(models, h, w, cfg.runs, cfg.warmup, "cuda", progress, timer)
            for name, r in g.items():
                rows[name].update(
                    gpu_fp32_ms=r["fp32"]["median_ms"],
                    gpu_fp32_p90_ms=r["fp32"]["p90_ms"],
                    gpu_fp32_fps=r["fp32"]["images_per_s"],
                    gpu_fp16_ms=r["fp16"]["median_ms"],
                    gpu_fp16_p90_ms=r["fp16"]["p90_ms"],
                    gpu_fp16_fps=r["fp16"]["images_per_s"],
                    gpu_fp16_error=r["fp16_error"],
                    gpu_mem_mb=r["mem_mb"],
                )
        if gpu_note:
            notes.append(f"GPU: {gpu_note}")

    notes += _merge_scores(rows, accuracy)
    machine = machine_info() | {
        "threads": threads,
        "interop_threads": torch.get_num_interop_threads(),
    }
    if torch.cuda.is_available():
        machine["gpu"] = torch.cuda.get_device_name(0)
    return {
        "schema": "crackseg-benchmark/1",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine,
        "settings": {
            "input": [1, 3, h, w],
            "flops_sizes_hw": [list(s) for s in cfg.flops_sizes],
            "runs": cfg.runs,
            "warmup": cfg.warmup,
            "screen_runs": cfg.screen_runs,
            "batch": cfg.batch,
            "batch_runs": cfg.batch_runs,
            "quick": cfg.quick,
            "seed": cfg.seed,
            "accuracy_file": cfg.accuracy,
        },
        "methods": {
            "flops": "FLOPs = 2 x MACs, conv/matmul only (torch.utils.flop_counter)",
            "latency": "median / p90 of timed forwards after warm-up rounds; round-robin over "
            "models and paths; time.perf_counter around one call, inference_mode",
            "best_path": "fastest median of a short per-model screen among paths whose output "
            f"matches eager: max |out - eager| / max |eager| <= {FP32_TOL:g} for fp32 paths, "
            f"||out - eager|| / ||eager|| <= {BF16_TOL:g} for bf16",
            "memory": "peak RSS growth (VmHWM - VmRSS after resetting VmHWM) during one batch-1 "
            "forward after a warm-up one, in a fresh child process (glibc returns freed buffers); "
            "activations and workspaces, not weights or persistent caches",
            "gpu": "torch.cuda.synchronize around each call; fp16 = autocast float16; GPU MB = "
            "peak allocated during the first fp32 forward minus what was allocated before",
        },
        "paths": {"candidates": [p.name for p in paths], "skipped": skipped},
        "notes": notes,
        "models": list(rows.values()),
    }


# ---------------------------------------------------------------------------------- outputs


def default_out_dir(threads: int | None = None) -> Path:
    """``benchmarks/results/benchmark_<cpu>_<N>t`` under the current folder."""
    cpu = re.sub(r"[^a-z0-9]+", "_", machine_info()["cpu"].lower()).strip("_")[:40] or "cpu"
    return Path("benchmarks/results") / f"benchmark_{cpu}_{threads or default_threads()}t"


def prepare_out(out: str | os.PathLike) -> Path:
    """Create ``out`` now and check it is writable, before minutes of timing."""
    return writable_folder(out, BenchmarkError)


def _f(v: Any, fmt: str) -> str:
    return "–" if v is None else format(v, fmt)


def _size_label(key: str) -> str:
    return key.replace("x", "×")


def markdown_table(record: dict) -> str:
    """The record as a markdown table plus notes (machine, settings, what was skipped)."""
    rows = record["models"]
    s = record["settings"]
    sizes = list(rows[0]["flops"]) if rows else []
    has_gpu = any(r["gpu_fp32_ms"] is not None for r in rows)
    has_acc = any(r["ods_2px"] is not None or r["ods_0px"] is not None for r in rows)
    b = s["batch"]
    head = ["model", "params M", *(f"GFLOPs {_size_label(k)}" for k in sizes)]
    head += ["eager ms (p90)", "fastest CPU path", "ms (p90)", "×", f"img/s b{b} eager / fast"]
    head += ["peak MB eager / fast"]
    if has_gpu:
        head += ["GPU fp32 ms", "GPU fp16 ms", "GPU MB"]
    if has_acc:
        head += ["ODS / OIS / AP 2px", "ODS / OIS / AP 0px"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        name = r["model"] + (" (tv)" if r["source"] == "torchvision" else "")
        cells = [name, f"{r['params'] / 1e6:.2f}"]
        cells += [f"{r['flops'][k] / 1e9:.2f}" for k in sizes]
        cells += [
            f"{_f(r['cpu_eager_ms'], '.1f')} ({_f(r['cpu_eager_p90_ms'], '.1f')})",
            r["cpu_best_path"] or "–",
            f"{_f(r['cpu_best_ms'], '.1f')} ({_f(r['cpu_best_p90_ms'], '.1f')})",
            _f(r["cpu_speedup"], ".2f"),
            f"{_f(r['cpu_eager_img_s'], '.1f')} / {_f(r['cpu_best_img_s'], '.1f')}",
            f"{_f(r['mem_eager_mb'], '.0f')} / {_f(r['mem_best_mb'], '.0f')}",
        ]
        if has_gpu:
            cells += [
                f"{_f(r['gpu_fp32_ms'], '.2f')} ({_f(r['gpu_fp32_p90_ms'], '.2f')})",
                f"{_f(r['gpu_fp16_ms'], '.2f')} ({_f(r['gpu_fp16_p90_ms'], '.2f')})",
                _f(r["gpu_mem_mb"], ".0f"),
            ]
        if has_acc:
            for tol in ("2px", "0px"):
                cells.append(" / ".join(_f(r[f"{m}_{tol}"], ".3f") for m in ("ods", "ois", "ap")))
        lines.append("| " + " | ".join(cells) + " |")
    m = record["machine"]
    lines += [
        "",
        f"CPU: {m['cpu']}, {m['threads']} threads, torch {m['torch']}; input "
        f"{'x'.join(map(str, s['input']))}; median (p90) of {s['runs']} timed runs after "
        f"{s['warmup']} warm-up rounds, round-robin over models and paths; "
        f"{record['date']}{' (--quick)' if s['quick'] else ''}.",
        f"FLOPs: {record['methods']['flops']}; sizes are H×W (384×544: a DeepCrack image, "
        "544 wide). Peak MB: "
        f"{record['methods']['memory']}.",
        f"Fastest path: {record['methods']['best_path']}; candidates "
        f"{', '.join(record['paths']['candidates'])}.",
    ]
    for k, why in record["paths"]["skipped"].items():
        lines.append(f"Path {k} not tried: {why}.")
    if has_acc:
        missing = [r["model"] for r in rows if r["ods_2px"] is None and r["ods_0px"] is None]
        if missing:
            lines.append(f"No accuracy given for: {', '.join(missing)}.")
    if not has_gpu:
        lines.append("GPU: no numbers in this run.")
    lines += [f"Note: {n}" for n in record["notes"]]
    return "\n".join(lines) + "\n"


def plot(record: dict, path: str | os.PathLike) -> str:
    """Accuracy (ODS at 2 px) and GFLOPs against fastest-path CPU latency, one point per model.

    Returns the caption printed under the plots (machine, and the models without accuracy).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in record["models"] if r["cpu_best_ms"] is not None]
    size = next(iter(rows[0]["flops"])) if rows else None
    fig, (ax_acc, ax_fl) = plt.subplots(1, 2, figsize=(13, 5.5))
    with_acc = [r for r in rows if r["ods_2px"] is not None]
    for r in with_acc:
        ax_acc.scatter(r["cpu_best_ms"], r["ods_2px"], color="tab:blue")
        ax_acc.annotate(r["model"], (r["cpu_best_ms"], r["ods_2px"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")  # fmt: skip
    ax_acc.set_xlabel("CPU latency, fastest path (ms, batch 1)")
    ax_acc.set_ylabel("ODS @ 2 px")
    ax_acc.set_title("accuracy vs latency")
    if not with_acc:
        ax_acc.text(0.5, 0.5, "no accuracy given (--accuracy FILE)", ha="center",
                    transform=ax_acc.transAxes)  # fmt: skip
    for r in rows:
        color = "tab:orange" if r["source"] == "torchvision" else "tab:green"
        ax_fl.scatter(r["cpu_best_ms"], r["flops"][size] / 1e9, color=color)
        ax_fl.annotate(r["model"], (r["cpu_best_ms"], r["flops"][size] / 1e9), fontsize=7,
                       xytext=(3, 3), textcoords="offset points")  # fmt: skip
    ax_fl.set_xlabel("CPU latency, fastest path (ms, batch 1)")
    ax_fl.set_ylabel(f"GFLOPs at {_size_label(size)}" if size else "GFLOPs")
    ax_fl.set_title("FLOPs vs latency (orange: torchvision references)")
    for ax in (ax_acc, ax_fl):
        ax.grid(alpha=0.3)
    ms = [r["cpu_best_ms"] for r in rows]
    if ms and min(ms) > 0 and max(ms) / min(ms) > 10:  # a zoo from 20 ms to 1 s reads on log x
        ax_fl.set_xscale("log")
        if with_acc:
            ax_acc.set_xscale("log")
    gf = [r["flops"][size] for r in rows if size and r["flops"][size]]
    if gf and min(gf) > 0 and max(gf) / min(gf) > 10:  # 0.5 to 180 GFLOPs: log y too
        ax_fl.set_yscale("log")
    missing = [r["model"] for r in rows if r["ods_2px"] is None]
    m = record["machine"]
    caption = f"{m['cpu']}, {m['threads']} threads, torch {m['torch']}, {record['date']}."
    if missing:
        caption += " No accuracy for: " + ", ".join(missing) + "."
    import textwrap

    wrapped = textwrap.fill(caption, 180)
    fig.text(0.01, 0.01, wrapped, fontsize=7, va="bottom")
    fig.tight_layout(rect=(0, 0.02 + 0.022 * (wrapped.count("\n") + 1), 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return caption


def write_outputs(record: dict, out: str | os.PathLike, stem: str = "benchmark") -> dict[str, Path]:
    """Write ``<stem>.json``, ``<stem>.md`` and ``<stem>.png`` into ``out``."""
    out = prepare_out(out)
    paths = {"json": out / f"{stem}.json", "md": out / f"{stem}.md", "png": out / f"{stem}.png"}
    paths["json"].write_text(json.dumps(record, indent=2) + "\n")
    paths["md"].write_text(markdown_table(record))
    plot(record, paths["png"])
    return paths


# ---------------------------------------------------------------------------------- profile

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def _profile_units(model: nn.Module) -> tuple[list[str], list[str]]:
    """(stages, blocks): the model's top-level children (descending through a single wrapper
    child), and for each stage its blocks: the first modules below it that are not plain
    containers (``Sequential``, ``ModuleList``, ``ModuleDict`` themselves, not subclasses), with
    the containers on the way listed as stages.
    """
    prefix, top = "", model
    while len(list(top.named_children())) == 1:
        name, top = next(iter(top.named_children()))
        prefix += name + "."
    stages: list[str] = []
    blocks: list[str] = []

    def walk(mod: nn.Module, name: str) -> None:
        for child_name, child in mod.named_children():
            full = f"{name}.{child_name}"
            if type(child) in _CONTAINERS:  # subclasses (Conv2dNormActivation) are blocks
                stages.append(full)
                walk(child, full)
            else:
                blocks.append(full)

    for name, child in top.named_children():
        stages.append(prefix + name)
        walk(child, prefix + name)
    return stages, blocks


def profile_model(
    name: str,
    *,
    height: int = 512,
    width: int = 512,
    runs: int = 10,
    warmup: int = 2,
    threads: int | None = None,
    path: FastPath = EAGER,
    seed: int = 0,
) -> dict:
    """Per-stage and per-block CPU time of one model with :mod:`torch.profiler`.

    Each stage and block is wrapped in a ``record_function`` range by forward hooks; times are
    inclusive (a stage contains its blocks), per forward pass, averaged over ``runs`` passes.
    Also lists the ten aten ops with the most self time.
    """
    from torch.autograd.profiler import record_function
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    if name not in known_models(True):
        resolve_models([name])  # raises the helpful error
    threads = threads or default_threads()
    with num_threads(threads):
        x = torch.randn(1, 3, height, width)
        variant = prepare(build_model(name, seed), path, x)
        module = variant.module
        if not isinstance(module, nn.Module):
            raise BenchmarkError(f"--profile cannot label blocks of a {path.name} model")
        stages, blocks = _profile_units(module)
        kinds = {s: "stage" for s in stages} | {b: "block" for b in blocks}
        types = {n: type(module.get_submodule(n)).__name__ for n in kinds}
        open_ranges: dict[str, list] = {n: [] for n in kinds}
        hooks = []
        for n in kinds:
            sub = module.get_submodule(n)
            if type(sub).forward is nn.Module.forward:
                continue  # ModuleList, ModuleDict: never called themselves

            def pre(m, args, n=n):
                r = record_function(f"crackseg::{n}")
                r.__enter__()
                open_ranges[n].append(r)

            def post(m, args, out, n=n):
                open_ranges[n].pop().__exit__(None, None, None)

            hooks += [sub.register_forward_pre_hook(pre), sub.register_forward_hook(post)]
        run = variant.bind(x)
        try:
            for _ in range(warmup):
                run()
            with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(runs):
                    with record_function("crackseg::forward"):
                        run()
        finally:
            for hk in hooks:
                hk.remove()
    events = {e.key: e for e in prof.key_averages()}
    total_ms = events["crackseg::forward"].cpu_time_total / 1000.0 / runs
    units = []
    for n, kind in kinds.items():
        e = events.get(f"crackseg::{n}")
        if e is None:
            continue
        ms = e.cpu_time_total / 1000.0 / runs
        units.append(
            {"name": n, "kind": kind, "type": types[n], "calls": e.count / runs, "ms": ms,
             "pct": 100.0 * ms / total_ms if total_ms else 0.0}
        )  # fmt: skip
    ops = sorted(
        (e for k, e in events.items() if not k.startswith("crackseg::")),
        key=lambda e: e.self_cpu_time_total,
        reverse=True,
    )[:10]
    return {
        "model": name,
        "path": path.name,
        "input": [1, 3, height, width],
        "threads": threads,
        "runs": runs,
        "forward_ms": total_ms,
        "stages": sorted((u for u in units if u["kind"] == "stage"), key=lambda u: -u["ms"]),
        "blocks": sorted((u for u in units if u["kind"] == "block"), key=lambda u: -u["ms"]),
        "ops": [
            {"op": e.key, "calls": e.count / runs, "self_ms": e.self_cpu_time_total / 1e3 / runs}
            for e in ops
        ],
        "note": "CPU time per forward from torch.profiler; stage and block times are inclusive "
        "(stages contain blocks); profiling adds overhead, compare shares, not absolute ms",
        "machine": machine_info(),
    }


def format_profile(prof: dict) -> str:
    """The profile as text tables, each sorted by time."""
    lines = [
        f"{prof['model']} ({prof['path']}) at {'x'.join(map(str, prof['input']))}, "
        f"{prof['threads']} threads: {prof['forward_ms']:.2f} ms per forward under the profiler "
        f"(mean of {prof['runs']})",
    ]
    for kind in ("stages", "blocks"):
        lines += ["", f"{kind[:-1]:40s} {'type':24s} {'calls':>5s} {'ms':>9s} {'%':>6s}"]
        for u in prof[kind]:
            lines.append(
                f"{u['name']:40s} {u['type'][:24]:24s} {u['calls']:5.0f} {u['ms']:9.2f} "
                f"{u['pct']:6.1f}"
            )
    lines += ["", f"{'op (self time)':40s} {'':24s} {'calls':>5s} {'ms':>9s}"]
    for o in prof["ops"]:
        lines.append(f"{o['op'][:40]:40s} {'':24s} {o['calls']:5.0f} {o['self_ms']:9.2f}")
    return "\n".join(lines)
