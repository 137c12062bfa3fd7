"""The command line as a user runs it: help, models, info, synth, demo, evaluate, errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from crackseg.cli import main


def test_help_lists_every_command(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for cmd in ("demo", "models", "info", "synth", "train", "evaluate"):
        assert f"\n  {cmd}" in out
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    assert "--tolerance" in capsys.readouterr().out


def test_console_script_entry_point_runs():
    res = subprocess.run(
        [sys.executable, "-m", "crackseg", "models"], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0 and "carnet_resnet34" in res.stdout


def test_info_reports_params_flops_stages(capsys):
    assert main(["info", "carnet", "--size", "256", "256", "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["params"] == 4_953_233
    assert facts["encoder_conv_layers"] == 34
    assert facts["flops"] == 2 * facts["macs"]
    assert [s["stride"] for s in facts["stages"]] == [2, 4, 8, 16]
    assert facts["stages"][1]["shape"] == [1, 64, 64, 64]
    assert main(["info", "carnet", "--size", "64", "96"]) == 0
    assert "34" in capsys.readouterr().out


def test_unknown_model_is_a_clear_error(capsys):
    assert main(["info", "carnett"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'carnett'" in err and "carnet_hed" in err and "Traceback" not in err


def test_synth_writes_a_dataset(tmp_path, capsys):
    out = tmp_path / "syn"
    assert (
        main(["synth", "--out", str(out), "--n", "3", "--size", "64", "--condition", "night"]) == 0
    )
    assert len(list((out / "images").glob("*.png"))) == 3
    assert len(list((out / "masks").glob("*.png"))) == 3
    assert main(["synth", "--out", str(out), "--n", "1", "--condition", "foggy"]) == 2
    assert "sunny" in capsys.readouterr().err


def test_demo_quick_writes_every_file(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("F1@0.5", "IoU@0.5", "ODS@2px", "OIS@2px", "AP@2px", "wall_s", "machine"):
        assert key in metrics
    assert 0.0 <= metrics["F1@0.5"] <= 1.0
    for files in metrics["files"].values():
        for name in files:
            img = np.asarray(Image.open(out / name))
            assert img.size > 0
    probs = list(out.glob("*_prob.png"))
    overlays = list(out.glob("*_overlay.png"))
    assert len(probs) == 3 and len(overlays) == 3
    assert (out / "run" / "best.safetensors").exists()


def test_train_then_evaluate_checkpoint_and_maps(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train"]
    for kv in [
        "model_kwargs={widths: [8, 16, 16, 32], blocks: [0, 1, 1, 1]}",
        "train_data=[synth:6:64]",
        "crop_size=48",
        "batch_size=2",
        "num_workers=0",
        "iterations=3",
        "val_every=3",
        "warmup_iters=1",
        "progress=false",
        f"out_dir={run}",
    ]:
        args += ["--set", kv]
    assert main(args) == 0
    capsys.readouterr()
    out = tmp_path / "eval"
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(run),
                "--data",
                "synth:3:64",
                "--out",
                str(out),
                "--save-maps",
                "--tolerance",
                "0",
            ]
        )
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["tolerance"] == 0 and metrics["num_images"] == 3
    assert (out / "per_image.csv").exists() and (out / "pr_curve.png").exists()
    maps = sorted(out.glob("*_prob.png"))
    assert len(maps) == 3
    # the same maps scored from disk give the same numbers
    gt = tmp_path / "gt"
    gt.mkdir()
    from crackseg.data.datasets import parse_dataset_spec

    ds = parse_dataset_spec("synth:3:64", split="test")
    for i, name in enumerate(ds.names):
        Image.fromarray(ds.sample(i)[1].astype(np.uint8) * 255).save(gt / f"{name}.png")
    out2 = tmp_path / "eval2"
    assert (
        main(
            [
                "evaluate",
                "--pred",
                str(out),
                "--gt",
                str(gt),
                "--out",
                str(out2),
                "--tolerance",
                "0",
            ]
        )
        == 0
    )
    again = json.loads((out2 / "metrics.json").read_text())
    assert again["ODS"] == pytest.approx(metrics["ODS"], abs=1e-6)


def test_evaluate_argument_errors(tmp_path, capsys):
    assert main(["evaluate", "--pred", str(tmp_path)]) == 2
    assert "--gt" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", str(tmp_path / "nope"), "--data", "synth:2"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_truncated_checkpoint_is_a_clear_cli_error(tmp_path, capsys):
    bad = tmp_path / "best.safetensors"
    bad.write_bytes(b"\x00" * 10)
    assert main(["evaluate", "--checkpoint", str(bad), "--data", "synth:2"]) == 2
    err = capsys.readouterr().err
    assert "truncated" in err and "Traceback" not in err


def test_readme_workflow_on_a_users_own_folder(tmp_path, capsys):
    """The README's commands on a plain images/ + masks/ folder: train, resume, evaluate."""
    data = tmp_path / "mine"
    assert main(["synth", "--out", str(data), "--n", "6", "--size", "64"]) == 0
    # masks named <stem>_mask.png, as many users' folders are
    for m in (data / "masks").glob("*.png"):
        m.rename(m.with_name(f"{m.stem}_mask.png"))
    spec = f"folder:{data / 'images'}:{data / 'masks'}:_mask"
    run = tmp_path / "runs" / "mine"
    config = Path(__file__).parents[1] / "configs" / "carnet_deepcrack.yaml"
    args = ["train", str(config)]
    for kv in [
        f"train_data=[{spec}]",
        f"out_dir={run}",
        "model_kwargs={widths: [8, 16, 16, 32], blocks: [0, 1, 1, 1]}",
        "crop_size=48",
        "iterations=2",
        "val_every=2",
        "warmup_iters=1",
        "num_workers=0",
        "progress=false",
    ]:
        args += ["--set", kv]
    assert main(args) == 0
    assert json.loads((run / "last.json").read_text())["step"] == 2
    # resuming a finished run is harmless: it reports the run and changes nothing
    before = (run / "last.safetensors").read_bytes()
    assert main(["train", "--resume", str(run)]) == 0
    assert (run / "last.safetensors").read_bytes() == before
    capsys.readouterr()
    out = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(run), "--data", spec, "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_images"] == 6 and 0.0 <= metrics["ODS"] <= 1.0
    assert "ODS" in capsys.readouterr().out


