"""Training engine: ``crackseg train`` and the demo both run :func:`train`.

Run it:

    crackseg train carnet_deepcrack --set iterations=6000
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

import bisect
import collections
import contextlib
import csv
import dataclasses
import difflib
import json
import math
import os
import random
import re
import shutil
import signal
import threading
import time
import warnings
from collections.abc import Callable
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

from ..data.datasets import skipped_pairs
from ..errors import ConfigError, CrackSegError
from ..faults import crash_point
from ..inference.predictor import cpu_has_native_bf16
from ..models import create_model, weights_io
from . import checkpoint as ckpt
from .losses import CrackLoss
from .precise_bn import crop_batches, recalibrate_batchnorm


@dataclass
class TrainConfig:
    """Everything a training run depends on; written resolved to ``RUN/config.yaml``."""

    model: str = "carnet"
    model_kwargs: dict = field(default_factory=dict)
    # fine-tuning: start from these weights instead of random ones: a checkpoint (.safetensors or
    # a run folder) or the name of shipped weights (crackseg models --pretrained), e.g.
    # carnet_general; they must be for `model` with the same model_kwargs
    init_weights: str | None = None
    train_data: list[str] = field(default_factory=lambda: ["synth:200"])
    # sampling weight of each train_data spec (same order): a spec's images are drawn with total
    # probability weight / sum(weights), evenly among them; empty = every image equally likely
    train_weights: list[float] = field(default_factory=list)
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
    jpeg_p: float = 0.0  # probability of a JPEG round trip at quality 30..95
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


# wall-clock runs (``minutes``): steps after the provisional horizon over which it is refitted
REFIT_STEPS = 50


def amp_enabled(amp: Any, device: torch.device) -> bool:
    """Resolve the ``amp`` config key (``"auto"``, true or false) for ``device``."""
    if isinstance(amp, str):
        if amp.lower() != "auto":
            raise ValueError(f"amp must be auto, true or false, got {amp!r}")
        return device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())
    return bool(amp)


def recipe_dir() -> Path:
    """The folder of the recipes shipped with the package (``crackseg train NAME``)."""
    return Path(__file__).resolve().parents[1] / "configs"


def list_recipes() -> list[str]:
    """Names of the shipped recipes (``crackseg train carnet_deepcrack``)."""
    return sorted(p.stem for p in recipe_dir().glob("*.yaml"))


def resolve_config_path(path: str | Path) -> Path:
    """A config file path, or the name of a shipped recipe (``carnet_deepcrack``)."""
    p = Path(path)
    if p.exists():
        return p
    name = p.name[: -len(".yaml")] if p.name.endswith(".yaml") else p.name
    if str(p) in (name, f"{name}.yaml") and (recipe_dir() / f"{name}.yaml").is_file():
        return recipe_dir() / f"{name}.yaml"
    raise ConfigError(
        f"config file {p} does not exist and is not the name of a shipped recipe; recipes: "
        f"{', '.join(list_recipes()) or 'none'} (e.g. crackseg train carnet_deepcrack)"
    )


def _read_yaml(text: str, where: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{where}: YAML syntax error{at}: {problem}") from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Config from a YAML file or shipped recipe name (optional) plus ``key=value`` overrides
    (values parsed as YAML); every value is checked (:func:`validate_config`)."""
    values: dict[str, Any] = {}
    if path:
        p = resolve_config_path(path)
        if p.is_dir():
            raise ConfigError(f"config {p} is a folder: give a YAML file or a recipe name")
        try:
            text = p.read_text()
        except UnicodeDecodeError:
            raise ConfigError(f"config {p} is not a text (UTF-8) file: give a YAML file") from None
        values = _read_yaml(text, f"config {p}") or {}
        if not isinstance(values, dict):
            raise ConfigError(f"config {p} must hold a YAML mapping of config keys (key: value)")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    overridden: dict[str, Any] = {}
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        overridden[key.strip()] = _read_yaml(raw, f"--set {item}")
    # a run length given with --set replaces the file's (minutes=40 over a recipe's iterations)
    run_length = ("iterations", "epochs", "minutes")
    if any(overridden.get(k) is not None for k in run_length):
        for k in run_length:
            values.pop(k, None)
    values.update(overridden)
    unknown = sorted(set(values) - known)
    if unknown:
        close = {k: difflib.get_close_matches(str(k), known, n=1) for k in unknown}
        hint = "".join(f" ({k}: did you mean {c[0]}?)" for k, c in close.items() if c)
        raise ConfigError(
            f"unknown config keys {unknown}{hint}; known keys: {', '.join(sorted(known))}"
        )
    for key in ("train_data", "val_data"):
        if isinstance(values.get(key), str):
            values[key] = [values[key]]
    cfg = TrainConfig(**values)
    if "iterations" not in values and (cfg.epochs is not None or cfg.minutes is not None):
        cfg.iterations = None
    return validate_config(cfg)


def config_from_dict(saved: dict, where: str) -> TrainConfig:
    """A validated config from a saved run's config (``RUN/last.json`` / ``config.yaml``)."""
    if not isinstance(saved, dict):
        raise ConfigError(f"{where} holds no config mapping")
    saved = dict(saved)
    if saved.get("ignore_band") in (0, 0.0):  # runs of crackseg <= 0.1.0 saved the (removed)
        del saved["ignore_band"]  # loss option at its default, off: the same training
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(saved) - known)
    if unknown:
        raise ConfigError(
            f"{where} has config keys this crackseg does not know: {unknown} (written by a newer "
            "version?)"
        )
    return validate_config(TrainConfig(**saved), where=where, check_init=False)


