#!/usr/bin/env bash
# Set up ./.venv and run the whole test suite (and ruff). Exit code 5 (no tests ran) is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
bash scripts/install_browser.sh   # the system's Chromium for the browser tests, where it can
. .venv/bin/activate
ruff check .
set +e
# Two test processes share the cores: OpenMP's default spin-waiting (torch's CPU threads spin
# for a while before sleeping) then burns the other process's core, which halved throughput
# here (tests/test_packs.py + tests/test_pinned_numbers.py on 2 workers: 133 s spinning, 68 s
# passive). Idle threads sleep instead; thread counts, and so every number, are unchanged.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
# Test files are shared out to DIS_EVAL_TEST_WORKERS processes (pytest-xdist; default 2, one
# per core of the CI machine; 0 runs them in this process). A file's tests stay in one process,
# so its module fixtures are built once.
python -m pytest -n "${DIS_EVAL_TEST_WORKERS:-2}" --dist loadfile --durations=25 "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit "$rc"
