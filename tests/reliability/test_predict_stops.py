"""``crackseg predict`` stopped, starved or fed something odd still leaves an honest record.

* interrupted (Ctrl-C in process, a real SIGTERM and a SIGKILL to a subprocess, each sent at a
  crash point after the first image: ``crackseg.faults.crash_point``), the record
  (``predictions.json``) and the report describe what was done, marked interrupted, and a
  reused ``--out`` never keeps the record of an earlier run;
* an ``--out`` that cannot be written is refused before the first photo; a disk that fills up
  (an injected ENOSPC, and OpenCV's encoder against the real ``/dev/full``) is one line and a
  clean stop, without "skipped" photos or orphan outputs;
* ``--out`` inside an input folder is not read back as input;
* a damaged video says how many frames were read and why it stopped;
* ``--mm-per-px`` out of range and exported models with bad metadata are one-line errors.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
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
from crackseg.inference import run as predict_run
from crackseg.models.weights_io import save_weights

TINY = dict(widths=[8, 16, 16, 32], blocks=[0, 1, 1, 1])
STALE = {"summary": {"done": 99}, "images": [{"name": "from_another_run"}]}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_weights(path, create_model("carnet", **TINY), "carnet", TINY, {"threshold": 0.5})
    return path


def photos(folder: Path, n: int = 4, size: int = 64) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        image = generate(seed=k, size=size, condition="sunny")[0]
        Image.fromarray(image).save(folder / f"p{k}.png")
    return folder


def reused_out(out: Path) -> Path:
    """An --out holding the record, report and crack table of an earlier run."""
    out.mkdir(parents=True)
    (out / "predictions.json").write_text(json.dumps(STALE))
    (out / "report.html").write_text("<html>an earlier run</html>")
    (out / "cracks.csv").write_text("image,id\nfrom_another_run,1\n")
    return out


def predict_argv(inputs: Path, out: Path, checkpoint: Path, *extra: str) -> list[str]:
    return ["predict", str(inputs), "--checkpoint", str(checkpoint), "--out", str(out),
            "--quiet", "--threads", "1", *extra]  # fmt: skip


def record(out: Path) -> dict:
    return json.loads((out / "predictions.json").read_text())


def temp_files(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith("."))


def error_lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("crackseg predict: error: ")]


# ------------------------------------------------------------------------------ interrupts
def test_ctrl_c_after_two_images_writes_the_record_and_report_of_what_was_done(
    tmp_path, checkpoint, monkeypatch, capsys
):
    inputs = photos(tmp_path / "in")
    out = reused_out(tmp_path / "out")
    real = predict_run._predict_one
    calls = []

    def ctrl_c_at_the_third(*args, **kwargs):  # the user presses Ctrl-C during the 3rd photo
        calls.append(args[-1])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(predict_run, "_predict_one", ctrl_c_at_the_third)
    assert main(predict_argv(inputs, out, checkpoint)) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and "crackseg: interrupted" in err and "2 of 4" in err
    rec = record(out)
    assert rec["summary"]["status"] == "interrupted"
    assert rec["summary"]["done"] == 2 and rec["summary"]["inputs"] == 4
    assert [i["name"] for i in rec["images"]] == ["p0", "p1"]
    assert [Path(s).name for s in rec["summary"]["not_done"]] == ["p2.png", "p3.png"]
    report = (out / "report.html").read_text()
    assert 'data-count="done">2<' in report and "interrupted" in report
    assert not (out / "cracks.csv").exists()  # the earlier run's table is not left behind
    assert sorted(p.name for p in out.glob("*_prob.png")) == ["p0_prob.png", "p1_prob.png"]
    assert temp_files(out) == []


def test_ctrl_c_while_an_image_is_written_leaves_no_orphan_outputs(
    tmp_path, checkpoint, monkeypatch
):
    inputs = photos(tmp_path / "in", n=2)
    out = tmp_path / "out"
    real = predict_run.save_png

    def interrupted_after_the_prob_map_of_p1(path, array):
        real(path, array)
        if path.name == "p1_prob.png":
            raise KeyboardInterrupt

    monkeypatch.setattr(predict_run, "save_png", interrupted_after_the_prob_map_of_p1)
    assert main(predict_argv(inputs, out, checkpoint, "--no-report")) == 130
    assert [i["name"] for i in record(out)["images"]] == ["p0"]
    assert sorted(p.name for p in out.glob("p1_*")) == []  # p1 is not recorded: no p1 files
    assert temp_files(out) == []


def _subprocess_predict(argv: list[str], crash: str, signal_name: str | None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CRACKSEG_CRASH_AT": crash}
    env.pop("CRACKSEG_CRASH_SIGNAL", None)
    if signal_name:
        env["CRACKSEG_CRASH_SIGNAL"] = signal_name
    return subprocess.run(
        [sys.executable, "-m", "crackseg", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_sigterm_after_the_first_image_writes_an_interrupted_record(tmp_path, checkpoint):
    inputs = photos(tmp_path / "in", n=3)
    out = reused_out(tmp_path / "out")
    # the process sends itself SIGTERM when it passes the crash point after its first input
    r = _subprocess_predict(predict_argv(inputs, out, checkpoint), "predict:input@1", "SIGTERM")
    assert r.returncode == 130, r.stderr[-3000:]
    assert "Traceback" not in r.stderr and "SIGTERM" in r.stderr
    rec = record(out)
    assert rec["summary"]["status"] == "interrupted" and rec["summary"]["done"] == 1
    assert [i["name"] for i in rec["images"]] == ["p0"]
    assert len(rec["summary"]["not_done"]) == 2
    assert 'data-count="done">1<' in (out / "report.html").read_text()
    assert temp_files(out) == []


def test_sigkill_leaves_a_running_record_never_the_earlier_runs(tmp_path, checkpoint):
    inputs = photos(tmp_path / "in", n=3)
    out = reused_out(tmp_path / "out")
    r = _subprocess_predict(predict_argv(inputs, out, checkpoint), "predict:input@1", None)
    assert r.returncode == -9, r.stderr[-3000:]
    rec = record(out)  # nothing can run at a SIGKILL: the record says the run did not end
    assert rec["summary"]["status"] == "running" and rec["images"] == []
    assert not (out / "report.html").exists() and not (out / "cracks.csv").exists()


# ------------------------------------------------------------------------------ the output
def _make_unwritable(folder: Path):
    """An immutable folder (chattr +i binds root too), or without root a read-only one; the
    function that undoes it. Skips where neither binds."""
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o500)
        return lambda: folder.chmod(0o700)
    chattr = shutil.which("chattr")
    if chattr and subprocess.run([chattr, "+i", str(folder)], capture_output=True).returncode == 0:
        return lambda: subprocess.run([chattr, "-i", str(folder)], check=True)
    pytest.skip("root, and no chattr +i here: nothing makes a folder read-only")


def test_an_unwritable_out_is_refused_before_the_first_photo(
    tmp_path, checkpoint, monkeypatch, capsys
):
    inputs = photos(tmp_path / "in", n=2)
    out = tmp_path / "locked"
    undo = _make_unwritable(out)
    calls = []
    real = predict_run._predict_one

    def counted(*args, **kwargs):
        calls.append(args[-1])
        return real(*args, **kwargs)

    monkeypatch.setattr(predict_run, "_predict_one", counted)
    try:
        rc = main(predict_argv(inputs, out, checkpoint))
    finally:
        undo()
    err = capsys.readouterr().err
    assert rc == 2 and calls == []  # not one photo computed
    assert len(error_lines(err)) == 1 and "Traceback" not in err
    assert f"--out {out}" in error_lines(err)[0] and "not writable" in error_lines(err)[0]


@pytest.mark.parametrize("room_for_the_record", [True, False], ids=["record-fits", "all-full"])
def test_a_full_disk_is_one_line_and_a_clean_stop(
    tmp_path, checkpoint, monkeypatch, capsys, room_for_the_record
):
    """The disk fills up during the second photo: the first one's outputs are kept, the second
    leaves nothing behind, the others are not tried, and no photo is reported 'skipped'."""
    inputs = photos(tmp_path / "in", n=4)
    out = reused_out(tmp_path / "out")
    real = predict_run.atomic_write
    full = []

    def disk(path, write, **how):  # room for p1_prob.png, not for the other two files of p1
        small = path.suffix in (".json", ".html")
        if (full or path.name in ("p1_mask.png", "p1_overlay.jpg")) and not (
            small and room_for_the_record
        ):
            full.append(path.name)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(path, write, **how)

    monkeypatch.setattr(predict_run, "atomic_write", disk)
    rc = main(predict_argv(inputs, out, checkpoint, "--no-report"))
    std, err = capsys.readouterr()
    assert rc == 2, err
    assert "Traceback" not in err and "skipped" not in std + err
    lines = error_lines(err)
    assert len(lines) == 1 and f"--out {out}" in lines[0] and "no space left" in lines[0].lower()
    assert "1 of 4" in lines[0]
    assert sorted(p.name for p in out.glob("p*_*")) == [
        "p0_mask.png", "p0_overlay.jpg", "p0_prob.png"
    ]  # fmt: skip
    if room_for_the_record:
        rec = record(out)
        assert rec["summary"]["status"] == "failed" and rec["summary"]["done"] == 1
        assert "no space left" in rec["summary"]["error"].lower()
        assert [i["name"] for i in rec["images"]] == ["p0"]
    else:  # nothing could be written: no record at all, rather than the earlier run's
        assert not (out / "predictions.json").exists()
        assert "predictions.json" in lines[0]
    assert temp_files(out) == []


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs Linux's /dev/full")
@pytest.mark.parametrize("kind", ["png", "jpeg"])
def test_a_write_to_a_full_device_raises_enospc(monkeypatch, kind):
    """OpenCV's own writer returns True on a full disk for a small image (nothing written);
    the outputs must find out."""

    def onto_dev_full(path, write, **how):
        write("/dev/full")

    monkeypatch.setattr(predict_run, "atomic_write", onto_dev_full)
    image = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(OSError) as e:
        if kind == "png":
            predict_run.save_png(Path("x_prob.png"), image[:, :, 0])
        else:
            predict_run.save_jpeg_rgb_inplace(Path("x_overlay.jpg"), image)
    assert e.value.errno == errno.ENOSPC


# ------------------------------------------------------------------------------ the inputs
def test_out_inside_the_input_folder_is_not_read_back(tmp_path, checkpoint, capsys):
    inputs = photos(tmp_path / "in", n=2)
    out = inputs / "predictions"
    for _ in range(2):  # the second run must not predict the first one's outputs
        assert main(predict_argv(inputs, out, checkpoint, "--no-report")) == 0
        assert sorted(i["name"] for i in record(out)["images"]) == ["p0", "p1"]
    # the input folder inside --out is fine: its photos are the inputs
    outer = tmp_path / "outer"
    photos(outer / "photos", n=1)
    assert main(predict_argv(outer / "photos", outer, checkpoint, "--no-report")) == 0
    assert [i["name"] for i in record(outer)["images"]] == ["p0"]
    # --out the input folder itself: every output would be read back next time
    capsys.readouterr()
    assert main(predict_argv(inputs, inputs, checkpoint)) == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and f"--out {inputs}" in lines[0] and "input folder" in lines[0]


def _video(path: Path, frames: int) -> Path:
    cv2 = pytest.importorskip("cv2")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 64))
    for k in range(frames):
        writer.write(np.ascontiguousarray(generate(seed=k, size=96, condition="sunny")[0][:64]))
    writer.release()
    return path


def _readable_frames(path: Path) -> tuple[int, int]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    total, n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0
    while cap.grab():
        n += 1
    cap.release()
    return n, total


def test_a_damaged_video_says_how_many_frames_were_read(tmp_path, checkpoint, capsys):
    video = _video(tmp_path / "drive.avi", 20)
    data = video.read_bytes()
    video.write_bytes(data[: len(data) * 3 // 10])  # the last 70 % lost (an aborted copy)
    read, total = _readable_frames(video)
    assert total == 20 and 0 < read < 20  # the header still announces 20 frames
    out = tmp_path / "frames"
    rc = main(predict_argv(video, out, checkpoint, "--every", "1", "--no-report"))
    said = "".join(capsys.readouterr())
    assert rc == 1  # done, but not everything: scripts can tell
    assert f"incomplete {video}: video {video}: read {read} of the {total} frames" in said
    assert "damaged or truncated" in said and f"the {read} frame(s) predicted before" in said
    rec = record(out)
    frames = [i for i in rec["images"] if i["status"] == "done"]
    assert [i["frame"] for i in frames] == list(range(read))  # every frame read was predicted
    (bad,) = rec["summary"]["skipped_files"]
    assert bad["source"] == str(video) and f"read {read} of the {total} frames" in bad["error"]


def test_a_whole_video_is_not_flagged(tmp_path, checkpoint, capsys):
    video = _video(tmp_path / "drive.avi", 6)
    rc = main(predict_argv(video, tmp_path / "o", checkpoint, "--every", "2", "--no-report"))
    assert rc == 0 and "frames" not in "".join(capsys.readouterr())


BAD_METADATA = [
    ("size_divisor", 0),
    ("size_divisor", -16),
    ("mean", [0.485, math.nan, 0.406]),
    ("mean", [0.5, 0.5]),
    ("std", [0.229, 0.0, 0.225]),
    ("std", [0.229, -0.2, 0.225]),
    ("threshold", math.nan),
    ("threshold", 1.5),
]


def _metadata(**bad) -> dict:
    from crackseg.meta import ModelMeta

    good = ModelMeta(
        model="carnet", name="tiny", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
        threshold=0.5, size_divisor=16, format="onnx",
    )  # fmt: skip
    return {**good.to_dict(), **bad}


@pytest.mark.parametrize("field,value", BAD_METADATA, ids=[f"{f}={v}" for f, v in BAD_METADATA])
def test_exported_metadata_out_of_range_names_the_file_and_the_field(tmp_path, field, value):
    from crackseg.inference.backends import ExportedModelError
    from crackseg.meta import ModelMeta

    path = tmp_path / "model.pt"
    text = json.dumps(_metadata(**{field: value}))
    with pytest.raises(ExportedModelError) as e:
        ModelMeta.from_json(text, path, ExportedModelError)
    msg = str(e.value)
    assert str(path) in msg and field in msg and "re-export" in msg
    assert "--tile-size" not in msg and "--threshold" not in msg


@pytest.mark.parametrize("field,value", BAD_METADATA[::2], ids=[f for f, _ in BAD_METADATA[::2]])
def test_predict_with_an_onnx_file_with_bad_metadata_is_one_line(tmp_path, capsys, field, value):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 3, "h", "w"])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 1, "h", "w"])
    node = helper.make_node("ReduceMean", ["image"], ["logits"], axes=[1], keepdims=1)
    model = helper.make_model(
        helper.make_graph([node], "g", [x], [y]), opset_imports=[helper.make_opsetid("", 17)]
    )
    props = {"crackseg": "crackseg-export"}
    props.update({f"crackseg.{k}": json.dumps(v) for k, v in _metadata(**{field: value}).items()})
    helper.set_model_props(model, props)
    path = tmp_path / "bad.onnx"
    onnx.save(model, str(path))
    inputs = photos(tmp_path / "in", n=1)
    argv = ["predict", str(inputs), "--checkpoint", str(path), "--out", str(tmp_path / "o"),
            "--quiet"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = error_lines(err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert str(path) in lines[0] and field in lines[0]
