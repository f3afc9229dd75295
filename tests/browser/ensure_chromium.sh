#!/usr/bin/env bash
# Installs Debian's `chromium` for the live page's browser test
# (tests/integration/api/test_dashboard_page.py), only when it is missing.
# Playwright drives this system binary; it never downloads a browser of its own.
set -euo pipefail
CHROMIUM=${BERTCTR_CHROMIUM:-/usr/bin/chromium}
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "ensure_chromium: $CHROMIUM is missing and installing it needs root" >&2
  exit 1
fi
echo "ensure_chromium: installing Debian's chromium (a minute or two)" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium >/dev/null
"$CHROMIUM" --version
