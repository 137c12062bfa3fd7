"""Do exported files give the PyTorch model's answer? Logits and 8-bit maps, per format.

    python benchmarks/export_parity.py                       # the shipped CarNet, synthetic photos
    python benchmarks/export_parity.py --data deepcrack:../shared/data/deepcrack --limit 20

Exports the model with ``crackseg.export.export_model`` to ONNX and TorchScript (each file checked
against PyTorch as it is written: the logit parity numbers are those checks), then predicts the
same photos through :class:`crackseg.inference.Predictor` with the fp32 PyTorch backend and with
each exported file, and records how far the 8-bit probability maps differ (largest level
difference, share of pixels that differ at all, mask pixels that flip at the model's
threshold). Photos: ``--n`` synthetic ones (``crackseg.data.synth``, sunny / rainy / night, one
size that is not a multiple of 16 and one that is cut into tiles), or ``--data`` test images.
Writes ``benchmarks/results/export_parity.json`` with the machine and the library versions.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from crackseg.data.synth import CONDITIONS, generate
from crackseg.export import export_model
from crackseg.inference import Predictor
from crackseg.metrics.protocol import threshold_level
from crackseg.models.summary import machine_info


def photos(args) -> list[tuple[str, np.ndarray]]:
    if args.data:
        from crackseg.data.datasets import build_dataset

        ds = build_dataset(args.data, split="test")
        n = min(len(ds.names), args.limit or len(ds.names))
        return [(ds.names[i], ds.sample(i)[0]) for i in range(n)]
    sizes = [(512, 512), (437, 661), (1200, 1600)]  # whole, padded, tiled (1024 px tiles)
    out = []
    for i in range(args.n):
        h, w = sizes[i % len(sizes)]
        cond = CONDITIONS[i % len(CONDITIONS)]
        out.append((f"synth_{i}_{cond}_{h}x{w}", generate(100 + i, (h, w), cond)[0]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--source", default="pretrained:default", help="what to export")
    ap.add_argument("--n", type=int, default=6, help="synthetic photos (default: 6)")
    ap.add_argument("--data", action="append", help="dataset spec(s) instead of synthetic photos")
    ap.add_argument("--limit", type=int, help="with --data: first N test images")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "export_parity.json"))
    args = ap.parse_args()

    import onnxruntime
    import torch

    torch.set_num_threads(args.threads)
    reference = Predictor.from_pretrained(
        args.source.split(":", 1)[1] or "default", precision="fp32", channels_last=False
    )
    images = photos(args)
    ref_maps = [reference.predict_levels(im) for _, im in images]
    record: dict = {
        "name": "export_parity",
        "source": args.source,
        "reference": reference.describe(),
        "images": [{"name": n, "size": list(im.shape[:2])} for n, im in images],
        "formats": {},
        "machine": machine_info(),
        "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, suffix in (("onnx", ".onnx"), ("torchscript", ".pt")):
            result = export_model(args.source, fmt, Path(tmp) / f"model{suffix}")
            exported = Predictor.from_exported(result.path, threads=args.threads)
            level = threshold_level(exported.threshold)
            diffs, differing, flips, pixels = [], 0, 0, 0
            for (_, im), ref in zip(images, ref_maps, strict=True):
                got = exported.predict_levels(im)
                d = np.abs(got.astype(np.int16) - ref.astype(np.int16))
                diffs.append(int(d.max()))
                differing += int((d > 0).sum())
                flips += int(((got >= level) != (ref >= level)).sum())
                pixels += d.size
            export = result.to_dict()
            export.pop("path")
            record["formats"][fmt] = {
                "export": export,
                "maps": {
                    "max_level_diff": max(diffs),
                    "max_level_diff_per_image": diffs,
                    "pixels_differing": differing,
                    "mask_pixels_flipped": flips,
                    "pixels": pixels,
                },
                "backend": exported.describe(),
            }
            print(
                f"{fmt:12s} logits max |diff| {result.max_abs_diff:.2e}; maps: max level diff "
                f"{max(diffs)}, {differing} of {pixels} pixels differ, {flips} mask pixels flip"
            )
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