# ------------------------------------------------------------------------------ config checks
def _fix(key: str) -> str:
    default = {f.name: f for f in dataclasses.fields(TrainConfig)}[key]
    if default.default is not dataclasses.MISSING and default.default is not None:
        value = default.default
        shown = (
            json.dumps(list(value)) if isinstance(value, tuple) else yaml.safe_dump(value).strip()
        )
        shown = shown.removesuffix("\n...").strip()
        return f"e.g. --set {key}={shown} (the default)"
    return f"fix with --set {key}=VALUE"


def _bad(key: str, value: Any, need: str, where: str) -> ConfigError:
    return ConfigError(f"{where}: {key}={value!r} is invalid: {need}; {_fix(key)}")


def _number(cfg, key, kind, where, lo=None, hi=None, lo_open=False, hi_open=False, none=False):
    v = getattr(cfg, key)
    if v is None and none:
        return
    need = "an integer" if kind is int else "a number"
    if lo is not None:
        need += f" {'>' if lo_open else '>='} {lo:g}"
    if hi is not None:
        need += f"{' and' if lo is not None else ''} {'<' if hi_open else '<='} {hi:g}"
    if none:
        need += " (or null)"
    x = v
    if isinstance(x, str):  # YAML reads "3e-4" as a string
        try:
            x = float(x)
        except ValueError:
            raise _bad(key, v, need, where) from None
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        raise _bad(key, v, need, where)
    if kind is int:
        if float(x) != int(x):
            raise _bad(key, v, need, where)
        x = int(x)
    else:
        x = float(x)
    if lo is not None and (x <= lo if lo_open else x < lo):
        raise _bad(key, v, need, where)
    if hi is not None and (x >= hi if hi_open else x > hi):
        raise _bad(key, v, need, where)
    setattr(cfg, key, x)


def _bool(cfg, key, where):
    v = getattr(cfg, key)
    if not isinstance(v, bool):
        raise _bad(key, v, "true or false", where)


def _choice(cfg, key, choices, where):
    v = getattr(cfg, key)
    if not isinstance(v, str) or v.lower() not in choices:
        raise _bad(key, v, f"one of {', '.join(choices)}", where)
    setattr(cfg, key, v.lower())


def _specs(cfg, key, where, empty_ok):
    v = getattr(cfg, key)
    if v is None and empty_ok:
        v = []
    if isinstance(v, str):
        v = [v]
    need = "a list of dataset specs KIND:ARGS, e.g. [deepcrack:PATH, synth:200]"
    if not isinstance(v, list | tuple) or not all(isinstance(s, str) and s for s in v):
        raise _bad(key, v, need, where)
    if not v and not empty_ok:
        raise _bad(key, v, need, where)
    for s in v:
        if ":" not in s:
            raise _bad(key, v, f"{s!r} has no kind; {need}", where)
    setattr(cfg, key, list(v))


def validate_config(
    cfg: TrainConfig, where: str = "config", check_init: bool = True
) -> TrainConfig:
    """Check the type and range of every key of ``cfg`` (numbers given as strings are converted
    in place); raises :class:`ConfigError` naming the key, the value and a fix. ``check_init``
    False skips reading ``init_weights`` (a resumed run no longer needs that file)."""
    _check_model_and_data(cfg, where, check_init)
    _check_sampling(cfg, where)
    _check_loss(cfg, where)
    _check_schedule_and_run(cfg, where)
    return cfg


def _check_model_and_data(cfg: TrainConfig, where: str, check_init: bool) -> None:
    """model, model_kwargs, train_data / val_data specs, init_weights, train_weights."""
    from ..models import list_models

    if not isinstance(cfg.model, str) or cfg.model not in list_models():
        close = difflib.get_close_matches(str(cfg.model), list_models(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"{where}: model={cfg.model!r} is not a registered model{hint}; known models: "
            f"{', '.join(list_models())}"
        )
    if cfg.model_kwargs is None:
        cfg.model_kwargs = {}
    if not isinstance(cfg.model_kwargs, dict):
        raise _bad("model_kwargs", cfg.model_kwargs, "a mapping such as {widths: [16, 64]}", where)
    _specs(cfg, "train_data", where, empty_ok=False)
    _specs(cfg, "val_data", where, empty_ok=True)
    if cfg.init_weights is not None and check_init:
        init_state(cfg, where)  # the file exists and fits the model; read again at step 0
    w = cfg.train_weights
    if w is None:
        cfg.train_weights = w = []
    if not isinstance(w, list | tuple) or any(
        isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x) or x < 0
        for x in w
    ):
        raise _bad("train_weights", w, "a list of numbers >= 0, one per train_data spec", where)
    if w and (len(w) != len(cfg.train_data) or not any(x > 0 for x in w)):
        raise ConfigError(
            f"{where}: train_weights={list(w)} needs one number per train_data spec "
            f"({len(cfg.train_data)}), not all 0; or [] for every image equally likely"
        )


