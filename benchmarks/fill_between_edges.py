"""Lever study (issue 24 item 4, not kept): fill the gap between two crack edges (inference/postprocess.py) at each set's ODS threshold, shipped carnet_general; pooled P / R / F and recall by width."""
import json, sys, numpy as np, torch
from crackseg.data.datasets import build_dataset
from crackseg.inference import Predictor
from crackseg.engine.evaluate import evaluate_maps
from crackseg.metrics.protocol import threshold_level, confusion_at_threshold
from crackseg.metrics.width import width_counts, recall_by_width
from crackseg.metrics.protocol import _dilate_disk
from crackseg.inference.postprocess import fill_between_edges
torch.set_num_threads(1)
p = Predictor.from_pretrained(precision="fp32")
out = {}
for name, spec in [("deepcrack","deepcrack:../shared/data/deepcrack"),("crack500","crack500:../shared/data/crack500"),("uav_crackx","deepcrack:../shared/data/uav_crackx")]:
    d = build_dataset(spec, split="test")
    maps = [(str(i), p.predict_levels(d.sample(i)[0]), d.sample(i)[1].astype(bool)) for i in range(len(d))]
    s = evaluate_maps(iter(maps), tolerance=2.0, progress=False).summary
    lvl = threshold_level(s["ods_threshold"])
    res = {"ODS": s["ODS"]}
    for cfg in [None, (16, 64), (24, 64), (24, 128), (32, 128)]:
        tp=fp=fn=0; counts=[]
        for _, lv, gt in maps:
            m = lv >= lvl
            if cfg: m = fill_between_edges(m, lv, *cfg)
            near = _dilate_disk(np.ascontiguousarray(gt), 2.0)
            tp_p = int((m & near).sum()); fp += int(m.sum()) - tp_p; tp += tp_p
            found = int((gt & _dilate_disk(np.ascontiguousarray(m), 2.0)).sum()); fn += int(gt.sum()) - found
            counts.append(width_counts(m, gt))
            res.setdefault("_gt", 0)
        P = tp/(tp+fp); R = 1 - fn/sum(int(g.sum()) for _,_,g in maps)
        res[str(cfg)] = {"P": round(P,4), "R": round(R,4), "F": round(2*P*R/(P+R),4), "width": {k:v["recall"] for k,v in recall_by_width(counts).items()}}
    out[name] = res
    print(name, json.dumps(res), flush=True)
json.dump(out, open("/tmp/exp/fill.json","w"), indent=1)
