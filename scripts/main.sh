#!/usr/bin/env bash
# Set up ./.venv and run the main job on built-in defaults (all outputs under one folder).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
. .venv/bin/activate
exec dis-eval main "$@"