def _check_sampling(cfg: TrainConfig, where: str) -> None:
    """The validation split, flags, crop size, scale jitter and augmentation probabilities."""
    _number(cfg, "val_fraction", float, where, 0.0, 1.0, hi_open=True)
    if not isinstance(cfg.val_group, str):
        need = "a string ('' puts each image in its own group)"
        raise _bad("val_group", cfg.val_group, need, where)
    for key in ("skip_bad", "color", "channels_last", "progress"):
        _bool(cfg, key, where)
    _number(cfg, "crop_size", int, where, 8, 8192, none=True)
    sc = cfg.scale
    if (
        not isinstance(sc, list | tuple)
        or len(sc) != 2
        or any(isinstance(x, bool) or not isinstance(x, int | float) for x in sc)
        or not 0 < sc[0] <= sc[1] <= 8
    ):
        raise _bad("scale", sc, "a pair [low, high] with 0 < low <= high <= 8", where)
    cfg.scale = (float(sc[0]), float(sc[1]))
    for key in ("blur_p", "noise_p", "jpeg_p", "crack_crop_p"):
        _number(cfg, key, float, where, 0.0, 1.0)


def _check_loss(cfg: TrainConfig, where: str) -> None:
    """batch_size, loss, pos_weight, aux_weight."""
    _number(cfg, "batch_size", int, where, 1, 4096)
    if not isinstance(cfg.loss, str):
        raise _bad("loss", cfg.loss, "a sum of bce, dice, focal, e.g. bce+dice", where)
    pw = cfg.pos_weight
    if isinstance(pw, str) and pw.lower() == "auto":
        cfg.pos_weight = pw = "auto"
    elif isinstance(pw, str):
        try:
            cfg.pos_weight = pw = float(pw)
        except ValueError:
            raise _bad("pos_weight", pw, "auto, a number > 0, or null", where) from None
    if not (pw is None or (isinstance(pw, str) and pw.lower() == "auto")):
        _number(cfg, "pos_weight", float, where, 0.0, lo_open=True)
    try:
        CrackLoss(cfg.loss, cfg.pos_weight)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{where}: loss={cfg.loss!r}: {e}; e.g. --set loss=bce+dice") from None
    _number(cfg, "aux_weight", float, where, 0.0)


def _check_schedule_and_run(cfg: TrainConfig, where: str) -> None:
    """Optimizer and schedule, the run length (exactly one of iterations / epochs / minutes),
    validation, logging, out_dir, seed, workers, device, autocast, threads, precise BN."""
    _choice(cfg, "optimizer", ("adam", "adamw", "sgd"), where)
    _number(cfg, "lr", float, where, 0.0, 10.0, lo_open=True)
    _number(cfg, "weight_decay", float, where, 0.0, 1.0)
    _number(cfg, "momentum", float, where, 0.0, 1.0, hi_open=True)
    _choice(cfg, "schedule", ("cosine", "poly", "constant"), where)
    _number(cfg, "min_lr_ratio", float, where, 0.0, 1.0)
    _number(cfg, "warmup_iters", int, where, 0)
    _number(cfg, "iterations", int, where, 1, none=True)
    _number(cfg, "epochs", float, where, 0.0, lo_open=True, none=True)
    _number(cfg, "minutes", float, where, 0.0, lo_open=True, none=True)
    lengths = {k: getattr(cfg, k) for k in ("iterations", "epochs", "minutes")}
    if sum(v is not None for v in lengths.values()) != 1:
        given = ", ".join(f"{k}={v}" for k, v in lengths.items())
        raise ConfigError(
            f"{where}: give exactly one of iterations / epochs / minutes, got {given}; "
            "e.g. --set iterations=1000 (a run length given with --set replaces the recipe's)"
        )
    _number(cfg, "val_every", int, where, 1)
    _number(cfg, "val_tolerance", float, where, 0.0, 100.0)
    _number(cfg, "log_every", int, where, 1)
    if not isinstance(cfg.out_dir, str) or not cfg.out_dir.strip():
        raise _bad("out_dir", cfg.out_dir, "a folder path", where)
    _number(cfg, "seed", int, where, 0, 2**63 - 1)
    _number(cfg, "num_workers", int, where, 0, 256)
    dev = cfg.device
    if not isinstance(dev, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", dev.lower()):
        raise _bad("device", dev, "auto, cpu, cuda or cuda:N", where)
    cfg.device = dev.lower()
    if cfg.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"{where}: device={dev!r} but torch sees no CUDA GPU here; use --set device=auto "
            "(or cpu)"
        )
    amp = cfg.amp
    if not (isinstance(amp, bool) or (isinstance(amp, str) and amp.lower() == "auto")):
        raise _bad("amp", amp, "auto, true or false", where)
    _number(cfg, "threads", int, where, 1, 1024, none=True)
    _number(cfg, "bn_recalib", int, where, 0, 100000)


