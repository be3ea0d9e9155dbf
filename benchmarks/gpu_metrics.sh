#!/usr/bin/env bash
# Device check for the metrics area on one H100/H200 (16 CPU cores): render the full set,
# the CUDA encode test, encode throughput, the suite end to end on the GPU, and the metric
# computations against the reference on that machine's CPUs. Results go to $OUT.
#   bash benchmarks/gpu_metrics.sh      (reference package: carry gin + disentanglement_lib)
set -uo pipefail
export PYTHONUNBUFFERED=1 DIS_EVAL_DATA=/tmp/dis_eval_data
OUT=${OUT:-/tmp/dis_eval_bench}; mkdir -p "$OUT" "$DIS_EVAL_DATA"
SP=.venv/lib/python3.11/site-packages
if [ -d "$SP/disentanglement_lib" ]; then
  mkdir -p /tmp/dl && ln -sfn "$PWD/$SP/gin" /tmp/dl/gin && ln -sfn "$PWD/$SP/disentanglement_lib" /tmp/dl/disentanglement_lib
  export PYTHONPATH=/tmp/dl
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import os, numpy, sklearn, torch; print('numpy', numpy.__version__, 'sklearn', sklearn.__version__, 'torch', torch.__version__, 'cpus', os.cpu_count())"
t0=$(date +%s)
python3 -c "from pathlib import Path; from data_prep.prepare import from_render; from_render(Path('$DIS_EVAL_DATA/dsprites_full.npz'), workers=16, progress=False)" || exit 1
echo "prepare: $(( $(date +%s) - t0 )) s"
python3 -m pytest tests/test_encode.py -q -p no:cacheprovider -k cuda 2>&1 | tail -2
timeout 150 python3 benchmarks/bench_encode.py --device cuda --batch-sizes 1024,8192 --compile --out "$OUT/bench_encode_gpu.json"
timeout 150 python3 benchmarks/bench_metrics.py e2e --device cuda --no-reference --dci-backend hist --batch-size 8192 --out "$OUT/bench_e2e_gpu_hist.json"
timeout 200 python3 benchmarks/bench_metrics.py codes --dci-num-train 1000 --dci-backend hist --out "$OUT/bench_codes_16cpu.json" 2>&1 | grep -v blacklist
echo "total: $(( $(date +%s) - t0 )) s"
