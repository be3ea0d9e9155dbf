#!/usr/bin/env bash
# Creates ./.venv (if needed) and installs dis-eval with everything the main job and the
# tests need. Idempotent: a stamp keyed on pyproject.toml skips the work on re-runs.
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
  python -m pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
  # The CPU build of torch lies on this machine's disk; install it first so that the
  # project's range (<=2.13.0) is already satisfied and no CUDA build is pulled.
  python -c "import torch" 2>/dev/null || python -m pip install -q "torch==2.13.0" 2>&1 | grep -v "is ignored" || true
  python -m pip install -q -e ".[test,parity,ray]" 2>&1 | grep -v "is ignored" || true
  # The reference metrics (disentanglement_lib 1.5), for the parity tests only. --no-deps:
  # its declared TensorFlow-1 requirements are not imported by the metric modules.
  python -m pip install -q --no-deps "disentanglement-lib==1.5" 2>&1 | grep -v "is ignored" || true
  python -c "import torch, dis_eval, sklearn, h5py" # fail loudly if the install is broken
  echo "$want" > "$stamp"
fi