def init_state(cfg: TrainConfig, where: str = "config") -> dict[str, torch.Tensor]:
    """The state dict named by ``cfg.init_weights`` (a checkpoint path or shipped weights name),
    checked to be for ``cfg.model`` with ``cfg.model_kwargs``; raises :class:`ConfigError`."""
    from ..models.pretrained import weights_source

    name = cfg.init_weights
    if not isinstance(name, str) or not name.strip():
        raise _bad("init_weights", name, "a checkpoint path or shipped weights name", where)
    try:
        source = weights_source(name)
    except KeyError as e:
        raise ConfigError(
            f"{where}: init_weights={name!r} is neither a file nor shipped weights: {e.args[0]}"
        ) from None
    try:
        model, meta = weights_io.load_model(source)
    except CrackSegError as e:
        raise ConfigError(f"{where}: init_weights={name!r}: {e}") from None
    arch = {k: v for k, v in cfg.model_kwargs.items() if k not in weights_io.INIT_ONLY_KWARGS}
    theirs = json.loads(meta.get("model_kwargs", "{}"))
    if meta.get("model") != cfg.model or theirs != arch:
        raise ConfigError(
            f"{where}: init_weights={name!r} holds model {meta.get('model')!r} with {theirs}, "
            f"but this run trains {cfg.model!r} with {arch}: set model / model_kwargs to match"
        )
    return model.state_dict()


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

    With ``weights`` (one non-negative number per sample), each "epoch" of ``n`` positions is
    instead ``n`` draws with replacement in proportion to the weights, seeded the same way.
    """

    def __init__(self, n, batch, seed, start, total, rank=0, world=1, weights=None):
        self.n, self.batch, self.seed = n, batch, seed
        self.start, self.total, self.rank, self.world = start, total, rank, world
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        self._perm_epoch, self._perm = -1, None

    def _index(self, p: int) -> int:
        epoch = p // self.n
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(_mix(self.seed, epoch))
            if self.weights is None:
                perm = torch.randperm(self.n, generator=g)
            else:
                perm = torch.multinomial(self.weights, self.n, replacement=True, generator=g)
            self._perm, self._perm_epoch = perm.tolist(), epoch
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
        jpeg_p=cfg.jpeg_p,
        crack_crop_p=cfg.crack_crop_p,
        generator=generator,
    )


def sample_weights(cfg: TrainConfig, train_set, train_idx) -> list[float] | None:
    """Per-sample draw weights for ``train_idx`` from ``cfg.train_weights`` (None: uniform)."""
    if not cfg.train_weights:
        return None
    if len(cfg.train_weights) != len(cfg.train_data):
        raise ValueError(
            f"train_weights has {len(cfg.train_weights)} numbers for {len(cfg.train_data)} "
            "train_data specs: give one weight per spec, or none"
        )
    if any(w < 0 for w in cfg.train_weights) or not any(w > 0 for w in cfg.train_weights):
        raise ValueError(f"train_weights must be >= 0 and not all 0, got {cfg.train_weights}")
    sizes = getattr(train_set, "cumulative_sizes", None) or [len(train_set)]
    which = [bisect.bisect_right(sizes, i) for i in train_idx]
    counts = collections.Counter(which)
    return [cfg.train_weights[d] / counts[d] for d in which]


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


def recalibrate_run(
    run: str | Path, tag: str = "last", batches: int | None = None, progress: bool = True
) -> dict:
    """Apply precise BN to ``RUN/<tag>.safetensors`` exactly as training with ``bn_recalib`` does.

    The original weights are kept as ``RUN/<tag>_raw.safetensors`` (written once, never
    overwritten, so running this twice starts from the same weights and gives the same file).
    Returns ``{"checkpoint", "raw", "step", "batches"}``.
    """
    if batches is not None and (
        isinstance(batches, bool) or not isinstance(batches, int) or not 1 <= batches <= 100000
    ):
        raise CrackSegError(
            f"--batches {batches}: give 1 to 100000 batches of training crops, or leave it out "
            f"(the run's bn_recalib, else {TrainConfig.bn_recalib})"
        )
    run = Path(run)
    path = run / f"{tag}.safetensors"
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: give a run folder written by crackseg train"
        )
    cfg_path = run / "config.yaml"
    if not cfg_path.exists():
        raise FileNotFoundError(f"{cfg_path} does not exist: the training data are named there")
    cfg = load_config(cfg_path)
    if batches is not None:
        cfg.bn_recalib = batches
    if cfg.bn_recalib <= 0:
        cfg.bn_recalib = TrainConfig.bn_recalib
    raw = run / f"{tag}_raw.safetensors"
    source = raw if raw.exists() else path
    model, meta = weights_io.load_model(source)
    name, kwargs = meta["model"], json.loads(meta.get("model_kwargs", "{}"))
    step = int(json.loads(meta.get("step", "0")))
    if not raw.exists():
        weights_io.save_weights(raw, model, name, kwargs, {"step": step})
    train_set, _, train_idx, _ = split_data(cfg)
    make_batches = recalibration_inputs(cfg, train_set, train_idx, torch.device("cpu"))
    batches = make_batches(step)
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, total=cfg.bn_recalib, desc=f"precise BN ({tag})")
    calibrated = recalibrate_batchnorm(model, batches)
    weights_io.save_weights(path, calibrated, name, kwargs, {"step": step})
    return {"checkpoint": str(path), "raw": str(raw), "step": step, "batches": cfg.bn_recalib}


def training_loss(net, model, criterion, images, masks, aux_weight: float) -> torch.Tensor:
    """The loss of one batch: ``criterion`` on the logits, plus ``aux_weight`` times its mean
    over the side outputs of models with deep supervision (``model.supports_aux``).

    ``net`` is what is called (``model`` itself, or its DistributedDataParallel wrapper).
    """
    if model.supports_aux and aux_weight > 0:
        logits, sides = net(images, return_aux=True)
        aux = sum(criterion(s, masks) for s in sides) / len(sides)
        return criterion(logits, masks) + aux_weight * aux
    return criterion(net(images), masks)


# ------------------------------------------------------------------------------ start-up checks
def check_split(cfg: TrainConfig, train_set, train_idx, val_idx) -> None:
    """Raise :class:`ConfigError` when the validation split is empty, saying why and the fix."""
    if val_idx and train_idx:
        return
    n = len(train_set)
    alt = "or give a separate validation set with --set val_data=[SPEC]"
    if cfg.val_fraction == 0:
        raise ConfigError(
            "val_fraction=0 leaves no validation images (every run validates: its ODS picks "
            f"`best`): use --set val_fraction=0.1, {alt}"
        )
    if n < 2:
        raise ConfigError(
            f"train_data {cfg.train_data} holds {n} image: too few to carve a validation split "
            f"from; add images, {alt}"
        )
    names = list(getattr(train_set, "names", []))
    if cfg.val_group and names:
        groups = collections.Counter(nm.split(cfg.val_group)[0] for nm in names)
        biggest, count = groups.most_common(1)[0]
        raise ConfigError(
            f"no validation split: images are grouped by the part of their name before "
            f"val_group={cfg.val_group!r} (crops of one photo stay on one side), and "
            f"{count} of {n} names share the group {biggest!r} ({len(groups)} group(s) in all); "
            f"use --set val_group='' (each image its own group), another separator, {alt}"
        )
    raise ConfigError(
        f"no validation split could be carved from {n} images with val_fraction="
        f"{cfg.val_fraction}: raise val_fraction, {alt}"
    )


def _split_with_hint(cfg: TrainConfig, train_set, val_set):
    """:func:`split_data`, saying where relative dataset paths were looked for."""
    from ..data.datasets import DatasetError

    try:
        return split_data(cfg, train_set, val_set)
    except DatasetError as e:
        specs = [*cfg.train_data, *cfg.val_data] if train_set is None else list(cfg.val_data)
        relative = [
            sp
            for sp in specs
            if not sp.lower().startswith("synth:")
            and not sp.split(":", 1)[1].startswith(("/", "~"))
        ]
        if relative and "does not exist" in str(e):
            raise DatasetError(
                f"{e} (relative dataset paths resolve against the current folder {Path.cwd()}; "
                "give full paths, e.g. --set train_data=[deepcrack:/data/deepcrack])"
            ) from None
        raise


def _folder_datasets(dataset) -> list:
    subs = getattr(dataset, "datasets", None)
    if subs is None:
        return [dataset] if hasattr(dataset, "validate") else []
    return [d for sub in subs for d in _folder_datasets(sub)]


def check_files(dataset, role: str, progress: bool) -> None:
    """Decode every pair of ``dataset`` now (not at step 3,000); raise naming the bad files.

    Datasets built with ``skip_bad`` have already dropped what does not decode.
    """
    from ..data.datasets import DatasetError

    for d in _folder_datasets(dataset):
        if getattr(d, "skip_bad", False):
            continue
        problems = d.validate(progress=progress, full=True)
        if problems:
            shown = "; ".join(str(p) for p in problems[:3])
            more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
            raise DatasetError(
                f"{len(problems)} of {len(d)} {role} pairs in {d.images_dir} cannot be used: "
                f"{shown}{more}; fix or remove them, or skip them with --set skip_bad=true"
            )


#: Files and folders of a run, removed by --overwrite (anything else in the folder is kept).
RUN_FILES = (
    "config.yaml",
    "log.csv",
    "summary.json",
    "last.safetensors",
    "last.json",
    "last_optim.safetensors",
    "last_raw.safetensors",
    "best.safetensors",
    "best.json",
    "best_optim.safetensors",
    "best_raw.safetensors",
    ckpt.CHECKPOINTS,
    "tb",
)


def existing_run(folder: Path) -> str | None:
    """A description of the run ``folder`` holds (``"step 500 of 6000"``), or None."""
    if not folder.is_dir():
        return None
    present = [n for n in RUN_FILES if (folder / n).exists()]
    if not present:
        return None
    try:
        state = json.loads((folder / "last.json").read_text())
        return f"a run at step {state['step']} of {state.get('total') or '?'}"
    except (OSError, ValueError, KeyError, TypeError):
        return f"a run ({', '.join(present[:3])})"


def check_out_dir(folder: Path, overwrite: bool) -> None:
    """Refuse a folder that holds a run (unless ``overwrite``) or that cannot be written."""
    held = existing_run(folder)
    if held and not overwrite:
        raise ConfigError(
            f"out_dir {folder} already holds {held}: continue it with `crackseg train --resume "
            f"{folder}`, start a new run with --set out_dir=NEW_FOLDER, or replace it with "
            "--overwrite"
        )
    probe = folder
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"out_dir {folder}: {probe} is a file, not a folder; choose another")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"out_dir {folder}: {probe} is not writable; choose another out_dir")


def _truncate_log(path: Path, step: int) -> None:
    """Drop log rows after ``step`` (written by a run killed before its next checkpoint)."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    keep = rows[:1] + [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) <= step]
    if len(keep) == len(rows):
        return
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        csv.writer(f).writerows(keep)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------ the loop
def train(
    cfg: TrainConfig,
    resume: str | Path | None = None,
    train_set: Dataset | None = None,
    val_set: Dataset | None = None,
    overwrite: bool = False,
    clock: Callable[[], float] | None = None,
) -> dict:
    """Train ``cfg.model``; returns a summary dict (also written to ``RUN/summary.json``).

    ``train_set`` / ``val_set`` (objects with ``sample(i) -> (image, mask)``) replace the
    ``train_data`` / ``val_data`` specs, for callers that build data in memory (the demo).

    A new run refuses an ``out_dir`` that holds a run unless ``overwrite``; nothing is written
    before the config, the data, the validation split and the model kwargs are checked.
    ``resume`` continues the run in that folder from its newest complete checkpoint. ``clock``
    (seconds, default ``time.perf_counter``) times the run, for wall-clock runs (``minutes``).
    """
    clock = clock or time.perf_counter
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    is_main = rank == 0
    with contextlib.ExitStack() as held:
        # -- run folder and config: resume reads the run's newest complete checkpoint
        state: dict[str, Any] = {"step": 0, "best": -1.0, "best_step": -1, "total": None}
        resume_from: ckpt.Checkpoint | None = None
        restarted = False
        if resume:
            out = Path(resume)
            if not out.is_dir():
                raise ConfigError(
                    f"--resume {out}: no such run folder (give the out_dir of a crackseg train run)"
                )
            if is_main:
                ckpt.check_writable(out)  # now, not after a whole validation interval
                held.enter_context(ckpt.RunLock(out))
                for p in ckpt.clean_stale(out):
                    warnings.warn(f"removed {p}, left by an interrupted save", stacklevel=2)
            try:
                resume_from, state = ckpt.resume_point(out, repair=is_main)
                cfg = config_from_dict(state.get("config"), f"{out} (saved config)")
            except ckpt.NoCheckpointYet:
                if not (out / "config.yaml").is_file():
                    raise
                # stopped before its first checkpoint: nothing to lose, start it again
                cfg = load_config(out / "config.yaml")
                restarted = True
                warnings.warn(
                    f"{out} has no checkpoint yet (stopped before its first save): starting it "
                    f"again from step 0 with {out / 'config.yaml'}",
                    stacklevel=2,
                )
        else:
            cfg = validate_config(cfg)
            out = Path(cfg.out_dir)
            if is_main:
                check_out_dir(out, overwrite)

        # -- checks that need no GPU and no weights: model kwargs (meta device), data, split
        weights_io.check_model_kwargs(cfg.model, cfg.model_kwargs, "config key model_kwargs")
        torch.manual_seed(cfg.seed)
        train_set, val_set, train_idx, val_idx = _split_with_hint(cfg, train_set, val_set)
        check_split(cfg, train_set, train_idx, val_idx)
        if is_main:
            check_files(train_set, "training", cfg.progress)
            if val_set is not train_set:
                check_files(val_set, "validation", cfg.progress)

        # -- the run folder: written only now that everything is checked
        if is_main and not resume:
            out.mkdir(parents=True, exist_ok=True)
            held.enter_context(ckpt.RunLock(out))
            check_out_dir(out, overwrite)  # again, under the lock
            if overwrite:
                for name in RUN_FILES:
                    p = out / name
                    if p.is_dir():
                        shutil.rmtree(p)
                    elif p.exists():
                        p.unlink()
            ckpt.clean_stale(out)
            (out / "config.yaml").write_text(yaml.safe_dump(_jsonable(dataclasses.asdict(cfg))))
        run = _Run(
            cfg, out, state, resume_from, bool(resume) and not restarted, bool(resume), train_set,
            val_set, train_idx, val_idx, skipped_pairs(train_set, val_set), clock, world, rank,
        )  # fmt: skip
        return _loop(run)


