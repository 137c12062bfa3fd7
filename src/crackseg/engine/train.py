"""Training engine: ``crackseg train`` and the demo both run :func:`train`.

Run it:

    crackseg train configs/carnet_deepcrack.yaml --set iterations=6000
    crackseg train --resume runs/carnet_deepcrack            # continue exactly where it stopped
    torchrun --nproc_per_node 2 -m crackseg train CONFIG       # several GPUs (or CPU processes)

The loop reads top to bottom: data, model, optimizer, schedule, autocast, DDP, validation,
checkpointing. Exact resume: every step's samples and every sample's augmentation are drawn
from seeds derived from ``(seed, step)``, the learning rate is a pure function of the step, and
the checkpoint holds weights (BatchNorm statistics included) and optimizer state, so a resumed
CPU run computes the same weights as an uninterrupted one. Ctrl-C (or SIGTERM) stops after the
current step and saves ``last`` there, so nothing is lost; a second Ctrl-C stops at once.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from ..models import create_model
from . import checkpoint as ckpt
from .losses import CrackLoss
from .precise_bn import crop_batches, recalibrate_batchnorm


@dataclass
class TrainConfig:
    """Everything a training run depends on; written resolved to ``RUN/config.yaml``."""

    model: str = "carnet"
    model_kwargs: dict = field(default_factory=dict)
    train_data: list[str] = field(default_factory=lambda: ["synth:200"])
    val_data: list[str] = field(default_factory=list)  # empty: carve val_fraction from train
    val_fraction: float = 0.1
    # validation groups: names sharing the part before this separator stay on one side (DeepCrack
    # crops of one photo are "11116-1".."11116-4"); "" puts every image in its own group
    val_group: str = "-"
    skip_bad: bool = False
    # augmentation (training only)
    crop_size: int = 256
    scale: tuple[float, float] = (0.75, 1.5)
    color: bool = True
    blur_p: float = 0.2
    noise_p: float = 0.2
    crack_crop_p: float = 0.6
    # optimisation
    batch_size: int = 4
    loss: str = "bce+dice"
    pos_weight: Any = "auto"
    aux_weight: float = 0.4  # deep supervision weight for side outputs (HED-style models)
    optimizer: str = "adam"  # adam | adamw | sgd
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    schedule: str = "cosine"  # cosine | poly | constant
    min_lr_ratio: float = 0.01
    warmup_iters: int = 100
    # run length: exactly one of iterations / epochs / minutes
    iterations: int | None = 1000
    epochs: float | None = None
    minutes: float | None = None
    # validation and logging
    val_every: int = 250
    val_tolerance: float = 2.0
    log_every: int = 10
    out_dir: str = "runs/carnet"
    seed: int = 0
    num_workers: int = 2
    device: str = "auto"  # auto | cpu | cuda
    # bf16 autocast: "auto" = on CUDA, and on CPUs with native bf16 (avx512_bf16 / AMX), where it
    # roughly halves the step time; true = always; false = never (fp32)
    amp: Any = "auto"
    channels_last: bool = True  # NHWC tensors: faster convolutions on CUDA and oneDNN CPUs
    threads: int | None = None  # CPU threads for torch (default: torch's choice)
    progress: bool = True
    # precise BN: before each validation and checkpoint, recompute BatchNorm statistics over this
    # many batches of training crops (engine/precise_bn.py); 0 = keep the running averages
    bn_recalib: int = 100


def cpu_has_native_bf16() -> bool:
    """True when this CPU runs bf16 matrix work natively (AVX512-BF16 or AMX), per /proc/cpuinfo."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def amp_enabled(amp: Any, device: torch.device) -> bool:
    """Resolve the ``amp`` config key (``"auto"``, true or false) for ``device``."""
    if isinstance(amp, str):
        if amp.lower() != "auto":
            raise ValueError(f"amp must be auto, true or false, got {amp!r}")
        return device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())
    return bool(amp)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Config from a YAML file (optional) plus ``key=value`` overrides (values parsed as YAML)."""
    values: dict[str, Any] = {}
    if path:
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"config file {p} does not exist")
        values = yaml.safe_load(p.read_text()) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{p} must hold a YAML mapping of config keys")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    overridden: dict[str, Any] = {}
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        overridden[key.strip()] = yaml.safe_load(raw)
    # a run length given with --set replaces the file's (minutes=40 over a recipe's iterations)
    run_length = ("iterations", "epochs", "minutes")
    if any(overridden.get(k) is not None for k in run_length):
        for k in run_length:
            values.pop(k, None)
    values.update(overridden)
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown config keys {unknown}; known keys: {', '.join(sorted(known))}")
    types = {f.name: str(f.type) for f in dataclasses.fields(TrainConfig)}
    for key, val in values.items():  # YAML reads "3e-4" as a string: coerce numeric fields
        kind = types[key].split(" |")[0]
        if isinstance(val, str) and kind in ("float", "int"):
            try:
                values[key] = float(val) if kind == "float" else int(val)
            except ValueError:
                raise ValueError(f"config key {key!r} must be a number, got {val!r}") from None
    for key in ("train_data", "val_data"):
        if isinstance(values.get(key), str):
            values[key] = [values[key]]
    if "scale" in values:
        values["scale"] = tuple(values["scale"])
    cfg = TrainConfig(**values)
    lengths = [cfg.iterations, cfg.epochs, cfg.minutes]
    if "iterations" not in values and (cfg.epochs or cfg.minutes):
        cfg.iterations = None
    if sum(v is not None for v in [cfg.iterations, cfg.epochs, cfg.minutes]) != 1:
        raise ValueError(f"give exactly one of iterations / epochs / minutes, got {lengths}")
    return cfg


# ------------------------------------------------------------------------------ sampling
def _mix(*xs: int) -> int:
    """A 63-bit seed from integers (splitmix64-style), the same on every platform."""
    h = 0x9E3779B97F4A7C15
    for x in xs:
        h ^= (x + 0x9E3779B97F4A7C15 + (h << 6) + (h >> 2)) & 0xFFFFFFFFFFFFFFFF
        h = (h * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


class StepBatchSampler(Sampler):
    """Yields, for steps ``start..total-1``, this rank's batch of ``(index, sample_seed)``.

    Sample position ``p = (step * world + rank) * batch + k`` walks through per-epoch random
    permutations, so ranks see disjoint samples like ``DistributedSampler`` does, and any step can
    be started from directly (which ``DistributedSampler`` cannot do mid-epoch): exact resume.
    """

    def __init__(self, n, batch, seed, start, total, rank=0, world=1):
        self.n, self.batch, self.seed = n, batch, seed
        self.start, self.total, self.rank, self.world = start, total, rank, world
        self._perm_epoch, self._perm = -1, None

    def _index(self, p: int) -> int:
        epoch = p // self.n
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(_mix(self.seed, epoch))
            self._perm, self._perm_epoch = torch.randperm(self.n, generator=g).tolist(), epoch
        return self._perm[p % self.n]

    def __len__(self) -> int:
        return max(0, self.total - self.start)

    def __iter__(self):
        step = self.start
        while step < self.total:  # total may be fixed late (wall-clock runs): re-read it
            base = (step * self.world + self.rank) * self.batch
            yield [(self._index(base + k), _mix(self.seed, 1, base + k)) for k in range(self.batch)]
            step += 1


class SeededTransformDataset(Dataset):
    """Applies the training transform to raw samples with a per-sample seed (exact resume)."""

    def __init__(self, base, indices: list[int], transform) -> None:
        self.base, self.indices, self.transform = base, indices, transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key):
        i, seed = key
        image, mask = self.base.sample(self.indices[i])
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        return self.transform(image, mask)


# ------------------------------------------------------------------------------ schedule
def lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    """Learning rate at ``step`` (0-based): linear warm-up, then cosine / poly / constant."""
    if step < cfg.warmup_iters:
        return cfg.lr * (step + 1) / cfg.warmup_iters
    t = min(1.0, (step - cfg.warmup_iters) / max(1, total - cfg.warmup_iters))
    lo = cfg.lr * cfg.min_lr_ratio
    if cfg.schedule == "cosine":
        return lo + (cfg.lr - lo) * 0.5 * (1 + math.cos(math.pi * t))
    if cfg.schedule == "poly":
        return lo + (cfg.lr - lo) * (1 - t) ** 0.9
    if cfg.schedule == "constant":
        return cfg.lr
    raise ValueError(f"schedule must be cosine, poly or constant, got {cfg.schedule!r}")


def build_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    raise ValueError(f"optimizer must be adam, adamw or sgd, got {cfg.optimizer!r}")


# ------------------------------------------------------------------------------ validation
def validate(model, dataset, indices, device, tolerance: float, progress: bool = False) -> dict:
    """ODS / OIS / AP (distance-transform matching) and F1 / IoU at 0.5 on full images."""
    from ..inference.predict import predict_probability
    from .evaluate import evaluate_maps

    def items():
        for i in indices:
            image, mask = dataset.sample(i)
            yield str(i), predict_probability(model, image, device), mask.astype(bool)

    s = evaluate_maps(items(), tolerance=tolerance, progress=progress).summary
    return {
        "ODS": s["ODS"],
        "OIS": s["OIS"],
        "AP": s["AP"],
        "F1@0.5": s["F1@t"],
        "IoU@0.5": s["IoU@t"],
    }


# ------------------------------------------------------------------------------ data
def split_data(cfg: TrainConfig, train_set=None, val_set=None):
    """``(train_set, val_set, train_indices, val_indices)`` for ``cfg``.

    Validation comes from ``val_data`` when given, else it is carved from the training data
    (``val_fraction``, groups of ``val_group`` kept on one side), deterministically by seed.
    """
    from ..data.datasets import build_dataset, split_train_val

    if train_set is None:
        train_set = build_dataset(cfg.train_data, split="train", skip_bad=cfg.skip_bad)
    if val_set is None and cfg.val_data:
        val_set = build_dataset(cfg.val_data, split="test", skip_bad=cfg.skip_bad)
    if val_set is not None:
        return train_set, val_set, list(range(len(train_set))), list(range(len(val_set)))
    group = (lambda n: n.split(cfg.val_group)[0]) if cfg.val_group else None
    train_idx, val_idx = split_train_val(train_set, cfg.val_fraction, seed=cfg.seed, group_fn=group)
    return train_set, train_set, train_idx, val_idx


def train_transform(cfg: TrainConfig, generator: torch.Generator | None = None):
    """The training augmentation of ``cfg`` (global random state unless ``generator`` is given)."""
    from ..data.transforms import TrainTransform

    return TrainTransform(
        crop_size=cfg.crop_size,
        scale=tuple(cfg.scale),
        color=cfg.color,
        blur_p=cfg.blur_p,
        noise_p=cfg.noise_p,
        crack_crop_p=cfg.crack_crop_p,
        generator=generator,
    )


def recalibration_inputs(cfg: TrainConfig, train_set, train_idx, device):
    """``step -> batches`` of training crops for precise BN (see ``engine/precise_bn.py``).

    The crops at a given step depend only on ``cfg.seed`` and the step, never on the global
    random state, so a resumed run and an uninterrupted one save identical checkpoints.
    """

    def batches(step: int):
        return crop_batches(
            train_set,
            list(train_idx),
            lambda generator: train_transform(cfg, generator),
            cfg.bn_recalib,
            cfg.batch_size,
            seed=_mix(cfg.seed, 7, step),
            device=device,
            channels_last=cfg.channels_last,
        )

    return batches


def training_loss(net, model, criterion, images, masks, aux_weight: float) -> torch.Tensor:
    """The loss of one batch: ``criterion`` on the logits, plus ``aux_weight`` times its mean
    over the side outputs of models with deep supervision (``model.supports_aux``).

    ``net`` is what is called (``model`` itself, or its DistributedDataParallel wrapper).
    """
    if getattr(model, "supports_aux", False) and aux_weight > 0:
        logits, sides = net(images, return_aux=True)
        aux = sum(criterion(s, masks) for s in sides) / len(sides)
        return criterion(logits, masks) + aux_weight * aux
    return criterion(net(images), masks)


# ------------------------------------------------------------------------------ the loop
def train(
    cfg: TrainConfig,
    resume: str | Path | None = None,
    train_set: Dataset | None = None,
    val_set: Dataset | None = None,
) -> dict:
    """Train ``cfg.model``; returns a summary dict (also written to ``RUN/summary.json``).

    ``train_set`` / ``val_set`` (objects with ``sample(i) -> (image, mask)``) replace the
    ``train_data`` / ``val_data`` specs, for callers that build data in memory (the demo).
    """
    # -- resume: the run folder's saved config and state replace the arguments
    state: dict[str, Any] = {"step": 0, "best": -1.0, "best_step": -1, "total": None}
    if resume:
        if not (Path(resume) / "last.json").exists():
            raise FileNotFoundError(f"{resume} has no last.json: not a run folder to resume")
        state = json.loads((Path(resume) / "last.json").read_text())
        saved = state["config"]
        saved["scale"] = tuple(saved["scale"])
        cfg = TrainConfig(**saved)

    # -- distributed setup (torchrun sets WORLD_SIZE / RANK / LOCAL_RANK)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if cfg.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(cfg.device)
    if world > 1:
        if device.type == "cuda":
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            device = torch.device("cuda", local)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    is_main = rank == 0
    use_cuda = device.type == "cuda"
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    use_amp = amp_enabled(cfg.amp, device)

    # -- run folder, resume state
    out = Path(resume) if resume else Path(cfg.out_dir)
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(yaml.safe_dump(_jsonable(dataclasses.asdict(cfg))))
    torch.manual_seed(cfg.seed)

    # -- data: raw samples, honest validation split carved from train unless val_data is given
    train_set, val_set, train_idx, val_idx = split_data(cfg, train_set, val_set)
    samples = SeededTransformDataset(train_set, list(train_idx), train_transform(cfg))
    per_step = cfg.batch_size * world
    if state["total"] is None:
        if cfg.iterations is not None:
            state["total"] = int(cfg.iterations)
        elif cfg.epochs is not None:
            state["total"] = math.ceil(cfg.epochs * len(samples) / per_step)
    total_known = state["total"] is not None
    horizon = state["total"] if total_known else 10**9

    # -- model, optimizer
    model = create_model(cfg.model, **cfg.model_kwargs).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(cfg, model.parameters())
    if resume:
        loaded, _ = ckpt.load_model(out / "last.safetensors")
        model.load_state_dict(loaded.state_dict())
        ckpt.load_optimizer(out / "last_optim.safetensors", optimizer, state["optimizer"])
    net = DistributedDataParallel(model) if world > 1 else model
    criterion = CrackLoss(cfg.loss, cfg.pos_weight)

    loader = DataLoader(
        samples,
        batch_sampler=StepBatchSampler(
            len(samples), cfg.batch_size, cfg.seed, state["step"], horizon, rank, world
        ),
        num_workers=cfg.num_workers,
        worker_init_fn=_ignore_sigint,  # Ctrl-C is the main process's to handle (saves `last`)
        persistent_workers=False,
        pin_memory=use_cuda,
    )

    recal_batches = recalibration_inputs(cfg, train_set, train_idx, device)

    def save(tag: str, weights: torch.nn.Module = model) -> None:
        if not is_main:
            return
        meta = {"step": state["step"]}
        ckpt.save_weights(out / f"{tag}.safetensors", weights, cfg.model, cfg.model_kwargs, meta)
        state["optimizer"] = ckpt.save_optimizer(out / f"{tag}_optim.safetensors", optimizer)
        state["config"] = _jsonable(dataclasses.asdict(cfg))
        ckpt.save_json(out / f"{tag}.json", state)

    log_path = out / "log.csv"
    writer = _tensorboard(out) if is_main else None
    if is_main and not log_path.exists():
        with open(log_path, "w", newline="") as f:
            csv.writer(f).writerow(["step", "loss", "lr", "sec_per_step", "ODS", "OIS", "AP", "F1"])
    bar = tqdm(
        total=state["total"],
        initial=state["step"],
        desc=f"train {cfg.model}",
        disable=not (cfg.progress and is_main),
        dynamic_ncols=True,
    )
    t_start, start_step = time.perf_counter(), state["step"]
    t_last, steps_since, loss_acc = t_start, 0, 0.0
    val_metrics: dict = {}

    # -- the loop
    model.train()
    interrupted = False
    with _StopRequest(enabled=world == 1) as stop:
        for images, masks in loader:
            step = state["step"]
            lr = lr_at(cfg, step, state["total"] or horizon)
            for g in optimizer.param_groups:
                g["lr"] = lr
            images = images.to(device, non_blocking=True)
            masks = masks.to(device, non_blocking=True)
            if cfg.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                loss = training_loss(net, model, criterion, images, masks, cfg.aux_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            state["step"] = step = step + 1
            loss_acc += float(loss.detach())
            steps_since += 1
            bar.update(1)

            # wall-clock budget: fix the schedule horizon once the step time is known
            elapsed = time.perf_counter() - t_start
            if cfg.minutes is not None and not total_known and step - start_step >= 20:
                sec = elapsed / (step - start_step)
                state["total"] = step + int((cfg.minutes * 60 - elapsed) / sec)
                total_known = True
                bar.total = state["total"]
                loader.batch_sampler.total = state["total"]

            if step % cfg.log_every == 0 or step == state["total"]:
                now = time.perf_counter()
                sec = (now - t_last) / steps_since
                mean_loss = loss_acc / steps_since
                bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}", s_it=f"{sec:.2f}")
                if is_main:
                    _log(log_path, [step, mean_loss, lr, sec, "", "", "", ""])
                    if writer:
                        writer.add_scalar("train/loss", mean_loss, step)
                        writer.add_scalar("train/lr", lr, step)
                t_last, steps_since, loss_acc = now, 0, 0.0

            done = state["total"] is not None and step >= state["total"]
            if step % cfg.val_every == 0 or done:
                final = model
                if is_main and cfg.bn_recalib > 0:  # precise BN on a copy; training is untouched
                    final = recalibrate_batchnorm(model, recal_batches(step))
                if is_main:
                    val_metrics = validate(final, val_set, val_idx, device, cfg.val_tolerance)
                    model.train()
                    shown = ("ODS", "OIS", "AP", "F1@0.5")
                    bar.write(
                        f"step {step}: val " + " ".join(f"{k} {val_metrics[k]:.4f}" for k in shown)
                    )
                    _log(
                        log_path,
                        [step, "", "", "", *(val_metrics[k] for k in shown)],
                    )
                    if writer:
                        for k, v in val_metrics.items():
                            writer.add_scalar(f"val/{k}", v, step)
                    if val_metrics["ODS"] > state["best"]:
                        state["best"], state["best_step"] = val_metrics["ODS"], step
                        save("best", final)
                save("last", final)
                if world > 1:
                    dist.barrier()
            if done:
                break
            if stop.requested:
                save("last")
                interrupted = True
                bar.write(
                    f"stopped at step {step}; saved {out / 'last.safetensors'}."
                    f" Continue with: crackseg train --resume {out}"
                )
                break

    bar.close()
    wall = time.perf_counter() - t_start
    summary = {
        "run": str(out),
        "model": cfg.model,
        "world_size": world,
        "bf16_autocast": use_amp,
        "steps": state["step"],
        "best_val_ODS": state["best"],
        "best_step": state["best_step"],
        "last_val": val_metrics,
        "wall_s_this_session": wall,
        "interrupted": interrupted,
    }
    if is_main:
        ckpt.save_json(out / "summary.json", summary)
        if writer:
            writer.close()
    if world > 1:
        dist.destroy_process_group()
    if interrupted:
        raise KeyboardInterrupt(
            f"training stopped at step {state['step']}; resume with --resume {out}"
        )
    return summary


def _ignore_sigint(worker_id: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class _StopRequest:
    """While active, the first SIGINT / SIGTERM only sets ``requested`` (the loop then saves and
    stops after the step in hand); a second one raises ``KeyboardInterrupt`` at once.

    Only in the main thread of a single-process run: DDP ranks must stop at the same step, so
    there the signals keep their default behaviour.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.requested = False
        self._previous: dict = {}

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> _StopRequest:
        if self.enabled:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    return obj


def _log(path: Path, row: list) -> None:
    with open(path, "a", newline="") as f:
        csv.writer(f).writerow(row)


def _tensorboard(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional at run time; the CSV log always exists
        return None
    return SummaryWriter(str(out / "tb"))
