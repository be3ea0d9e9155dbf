#!/usr/bin/env bash
# The one prepared GPU session (device tool): render the full set, time the whole metric suite
# end to end (encoding included) and the encoder, then train short real Echo and beta-VAE runs
# and score them. Every stage appends to $OUT so a cut-off run still returns what it measured.
#   on the device:  bash benchmarks/gpu_run.sh            (results under $OUT)
#   dry run here:   DRY=1 OUT=/tmp/gpu_dry bash benchmarks/gpu_run.sh
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
O=${OUT:-/tmp/gpu_out}; mkdir -p "$O"
log() { echo "[$(date +%T)] $*" | tee -a "$O/log.txt"; }
if [ "${DRY:-0}" = 1 ]; then
  DEV=cpu; DATA=tests/data/dsprites_real_fixture.npz; STEPS=20; SCALE=0.02; EXTRA=""
else
  DEV=cuda; DATA=dsprites; STEPS=${STEPS:-40000}; SCALE=1.0; EXTRA=""
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$O/log.txt"
fi
python -c "import torch, platform; print('torch', torch.__version__, 'python', platform.python_version(), 'cuda', torch.cuda.is_available() and torch.cuda.get_device_name(), 'cpus', __import__('os').cpu_count())" | tee -a "$O/log.txt"
export DIS_EVAL_DATA=/tmp/dis_eval_data
if [ "$DATA" = dsprites ] && [ ! -f "$DIS_EVAL_DATA/dsprites_full.npz" ]; then
  log "render the full set"
  ( time python -m pipelines.cli prepare dsprites --render --workers 16 --quiet ) >>"$O/log.txt" 2>&1
fi
if [ "${SKIP_BENCH:-0}" != 1 ]; then
log "metric suite end to end (ours; DCI with the named hist backend)"
timeout 150 python benchmarks/bench_metrics.py e2e --device $DEV --data $DATA --no-reference \
  --dci-backend hist --scale $SCALE --out "$O/bench_metrics_e2e_gpu.json" >>"$O/log.txt" 2>&1
log "encode throughput"
timeout 90 python benchmarks/bench_encode.py --device $DEV --data $DATA --out "$O/bench_encode_gpu.json" >>"$O/log.txt" 2>&1
fi
for m in ${MODELS:-echo beta_vae}; do
  log "train $m for $STEPS steps"
  timeout 200 python -m pipelines.cli train pipelines/configs/$m.yaml steps=$STEPS data=$DATA device=$DEV \
    checkpoint_every=$STEPS log_every=1000 $EXTRA --out /tmp/runs/$m --quiet >>"$O/log.txt" 2>&1
  cat /tmp/runs/$m/summary.json >>"$O/log.txt" 2>/dev/null
  log "score $m (dlib defaults: mean representation)"
  timeout 120 python -m pipelines.cli evaluate /tmp/runs/$m --metrics factor_vae,mig --device $DEV \
    --json >"$O/eval_${m}_mean.json" 2>>"$O/log.txt"
  log "score $m (the authors' protocol: sample representation)"
  timeout 120 python -m pipelines.cli evaluate /tmp/runs/$m --metrics factor_vae,mig --device $DEV \
    --preset paper --json >"$O/eval_${m}_paper.json" 2>>"$O/log.txt"
done
log "done"