@dataclass
class _Run:
    """What the training loop needs, checked and resolved by :func:`train`."""

    cfg: TrainConfig
    out: Path
    state: dict
    resume_from: ckpt.Checkpoint | None
    resuming: bool  # load the checkpoint's weights and optimizer
    continuing: bool  # an existing run folder: drop log rows and events after state["step"]
    train_set: Any
    val_set: Any
    train_idx: list
    val_idx: list
    skipped: list
    clock: Callable[[], float]
    world: int
    rank: int


def _loop(run: _Run) -> dict:
    """The training loop, top to bottom: data, model, schedule, then one step at a time with
    logging, the wall-clock horizon, validation with checkpoints, and stop requests."""
    cfg, out, state = run.cfg, run.out, run.state
    samples = SeededTransformDataset(run.train_set, list(run.train_idx), train_transform(cfg))
    device = _device(cfg, run.world)
    use_amp = amp_enabled(cfg.amp, device)
    horizon = _Horizon(cfg, state, len(samples), cfg.batch_size * run.world)
    model, optimizer = _model_and_optimizer(run, device)
    if run.continuing and run.rank == 0:
        _truncate_log(out / "log.csv", state["step"])
    net = DistributedDataParallel(model) if run.world > 1 else model
    criterion = CrackLoss(cfg.loss, cfg.pos_weight)
    loader = _loader(run, samples, horizon.steps, device)
    recal_batches = recalibration_inputs(cfg, run.train_set, run.train_idx, device)
    log = _TrainLog(run)
    t_start = run.clock()
    horizon.start(t_start, state["step"])
    log.start(t_start)
    val_metrics: dict = {}

    model.train()
    interrupted = False
    with _StopRequest(enabled=run.world == 1) as stop:
        for images, masks in loader:
            step = state["step"]
            lr = lr_at(cfg, step, state["total"] or horizon.steps)
            loss = _train_step(cfg, net, model, criterion, optimizer, images, masks, lr, use_amp)
            state["step"] = step = step + 1
            log.add(loss)
            now = run.clock()
            if horizon.refit(step, now):
                log.bar.total = loader.batch_sampler.total = state["total"]
            log.train_row(step, lr, now, state["total"])

            done = state["total"] is not None and step >= state["total"]
            if step % cfg.val_every == 0 or done:
                val_metrics = _validate_and_save(run, model, optimizer, recal_batches, device, log)
            crash_point("train:step")  # tests stop a run at a chosen step (crackseg.faults)
            if done:
                break
            if stop.requested:
                _save(run, "last", model, optimizer)
                interrupted = True
                log.bar.write(
                    f"stopped at step {step}; saved {out / 'last.safetensors'}."
                    f" Continue with: crackseg train --resume {out}"
                )
                break

    log.bar.close()
    summary = {
        "run": str(out),
        "model": cfg.model,
        "world_size": run.world,
        "bf16_autocast": use_amp,
        "steps": state["step"],
        "best_val_ODS": state["best"],
        "best_step": state["best_step"],
        "last_val": val_metrics,
        "wall_s_this_session": run.clock() - t_start,
        "interrupted": interrupted,
        "skipped": run.skipped,
    }
    if run.rank == 0:
        ckpt.save_json(out / "summary.json", summary)
    log.close()
    if run.world > 1:
        dist.destroy_process_group()
    if interrupted:
        raise KeyboardInterrupt(
            f"training stopped at step {state['step']}; resume with --resume {out}"
        )
    return summary


