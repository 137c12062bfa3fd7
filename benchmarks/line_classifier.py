"""Validate the line classifier of ``crackseg predict --measure`` on scenes of known geometry.

    python benchmarks/line_classifier.py --scenes 40 --name line_classifier

Each scene of ``benchmarks/line_scenes.py`` (six kinds of joints and lines, five kinds of
cracks, one of both) is measured as predict measures a mask (``measure_cracks`` with the photo,
so the paint-edge cue is read); every measured instance is labelled by the truth it covers
(more pixels on the line mask than on the crack mask: a line, else a crack) and the record
``benchmarks/results/<name>.json`` holds, per scene kind and overall, the share of crack
instances kept ``crack`` and of line instances called ``joint_or_line``, by count and by length
(what the totals see), and by pixel: the share of the line mask's pixels that lie in
``joint_or_line`` instances and of the crack mask's pixels that do not (a joint split off the
crack it touches counts right here even where the instance count cannot say so). Seeds
0..N-1 of ``line_scenes.render`` (no training data is drawn from it).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from line_scenes import SCENES, render
from tqdm.auto import tqdm

from crackseg.inference.lines import LINE
from crackseg.inference.measure import line_pixels, measure_cracks
from crackseg.models.summary import machine_info


def score_scene(scene: str, seed: int, size: int) -> tuple[list[dict], dict]:
    """The scene's instances (truth, kind, length) and its pixel counts: the line and crack
    pixels of the truth, and how many of each lie in instances called ``joint_or_line``."""
    photo, lines, cracks = render(scene, seed, size)
    out = []
    measured = measure_cracks(lines | cracks, image=photo)
    hidden = line_pixels(measured, lines.shape)
    hidden = np.zeros(lines.shape, bool) if hidden is None else hidden
    only_line, only_crack = lines & ~cracks, cracks & ~lines
    pixels = {
        "line": int(only_line.sum()),
        "line_hidden": int((only_line & hidden).sum()),
        "crack": int(only_crack.sum()),
        "crack_hidden": int((only_crack & hidden).sum()),
    }
    for c in measured:
        x0, y0, x1, y1 = c.bbox
        on_line = int(lines[y0:y1, x0:x1].sum())
        on_crack = int(cracks[y0:y1, x0:x1].sum())
        if c.footprint is not None:  # the instance's own pixels when kept (lines)
            fy, fx, fp = c.footprint
            on_line = int((lines[fy : fy + fp.shape[0], fx : fx + fp.shape[1]] & fp).sum())
            on_crack = int((cracks[fy : fy + fp.shape[0], fx : fx + fp.shape[1]] & fp).sum())
        truth = LINE if on_line > on_crack else "crack"
        out.append(
            {"truth": truth, "kind": c.kind, "length_px": c.length_px, "reason": c.line.reason}
        )
    return out, pixels


def pixel_shares(counts: list[dict]) -> dict:
    """Share of the line pixels in ``joint_or_line`` instances and of the crack pixels outside
    them (pixels on both masks left out)."""
    tot = {k: sum(c[k] for c in counts) for k in ("line", "line_hidden", "crack", "crack_hidden")}
    return {
        "line_pixels_called_line": round(tot["line_hidden"] / tot["line"], 4)
        if tot["line"]
        else None,
        "crack_pixels_kept_crack": round(1 - tot["crack_hidden"] / tot["crack"], 4)
        if tot["crack"]
        else None,
    }


def shares(rows: list[dict]) -> dict:
    out = {}
    for truth in ("crack", LINE):
        mine = [r for r in rows if r["truth"] == truth]
        right = [r for r in mine if r["kind"] == truth]
        length = sum(r["length_px"] for r in mine)
        out[truth] = {
            "instances": len(mine),
            "right": round(len(right) / len(mine), 4) if mine else None,
            "right_by_length": round(sum(r["length_px"] for r in right) / length, 4)
            if length
            else None,
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--scenes", type=int, default=40, help="scenes per kind")
    ap.add_argument("--size", type=int, default=384)
    ap.add_argument("--name", default="line_classifier")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    per_kind, everything, all_pixels = {}, [], []
    for scene in tqdm(SCENES, desc="scene kinds"):
        scored = [score_scene(scene, s, args.size) for s in range(args.scenes)]
        rows = [r for got, _ in scored for r in got]
        pixels = [p for _, p in scored]
        per_kind[scene] = {**shares(rows), "pixels": pixel_shares(pixels)}
        everything += rows
        all_pixels += pixels
    record = {
        "what": "line classifier (crackseg.inference.lines) on synthetic scenes of known joints "
        "and cracks: share of instances classified right, per truth class",
        "scenes_per_kind": args.scenes,
        "size": args.size,
        "overall": {**shares(everything), "pixels": pixel_shares(all_pixels)},
        "per_kind": per_kind,
        "machine": machine_info(),
    }
    out = Path(args.out) / f"{args.name}.json"
    out.write_text(json.dumps(record, indent=1) + "\n")
    o, ln = record["overall"], record["overall"][LINE]
    print(f"cracks kept crack: {o['crack']['right']:.1%} of {o['crack']['instances']} instances "
          f"({o['crack']['right_by_length']:.1%} of length); lines called joint_or_line: "
          f"{ln['right']:.1%} of {ln['instances']} ({ln['right_by_length']:.1%})")  # fmt: skip
    px = o["pixels"]
    print(f"pixels: lines in joint_or_line {px['line_pixels_called_line']}, cracks kept "
          f"{px['crack_pixels_kept_crack']}")  # fmt: skip
    for k, v in per_kind.items():
        print(f"  {k:<20} crack {v['crack']['right']}  line {v[LINE]['right']}  {v['pixels']}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
