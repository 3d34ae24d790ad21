#!/bin/sh
# Chromium from Debian for tests/test_webui.py (headless, driven over the DevTools protocol).
# Idempotent and quiet: does nothing when /usr/bin/chromium is there; installs it as root
# (CI runs as root); otherwise says what to run.
set -eu
[ -x /usr/bin/chromium ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "tests/test_webui.py needs Chromium: sudo apt-get install -y chromium" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends chromium >/dev/null