def _device(cfg: TrainConfig, world: int) -> torch.device:
    """The device (``auto``: CUDA when there is one); under torchrun (``WORLD_SIZE`` > 1) also
    the process group, NCCL on GPUs, gloo on CPUs."""
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
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    return device


class _Horizon:
    """The schedule's length in steps (``state["total"]``).

    Fixed by ``iterations`` or ``epochs``. For a ``minutes`` budget it is provisional after 20
    steps, then refitted once on the steady rate of the next :data:`REFIT_STEPS` (which leaves
    out start-up: workers, caches, cuDNN autotuning); a budget already spent ends the run at
    the step in hand, never at a horizon behind it. A resumed run keeps its saved horizon.
    """

    def __init__(self, cfg: TrainConfig, state: dict, samples: int, per_step: int) -> None:
        if state["total"] is None:
            if cfg.iterations is not None:
                state["total"] = int(cfg.iterations)
            elif cfg.epochs is not None:
                state["total"] = max(1, math.ceil(cfg.epochs * samples / per_step))
        self.cfg, self.state = cfg, state
        self.known = state["total"] is not None
        #: the sampler's and the schedule's length until the horizon is known
        self.steps = state["total"] if self.known else 10**9
        self.refit_at: int | None = None
        self.t_refit = 0.0

    def start(self, t_start: float, start_step: int) -> None:
        self.t_start, self.start_step = t_start, start_step

    def refit(self, step: int, now: float) -> bool:
        """Fit the horizon to the budget at this step if it is time; True when it changed."""
        done = step - self.start_step
        if self.cfg.minutes is None or done < 20 or (self.known and step != self.refit_at):
            return False
        elapsed = now - self.t_start
        if not self.known:
            sec = elapsed / done
            self.refit_at, self.t_refit = step + REFIT_STEPS, now
        else:
            sec = (now - self.t_refit) / REFIT_STEPS
            self.refit_at = None
        left = int((self.cfg.minutes * 60 - elapsed) / sec) if sec > 0 else 0
        self.state["total"] = step + max(0, left)
        self.known = True
        return True


