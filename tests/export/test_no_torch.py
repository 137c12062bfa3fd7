"""The onnxruntime prediction path runs where torch cannot be imported at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image

from crackseg.data.synth import generate
from crackseg.inference import Predictor

SRC = Path(__file__).resolve().parents[2] / "src"

# Runs in a fresh interpreter: torch (and every torch.* module) is made unimportable before
# crackseg is imported, then the library path and the command line predict with the ONNX file.
CHILD = textwrap.dedent("""
    import json, sys

    class NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "torchvision"):
                raise ImportError(f"torch is blocked in this test (import {name})")

    sys.meta_path.insert(0, NoTorch())
    sys.modules["torch"] = None
    try:
        import torch  # noqa: F401
        sys.exit("the guard does not work: torch imported")
    except ImportError:
        pass

    import numpy as np
    from crackseg.cli import main
    from crackseg.data.io import read_image
    from crackseg.inference import Predictor

    model, photo, out = sys.argv[1:4]
    levels = Predictor.from_exported(model, threads=1).predict(read_image(photo)).levels
    np.save(out + "/levels.npy", levels)
    rc = main(["predict", photo, "--checkpoint", model, "--threads", "1", "--out", out,
               "--quiet", "--no-report"])
    loaded = sorted(m for m, mod in sys.modules.items()
                    if mod is not None and m.split(".")[0] in ("torch", "torchvision"))
    print(json.dumps({"rc": rc, "torch_modules": loaded}))
""")


def test_onnxruntime_prediction_imports_no_torch(tiny_exports, tiny_model, tmp_path):
    model = tiny_exports["onnx"].path
    photo = tmp_path / "road.png"
    Image.fromarray(generate(3, (120, 170), "rainy")[0]).save(photo)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(model), str(photo), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == {"rc": 0, "torch_modules": []}
    # the torch-free run gives this process's map (onnxruntime here, with torch importable)
    image = np.asarray(Image.open(photo))
    expected = Predictor.from_exported(model, threads=1).predict_levels(image)
    reference = Predictor.from_model(tiny_model).predict_levels(image)  # PyTorch, same weights
    assert np.abs(expected.astype(int) - reference).max() <= 1
    np.testing.assert_array_equal(np.load(tmp_path / "levels.npy"), expected)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "road_prob.png")), expected)
    record = json.loads((tmp_path / "predictions.json").read_text())
    assert record["predictor"]["backend"] == "onnxruntime"
