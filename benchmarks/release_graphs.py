"""Make the exported graphs shipped beside the weights, and record their parity (the wheel's).

    python benchmarks/release_graphs.py carnet_field            # the default model's graphs
    python benchmarks/release_graphs.py carnet_field --limit 20 # 20 test images per set (a check)

From ``src/crackseg/weights/NAME.safetensors`` (with ``crackseg.export.export_model``, which
checks every file against PyTorch as it writes it):

1. ``NAME.onnx``: the fp32 graph (ONNX; onnxruntime and OpenVINO both run it);
2. ``NAME.int8.xml`` + ``NAME.int8.bin``: the OpenVINO int8 graph (NNCF), calibrated on
   ``--calib-images`` photos of the *training* splits of the six real crack sets only;
3. the parity record, ``benchmarks/results/release_NAME.json``, on the test split of each of the
   six sets, every image predicted whole through the Predictor as ``crackseg predict`` does:
   fp32 graph against PyTorch fp32 (8-bit maps: largest and mean level difference, the bar is 2
   levels), and int8 graph against the fp32 graph (ODS / OIS / AP at 2 px, the bar is an ODS
   drop of at most 0.005 on every set), with the machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cross_dataset import DATA, SETS  # this folder's script: the six test sets  # noqa: E402

from crackseg.data.datasets import build_dataset  # noqa: E402
from crackseg.engine.evaluate import evaluate_maps  # noqa: E402
from crackseg.export import export_model  # noqa: E402
from crackseg.inference import Predictor  # noqa: E402
from crackseg.models.pretrained import get_weights, weights_dir  # noqa: E402
from crackseg.models.summary import machine_info  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MAX_LEVEL_DIFF = 2  # fp32 graph vs PyTorch, 8-bit levels
MAX_ODS_DROP = 0.005  # int8 vs fp32, per test set


def export_graphs(name: str, out: Path, calib: list[str], calib_images: int) -> dict:
    """Write ``NAME.onnx`` and ``NAME.int8.xml/.bin`` into ``out``; their export records."""
    fp32 = out / f"{name}.onnx"
    int8 = out / f"{name}.int8.xml"
    a = export_model(f"pretrained:{name}", "onnx", fp32)
    b = export_model(fp32, "openvino", int8, int8=True, calib=calib, calib_images=calib_images)
    return {"fp32": a.to_dict(), "int8": b.to_dict()}


def score_set(spec: str, predictors: dict[str, Predictor], limit: int | None) -> dict:
    """Maps of every predictor on one test split: level differences and ODS / OIS / AP."""
    data = build_dataset(spec, split="test")
    n = len(data) if limit is None else min(limit, len(data))
    maps: dict[str, list] = {k: [] for k in predictors}
    worst = {"fp32_graph_vs_torch": 0, "int8_vs_fp32_graph": 0}
    mean = {"fp32_graph_vs_torch": 0.0, "int8_vs_fp32_graph": 0.0}
    for i in range(n):
        image, mask = data.sample(i)
        levels = {k: p.predict_levels(image) for k, p in predictors.items()}
        for k, lv in levels.items():
            maps[k].append((str(i), lv, mask.astype(bool)))
        for key, (x, y) in {
            "fp32_graph_vs_torch": ("fp32_graph", "torch"),
            "int8_vs_fp32_graph": ("int8_graph", "fp32_graph"),
        }.items():
            d = np.abs(levels[x].astype(np.int16) - levels[y].astype(np.int16))
            worst[key] = max(worst[key], int(d.max()))
            mean[key] += float(d.mean()) / n
    scores = {
        k: {
            m: round(float(v), 4)
            for m, v in evaluate_maps(items, tolerance=2.0, progress=False).summary.items()
            if m in ("ODS", "OIS", "AP")
        }
        for k, items in maps.items()
    }
    return {"images": n, "max_level_diff": worst, "mean_level_diff": mean, "scores": scores}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name", help="shipped weights to release (crackseg models --pretrained)")
    ap.add_argument("--data-root", default=str(DATA))
    ap.add_argument("--calib-images", type=int, default=64)
    ap.add_argument("--limit", type=int, help="test images per set (default: all)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", help="record (default: benchmarks/results/release_NAME.json)")
    ap.add_argument("--folder", help="where the graphs go (default: the package's weights folder)")
    args = ap.parse_args(argv)
    get_weights(args.name)  # an unknown name stops here, with the shipped names
    specs = {k: v.format(root=args.data_root) for k, v in SETS.items()}
    t0 = time.perf_counter()
    folder = Path(args.folder) if args.folder else weights_dir()
    exports = export_graphs(args.name, folder, list(specs.values()), args.calib_images)
    predictors = {
        "torch": Predictor.from_pretrained(args.name, precision="fp32", threads=args.threads),
        "fp32_graph": Predictor.from_exported(
            folder / f"{args.name}.onnx", backend="openvino", threads=args.threads
        ),
        "int8_graph": Predictor.from_exported(
            folder / f"{args.name}.int8.xml", threads=args.threads
        ),
    }
    sets = {}
    for set_name, spec in specs.items():
        sets[set_name] = score_set(spec, predictors, args.limit)
        ods = {k: v["ODS"] for k, v in sets[set_name]["scores"].items()}
        print(f"{set_name}: ODS {ods}; max level diff {sets[set_name]['max_level_diff']}")
    fp32_ok = all(
        s["max_level_diff"]["fp32_graph_vs_torch"] <= MAX_LEVEL_DIFF for s in sets.values()
    )
    diffs = {
        k: s["scores"]["int8_graph"]["ODS"] - s["scores"]["fp32_graph"]["ODS"]
        for k, s in sets.items()
    }
    drops = {k: s["scores"]["fp32_graph"]["ODS"] - s["scores"]["int8_graph"]["ODS"]
             for k, s in sets.items()}  # fmt: skip
    int8_ok = all(d <= MAX_ODS_DROP for d in drops.values())
    record = {
        "weights": args.name,
        "files": {k: Path(v["path"]).name for k, v in exports.items()},
        "exports": exports,
        "bars": {"fp32_max_level_diff": MAX_LEVEL_DIFF, "int8_max_ods_drop": MAX_ODS_DROP},
        "fp32_parity": fp32_ok,
        "int8_parity": int8_ok,
        "int8_ods_drop": {k: round(v, 4) for k, v in drops.items()},
        "int8_ods_difference": {k: round(v, 4) for k, v in diffs.items()},
        "sets": sets,
        "limit": args.limit,
        "calibration": "training splits of the six sets, "
        f"{args.calib_images} images ({', '.join(specs)})",
        "machine": machine_info(),
        "seconds": round(time.perf_counter() - t0, 1),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    out = Path(args.out or ROOT / "benchmarks" / "results" / f"release_{args.name}.json")
    out.write_text(json.dumps(record, indent=2) + "\n")
    verdict = {True: "holds", False: "FAILS"}
    worst = max(drops.values())
    print(
        f"fp32 parity {verdict[fp32_ok]}, int8 parity {verdict[int8_ok]} (worst ODS drop "
        f"{worst:+.4f}); {out}"
    )
    return 0 if fp32_ok and int8_ok else 1


if __name__ == "__main__":
    sys.exit(main())
