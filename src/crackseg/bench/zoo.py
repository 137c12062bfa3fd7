"""The zoo benchmark: every model's facts, its fastest checked CPU path, latency, throughput,
memory and GPU timings side by side in one run, and the record's outputs (JSON, markdown, plot).
"""

from __future__ import annotations

import difflib
import fnmatch
import gc
import json
import math
import os
import re
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CrackSegError, writable_folder
from ..models import create_model, list_models
from ..models.summary import count_flops, count_params, machine_info
from .paths import (
    BF16_TOL,
    EAGER,
    FP32_TOL,
    FastPath,
    Variant,
    candidate_paths,
    output_error,
    pick_fastest,
    prepare,
)
from .timing import default_threads, num_threads, summarize, time_round_robin

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


# ----------------------------------------------------------------------------------- models


class _OutOnly(nn.Module):
    """A torchvision segmentation model returning its ``'out'`` tensor, like crackseg's models
    (:mod:`crackseg.models.contract`; torchvision pads nothing, so any size its strides divide)."""

    size_divisor, supports_aux = 32, False

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
        ctx.set_forkserver_preload(["crackseg.bench.zoo"])
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
        runners,
        runs,
        warmup,
        timer=timer,
        sync=sync,
        desc=f"{device} latency",
        progress=progress,
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
        c: dict[str, Any] = {
            "path": p.name,
            "check": f"{metric} <= {tol:g}",
            "screen_ms": None,
        }
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
        except Exception as e:
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
    with num_threads(threads):
        torch.manual_seed(cfg.seed)
        x1 = torch.randn(1, 3, cfg.height, cfg.width)
        xb = torch.randn(cfg.batch, 3, cfg.height, cfg.width)
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
        # 2) batch-1 latency and 3) throughput at batch B, eager and fastest path, round-robin
        _time_rows(rows, eager, best, x1, xb, cfg, timer, progress)
        del eager, best
        gc.collect()
        # 4) peak memory, one fresh child process per model and path; 5) GPU
        notes += _memory_rows(rows, paths, cfg, threads, progress)
        notes += _gpu_rows(rows, models, cfg, timer, progress)
    notes += _merge_scores(rows, accuracy)
    return _record(cfg, rows, notes, paths, skipped, threads)


def _time_rows(rows, eager, best, x1, xb, cfg: BenchConfig, timer, progress: bool) -> None:
    """Batch-1 latency (median, p90) and batch-B images/s of each model's eager and fastest
    path, all runners interleaved round-robin so machine drift hits every model alike."""
    _say(progress, f"batch-1 latency: {cfg.runs} rounds over {2 * len(rows)} runners")
    runners = {}
    for name in rows:
        runners[f"{name}/eager"] = eager[name].bind(x1)
        runners[f"{name}/best"] = best[name].bind(x1)
    t1 = time_round_robin(
        runners, cfg.runs, cfg.warmup, timer=timer, desc="batch 1", progress=progress
    )
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


def _memory_rows(rows, paths, cfg: BenchConfig, threads: int, progress: bool) -> list[str]:
    """Peak RSS growth of each model's eager and fastest path, each in a fresh child process;
    the notes (why memory was not measured, or which runs failed)."""
    mem_note = memory_unavailable() if cfg.memory else "disabled (--no-memory)"
    if mem_note is not None:
        return [f"peak memory not measured: {mem_note}"]
    notes = []
    _say(progress, "peak memory: one child process per model and path")
    with _memory_pool() as pool:
        jobs = {}
        for name, row in rows.items():
            best_path = next(p for p in paths if p.name == row["cpu_best_path"])
            for key, p in (("mem_eager_mb", EAGER), ("mem_best_mb", best_path)):
                if key == "mem_best_mb" and p.name == "eager":
                    continue
                args = (name, p, cfg.height, cfg.width, threads)
                jobs[(name, key)] = pool.submit(_peak_rss_child, *args)
        for (name, key), job in jobs.items():
            try:
                rows[name][key] = job.result()
            except Exception as e:  # noqa: BLE001 - e.g. an unpicklable test path
                notes.append(f"memory of {name} ({key}) not measured: {e}")
        for row in rows.values():
            if row["cpu_best_path"] == "eager":
                row["mem_best_mb"] = row["mem_eager_mb"]
    return notes


def _gpu_rows(rows, models, cfg: BenchConfig, timer, progress: bool) -> list[str]:
    """fp32 / fp16 GPU latency and memory when CUDA is present; the note when it is not."""
    if not cfg.gpu:
        return ["GPU: skipped (--no-gpu)"]
    if not torch.cuda.is_available():
        return ["GPU: skipped: no CUDA device"]
    _say(progress, "GPU latency")
    g = gpu_latency(models, cfg.height, cfg.width, cfg.runs, cfg.warmup, "cuda", progress, timer)
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
    return []


def _record(cfg: BenchConfig, rows, notes, paths, skipped, threads: int) -> dict:
    """The benchmark record: machine, settings, methods, paths, notes and one row per model."""
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
            "input": [1, 3, cfg.height, cfg.width],
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
        "methods": METHODS,
        "paths": {"candidates": [p.name for p in paths], "skipped": skipped},
        "notes": notes,
        "models": list(rows.values()),
    }


#: how each column is measured (copied into every record)
METHODS = {
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
    head += [
        "eager ms (p90)",
        "fastest CPU path",
        "ms (p90)",
        "×",
        f"img/s b{b} eager / fast",
    ]
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
    paths = {
        "json": out / f"{stem}.json",
        "md": out / f"{stem}.md",
        "png": out / f"{stem}.png",
    }
    paths["json"].write_text(json.dumps(record, indent=2) + "\n")
    paths["md"].write_text(markdown_table(record))
    plot(record, paths["png"])
    return paths
