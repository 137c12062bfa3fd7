"""The bad-input corpus: every case ends in one clear line (exit 2) or is handled as documented.

Each case builds its inputs from the synthetic generator (good images and masks, then damaged:
truncated, swapped, inverted, coloured, mis-sized, mis-named), runs the command line in
process and checks the exit code, that the error is a single line naming the culprit, that no
traceback is shown, and, where it matters, that nothing was written or lost.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from crackseg.cli import main
from crackseg.data.synth import write_dataset
from crackseg.engine import checkpoint as ckpt
from crackseg.models import create_model, weights_io

TINY_KW = {"widths": [8, 16, 16, 32], "blocks": [0, 1, 1, 1]}
TINY = [
    "model_kwargs={widths: [8, 16, 16, 32], blocks: [0, 1, 1, 1]}",
    "crop_size=48",
    "batch_size=2",
    "num_workers=0",
    "warmup_iters=1",
    "iterations=2",
    "val_every=2",
    "progress=false",
    "bn_recalib=1",
    "threads=1",
]


def _permissions_bind() -> bool:
    """Whether a read-only folder stops this process (not root's, unless it runs without
    CAP_DAC_OVERRIDE, e.g. under `setpriv --bounding-set -dac_override,-dac_read_search`)."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        ro = Path(d) / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        try:
            (ro / "probe").write_text("x")
        except PermissionError:
            return True
        finally:
            ro.chmod(0o700)
        return False


ROOT = not _permissions_bind()  # permissions do not bind: the read-only cases are skipped


# ------------------------------------------------------------------------------ file makers
def synth(folder: Path, n: int = 4, size: int = 64) -> Path:
    """A good images/ + masks/ folder pair from the generator."""
    if not (folder / "images").exists():
        write_dataset(folder, n=n, size=size, progress=False)
    return folder


def folder_spec(folder: Path) -> str:
    return f"folder:{folder / 'images'}:{folder / 'masks'}"


def truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def as_jpeg(path: Path) -> Path:
    jpg = path.with_suffix(".jpg")
    Image.open(path).convert("RGB").save(jpg, quality=90)
    path.unlink()
    return jpg


def pred_gt(tmp: Path, n: int = 4) -> tuple[Path, Path]:
    """A prediction folder (perfect maps) and a ground-truth folder for n synthetic images."""
    data = synth(tmp / "data", n=n)
    pred, gt = tmp / "pred", data / "masks"
    pred.mkdir(exist_ok=True)
    for m in sorted(gt.glob("*.png")):
        shutil.copy(m, pred / f"{m.stem}_prob.png")
    return pred, gt


def tiny_checkpoint(path: Path, meta_kwargs: str | None = None, model: str = "carnet") -> Path:
    net = create_model("carnet", **TINY_KW)
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    meta = {
        "format": "crackseg",
        "model": model,
        "model_kwargs": meta_kwargs if meta_kwargs is not None else json.dumps(TINY_KW),
    }
    save_file(state, str(path), metadata=meta)
    return path


