#!/usr/bin/env bash
# Tools some tests drive, from Debian's packages, installed only when missing:
# - headless Chromium for @errand/dashboard's browser test, driven by playwright-core
#   (Playwright's own browser download cannot work on a machine without internet);
# - tmux for @errand/cli's progress-bar test (a real pseudo-terminal).
set -euo pipefail
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing (apt-get): ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}"
fi
echo "chromium: $(/usr/bin/chromium --version 2>/dev/null | tail -n 1)"
echo "tmux: $(tmux -V)"
