"""Where one model spends its CPU time: per stage, per block and per op (torch.profiler)."""

from __future__ import annotations

import torch
from torch import nn

from ..models.summary import machine_info
from .paths import EAGER, FastPath, prepare
from .timing import default_threads, num_threads
from .zoo import BenchmarkError, build_model, known_models, resolve_models

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


def _label_ranges(module: nn.Module, names) -> list:
    """Forward hooks that open a ``record_function`` range ``crackseg::NAME`` around each named
    submodule's forward; the hook handles (remove them when done)."""
    from torch.autograd.profiler import record_function

    open_ranges: dict[str, list] = {n: [] for n in names}
    hooks = []
    for n in names:
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
    return hooks


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
        hooks = _label_ranges(module, kinds)
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
            {
                "op": e.key,
                "calls": e.count / runs,
                "self_ms": e.self_cpu_time_total / 1e3 / runs,
            }
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
        lines += [
            "",
            f"{kind[:-1]:40s} {'type':24s} {'calls':>5s} {'ms':>9s} {'%':>6s}",
        ]
        for u in prof[kind]:
            lines.append(
                f"{u['name']:40s} {u['type'][:24]:24s} {u['calls']:5.0f} {u['ms']:9.2f} "
                f"{u['pct']:6.1f}"
            )
    lines += ["", f"{'op (self time)':40s} {'':24s} {'calls':>5s} {'ms':>9s}"]
    for o in prof["ops"]:
        lines.append(f"{o['op'][:40]:40s} {'':24s} {o['calls']:5.0f} {o['self_ms']:9.2f}")
    return "\n".join(lines)
