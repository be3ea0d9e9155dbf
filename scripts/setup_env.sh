#!/usr/bin/env bash
# Creates ./.venv (if needed) and installs dis-eval with everything the main job and the
# tests need. Idempotent: a stamp keyed on pyproject.toml skips the work on re-runs.
# pip's output goes to .venv/install.log (printed only if something fails).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
stamp=.venv/.dis-eval-installed
want=$(sha1sum pyproject.toml scripts/setup_env.sh | sha1sum | cut -c1-40)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setting up .venv (first run only; log in .venv/install.log) ..."
  log=.venv/install.log
  {
    python -m pip install --upgrade pip
    # The CPU build of torch lies on this machine's disk; install it first so that the
    # project's range (<=2.13.0) is already satisfied and no CUDA build is pulled.
    python -c "import torch" 2>/dev/null || python -m pip install "torch==2.13.0"
    python -m pip install -e ".[test,parity,ray,serve]"
    # The reference metrics (disentanglement_lib 1.5), for the parity tests only. --no-deps:
    # its declared TensorFlow-1 requirements are not imported by the metric modules.
    python -m pip install --no-deps "disentanglement-lib==1.5"
    python -c "import torch, dis_eval, sklearn, h5py, disentanglement_lib, fastapi, onnxruntime"
  } >"$log" 2>&1 || { tail -n 40 "$log" >&2; echo "set-up failed: see $log" >&2; exit 1; }
  echo "$want" > "$stamp"
fi
