#!/usr/bin/env bash
# The system's Chromium and chromedriver for the browser tests (tests/test_serve_browser.py),
# from the distribution's packages (Debian: chromium, chromium-driver), installed where this
# script may: as root, or with passwordless sudo. Elsewhere it says why and the browser tests
# skip, printing the same reason (pytest -rs). Never fails the caller; never downloads a
# browser of its own. Quiet when both are already there.
set -uo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "browser tests: no Chromium here and no apt-get to install it; they will be skipped" >&2
  exit 0
fi
if [ "$(id -u)" = 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  echo "browser tests: no Chromium here, and installing it needs root or passwordless sudo" \
       "(apt-get install -y chromium chromium-driver); they will be skipped" >&2
  exit 0
fi
log=$(mktemp -t dis-eval-browser-install.XXXXXX.log)
echo "installing Chromium for the browser tests (apt-get; log in $log) ..."
if "${SUDO[@]}" apt-get update >"$log" 2>&1 \
   && DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y --no-install-recommends chromium chromium-driver >>"$log" 2>&1; then
  rm -f "$log"
else
  tail -n 20 "$log" >&2
  echo "browser tests: installing Chromium failed (log: $log); they will be skipped" >&2
fi
exit 0