def _model_and_optimizer(run: _Run, device: torch.device):
    """The model on ``device`` and its optimizer: from the checkpoint when resuming, from
    ``init_weights`` when fine-tuning, else freshly initialised."""
    cfg, state = run.cfg, run.state
    model = create_model(cfg.model, **cfg.model_kwargs).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(cfg, model.parameters())
    if run.resuming:
        if run.resume_from is not None:
            weights_path, optim_path = run.resume_from.weights, run.resume_from.optim
        else:  # a run saved by an older crackseg
            weights_path = run.out / "last.safetensors"
            optim_path = run.out / "last_optim.safetensors"
        loaded, _ = weights_io.load_model(weights_path)
        model.load_state_dict(loaded.state_dict())
        ckpt.load_optimizer(optim_path, optimizer, state["optimizer"])
    elif cfg.init_weights is not None:  # a new run fine-tuning given weights
        model.load_state_dict(init_state(cfg))
    return model, optimizer


def _loader(run: _Run, samples: Dataset, horizon: int, device: torch.device) -> DataLoader:
    """Batches drawn from seeds of ``(seed, step)``, from the run's step on (exact resume)."""
    cfg = run.cfg
    sampler = StepBatchSampler(
        len(samples), cfg.batch_size, cfg.seed, run.state["step"], horizon, run.rank, run.world,
        weights=sample_weights(cfg, run.train_set, run.train_idx),
    )  # fmt: skip
    return DataLoader(
        samples,
        batch_sampler=sampler,
        num_workers=cfg.num_workers,
        worker_init_fn=_ignore_stop_signals,  # stopping is the main process's job
        persistent_workers=False,
        pin_memory=device.type == "cuda",
    )


