#!/usr/bin/env bash
# Makes sure the Debian packages some tests run are installed: zsh and fish (their shells
# check the completion scripts `mttx completions` prints) and prometheus (promtool checks
# deploy/'s alert rules; a real Prometheus scrapes a running ETL and server).
set -euo pipefail

# command:package
wanted=(zsh:zsh fish:fish promtool:prometheus prometheus:prometheus)
missing=()
for w in "${wanted[@]}"; do
    command -v "${w%%:*}" >/dev/null 2>&1 || missing+=("${w##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    echo "ensure-packages: installing ${missing[*]} from Debian's packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 || {
        apt-get update -qq
        apt-get install -y -qq "${missing[@]}" >/dev/null
    }
fi