def test_evaluate_with_tta_or_scale_records_it(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train"]
    for kv in [
        "model_kwargs={widths: [8, 16, 16, 32], blocks: [0, 1, 1, 1]}",
        "train_data=[synth:4:64]",
        "crop_size=48",
        "batch_size=2",
        "num_workers=0",
        "iterations=2",
        "val_every=2",
        "warmup_iters=1",
        "progress=false",
        f"out_dir={run}",
    ]:
        args += ["--set", kv]
    assert main(args) == 0
    scores = {}
    for tta in (False, True):
        out = tmp_path / f"eval_{tta}"
        argv = ["evaluate", "--checkpoint", str(run / "last.safetensors"), "--data", "synth:2:64"]
        assert main([*argv, "--out", str(out), *(["--tta"] if tta else [])]) == 0
        scores[tta] = json.loads((out / "metrics.json").read_text())
        assert scores[tta]["tta"] is tta
    assert scores[True]["AP"] != scores[False]["AP"]  # the averaged maps really differ
    for scale in ("0.5", "auto"):
        out = tmp_path / f"eval_{scale}"
        assert main([*argv, "--out", str(out), "--scale", scale]) == 0
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["predictor"]["scale"] == (0.5 if scale == "0.5" else "auto")
        if scale == "0.5":
            assert metrics["AP"] != scores[False]["AP"]  # really predicted at half size
    assert scores[False]["predictor"]["scale"] == 1.0
    pred = ["evaluate", "--pred", str(tmp_path), "--gt", str(tmp_path), "--scale", "0.5"]
    assert main(pred) == 2
    assert "--scale applies to --checkpoint" in capsys.readouterr().err


_WITHOUT_TORCH = """
import sys

class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "timm"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, NoTorch())
from crackseg.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize(
    "argv", [["train", "carnet_field"], ["demo", "--quick"], ["export", "--out", "m.onnx"]]
)
def test_a_command_that_needs_torch_names_the_install_in_one_line(argv, tmp_path):
    """Without PyTorch, training / demo / export exit 2 with one line naming the extra."""
    src = str(Path(__file__).resolve().parents[1] / "src")
    res = subprocess.run(
        [sys.executable, "-c", _WITHOUT_TORCH, *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": src},
        timeout=120,
    )
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert lines[0].startswith(f"crackseg {argv[0]}: error: ")
    assert 'pip install "crackseg[train]"' in lines[0]


def test_import_crackseg_and_list_models_need_no_torch(tmp_path):
    code = _WITHOUT_TORCH.split("from crackseg.cli import main")[0] + (
        "import crackseg\nprint(','.join(crackseg.list_models('carnet*')))\n"
        "print('torch' in sys.modules)\n"
    )
    src = str(Path(__file__).resolve().parents[1] / "src")
    res = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": src},
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    names, torch_loaded = res.stdout.split()
    assert "carnet" in names.split(",") and "carnet_s" in names.split(",")
    assert torch_loaded == "False"


def test_the_parser_reads_train_keys_and_recipes_without_importing_the_engine():
    """`crackseg predict` builds every command's parser: the train help's key and recipe lists
    come from the sources, and must be the real ones."""
    import dataclasses

    from crackseg.engine.cli import _config_keys, _recipes
    from crackseg.engine.train import TrainConfig, list_recipes

    assert _config_keys() == [f.name for f in dataclasses.fields(TrainConfig)]
    assert _recipes() == list_recipes()
