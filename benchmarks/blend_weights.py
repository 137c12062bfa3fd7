"""Weight-space blend of two checkpoints of one architecture (WiSE-FT, Wortsman et al. 2022).

    python benchmarks/blend_weights.py --a carnet_general --b runs/ft_dc4/last.safetensors \
        --alpha 0.5 --run runs/ft_dc4_a50 [--bn-from runs/ft_dc4]

Writes ``RUN/last.safetensors`` holding ``(1 - alpha) * A + alpha * B`` for every learned tensor
(A and B: checkpoint files, run folders or shipped weights names; B is usually A fine-tuned, so
both lie in one basin and the blend keeps most of A's generality and some of B's gain), then
recomputes its BatchNorm statistics on training crops (precise BN, ``crackseg recalibrate``),
since averaged running statistics are not the statistics of the averaged network. The run
folder gets the ``config.yaml`` of ``--bn-from`` (the training data the crops come from), so
``benchmarks/cross_dataset.py`` and ``crackseg evaluate`` treat it like any run.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from crackseg.engine import checkpoint as ckpt
from crackseg.engine.precise_bn import recalibrate_run
from crackseg.models.pretrained import weights_source


def load(source: str) -> tuple[torch.nn.Module, dict]:
    return ckpt.load_model(weights_source(source))


def blend(a: torch.nn.Module, b: torch.nn.Module, alpha: float) -> dict[str, torch.Tensor]:
    """``(1 - alpha) * a + alpha * b`` for floating-point tensors; integer buffers (BN's
    ``num_batches_tracked``) are taken from ``a``."""
    sa, sb = a.state_dict(), b.state_dict()
    if sa.keys() != sb.keys() or any(sa[k].shape != sb[k].shape for k in sa):
        raise SystemExit("the two checkpoints are not the same architecture")
    return {
        k: torch.lerp(sa[k].float(), sb[k].float(), alpha) if sa[k].is_floating_point() else sa[k]
        for k in sa
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--a", required=True, help="first checkpoint (alpha 0)")
    ap.add_argument("--b", required=True, help="second checkpoint (alpha 1)")
    ap.add_argument("--alpha", type=float, required=True)
    ap.add_argument("--run", required=True, help="output run folder")
    ap.add_argument("--bn-from", required=True, help="run folder whose config.yaml names the data")
    ap.add_argument("--bn-batches", type=int, default=100)
    args = ap.parse_args()
    if not 0.0 <= args.alpha <= 1.0:
        raise SystemExit("--alpha must be within [0, 1]")
    (a, meta), (b, _) = load(args.a), load(args.b)
    a.load_state_dict(blend(a, b, args.alpha))
    out = Path(args.run)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(args.bn_from) / "config.yaml", out / "config.yaml")
    for stale in ("last_raw.safetensors",):
        (out / stale).unlink(missing_ok=True)
    kwargs = json.loads(meta.get("model_kwargs", "{}"))
    ckpt.save_weights(out / "last.safetensors", a, meta["model"], kwargs, {"step": 0})
    info = recalibrate_run(out, tag="last", batches=args.bn_batches)
    (out / "blend.json").write_text(
        json.dumps({"a": args.a, "b": args.b, "alpha": args.alpha, **info}, indent=2) + "\n"
    )
    print(f"wrote {out / 'last.safetensors'} (alpha {args.alpha})")


if __name__ == "__main__":
    main()
