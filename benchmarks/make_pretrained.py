"""Package a trained run as shipped weights: ``src/crackseg/weights/NAME.{safetensors,json,md}``.

    python benchmarks/make_pretrained.py runs/carnet_general --name carnet_general \
        --matrix benchmarks/results/cross_dataset.json --row general

1. The default threshold is the ODS threshold (2 px) on the run's **validation** split (carved
   from the training data, the same split the run validated on): no test image sets it.
2. Weights are stored as fp16 when the fp16 model's 8-bit maps stay within 1 level (1/255) of the
   fp32 model's on every validation image (checked here, recorded); else as fp32.
3. The metadata (model, constructor arguments, normalisation, threshold) goes into the
   safetensors header, so ``crackseg evaluate --checkpoint`` reads the file like any checkpoint,
   and into ``NAME.json`` with the test metrics of the cross-dataset record and the recipe.
4. The model card ``NAME.md`` is written from the same records plus ``--card-notes`` (markdown
   with the hand-written parts: weaknesses, levers tried), so its numbers match the records.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import yaml
from safetensors.torch import save_file

from crackseg.engine.evaluate import evaluate_maps
from crackseg.engine.train import load_config, split_data
from crackseg.inference import Predictor
from crackseg.meta import ModelMeta
from crackseg.models.summary import count_params
from crackseg.models.weights_io import load_model

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "src" / "crackseg" / "weights"

CITATIONS = {
    "deepcrack": 'DeepCrack: Liu, Yao, Lu, Xie, Li, "DeepCrack: A deep hierarchical feature '
    'learning architecture for crack segmentation", Neurocomputing 338 (2019) 139-153. '
    "Research use.",
    "crack500": 'CRACK500: Yang et al., "Feature Pyramid and Hierarchical Boosting Network for '
    'Pavement Crack Detection", IEEE T-ITS 2019; Zhang et al., "Road crack detection using deep '
    'convolutional neural network", ICIP 2016. Research use.',
    "uav_crackx": "UAV-CrackX (SHAN-JH/UAV-CrackX-Datasets): Shan et al., Automation in "
    "Construction 174 (2025) 106141, and Shan et al., IEEE T-ITS 25(11) (2024) 17038-17053. "
    "No licence stated; cite both papers.",
    "uavcrack_bridge": 'UAVCRACK (bridging-big-data/model-crack), "Deep Neural Networks with '
    'Outdoor Bridge Image Datasets for Concrete Crack Detection and Quantification". MIT licence.',
    "shadowcrack": 'ShadowCrack, as redistributed with "Lightweight Yet Effective: A Modular '
    'Approach to Crack Segmentation" (Omaralmaqtari/Lightweight-Modular-Model, MIT); the '
    "original dataset's terms apply: research use.",
    "aiglern_trimm": 'AigleRN-TRIMM, as redistributed with "Lightweight Yet Effective: A '
    'Modular Approach to Crack Segmentation" (MIT); the original is the crack detection '
    "database of S. Chambon (IRIT): research use.",
    "gaps384": 'GAPs384 crops (as redistributed with "Lightweight Yet Effective: A Modular '
    'Approach to Crack Segmentation", MIT): the original GAPs terms apply (TU Ilmenau, on '
    'written request, academic use); cite Eisenbach et al., "How to get pavement distress '
    'detection ready for deep learning? A systematic approach", IJCNN 2017, and Yang et al., '
    "T-ITS 2019 (above).",
    "negatives": "PaveSeg-Dataset preview (FuturePave/PaveSeg-Dataset, Apache-2.0 licence file; "
    'the full set is offered for non-commercial use): cite "Pavement condition sensing for '
    "vision-based autonomous driving based on deep encoder-decoder network and spatial attention "
    'mechanism" (under review).',
}


def dataset_names(specs: list[str]) -> list[str]:
    out = []
    for s in specs:
        kind, _, rest = s.partition(":")
        out.append(kind if kind in ("synth", "hardneg") else Path(rest.rstrip("/")).name)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("run", help="run folder (its last.safetensors and config.yaml)")
    ap.add_argument("--tag", default="last")
    ap.add_argument("--name", required=True)
    ap.add_argument("--matrix", required=True, help="cross_dataset.py record with a row for it")
    ap.add_argument("--row", required=True, help="the row of --matrix that scores this run")
    ap.add_argument("--card-notes", help="markdown appended to the card (weaknesses, levers)")
    ap.add_argument("--summary", default="", help="one line for crackseg models --pretrained")
    ap.add_argument("--out", default=str(WEIGHTS))
    ap.add_argument("--hardware", default="a 2-core CPU", help="what it was trained on (card)")
    ap.add_argument(
        "--card-only",
        action="store_true",
        help="keep the weights and NAME.json's threshold; rewrite the card and test metrics "
        "from --matrix / --card-notes (no validation pass)",
    )
    args = ap.parse_args()
    if args.card_only:
        return rewrite_card(args)

    run = Path(args.run)
    cfg = load_config(run / "config.yaml")
    model, meta = load_model(run / f"{args.tag}.safetensors")
    model_kwargs = json.loads(meta.get("model_kwargs", "{}"))
    train_set, val_set, _, val_idx = split_data(cfg)

    # threshold and fp16 check on the validation split
    torch.set_num_threads(2)
    fp32 = Predictor.from_model(model)
    half = {k: v.detach().half() for k, v in model.state_dict().items()}
    model16, _ = load_model(run / f"{args.tag}.safetensors")
    model16.load_state_dict({k: v.float() for k, v in half.items()})
    fp16 = Predictor.from_model(model16)
    maps, worst = [], 0
    for i in val_idx:
        image, mask = val_set.sample(i)
        a = fp32.predict_levels(image)
        b = fp16.predict_levels(image)
        worst = max(worst, int(np.abs(a.astype(int) - b.astype(int)).max()))
        maps.append((str(i), a, mask.astype(bool)))
    val = evaluate_maps(maps, tolerance=2.0, progress=False).summary
    threshold = round(float(val["ods_threshold"]), 6)
    store_fp16 = worst <= 1
    tensors = (
        half if store_fp16 else {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    )

    matrix = json.loads(Path(args.matrix).read_text())
    metrics = row_metrics(matrix, args.row)
    recipe = yaml.safe_load((run / "config.yaml").read_text())
    state = json.loads((run / "last.json").read_text())
    data = dataset_names(cfg.train_data)
    shipped = ModelMeta(meta["model"], args.name, threshold=threshold, model_kwargs=model_kwargs)
    header = {
        **shipped.to_safetensors(),
        "weights_name": json.dumps(args.name),
        "step": json.dumps(state.get("step")),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / f"{args.name}.safetensors"), metadata=header)
    info = {
        "name": args.name,
        "model": meta["model"],
        "model_kwargs": model_kwargs,
        "threshold": threshold,
        "threshold_rule": "ODS threshold at 2 px on the run's validation split (from train)",
        "mean": list(shipped.mean),
        "std": list(shipped.std),
        "summary": args.summary,
        "params": count_params(model),
        "storage": "fp16" if store_fp16 else "fp32",
        "fp16_max_level_difference_on_val": worst,
        "val_ODS_2px": round(float(val["ODS"]), 6),
        "val_images": len(val_idx),
        "steps": state.get("step"),
        "data": data,
        "metrics": metrics,
        "matrix_record": str(Path(args.matrix).resolve().relative_to(ROOT)),
        "recipe": recipe,
        "hardware": args.hardware,
    }
    (out / f"{args.name}.json").write_text(json.dumps(info, indent=2) + "\n")
    notes = Path(args.card_notes).read_text() if args.card_notes else ""
    (out / f"{args.name}.md").write_text(card(info, matrix, args.row, notes))
    print(json.dumps({k: info[k] for k in ("threshold", "storage", "val_ODS_2px")}, indent=2))
    print(f"fp16 vs fp32: max level difference {worst} on {len(val_idx)} validation images")
    print(f"wrote {out}/{args.name}.safetensors, .json, .md")


def row_metrics(matrix: dict, row: str) -> dict:
    """Per test set ``{ODS_2px, OIS_2px, AP_2px, ..., images}`` of one row of a matrix record."""
    return {
        s: {
            f"{k}_{tol}": c[tol][k]
            for tol in ("2px", "0px")
            if tol in c
            for k in ("ODS", "OIS", "AP")
        }
        | {"images": c["images"]}
        for s, c in matrix["rows"][row]["cells"].items()
    }


def rewrite_card(args) -> None:
    """The card and test metrics again, from the shipped NAME.json and a (newer) matrix."""
    out = Path(args.out)
    info = json.loads((out / f"{args.name}.json").read_text())
    matrix = json.loads(Path(args.matrix).read_text())
    info["metrics"] = row_metrics(matrix, args.row)
    info["matrix_record"] = str(Path(args.matrix).resolve().relative_to(ROOT))
    if args.summary:
        info["summary"] = args.summary
    (out / f"{args.name}.json").write_text(json.dumps(info, indent=2) + "\n")
    notes = Path(args.card_notes).read_text() if args.card_notes else ""
    (out / f"{args.name}.md").write_text(card(info, matrix, args.row, notes))
    print(f"rewrote {out}/{args.name}.json and .md from {args.matrix} row {args.row}")


def origin(recipe: dict) -> str:
    init = recipe.get("init_weights")
    if init:
        return f"fine-tuned from the shipped `{init}` (itself trained from scratch)"
    return "trained from scratch (no ImageNet weights)"


def card(info: dict, matrix: dict, row: str, notes: str) -> str:
    r = info["recipe"]
    lines = [
        f"# Model card: `{info['name']}`",
        "",
        f"{info['summary']}",
        "",
        "```bash",
        "crackseg predict photo.jpg --measure          # uses these weights by default",
        "```",
        "",
        "```python",
        "import crackseg",
        "",
        f'model = crackseg.create_model("{info["model"]}", weights="{info["name"]}")',
        "predictor = crackseg.Predictor.from_pretrained()",
        "```",
        "",
        "## Model",
        f"- Architecture: `{info['model']}` {info['model_kwargs'] or '(default settings)'}, "
        f"{info['params'] / 1e6:.2f} M parameters, {origin(r)}.",
        f"- Input: RGB, normalised with mean {info['mean']} and std {info['std']}; any size "
        "(`crackseg predict` tiles images larger than 1024 px).",
        f"- Output: crack logits; the default mask threshold is **{info['threshold']:.3f}** "
        f"({info['threshold_rule']}; validation ODS {info['val_ODS_2px']:.3f} on "
        f"{info['val_images']} images).",
        f"- Stored as {info['storage']} (8-bit maps differ from the fp32 model's by at most "
        f"{info['fp16_max_level_difference_on_val']} level on the validation images).",
        "",
        "## Training",
        f"- Data (train splits only): {', '.join(info['data'])}; sampling weights per set "
        f"{r.get('train_weights') or 'uniform'}.",
        f"- Recipe: {info['steps']:,} steps of batch {r['batch_size']} random {r['crop_size']}x"
        f"{r['crop_size']} crops ({int(r['crack_crop_p'] * 100)} % centred on a crack pixel), "
        f"scale jitter {r['scale'][0]}-{r['scale'][1]}, flips, 90-degree rotations, brightness / "
        f"contrast / gamma / saturation, blur (p {r['blur_p']}), noise (p {r['noise_p']}), JPEG "
        f"(p {r.get('jpeg_p', 0)}); loss {r['loss']} (pos_weight {r['pos_weight']}); "
        f"{r['optimizer']} lr {r['lr']}, {r['schedule']} schedule, {r['warmup_iters']} warm-up "
        f"steps; precise BN over {r['bn_recalib']} batches; bf16 autocast on "
        f"{info.get('hardware', 'a 2-core CPU')}.",
        f"- Reproduce: `crackseg train {info['name']}` (the recipe shipped in the package).",
        "",
        "## Test metrics",
        "Distance-transform matching, 255 thresholds; test splits never seen in training or "
        "selection. ODS / OIS / AP:",
        "",
        "| test set | images | ODS 2 px | OIS 2 px | AP 2 px | ODS 0 px | OIS 0 px | AP 0 px |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s, m in info["metrics"].items():
        vals = [m.get(f"{k}_{t}") for t in ("2px", "0px") for k in ("ODS", "OIS", "AP")]
        lines.append(f"| {s} | {m['images']} | " + " | ".join(f"{v:.3f}" for v in vals) + " |")
    lines += ["", "## Cross-dataset matrix", "",
              f"Rows: models trained on different data; `{row}` is these weights. "
              "Columns: test splits. `*` = that set's train split was in the row's training "
              "data; the other cells are held-out sets.", ""]  # fmt: skip
    from cross_dataset import markdown  # noqa: PLC0415  (benchmarks/ is on sys.path as a script)

    lines += [markdown(matrix), ""]
    if notes:
        lines += [notes.strip(), ""]
    lines += ["## Data terms and citations", "",
              "These weights were trained on the datasets below; their terms apply to the "
              "weights and publications using them must cite them:", ""]  # fmt: skip
    for d in info["data"]:
        if d in CITATIONS:
            lines.append(f"- {CITATIONS[d]}")
    if "synth" in info["data"]:
        lines.append("- crackseg's synthetic generator (`crackseg synth`): no third-party terms.")
    if "hardneg" in info["data"]:
        lines.append("- crackseg's hard-negative scenes (`crackseg.data.hardneg`): no third-party "
                     "terms.")  # fmt: skip
    lines += [
        "",
        'CarNet: Li et al., "Rethinking Lightweight Convolutional Neural Networks for Efficient '
        'and High-quality Pavement Crack Detection", IEEE T-ITS (arXiv 2109.05707).',
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
