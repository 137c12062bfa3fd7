"""``crackseg predict`` end to end: files, folders, odd formats, videos, bad files, torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from crackseg import create_model
from crackseg.cli import main
from crackseg.data.synth import generate
from crackseg.inference.run import collect_inputs, shard
from crackseg.models.weights_io import save_weights

TINY = dict(widths=[8, 16, 16, 32], blocks=[0, 1, 1, 1])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_weights(path, create_model("carnet", **TINY), "carnet", TINY, {"threshold": 0.5})
    return path


def photo(seed: int = 0, size: int = 96) -> np.ndarray:
    return generate(seed=seed, size=size, condition="sunny")[0]


@pytest.fixture()
def folder(tmp_path) -> Path:
    """Every kind of input a user brings, plus one broken file."""
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    rgb = photo(0)
    Image.fromarray(rgb).save(d / "plain.jpg")
    Image.fromarray(rgb[:, :, 0]).save(d / "grey.png")
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)])).save(d / "rgba.png")
    Image.fromarray(rgb).convert("CMYK").save(d / "cmyk.jpg")
    Image.fromarray(rgb[:, :, 1].astype(np.uint16) * 257).save(d / "sixteen.png")
    wide = photo(1)[:60]  # 60 x 96, stored sideways with EXIF orientation 6 (rotate 90 CW)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.ascontiguousarray(np.rot90(wide, 1))).save(d / "sub" / "exif.jpg", exif=exif)
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (d / "notes.txt").write_text("not an image: ignored")
    return d


def test_predict_folder_writes_every_output_and_skips_the_broken_file(folder, checkpoint, tmp_path):
    out = tmp_path / "out"
    rc = main(["predict", str(folder), "--checkpoint", str(checkpoint), "--out", str(out),
               "--quiet", "--no-report"])  # fmt: skip
    assert rc == 1  # done, but one file skipped: scripts can tell
    record = json.loads((out / "predictions.json").read_text())
    assert record["summary"]["done"] == 6 and record["summary"]["skipped"] == 1
    assert record["summary"]["skipped_files"][0]["source"].endswith("broken.jpg")
    assert record["threshold"] == 0.5
    sizes = {
        r["name"]: (r["height"], r["width"]) for r in record["images"] if r["status"] == "done"
    }
    assert sizes["exif"] == (60, 96)  # as displayed (EXIF applied), not as stored (96 x 60)
    for name, (h, w) in sizes.items():
        for suffix in ("_prob.png", "_mask.png", "_overlay.jpg"):
            with Image.open(out / f"{name}{suffix}") as im:
                assert im.size == (w, h), (name, suffix)
        mask = np.asarray(Image.open(out / f"{name}_mask.png"))
        prob = np.asarray(Image.open(out / f"{name}_prob.png"))
        assert set(np.unique(mask)) <= {0, 255}
        np.testing.assert_array_equal(mask == 255, prob >= 128)  # the threshold of the record
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_predict_single_file_exit_zero_and_glob(folder, checkpoint, tmp_path):
    out = tmp_path / "o"
    assert main(["predict", str(folder / "plain.jpg"), "--checkpoint", str(checkpoint),
                 "--out", str(out), "--quiet", "--no-report"]) == 0  # fmt: skip
    assert (out / "plain_prob.png").exists()
    items = collect_inputs([str(folder)], glob="*.png")
    assert sorted(i.stem for i in items) == ["grey", "rgba", "sixteen"]


def test_scale_auto_from_the_command_line(folder, checkpoint, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["predict", str(folder / "plain.jpg"), "--checkpoint", str(checkpoint),
                 "--out", str(out), "--quiet", "--no-report", "--scale", "auto"]) == 0  # fmt: skip
    assert json.loads((out / "predictions.json").read_text())["predictor"]["scale"] == "auto"
    with Image.open(out / "plain_prob.png") as im:
        assert im.size == (96, 96)
    with pytest.raises(SystemExit) as e:
        main(["predict", str(folder / "plain.jpg"), "--out", str(out), "--scale", "fast"])
    assert e.value.code == 2
    assert "--scale: expected a number or 'auto', got 'fast'" in capsys.readouterr().err


def test_nothing_to_predict_and_missing_input_are_one_line_errors(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "no images or videos" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "nope.jpg"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_same_stem_in_two_folders_gets_two_outputs(tmp_path):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        Image.fromarray(photo()).save(tmp_path / sub / "x.jpg")
    stems = sorted(i.stem for i in collect_inputs([str(tmp_path)]))
    assert stems == ["a__x", "b__x"]


def test_video_every_nth_frame(tmp_path, checkpoint):
    cv2 = pytest.importorskip("cv2")
    path = tmp_path / "drive.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 64))
    for k in range(10):
        writer.write(np.ascontiguousarray(photo(k)[:64, :, ::-1]))
    writer.release()
    out = tmp_path / "frames"
    rc = main(["predict", str(path), "--every", "3", "--checkpoint", str(checkpoint),
               "--out", str(out), "--quiet", "--no-report"])  # fmt: skip
    assert rc == 0
    record = json.loads((out / "predictions.json").read_text())
    assert [r["frame"] for r in record["images"]] == [0, 3, 6, 9]
    assert (out / "drive_f000009_overlay.jpg").exists()


def test_sharding_is_a_partition():
    items = list(range(11))
    parts = [shard(items, r, 3) for r in range(3)]
    assert sorted(sum(parts, [])) == items


def test_torchrun_two_processes_predict_each_file_once(tmp_path, checkpoint):
    d = tmp_path / "many"
    d.mkdir()
    for k in range(7):
        Image.fromarray(photo(k, 64)).save(d / f"img{k}.png")
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", "29517", "-m", "crackseg", "predict", str(d), "--checkpoint",
           str(checkpoint), "--out", str(out), "--quiet", "--threads", "1"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    record = json.loads((out / "predictions.json").read_text())
    names = [i["name"] for i in record["images"]]
    assert sorted(names) == [f"img{k}" for k in range(7)]  # none twice, none missed
    assert record["summary"]["processes"] == 2
    assert len(list(out.glob("*_prob.png"))) == 7
    assert not list(out.glob(".predictions.rank*"))
    assert (out / "report.html").exists()
