"""Print the zoo table of docs/zoo.md: speed from one ``crackseg benchmark`` run, accuracy too.

    python benchmarks/zoo_table.py [--bench benchmarks/results/zoo_cpu.json]
                                   [--accuracy benchmarks/results/zoo_deepcrack.json]

Rows sorted by latency on each model's fastest CPU path; the "x LR-ASPP" column divides by the
eager fp32 time of torchvision's LR-ASPP-MobileNetV3-Large in the same run (the zoo's external
reference). Accuracy (DeepCrack test, the shared recipe of ``benchmarks/zoo_train.py``) is left
blank, with a count below the table, for models not trained yet. The page's numbers are copied
by this script, never by hand.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
REFERENCE = "tv_lraspp_mobilenet_v3_large"


def table(bench: dict, accuracy: dict) -> str:
    rows = sorted(bench["models"], key=lambda r: r["cpu_best_ms"] or float("inf"))
    ref = next((r["cpu_eager_ms"] for r in rows if r["model"] == REFERENCE), None)
    size = next(iter(rows[0]["flops"]))
    lines = [
        f"| model | params M | GFLOPs {size} | eager fp32 ms | fastest path ms | x LR-ASPP "
        "eager | DeepCrack ODS / OIS / AP (2 px) | ODS 0 px |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    missing = []
    for r in rows:
        acc = accuracy.get(r["model"])
        if acc:
            a2, a0 = acc["2px"], acc["0px"]
            cells = [f"{a2['ODS']:.3f} / {a2['OIS']:.3f} / {a2['AP']:.3f}", f"{a0['ODS']:.3f}"]
        else:
            cells = ["", ""]
            if r.get("source") != "torchvision":
                missing.append(r["model"])
        name = f"{r['model']} (torchvision)" if r.get("source") == "torchvision" else r["model"]
        ratio = f"{r['cpu_best_ms'] / ref:.2f}" if ref else ""
        lines.append(
            f"| `{name}` | {r['params'] / 1e6:.2f} | {r['flops'][size] / 1e9:.2f} | "
            f"{r['cpu_eager_ms']:.0f} | {r['cpu_best_ms']:.0f} ({r['cpu_best_path']}) | {ratio} | "
            + " | ".join(cells)
            + " |"
        )
    m = bench["machine"]
    lines += [
        "",
        f"Speed: {m['cpu']} ({', '.join(f for f in m['flags'] if f.startswith('avx'))}), "
        f"{m['threads']} threads, torch {m['torch']}, batch 1 at "
        f"{'x'.join(map(str, bench['settings']['input'][2:]))}, median of "
        f"{bench['settings']['runs']} round-robin runs, {bench['date']}.",
    ]
    if missing:
        lines.append(
            f"Not trained yet with the shared recipe ({len(missing)}): {', '.join(missing)}."
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bench", default=str(RESULTS / "zoo_cpu.json"))
    ap.add_argument("--accuracy", default=str(RESULTS / "zoo_deepcrack.json"))
    args = ap.parse_args()
    bench = json.loads(Path(args.bench).read_text())
    acc_path = Path(args.accuracy)
    accuracy = json.loads(acc_path.read_text())["models"] if acc_path.exists() else {}
    print(table(bench, accuracy))


if __name__ == "__main__":
    main()
