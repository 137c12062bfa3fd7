"""Print the README's real-data table from the records that ``record_run.py`` wrote.

    python benchmarks/results_table.py carnet_deepcrack resnet34_deepcrack carnet_crack500

Each name is ``benchmarks/results/<name>.json``. One row per scored checkpoint (the reported one
first), with its reference ODS row above it when the record holds one, so the numbers in the README
are copied by this script, never by hand.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def fmt(x: float | None) -> str:
    return "" if x is None else f"{x:.3f}"


def rows_for(record: dict) -> list[str]:
    test = " + ".join(spec.split(":")[0] for spec in record["test_data"]) + f" {record['split']}"
    n = record["num_images"]
    out = []
    ref = record.get("reference_ods") or {}
    if ref:
        out.append(
            f"| {test} ({n}) | reference CarNet34 | ~5,900 | {fmt(ref.get('2px'))} | | "
            f"| {fmt(ref.get('0px'))} | | |"
        )
    reported = record.get("reported_checkpoint", "best")
    checkpoints = record.get("checkpoints") or {reported: {"scores": record["scores"]}}
    order = [reported] + [t for t in checkpoints if t != reported]
    for tag in order:
        c = checkpoints[tag]
        s2, s0 = c["scores"].get("2px", {}), c["scores"].get("0px", {})
        label = f"{record['name']} ({record['model']}), {tag}"
        if c.get("step") is not None:
            label += f" (step {c['step']:,})"
        if tag == reported:
            label = f"**{label}**"
        cells = [fmt(s2.get(k)) for k in ("ODS", "OIS", "AP")]
        cells += [fmt(s0.get(k)) for k in ("ODS", "OIS", "AP")]
        out.append(
            f"| {test} ({n}) | {label} | {record['train_steps']:,} | " + " | ".join(cells) + " |"
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("names", nargs="+", help="record names in benchmarks/results/")
    args = ap.parse_args()
    cols = [f"{k} {t} px" for t in (2, 0) for k in ("ODS", "OIS", "AP")]
    print("| test set (images) | run | steps | " + " | ".join(cols) + " |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in args.names:
        path = RESULTS / f"{name}.json"
        if not path.exists():
            raise SystemExit(f"results_table: error: {path} does not exist (run record_run.py)")
        for row in rows_for(json.loads(path.read_text())):
            print(row)


if __name__ == "__main__":
    main()
