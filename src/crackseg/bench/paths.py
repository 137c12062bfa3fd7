"""CPU fast paths of a model (channels-last, BatchNorm folding, bf16 autocast, torch.compile),
each checked against eager before it may win, and the latency of one model on one path.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

from .timing import num_threads, summarize, time_round_robin

# output checks against eager (see output_error): fp32 paths by the worst pixel; bf16 (8
# mantissa bits) by the RMS, since a rounding can flip a max-pool choice and move single pixels
# far (ENet: 14 % at one pixel, 2 % RMS), while a broken path is off by ~100 % RMS
FP32_TOL = 1e-3  # max |out - eager| / max |eager|
BF16_TOL = 1e-1  # ||out - eager|| / ||eager||

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
    from ..inference.predictor import cpu_has_native_bf16

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
            with (
                torch.inference_mode(),
                torch.autocast(dev_type, dtype=dtype, enabled=amp),
            ):
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