def _train_step(cfg, net, model, criterion, optimizer, images, masks, lr, use_amp) -> float:
    """One optimizer step at learning rate ``lr``; the batch's loss."""
    for g in optimizer.param_groups:
        g["lr"] = lr
    device = next(model.parameters()).device
    images = images.to(device, non_blocking=True)
    masks = masks.to(device, non_blocking=True)
    if cfg.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
        loss = training_loss(net, model, criterion, images, masks, cfg.aux_weight)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def _save(run: _Run, tag: str, weights: torch.nn.Module, optimizer) -> None:
    """Commit checkpoint ``tag`` (main process only)."""
    if run.rank != 0:
        return
    cfg = run.cfg
    run.state["config"] = _jsonable(dataclasses.asdict(cfg))
    ckpt.save_checkpoint(run.out, tag, weights, cfg.model, cfg.model_kwargs, optimizer, run.state)


def _validate_and_save(run: _Run, model, optimizer, recal_batches, device, log) -> dict:
    """Validate (after precise BN on a copy: training is untouched), save ``best`` when the ODS
    improved and ``last`` always; the metrics (kept from before on other DDP ranks)."""
    cfg, state, step = run.cfg, run.state, run.state["step"]
    final, metrics = model, log.last_val
    if run.rank == 0:
        if cfg.bn_recalib > 0:
            final = recalibrate_batchnorm(model, recal_batches(step))
        metrics = validate(final, run.val_set, run.val_idx, device, cfg.val_tolerance)
        model.train()
        log.val_row(step, metrics)
        if metrics["ODS"] > state["best"]:
            state["best"], state["best_step"] = metrics["ODS"], step
            _save(run, "best", final, optimizer)
    _save(run, "last", final, optimizer)
    if run.world > 1:
        dist.barrier()
    return metrics


class _TrainLog:
    """What a run reports while it trains: the progress bar, ``log.csv`` (one row per
    ``log_every`` steps and per validation) and TensorBoard; files from the main process only.
    On resume, rows and events after the checkpoint's step are dropped first."""

    COLUMNS = ["step", "loss", "lr", "sec_per_step", "ODS", "OIS", "AP", "F1"]
    SHOWN = ("ODS", "OIS", "AP", "F1@0.5")

    def __init__(self, run: _Run) -> None:
        cfg, state = run.cfg, run.state
        self.main, self.every = run.rank == 0, cfg.log_every
        self.path = run.out / "log.csv"
        purge = state["step"] + 1 if run.continuing else None
        self.writer = _tensorboard(run.out, purge) if self.main else None
        if self.main and not self.path.exists():
            with open(self.path, "w", newline="") as f:
                csv.writer(f).writerow(self.COLUMNS)
        self.bar = tqdm(
            total=state["total"],
            initial=state["step"],
            desc=f"train {cfg.model}",
            disable=not (cfg.progress and self.main),
            dynamic_ncols=True,
        )
        self.loss_sum, self.steps, self.t_last = 0.0, 0, 0.0
        self.last_val: dict = {}

    def start(self, t: float) -> None:
        self.t_last = t

    def add(self, loss: float) -> None:
        self.loss_sum += loss
        self.steps += 1
        self.bar.update(1)

    def train_row(self, step: int, lr: float, now: float, total: int | None) -> None:
        """Mean loss and seconds per step since the last row, every ``log_every`` steps."""
        if step % self.every and step != total:
            return
        sec, loss = (now - self.t_last) / self.steps, self.loss_sum / self.steps
        self.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", s_it=f"{sec:.2f}")
        if self.main:
            _log(self.path, [step, loss, lr, sec, "", "", "", ""])
            if self.writer:
                self.writer.add_scalar("train/loss", loss, step)
                self.writer.add_scalar("train/lr", lr, step)
        self.t_last, self.steps, self.loss_sum = now, 0, 0.0

    def val_row(self, step: int, metrics: dict) -> None:
        self.last_val = metrics
        self.bar.write(f"step {step}: val " + " ".join(f"{k} {metrics[k]:.4f}" for k in self.SHOWN))
        _log(self.path, [step, "", "", "", *(metrics[k] for k in self.SHOWN)])
        if self.writer:
            for k, v in metrics.items():
                self.writer.add_scalar(f"val/{k}", v, step)

    def close(self) -> None:
        if self.writer:
            self.writer.close()


def _ignore_stop_signals(worker_id: int) -> None:
    """DataLoader workers ignore SIGINT and SIGTERM: stopping is the main process's job (it saves
    `last`, then shuts the workers down). Ctrl-C, ``kill -- -PGID`` or a scheduler signal the
    whole process group; a worker that died first would abort the main process mid-step. Workers
    still exit when the main process ends, however it ends (torch's parent watchdog)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


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


def _tensorboard(out: Path, purge_step: int | None = None):
    """TensorBoard writer; on resume, events after the checkpoint's step are purged."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional at run time; the CSV log always exists
        return None
    return SummaryWriter(str(out / "tb"), purge_step=purge_step)
