#!/usr/bin/env bash
# The Pythons the tests call outside tools with, each a virtualenv under the cache, made once
# and reused, with pinned packages from PyPI:
# - mttx-venv: PagerDuty's official client (`pagerduty`), for the Analytics API's tests;
# - mttx-st: schemathesis, which fuzzes the API against its OpenAPI document.
set -euo pipefail
venv=${MTTX_VENV:-$HOME/.cache/mttx-venv}
if ! "$venv/bin/python" -c 'import pagerduty, sys; sys.exit(pagerduty.__version__ != "7.2.0")' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'pagerduty==7.2.0'
fi
"$venv/bin/python" -c 'import pagerduty; print("pagerduty", pagerduty.__version__, "in", __import__("sys").prefix)'

st_version=4.32.5
st_venv=${MTTX_ST_VENV:-$HOME/.cache/mttx-st}
if [ "$("$st_venv/bin/st" --version 2>/dev/null)" != "st, version $st_version" ]; then
    python3 -m venv "$st_venv"
    "$st_venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$st_version"
fi
"$st_venv/bin/st" --version