def fake_run(folder: Path) -> Path:
    """A run folder as `crackseg train` leaves it (contents checked to stay untouched)."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("model: carnet\n")
    (folder / "last.json").write_text(json.dumps({"step": 500, "total": 6000}))
    (folder / "log.csv").write_text("step,loss\n500,0.1\n")
    (folder / "last.safetensors").write_bytes(b"weights of step 500")
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def train_argv(*sets: str, config: str | None = None) -> list[str]:
    argv = ["train"] + ([config] if config else [])
    for s in [*TINY, *sets]:
        argv += ["--set", s]
    return argv


# ------------------------------------------------------------------------------ the corpus
@dataclass
class Case:
    id: str
    build: Callable[[Path], list[str]]  # makes the files, returns the argv
    expect: list[str]  # substrings of the error line (rc 2) or of stdout+stderr (rc 0)
    rc: int = 2
    after: Callable[[Path], None] | None = None  # extra checks on what is on disk
    skip_root: bool = False
    warn: list[str] = field(default_factory=list)  # substrings of a plain warning line


def _yaml_file(text: str, name: str = "c.yaml"):
    def build(tmp: Path) -> list[str]:
        (tmp / name).write_text(text)
        return train_argv(
            "train_data=[synth:6:64]", f"out_dir={tmp / 'run'}", config=str(tmp / name)
        )

    return build


def _train_set(*sets: str):
    def build(tmp: Path) -> list[str]:
        return train_argv("train_data=[synth:6:64]", f"out_dir={tmp / 'run'}", *sets)

    return build


def _no_run_written(tmp: Path) -> None:
    assert not (tmp / "run").exists(), "a failed start-up created the run folder"


def _train_folder(damage: Callable[[Path], None], *sets: str, n: int = 6):
    def build(tmp: Path) -> list[str]:
        data = synth(tmp / "data", n=n)
        damage(data)
        return train_argv(f"train_data=[{folder_spec(data)}]", f"out_dir={tmp / 'run'}", *sets)

    return build


def _truncated_jpeg(data: Path) -> None:
    truncate(as_jpeg(data / "images" / "synth_00002.png"), 0.4)


def _rename_all_to_group(data: Path) -> None:
    for sub in ("images", "masks"):
        for i, p in enumerate(sorted((data / sub).glob("*.png"))):
            p.rename(p.with_name(f"road-{i}.png"))


def _keep_one(data: Path) -> None:
    for sub in ("images", "masks"):
        for p in sorted((data / sub).glob("*.png"))[1:]:
            p.unlink()


def _existing_run(tmp: Path) -> list[str]:
    run = fake_run(tmp / "run")
    (tmp / "before.json").write_text(json.dumps({k: v.hex() for k, v in snapshot(run).items()}))
    return train_argv("train_data=[synth:6:64]", f"out_dir={run}")


def _run_untouched(tmp: Path) -> None:
    before = json.loads((tmp / "before.json").read_text())
    assert {k: v.hex() for k, v in snapshot(tmp / "run").items()} == before


def _existing_run_bad_config(tmp: Path) -> list[str]:
    argv = _existing_run(tmp)
    return [*argv, "--overwrite", "--set", "batch_size=0"]


def _ckpt_eval(make: Callable[[Path], Path]):
    def build(tmp: Path) -> list[str]:
        return ["evaluate", "--checkpoint", str(make(tmp)), "--data", "synth:2:64"]

    return build


def _zero_byte(tmp: Path) -> Path:
    (tmp / "w.safetensors").write_bytes(b"")
    return tmp / "w.safetensors"


def _random_bytes(tmp: Path) -> Path:
    (tmp / "w.safetensors").write_bytes(np.random.default_rng(0).bytes(4096))
    return tmp / "w.safetensors"


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch PICKLE_RAN",))


def _pickle_checkpoint(tmp: Path) -> Path:
    (tmp / "w.safetensors").write_bytes(pickle.dumps({"state_dict": _Boom()}))
    return tmp / "w.safetensors"


def _pickle_did_not_run(tmp: Path) -> None:
    assert not (tmp / "PICKLE_RAN").exists() and not Path("PICKLE_RAN").exists()


def _huge_metadata(tmp: Path) -> Path:
    kw = json.dumps({"widths": [40000, 64, 128, 256], "blocks": [0, 1, 1, 1]})
    return tiny_checkpoint(tmp / "w.safetensors", meta_kwargs=kw)


def _plain_safetensors(tmp: Path) -> Path:
    save_file({"x": torch.zeros(2)}, str(tmp / "w.safetensors"))
    return tmp / "w.safetensors"


def _eval_dirs(damage: Callable[[Path, Path], None], *extra: str, out: bool = True):
    def build(tmp: Path) -> list[str]:
        pred, gt = pred_gt(tmp)
        damage(pred, gt)
        argv = ["evaluate", "--pred", str(pred), "--gt", str(gt), "--thresholds", "9"]
        return argv + (["--out", str(tmp / "eval")] if out else []) + list(extra)

    return build


def _metrics(tmp: Path) -> dict:
    return json.loads((tmp / "eval" / "metrics.json").read_text())


def _drop_preds(pred: Path, gt: Path) -> None:
    for p in sorted(pred.glob("*.png"))[1:]:
        p.unlink()


def _invert(pred: Path, gt: Path) -> None:
    m = gt / "synth_00001.png"
    Image.fromarray(255 - np.asarray(Image.open(m))).save(m)


def _heatmap(pred: Path, gt: Path) -> None:
    p = pred / "synth_00000_prob.png"
    grey = np.asarray(Image.open(p))
    rgb = np.stack([grey, 255 - grey, np.zeros_like(grey)], axis=2)  # red on green: a heat-map
    Image.fromarray(rgb.astype(np.uint8)).save(p)


def _nan_map(pred: Path, gt: Path) -> None:
    p = pred / "synth_00000_prob.png"
    a = np.asarray(Image.open(p)).astype(np.float32) / 255
    a[3, 3] = np.nan
    p.unlink()
    Image.fromarray(a, mode="F").save(pred / "synth_00000_prob.tif")


def _wrong_size(pred: Path, gt: Path) -> None:
    p = pred / "synth_00001_prob.png"
    Image.open(p).resize((40, 64)).save(p)


def _truncated_pred(pred: Path, gt: Path) -> None:
    truncate(pred / "synth_00002_prob.png", 0.3)


def _zero_byte_mask(pred: Path, gt: Path) -> None:
    (gt / "synth_00003.png").write_bytes(b"")


def _out_is_file(tmp: Path) -> list[str]:
    pred, gt = pred_gt(tmp)
    (tmp / "eval").write_text("not a folder")
    return ["evaluate", "--pred", str(pred), "--gt", str(gt), "--out", str(tmp / "eval")]


def _eval_ckpt_folder(damage: Callable[[Path], None], *extra: str):
    def build(tmp: Path) -> list[str]:
        data = synth(tmp / "data", n=3)
        damage(data)
        w = tiny_checkpoint(tmp / "w.safetensors")
        argv = ["evaluate", "--checkpoint", str(w), "--data", folder_spec(data), "--thresholds"]
        return [*argv, "9", "--out", str(tmp / "eval"), *extra]

    return build


def _eval_missing_data(tmp: Path) -> list[str]:
    w = tiny_checkpoint(tmp / "w.safetensors")
    return ["evaluate", "--checkpoint", str(w), "--data", f"deepcrack:{tmp / 'nodata'}"]


def _recalibrate_not_a_run(tmp: Path) -> list[str]:
    (tmp / "empty").mkdir()
    return ["recalibrate", str(tmp / "empty")]


def _resume_empty(tmp: Path) -> list[str]:
    (tmp / "empty").mkdir()
    return ["train", "--resume", str(tmp / "empty")]


def _resume_mismatched_legacy(tmp: Path) -> list[str]:
    run = tmp / "old"
    run.mkdir()
    net = create_model("carnet", **TINY_KW)
    weights_io.save_weights(run / "last.safetensors", net, "carnet", TINY_KW, {"step": 10})
    (run / "last.json").write_text(json.dumps({"step": 5, "config": {}}))
    return ["train", "--resume", str(run)]


def _out_dir_is_file(tmp: Path) -> list[str]:
    (tmp / "afile").write_text("x")
    return train_argv("train_data=[synth:6:64]", f"out_dir={tmp / 'afile' / 'run'}")


def _read_only_out(tmp: Path) -> list[str]:
    (tmp / "ro").mkdir()
    (tmp / "ro").chmod(0o500)
    return train_argv("train_data=[synth:6:64]", f"out_dir={tmp / 'ro' / 'run'}")


def _as_is(pred: Path, gt: Path) -> None:
    pass


def bomb_png(path: Path, width: int = 20000, height: int = 20000) -> Path:
    """A few-hundred-byte grey PNG whose header claims width x height pixels (400 M by default:
    over Pillow's decompression-bomb limit); its pixel data is cut short."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    idat = zlib.compress(b"\0" * (width + 1) * 4)  # four rows of zeros
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
    path.write_bytes(png + chunk(b"IEND", b""))
    return path


def _good_checkpoint(tmp: Path) -> Path:
    return tiny_checkpoint(tmp / "w.safetensors")


def _bomb_map(pred: Path, gt: Path) -> None:
    bomb_png(pred / "synth_00001_prob.png")


def _huge_model(tmp: Path) -> list[str]:
    kw = "model_kwargs={widths: [8, 16, 16, 40000], blocks: [0, 1, 1, 1]}"
    return train_argv("train_data=[synth:6:64]", f"out_dir={tmp / 'run'}", kw)


def _resume_read_only(tmp: Path) -> list[str]:
    from crackseg.engine.train import load_config, train

    run = tmp / "run"
    train(load_config(None, [*TINY, "train_data=[synth:6:64]", f"out_dir={run}", "iterations=2"]))
    for c in ckpt.list_checkpoints(run):  # make it a 4-step run stopped at step 2
        st = c.state()
        st["total"], st["config"]["iterations"] = 4, 4
        (c.folder / "state.json").write_text(json.dumps(st))
    (run / "last.json").write_text(json.dumps(ckpt.list_checkpoints(run, "last")[0].state()))
    (tmp / "before.json").write_text(json.dumps({k: v.hex() for k, v in snapshot(run).items()}))
    for p in [run, *run.rglob("*")]:  # the folders: its files (log.csv, .lock) stay writable
        if p.is_dir():
            p.chmod(0o555)
    return ["train", "--resume", str(run)]


def _writable_again(tmp: Path) -> None:
    for p in [tmp / "run", *(tmp / "run").rglob("*")]:
        if p.is_dir():
            p.chmod(0o755)


def _read_only_run_untouched(tmp: Path) -> None:
    _writable_again(tmp)
    _run_untouched(tmp)


def _predict_argv(tmp: Path, *extra: str) -> list[str]:
    data = synth(tmp / "data", n=1)
    image = str(data / "images" / "synth_00000.png")
    return ["predict", image, "--out", str(tmp / "pred"), "--quiet", *extra]


def _no_eval_written(tmp: Path) -> None:
    assert not (tmp / "eval").exists(), "a bad option created the report folder"


def _no_predictions_written(tmp: Path) -> None:
    assert not (tmp / "pred").exists()


def _exported(**bad) -> Callable[[Path], list[str]]:
    """predict with a TorchScript export (a 3x3 convolution) whose metadata holds ``bad``."""

    def build(tmp: Path) -> list[str]:
        from crackseg.inference.backends import quiet_torchscript_deprecation
        from crackseg.meta import ModelMeta

        meta = ModelMeta("carnet", "m", (0.5,) * 3, (0.25,) * 3, 0.5, 16).to_dict()
        with quiet_torchscript_deprecation():
            net = torch.jit.trace(torch.nn.Conv2d(3, 1, 3, padding=1), torch.zeros(1, 3, 16, 16))
            extra = {"crackseg.json": json.dumps({**meta, **bad})}
            torch.jit.save(net, str(tmp / "m.pt"), _extra_files=extra)
        return _predict_argv(tmp, "--checkpoint", str(tmp / "m.pt"), "--trust-checkpoint")

    return build


def _synth_again_smaller(tmp: Path) -> list[str]:
    write_dataset(tmp / "s", n=4, size=32, progress=False)
    return ["synth", "--out", str(tmp / "s"), "--n", "2", "--size", "32"]


def _synth_set_of_two(tmp: Path) -> None:
    names = ["synth_00000.png", "synth_00001.png"]
    for sub in ("images", "masks"):
        assert sorted(p.name for p in (tmp / "s" / sub).iterdir()) == names
    manifest = json.loads((tmp / "s" / "manifest.json").read_text())
    assert manifest["n"] == 2 and [i["name"] for i in manifest["items"]] == [
        "synth_00000",
        "synth_00001",
    ]


def _synth_into_foreign_folder(tmp: Path) -> list[str]:
    (tmp / "s" / "images").mkdir(parents=True)
    (tmp / "s" / "images" / "road.jpg").write_bytes(b"a photo of mine")
    return ["synth", "--out", str(tmp / "s"), "--n", "2", "--size", "32"]


def _foreign_folder_untouched(tmp: Path) -> None:
    assert (tmp / "s" / "images" / "road.jpg").read_bytes() == b"a photo of mine"
    assert sorted(p.name for p in (tmp / "s").rglob("*")) == ["images", "road.jpg"]


CASES = [
    # -- config files and --set values: checked before anything is built or written
    Case(
        "yaml-syntax-error",
        _yaml_file("lr: [0.1, 0.2\nbatch_size: 2\n"),
        ["c.yaml", "YAML syntax", "line"],
        after=_no_run_written,
    ),
    Case(
        "yaml-not-a-mapping",
        _yaml_file("- lr\n- 0.1\n"),
        ["c.yaml", "mapping"],
        after=_no_run_written,
    ),
    Case(
        "yaml-binary-file",
        lambda t: (
            (t / "c.yaml").write_bytes(b"\xff\xfe\x00bad"),
            train_argv(config=str(t / "c.yaml")),
        )[1],
        ["c.yaml", "not a text"],
    ),
    Case(
        "config-missing",
        lambda t: train_argv(config=str(t / "nope.yaml")),
        ["nope.yaml", "carnet_deepcrack"],
    ),
    Case("config-is-a-folder", lambda t: train_argv(config=str(t)), ["is a folder"]),
    Case("unknown-key", _train_set("lrr=0.1"), ["lrr", "did you mean lr"], after=_no_run_written),
    Case("set-without-equals", lambda t: ["train", "--set", "lr"], ["--set", "key=value"]),
    Case("set-yaml-error", _train_set("scale=[0.5, 2"), ["--set scale=[0.5, 2", "YAML"]),
    Case(
        "batch-size-0",
        _train_set("batch_size=0"),
        ["batch_size=0", ">= 1", "--set batch_size=4"],
        after=_no_run_written,
    ),
    Case("batch-size-bool", _train_set("batch_size=true"), ["batch_size=True", "integer"]),
    Case(
        "val-every-0",
        _train_set("val_every=0"),
        ["val_every=0", "--set val_every"],
        after=_no_run_written,
    ),
    Case(
        "iterations-0", _train_set("iterations=0"), ["iterations=0", ">= 1"], after=_no_run_written
    ),
    Case("iterations-fraction", _train_set("iterations=2.5"), ["iterations=2.5", "integer"]),
    Case("scale-scalar", _train_set("scale=5"), ["scale=5", "[low, high]"], after=_no_run_written),
    Case("scale-reversed", _train_set("scale=[2, 0.5]"), ["scale=", "low <= high"]),
    Case("lr-negative", _train_set("lr=-0.1"), ["lr=-0.1", "> 0"]),
    Case("lr-text", _train_set("lr=fast"), ["lr='fast'", "number"]),
    Case("lr-nan", _train_set("lr=.nan"), ["lr=nan"]),
    Case("probability-above-1", _train_set("blur_p=1.5"), ["blur_p=1.5", "<= 1"]),
    Case("bool-key-text", _train_set("progress=maybe"), ["progress='maybe'", "true or false"]),
    Case("optimizer-unknown", _train_set("optimizer=adamax"), ["optimizer='adamax'", "adamw"]),
    Case("schedule-unknown", _train_set("schedule=linear"), ["schedule='linear'", "cosine"]),
    Case("loss-unknown-term", _train_set("loss=bce+dyce"), ["dyce"]),
    Case("two-run-lengths", _train_set("epochs=2", "iterations=10"), ["exactly one of iterations"]),
    Case("minutes-negative", _train_set("minutes=-5"), ["minutes=-5"]),
    Case("model-unknown", _train_set("model=carnett"), ["carnett", "did you mean 'carnet'"]),
    Case("model-kwargs-unknown", _train_set("model_kwargs={depth: 3}"), ["depth", "widths"]),
    Case(
        "model-kwargs-bad-value",
        _train_set("model_kwargs={widths: [8]}"),
        ["widths", "differ in length"],
    ),
    Case(
        "model-kwargs-not-mapping",
        _train_set("model_kwargs=[1, 2]"),
        ["model_kwargs=[1, 2]", "mapping"],
    ),
    Case(
        "train-weights-length",
        _train_set("train_weights=[1, 2]"),
        ["train_weights", "one number per train_data spec"],
    ),
    Case("num-workers-negative", _train_set("num_workers=-1"), ["num_workers=-1"]),
    Case("device-unknown", _train_set("device=tpu"), ["device='tpu'", "cuda"]),
    # -- data and the validation split: found at start-up, not 500 steps in
    Case(
        "data-folder-missing",
        _train_set("train_data=[deepcrack:/nonexistent/deepcrack]"),
        ["/nonexistent/deepcrack", "does not exist"],
        after=_no_run_written,
    ),
    Case("data-spec-kind-unknown", _train_set("train_data=[foo:bar]"), ["'foo'", "deepcrack:"]),
    Case("data-spec-no-kind", _train_set("train_data=[just/a/path]"), ["just/a/path", "no kind"]),
    Case(
        "val-fraction-0",
        _train_set("val_fraction=0"),
        ["val_fraction=0", "--set val_fraction=0.1", "val_data"],
        after=_no_run_written,
    ),
    Case(
        "val-single-image", _train_folder(_keep_one), ["1 image", "val_data"], after=_no_run_written
    ),
    Case(
        "val-one-group",
        _train_folder(_rename_all_to_group),
        ["val_group='-'", "'road'", "--set val_group=''"],
        after=_no_run_written,
    ),
    Case(
        "truncated-jpeg-train",
        _train_folder(_truncated_jpeg),
        ["synth_00002.jpg", "--set skip_bad=true"],
        after=_no_run_written,
    ),
    Case(
        "truncated-jpeg-skip-bad",
        _train_folder(_truncated_jpeg, "skip_bad=true"),
        ["skipped 1 bad pair", "synth_00002.jpg"],
        rc=0,
    ),
    # -- run folders: never replaced, never lost
    Case(
        "out-dir-holds-a-run",
        _existing_run,
        ["already holds a run at step 500", "--resume", "--overwrite"],
        after=_run_untouched,
    ),
    Case(
        "overwrite-with-bad-config",
        _existing_run_bad_config,
        ["batch_size=0"],
        after=_run_untouched,
    ),
    Case("out-dir-under-a-file", _out_dir_is_file, ["afile", "is a file"]),
    Case("out-dir-read-only", _read_only_out, ["ro", "not writable"], skip_root=True),
    Case(
        "resume-missing-folder",
        lambda t: ["train", "--resume", str(t / "nope")],
        ["nope", "no such run folder"],
    ),
    Case("resume-not-a-run", _resume_empty, ["empty", "no checkpoint"]),
    Case(
        "resume-with-set",
        lambda t: ["train", "--resume", str(t), "--set", "lr=1"],
        ["--resume", "drop CONFIG/--set"],
    ),
    Case("resume-legacy-files-disagree", _resume_mismatched_legacy, ["step 10", "step 5"]),
    Case(
        "resume-read-only",
        _resume_read_only,
        ["--resume", "cannot write to", "chmod -R u+w", "nothing was changed"],
        after=_read_only_run_untouched,
        skip_root=True,
    ),
    Case(
        "model-kwargs-huge",
        _huge_model,
        ["model_kwargs", "parameters", "limit of 500,000,000"],
        after=_no_run_written,
    ),
    # -- checkpoints: nothing allocated or executed before the file is checked
    Case(
        "checkpoint-missing",
        _ckpt_eval(lambda t: t / "nope.safetensors"),
        ["nope.safetensors", "does not exist"],
    ),
    Case("checkpoint-zero-bytes", _ckpt_eval(_zero_byte), ["w.safetensors", "truncated"]),
    Case(
        "checkpoint-random-bytes",
        _ckpt_eval(_random_bytes),
        ["w.safetensors", "truncated or not a safetensors"],
    ),
    Case(
        "checkpoint-pickle",
        _ckpt_eval(_pickle_checkpoint),
        ["w.safetensors"],
        after=_pickle_did_not_run,
    ),
    Case(
        "checkpoint-not-crackseg",
        _ckpt_eval(_plain_safetensors),
        ["w.safetensors", "not a crackseg checkpoint"],
    ),
    Case(
        "checkpoint-huge-metadata",
        _ckpt_eval(_huge_metadata),
        ["w.safetensors", "does not fit", "40000"],
    ),
    Case(
        "checkpoint-kwargs-not-json",
        _ckpt_eval(lambda t: tiny_checkpoint(t / "w.safetensors", meta_kwargs="{widths")),
        ["w.safetensors", "not valid JSON"],
    ),
    Case(
        "checkpoint-unknown-model",
        _ckpt_eval(lambda t: tiny_checkpoint(t / "w.safetensors", model="unet9")),
        ["w.safetensors", "unknown model 'unet9'"],
    ),
    Case(
        "checkpoint-kwargs-unknown",
        _ckpt_eval(lambda t: tiny_checkpoint(t / "w.safetensors", meta_kwargs='{"depth": 3}')),
        ["w.safetensors", "depth"],
    ),
    # -- evaluation: never silently wrong
    Case(
        "eval-missing-predictions",
        _eval_dirs(_drop_preds),
        ["3 of 4 ground-truth masks", "--allow-missing"],
    ),
    Case(
        "eval-allow-missing",
        _eval_dirs(_drop_preds, "--allow-missing"),
        ["not scored: 3"],
        rc=0,
        after=lambda t: _check_missing(t),
    ),
    Case(
        "eval-inverted-mask",
        _eval_dirs(_invert),
        ["ODS"],
        rc=0,
        warn=["synth_00001.png", "inverted"],
    ),
    Case(
        "eval-colour-heatmap",
        _eval_dirs(_heatmap),
        ["synth_00000_prob.png", "colour", "--color-maps"],
    ),
    Case("eval-colour-allowed", _eval_dirs(_heatmap, "--color-maps"), ["ODS"], rc=0),
    Case("eval-nan-map", _eval_dirs(_nan_map), ["synth_00000_prob.tif", "NaN"]),
    Case(
        "eval-size-mismatch",
        _eval_dirs(_wrong_size),
        ["synth_00001_prob.png", "synth_00001.png", "40x64"],
    ),
    Case(
        "eval-size-mismatch-skip",
        _eval_dirs(_wrong_size, "--skip-bad"),
        ["skipped 1"],
        rc=0,
        warn=["synth_00001"],
        after=lambda t: _check_skipped(t, "synth_00001"),
    ),
    Case("eval-truncated-map", _eval_dirs(_truncated_pred), ["synth_00002_prob.png", "--skip-bad"]),
    Case(
        "eval-truncated-map-skip",
        _eval_dirs(_truncated_pred, "--skip-bad"),
        ["skipped 1"],
        rc=0,
        after=lambda t: _check_skipped(t, "synth_00002"),
    ),
    Case(
        "eval-zero-byte-mask", _eval_dirs(_zero_byte_mask), ["synth_00003.png", "could not be read"]
    ),
    Case("eval-out-is-a-file", _out_is_file, ["eval", "is a file"]),
    Case(
        "eval-tolerance-nan",
        _eval_dirs(_as_is, "--tolerance", "nan"),
        ["--tolerance nan", "from 0 (exact) to 100"],
        after=_no_eval_written,
    ),
    Case(
        "eval-tolerance-huge",
        _eval_dirs(_as_is, "--tolerance", "1e9"),
        ["--tolerance 1000000000.0", "to 100"],
        after=_no_eval_written,
    ),
    Case(
        "eval-ckpt-tolerance-inf",
        lambda t: [*_ckpt_eval(_good_checkpoint)(t), "--tolerance", "inf"],
        ["--tolerance inf"],
    ),
    Case(
        "eval-decompression-bomb-map",
        _eval_dirs(_bomb_map),
        ["prediction map", "synth_00001_prob.png", "too large", "MAX_IMAGE_PIXELS"],
    ),
    Case(
        "eval-decompression-bomb-map-skip",
        _eval_dirs(_bomb_map, "--skip-bad"),
        ["skipped 1"],
        rc=0,
        after=lambda t: _check_skipped(t, "synth_00001"),
    ),
    Case(
        "eval-pred-folder-missing",
        lambda t: ["evaluate", "--pred", str(t / "p"), "--gt", str(t)],
        ["prediction folder", "does not exist"],
    ),
    Case(
        "eval-ckpt-truncated-jpeg",
        _eval_ckpt_folder(_truncated_jpeg),
        ["synth_00002.jpg", "--skip-bad"],
    ),
    Case(
        "eval-ckpt-truncated-jpeg-skip",
        _eval_ckpt_folder(_truncated_jpeg, "--skip-bad"),
        ["ODS"],
        rc=0,
        after=lambda t: _check_skipped(t, "synth_00002"),
    ),
    Case("eval-ckpt-data-missing", _eval_missing_data, ["nodata", "does not exist"]),
    # -- the other commands
    Case("info-size-0", lambda t: ["info", "carnet", "--size", "0", "0"], ["--size 0 0"]),
    Case("info-unknown-model", lambda t: ["info", "carnett"], ["unknown model 'carnett'"]),
    Case(
        "synth-n-0",
        lambda t: ["synth", "--out", str(t / "s"), "--n", "0"],
        ["n must be a positive integer"],
    ),
    Case(
        "synth-size-too-small",
        lambda t: ["synth", "--out", str(t / "s"), "--n", "1", "--size", "8"],
        ["at least 32"],
    ),
    Case("recalibrate-not-a-run", _recalibrate_not_a_run, ["empty", "last.safetensors"]),
    Case(
        "recalibrate-batches-negative",
        lambda t: [*_recalibrate_not_a_run(t), "--batches", "-3"],
        ["--batches -3", "1 to 100000"],
    ),
    Case(
        "recalibrate-batches-0",
        lambda t: [*_recalibrate_not_a_run(t), "--batches", "0"],
        ["--batches 0", "1 to 100000"],
    ),
    Case(
        "predict-road-axis-nan",
        lambda t: _predict_argv(t, "--measure", "--road-axis", "nan"),
        ["--road-axis", "nan"],
        after=_no_predictions_written,
    ),
    Case(
        "synth-into-a-foreign-folder",
        _synth_into_foreign_folder,
        ["images/road.jpg", "did not write", "new or empty folder"],
        after=_foreign_folder_untouched,
    ),
    Case(
        "synth-again-smaller",
        _synth_again_smaller,
        ["wrote 2 images"],
        rc=0,
        after=_synth_set_of_two,
        warn=["removed 4 images and masks of an earlier, larger crackseg synth set"],
    ),
    Case("models-no-match", lambda t: ["models", "unet*"], ["no model matches 'unet*'"]),
    Case(
        "predict-mm-per-px-inf",
        lambda t: _predict_argv(t, "--mm-per-px", "inf"),
        ["--mm-per-px inf", "at most 1000"],
        after=_no_predictions_written,
    ),
    Case(
        "predict-mm-per-px-1e300",
        lambda t: _predict_argv(t, "--mm-per-px", "1e300"),
        ["--mm-per-px 1e+300", "at most 1000"],
        after=_no_predictions_written,
    ),
    Case(
        "exported-size-divisor-0",
        _exported(size_divisor=0),
        ["m.pt", "metadata field size_divisor is 0", "re-export"],
        after=_no_predictions_written,
    ),
    Case(
        "exported-mean-nan",
        _exported(mean=[float("nan"), 0.5, 0.5]),
        ["m.pt", "metadata field mean is [nan, 0.5, 0.5]", "re-export"],
        after=_no_predictions_written,
    ),
    Case(
        "exported-std-zero",
        _exported(std=[0.25, 0.0, 0.25]),
        ["m.pt", "metadata field std is [0.25, 0.0, 0.25]", "> 0", "re-export"],
        after=_no_predictions_written,
    ),
    Case(
        "exported-threshold-nan",
        _exported(threshold=float("nan")),
        ["m.pt", "metadata field threshold is nan"],
        after=_no_predictions_written,
    ),
]


def _check_missing(tmp: Path) -> None:
    m = _metrics(tmp)
    assert m["num_missing_predictions"] == 3 and m["num_images"] == 1
    assert all("synth_0000" in p for p in m["missing_predictions"])


def _check_skipped(tmp: Path, name: str) -> None:
    m = _metrics(tmp)
    assert m["num_skipped"] == 1 and name in json.dumps(m["skipped"])


def test_the_corpus_is_big_enough():
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path, capsys, monkeypatch):
    if case.skip_root and ROOT:
        pytest.skip("permissions do not bind this process (root)")
    monkeypatch.chdir(tmp_path)
    argv = case.build(tmp_path)
    capsys.readouterr()
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == case.rc, f"{argv}\nstdout: {out[-2000:]}\nstderr: {err[-2000:]}"
    assert "Traceback" not in err
    # progress bars redraw with "\r"; everything else is crackseg's own lines: warnings are
    # plain lines, without Python's source line
    segments = [seg for ln in err.splitlines() for seg in ln.split("\r") if seg.strip()]
    lines = [seg for seg in segments if seg.startswith("crackseg")]
    others = [seg for seg in segments if not seg.startswith("crackseg")]
    assert all("/s]" in seg for seg in others), err
    errors = [ln for ln in lines if ": error: " in ln]
    if case.rc == 2:
        assert len(errors) == 1, err  # one line
        for s in case.expect:
            assert s in errors[0], f"{s!r} not in {errors[0]!r}"
    else:
        assert not errors, err
        for s in case.expect:
            assert s in out + err, f"{s!r} not in the output"
    for s in case.warn:
        assert any(s in ln for ln in lines if ln.startswith("crackseg: warning:")), err
    if case.after:
        case.after(tmp_path)


