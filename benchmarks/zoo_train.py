"""The zoo's accuracy: every model trained with one shared recipe on DeepCrack, scored on its test.

    python benchmarks/zoo_train.py                              # every model, in PRIORITY order
    python benchmarks/zoo_train.py --models carnet_xs,enet      # some
    python benchmarks/zoo_train.py --list                       # what is done, what is left
    python benchmarks/zoo_train.py --shard 0/2 --threads 1 &    # two workers, one core each
    python benchmarks/zoo_train.py --shard 1/2 --threads 1 &

Per model: ``crackseg train zoo_deepcrack --set model=NAME --set out_dir=runs/zoo/NAME`` (the
recipe ``src/crackseg/configs/zoo_deepcrack.yaml``: same crops, augmentation, loss, schedule,
steps and seed for all; random initial weights), continued with ``--resume`` when a run folder
from an interrupted invocation is there; then its last checkpoint (the end of the schedule, the
rule fixed before training) is scored on the DeepCrack test split through
:class:`crackseg.inference.Predictor` (fp32, native scale) with the protocol of ``crackseg
evaluate``: ODS / OIS / AP at 2 px and 0 px. Each finished model is written at once to
``benchmarks/results/zoo_deepcrack.json`` (models already there are skipped, so the run can span
sessions and machines: each entry names the machine it was trained on). That file is the
``--accuracy`` input of ``crackseg benchmark`` (``--rescore`` joins it to an earlier timing run).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import fnmatch
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "benchmarks" / "results" / "zoo_deepcrack.json"
DATA = ROOT.parent / "shared" / "data" / "deepcrack"
RECIPE = "zoo_deepcrack"
#: trained first: the CarNet family (the schedule check and the lean-variant bar), then the
#: reference LR-ASPP-MobileNetV3-Large and the whole architectures, then the encoder pairings;
#: the two DRNs (4x CarNet's compute) last
PRIORITY = [
    "carnet", "carnet_xs", "carnet_s", "lraspp_mobilenetv3_large", "enet",
    "ufpb_mobilenetv3_large", "bisenet", "dfanet", "lraspp_mobilenetv3_small",
    "ufpb_mobilenetv3_small", "carnet_hed", "carnet_deeplabv3plus", "carnet_resnet34",
]  # fmt: skip
#: CarNet's 6,000-step carnet_deepcrack result (benchmarks/results/carnet_deepcrack.json)
CARNET_6K = ROOT / "benchmarks" / "results" / "carnet_deepcrack.json"


def load_record() -> dict:
    if RECORD.exists():
        return json.loads(RECORD.read_text())
    return {
        "what": "every zoo model trained with the shared recipe zoo_deepcrack on DeepCrack train "
        "(random init), its last checkpoint scored on DeepCrack test (237 images), distance "
        "matching, 255 thresholds, Predictor fp32 at native scale",
        "recipe": RECIPE,
        "models": {},
    }


def save_record(record: dict) -> None:
    RECORD.parent.mkdir(parents=True, exist_ok=True)
    tmp = RECORD.with_suffix(f".json.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, RECORD)


@contextlib.contextmanager
def locked_record():
    """The record, read and written under a file lock (workers of ``--shard`` share it)."""
    RECORD.parent.mkdir(parents=True, exist_ok=True)
    lock_path = ROOT / "runs" / ".zoo_deepcrack.lock"  # runs/ is not committed
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        record = load_record()
        yield record
        save_record(record)


def train(name: str, runs: Path, threads: int) -> tuple[float, bool]:
    """Train (or finish) ``name``; returns the wall seconds of this invocation and whether it
    resumed an earlier one."""
    out = runs / name
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    resumed = (out / "config.yaml").exists() and not (out / "summary.json").exists()
    if (out / "summary.json").exists():
        summary = json.loads((out / "summary.json").read_text())
        if not summary.get("interrupted"):
            return 0.0, False  # trained earlier; only the scoring was missing
        resumed = True
    if resumed:
        cmd = [sys.executable, "-m", "crackseg", "train", "--resume", str(out)]
    else:
        cmd = [
            sys.executable, "-m", "crackseg", "train", RECIPE,
            "--set", f"model={name}", "--set", f"out_dir={out}",
            "--set", f"train_data=[deepcrack:{DATA}]", "--set", f"threads={threads}",
            "--set", "progress=false",
        ]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    return time.perf_counter() - t0, resumed


def score(checkpoint: Path, threads: int) -> dict:
    """ODS / OIS / AP at 2 px and 0 px on DeepCrack test: ``cross_dataset.py``'s scoring."""
    from cross_dataset import score as score_set  # benchmarks/, beside this file

    from crackseg.inference import Predictor

    predictor = Predictor.from_checkpoint(
        checkpoint, precision="fp32", threads=threads, threshold=0.5
    )
    return score_set(predictor, f"deepcrack:{DATA}", [2.0, 0.0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--models", default="*", help="comma-separated names or shell patterns")
    ap.add_argument("--runs", default=str(ROOT / "runs" / "zoo"), help="run folders go here")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--list", action="store_true", help="show done / left and stop")
    ap.add_argument(
        "--shard", default="0/1", help="I/N: train every N-th model left, from the I-th (workers)"
    )
    args = ap.parse_args()

    import torch

    from crackseg.models import create_model, list_models
    from crackseg.models.summary import count_params, machine_info

    torch.set_num_threads(args.threads)
    patterns = [p.strip() for p in args.models.split(",") if p.strip()]
    names = [m for m in list_models() if any(fnmatch.fnmatch(m, p) for p in patterns)]
    last = ["drn_d_22", "drn_c_26"]
    names.sort(
        key=lambda m: (PRIORITY.index(m) if m in PRIORITY else len(PRIORITY) + last.count(m), m)
    )
    record = load_record()
    left = [m for m in names if m not in record["models"]]
    if args.list:
        print(f"done ({len(record['models'])}): {', '.join(record['models']) or '-'}")
        print(f"left ({len(left)}): {', '.join(left) or '-'}")
        return
    if not DATA.is_dir():
        raise SystemExit(f"DeepCrack not found at {DATA}: the zoo is trained on ../shared/data")
    shard, _, of = args.shard.partition("/")
    if not (shard.isdigit() and of.isdigit() and int(shard) < int(of)):
        raise SystemExit(f"--shard {args.shard!r}: give I/N with 0 <= I < N, e.g. 0/2")
    left = left[int(shard) :: int(of)]
    runs = Path(args.runs)
    for i, name in enumerate(left, 1):
        print(f"[{i}/{len(left)}] {name}", flush=True)
        wall, resumed = train(name, runs, args.threads)
        t0 = time.perf_counter()
        scores = score(runs / name / "last.safetensors", args.threads)
        step = json.loads((runs / name / "last.json").read_text())["step"]
        machine = machine_info()
        if torch.cuda.is_available():
            machine["gpu"] = torch.cuda.get_device_name(0)
        with locked_record() as record:  # other workers may have added models meanwhile
            record["models"][name] = {
                **scores,
                "params": count_params(create_model(name)),
                "steps": step,
                "train_wall_s": round(wall, 1),
                "threads": args.threads,
                "resumed": resumed,
                "score_wall_s": round(time.perf_counter() - t0, 1),
                "checkpoint": f"runs/zoo/{name}/last.safetensors",
                "trained_on": machine,
            }
            if CARNET_6K.exists():
                record["carnet_6000_steps"] = json.loads(CARNET_6K.read_text())["scores"]
        s = scores["2px"]
        print(
            f"{name}: ODS {s['ODS']:.4f} OIS {s['OIS']:.4f} AP {s['AP']:.4f} at 2 px, "
            f"0 px ODS {scores['0px']['ODS']:.4f}; trained in {wall / 60:.1f} min",
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())
