#!/usr/bin/env bash
# Makes sure Debian's Chromium and its ChromeDriver are installed: the dashboard's test
# drives a real headless browser.
set -euo pipefail

if ! command -v chromedriver >/dev/null 2>&1 || ! [ -x /usr/bin/chromium ]; then
    echo "ensure-chromium: installing chromium and chromium-driver from Debian's packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 || {
        apt-get update -qq
        apt-get install -y -qq chromium chromium-driver >/dev/null
    }
fi
/usr/bin/chromium --version >&2