def _folder_bits_bind(monkeypatch) -> None:
    """Make a folder without its owner's write bit refuse new entries for this process, as the
    kernel does for anyone but root (whose CAP_DAC_OVERRIDE ignores the bits): the read-only run
    cases then run, and can fail, as root too."""
    import builtins
    import errno
    import io

    def refuse_new(path) -> None:
        p = Path(os.fsdecode(path))
        if not p.exists() and p.parent.is_dir() and not p.parent.stat().st_mode & 0o200:
            raise PermissionError(errno.EACCES, "Permission denied", str(p))

    real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir

    def open_(file, mode="r", *args, **kwargs):
        if isinstance(file, str | bytes | os.PathLike) and set(mode) & set("wxa+"):
            refuse_new(file)
        return real_open(file, mode, *args, **kwargs)

    def os_open(path, flags, *args, **kwargs):
        if flags & os.O_CREAT:
            refuse_new(path)
        return real_os_open(path, flags, *args, **kwargs)

    def mkdir(path, *args, **kwargs):
        refuse_new(path)
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", open_)
    monkeypatch.setattr(io, "open", open_)
    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(os, "mkdir", mkdir)


def test_resume_into_a_read_only_run_fails_before_training(tmp_path, capsys, monkeypatch):
    """Without TensorBoard (optional; its writer would fail at once) the first write into a
    read-only run used to be the checkpoint after a whole validation interval: now nothing is
    trained, the run folder is named with the fix, and nothing in it changes."""
    import crackseg.engine.train as train_mod

    argv = _resume_read_only(tmp_path)

    def validate(*args, **kwargs):
        raise AssertionError("trained a validation interval before checking the run folder")

    monkeypatch.setattr(train_mod, "_tensorboard", lambda *a, **k: None)
    monkeypatch.setattr(train_mod, "validate", validate)
    _folder_bits_bind(monkeypatch)
    capsys.readouterr()
    try:
        rc = main(argv)
    finally:
        monkeypatch.undo()
        _writable_again(tmp_path)
    _run_untouched(tmp_path)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert f"--resume {tmp_path / 'run'}: cannot write to" in err and "chmod -R u+w" in err


def test_a_bug_keeps_its_traceback(monkeypatch, capsys):
    """Only expected failures become one-line messages; a KeyError from a dict lookup or a
    ValueError from inside a library is a bug and must stay visible as one."""
    import crackseg.cli as cli

    def buggy(args):
        return {}["missing"]

    def library_error(args):
        return int(np.array([1, 2]))  # TypeError/ValueError raised inside numpy

    for func in (buggy, library_error):
        monkeypatch.setattr(cli, "_cmd_info", func)
        with pytest.raises((KeyError, TypeError, ValueError)):
            main(["info", "carnet"])


def test_expected_errors_can_show_their_traceback(monkeypatch):
    monkeypatch.setenv("CRACKSEG_DEBUG", "1")
    with pytest.raises(ValueError, match="--size 0 0"):
        main(["info", "carnet", "--size", "0", "0"])
