#!/usr/bin/env bash
# Set up ./.venv and run the whole test suite (and ruff). Exit code 5 (no tests ran) is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
bash scripts/install_browser.sh   # the system's Chromium for the browser tests, where it can
. .venv/bin/activate
ruff check .
set +e
python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit "$rc"
