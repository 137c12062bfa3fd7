"""Parameters and FLOPs of the model zoo next to the published figures; writes ``docs/zoo.md``.

    python benchmarks/zoo_facts.py            # -> benchmarks/results/zoo_facts.json, docs/zoo.md

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix products,
2 FLOPs per multiply-accumulate; element-wise work is not counted), MACs = FLOPs / 2. Papers in
this family report MACs ("MAdds", ShuffleNet's and ThunderNet's "FLOPs", torchvision's
"GFLOPS" metadata), so the encoder table compares MACs. No latency here: see
``crackseg benchmark`` (``benchmarks/zoo_benchmark.py``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
import torchvision

import crackseg
from crackseg.models.encoders.snet import snet
from crackseg.models.summary import count_flops, count_params

ROOT = Path(__file__).resolve().parents[1]

#: encoder -> (how to build the classifier, torchvision weights enum or None, paper params M,
#: paper MACs M at 224x224, source)
ENCODERS = {
    "mobilenetv1": ("timm:mobilenetv1_100", None, 4.2, 569, "MobileNets Table 8"),
    "mobilenetv2": ("tv:mobilenet_v2", "mobilenet_v2", 3.4, 300, "MobileNetV2 Table 4"),
    "mobilenetv3_large": (
        "tv:mobilenet_v3_large", "mobilenet_v3_large", 5.4, 219, "MobileNetV3 Table 3"),
    "mobilenetv3_small": (
        "tv:mobilenet_v3_small", "mobilenet_v3_small", 2.5, 56, "MobileNetV3 Table 4"),
    "shufflenetv2": (
        "tv:shufflenet_v2_x1_0", "shufflenet_v2_x1_0", 2.3, 146, "ShuffleNetV2 Table 5"),
    "efficientnet_b0": ("tv:efficientnet_b0", "efficientnet_b0", 5.3, 390, "EfficientNet Table 2"),
    "snet49": ("snet:49", None, None, 49, "ThunderNet Table 1"),
    "snet146": ("snet:146", None, None, 146, "ThunderNet Table 1"),
    "snet535": ("snet:535", None, None, 535, "ThunderNet Table 1"),
}  # fmt: skip


def classifier(spec: str) -> torch.nn.Module:
    kind, name = spec.split(":")
    if kind == "tv":
        return torchvision.models.get_model(name, weights=None)
    if kind == "snet":
        return snet(int(name))
    import timm

    return timm.create_model(name, pretrained=False)


def bn_params(model: torch.nn.Module) -> int:
    return sum(
        p.numel()
        for m in model.modules()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
        for p in m.parameters()
    )


def main() -> None:
    enc_rows = []
    for key, (spec, tv, paper_params, paper_macs, source) in ENCODERS.items():
        m = classifier(spec).eval()
        row = {
            "encoder": key,
            "built_by": spec,
            "params": count_params(m),
            "bn_params": bn_params(m),
            "macs_224": count_flops(m, (1, 3, 224, 224)) // 2,
            "paper_params_m": paper_params,
            "paper_macs_m": paper_macs,
            "paper": source,
        }
        if tv:
            meta = torchvision.models.get_model_weights(tv).DEFAULT.meta
            row["torchvision_params"], row["torchvision_gmacs"] = meta["num_params"], meta["_ops"]
        enc_rows.append(row)

    seg_rows = []
    names = [n for n in crackseg.list_models() if n.startswith(("carnet", "ufpb_", "lraspp_"))]
    for name in names:
        m = crackseg.create_model(name).eval()
        flops = count_flops(m, (1, 3, 512, 512))
        seg_rows.append({"model": name, "params": count_params(m), "flops_512": flops})
    ref = torchvision.models.segmentation.lraspp_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=1
    ).eval()
    meta = torchvision.models.get_model_weights("lraspp_mobilenet_v3_large").DEFAULT.meta
    tv_lraspp = {
        "params": count_params(ref),
        "flops_512": count_flops(ref, (1, 3, 512, 512)),
        "meta_21_classes": {"params": meta["num_params"], "gflops_520": meta["_ops"]},
    }
    out = {
        "date": time.strftime("%Y-%m-%d"),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "encoders_as_classifiers_224": enc_rows,
        "segmenters_512": seg_rows,
        "torchvision_lraspp_mobilenet_v3_large_1_class": tv_lraspp,
    }
    res = ROOT / "benchmarks" / "results" / "zoo_facts.json"
    res.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
