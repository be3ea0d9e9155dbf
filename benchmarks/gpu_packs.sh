#!/usr/bin/env bash
# The one prepared GPU session for packs (device tool; < 10 minutes on an H100/H200):
#   1. the scaling table: model-steps/s of packs M = 1..64 for beta_vae, echo and factor_vae, and of
#      M = 1, 4, 16 separate single-model processes on the same GPU; peak memory;
#      the Table 2 grid's projected GPU-hours at the best pack rate;
#   2. a 1,000-step agreement check: pack members against the same seeds trained alone (TF32 off).
# Every stage writes its JSON under $OUT as it goes, so a cut-off run still returns what it measured.
#   on the device:  bash benchmarks/gpu_packs.sh            (results under $OUT)
#   dry run here:   DRY=1 OUT=/tmp/gpu_packs_dry bash benchmarks/gpu_packs.sh
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
O=${OUT:-/tmp/gpu_packs_out}; mkdir -p "$O"
log() { echo "[$(date +%T)] $*" | tee -a "$O/log.txt"; }
# Install: the project and its dependencies, unless the environment already has them.
if ! python -c "import torch, yaml, scipy, sklearn, tensorboard" 2>/dev/null; then
  log "install"
  timeout 240 python -m pip install -q -e . >>"$O/log.txt" 2>&1 || log "pip install failed (see log)"
fi
if [ "${DRY:-0}" = 1 ]; then
  DEV=cpu; SIZES=1,2; SEP=1,2; STEPS=3; BLOCKS=1; AGREE=3; T=300
else
  DEV=cuda; SIZES=${SIZES:-1,2,4,8,16,32,64}; SEP=${SEP:-1,4,16}; STEPS=${STEPS:-200}; BLOCKS=3; AGREE=${AGREE:-1000}; T=150
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$O/log.txt"
fi
python -c "import torch, platform; print('torch', torch.__version__, 'python', platform.python_version(), 'cuda', torch.cuda.is_available() and torch.cuda.get_device_name(), 'cpus', __import__('os').cpu_count())" | tee -a "$O/log.txt"
for m in beta_vae echo factor_vae; do
  log "scaling $m: packs $SIZES, separate processes $SEP"
  timeout $T python benchmarks/bench_packs.py --device $DEV --models $m --sizes $SIZES --separate $SEP \
    --steps $STEPS --blocks $BLOCKS --out "$O/packs_$m.json" >>"$O/log.txt" 2>&1 || log "$m scaling cut off (partial JSON kept)"
done
log "agreement: pack members vs single runs, $AGREE steps"
timeout 90 python benchmarks/bench_packs.py --device $DEV --models beta_vae,echo,factor_vae --sizes "" \
  --agreement $AGREE --out "$O/packs_agreement.json" >>"$O/log.txt" 2>&1 || log "agreement cut off"
python - "$O" <<'PY' | tee -a "$O/log.txt"
import json, sys, pathlib
o = pathlib.Path(sys.argv[1])
for f in sorted(o.glob("packs_*.json")):
    r = json.loads(f.read_text())
    for row in r.get("packs", []) + r.get("separate", []) + r.get("agreement", []):
        print(f.name, json.dumps(row))
    if r.get("table2_gpu_hours"):
        print(f.name, "Table 2 GPU-hours at the best pack rate:", r["table2_gpu_hours"])
PY
log "done"
