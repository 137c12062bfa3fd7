#!/bin/bash
# The GPU training batch of 2026-11-29 (one H200, 16 CPU cores): four runs side by side.
# Data: benchmarks/gpu/pack_data.py, sent as .gd1/.gd2 (copied to /tmp/gd there) and .gd3.
#   MIN=7.5 bash .gd3/gpu.sh   (copied from this file; logs and fp16 last weights go to $OUT)
set -u
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
D1=/tmp/gd/.gd1; D2=/tmp/gd/.gd2; D3=.gd3
ls -d $D1/* $D2/* $D3/* 2>&1
nvidia-smi --query-gpu=name,memory.used --format=csv
python3 -c "import torch,sys;print(sys.version, torch.__version__, torch.cuda.is_available())"
ALL="[deepcrack:$D3/deepcrack,crack500:$D1/crack500,deepcrack:$D2/uav_crackx,deepcrack:$D3/uavcrack_bridge,deepcrack:$D3/shadowcrack,deepcrack:$D1/aiglern_trimm,synth:400:384]"
HOLD="[deepcrack:$D3/deepcrack,crack500:$D1/crack500,deepcrack:$D3/uavcrack_bridge,deepcrack:$D3/shadowcrack,synth:400:384]"
C="--set device=cuda --set threads=2 --set progress=false --set log_every=100"
MIN=${MIN:-6.5}
python3 -m crackseg train carnet_general $C --set out_dir=runs/g1 --set minutes=$MIN \
  --set train_data="$ALL" --set batch_size=16 --set num_workers=5 --set val_every=2000 --set warmup_iters=500 > $OUT/g1.log 2>&1 &
python3 -m crackseg train carnet_general $C --set out_dir=runs/g2 --set minutes=$MIN \
  --set train_data="$ALL" --set batch_size=16 --set crop_size=384 --set num_workers=5 --set val_every=2000 --set warmup_iters=500 > $OUT/g2.log 2>&1 &
python3 -m crackseg train carnet_deepcrack $C --set out_dir=runs/g3 \
  --set train_data="[deepcrack:$D3/deepcrack]" --set num_workers=2 > $OUT/g3.log 2>&1 &
python3 -m crackseg train carnet_general $C --set out_dir=runs/g4 --set minutes=$MIN \
  --set train_data="$HOLD" --set train_weights="[1.5,1.5,1,1,0.5]" --set batch_size=16 --set num_workers=4 --set val_every=2000 --set warmup_iters=500 > $OUT/g4.log 2>&1 &
sleep 60; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv; uptime
wait
python3 - <<'PY'
import os, json
from safetensors import safe_open
from safetensors.torch import save_file
out = os.environ["OUT"]
for g in ["g1", "g2", "g3", "g4"]:
    p = f"runs/{g}/last.safetensors"
    if not os.path.exists(p):
        print(g, "no last checkpoint"); continue
    with safe_open(p, "pt") as f:
        meta = f.metadata(); t = {k: f.get_tensor(k) for k in f.keys()}
    t = {k: (v.half() if v.is_floating_point() else v) for k, v in t.items()}
    save_file(t, f"{out}/{g}_last_fp16.safetensors", metadata=meta)
    print(g, open(f"runs/{g}/last.json").read()[:300])
PY
tar czf $OUT/logs.tgz runs/*/log.csv runs/*/config.yaml runs/*/*.json 2>/dev/null
ls -la $OUT
