#!/usr/bin/env bash
# Headless Chromium for @errand/dashboard's browser test: Debian's package, driven by
# playwright-core (Playwright's own browser download cannot work on a machine without internet).
# Installs it only when /usr/bin/chromium is missing.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  echo "chromium: $(/usr/bin/chromium --version 2>/dev/null | tail -n 1)"
  exit 0
fi
echo "chromium: installing (apt-get)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium
echo "chromium: $(/usr/bin/chromium --version 2>/dev/null | tail -n 1)"
