"""Export every registered model to every format and record the parity errors (or why not).

    python benchmarks/export_zoo.py                          # all models, onnx + torchscript
    python benchmarks/export_zoo.py --models 'carnet*,enet' --formats onnx torchscript openvino

Each model is built with random weights (seed 0; parity does not depend on training) and written
with :func:`crackseg.export.export_model`, the code behind ``crackseg export``. That call keeps a
file only after its runtime reproduces PyTorch's logits within 1e-4 (max absolute difference) on
random and real (synthetic crack) inputs at two sizes, one not a multiple of 16. A model whose
export raises is recorded with the error's first line as the reason, and the run goes on.
Writes ``benchmarks/results/export_zoo.json`` (per model and format: the largest difference, each
check, seconds, bytes or the reason) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import tempfile
import time
import traceback
from pathlib import Path

import torch

from crackseg.export import export_model
from crackseg.models import list_models
from crackseg.models.summary import machine_info

SUFFIX = {"onnx": ".onnx", "torchscript": ".pt", "openvino": ".xml"}


def export_one(name: str, fmt: str, folder: Path) -> dict:
    torch.manual_seed(0)
    t0 = time.perf_counter()
    try:
        result = export_model(name, fmt, folder / f"{name}{SUFFIX[fmt]}")
    except Exception as e:  # noqa: BLE001 - recorded as the reason this format fails
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        return {
            "ok": False,
            "reason": f"{type(e).__name__}: {reason}"[:400],
            "seconds": round(time.perf_counter() - t0, 1),
            "traceback_tail": traceback.format_exc().strip().splitlines()[-3:],
        }
    out = {
        "ok": True,
        "max_abs_diff": result.max_abs_diff,
        "checks": [c.to_dict() for c in result.checks],
        "seconds": round(result.seconds, 1),
        "bytes": result.bytes,
        "detail": result.detail,
    }
    for f in result.files:
        f.unlink(missing_ok=True)
    return out


def markdown(record: dict) -> str:
    fmts = record["formats"]
    lines = ["| model | " + " | ".join(f"{f} max abs diff" for f in fmts) + " |"]
    lines.append("| --- " * (len(fmts) + 1) + "|")
    for name, per in record["models"].items():
        cells = []
        for f in fmts:
            r = per[f]
            cells.append(f"{r['max_abs_diff']:.1e}" if r["ok"] else f"fails: {r['reason']}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--models", default="*", help="comma-separated names or shell patterns")
    ap.add_argument("--formats", nargs="+", default=["onnx", "torchscript"], choices=list(SUFFIX))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "export_zoo.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    patterns = [p.strip() for p in args.models.split(",") if p.strip()]
    names = [m for m in list_models() if any(fnmatch.fnmatch(m, p) for p in patterns)]
    if not names:
        raise SystemExit(f"no registered model matches {args.models!r} (see crackseg models)")
    record = {
        "what": "export parity of every registered model (random weights, seed 0): max |logit "
        "difference| of the runtime vs PyTorch over random and real inputs at two sizes",
        "tolerance": 1e-4,
        "formats": args.formats,
        "models": {},
        "machine": machine_info(),
        "versions": {"torch": torch.__version__},
    }
    for mod in ("onnxruntime", "onnx", "openvino"):
        try:
            record["versions"][mod] = __import__(mod).__version__
        except ImportError:
            pass
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            record["models"][name] = {}
            for fmt in args.formats:
                r = export_one(name, fmt, Path(tmp))
                record["models"][name][fmt] = r
                shown = f"{r['max_abs_diff']:.2e}" if r["ok"] else "FAILS " + r["reason"]
                print(f"{name:26s} {fmt:12s} {shown}  ({r['seconds']} s)", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(markdown(record))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
