#!/usr/bin/env bash
# The Python the tests call PagerDuty's own client with: a virtualenv under the cache with the
# official `pagerduty` package from PyPI (pinned), made once and reused.
set -euo pipefail
venv=${MTTX_VENV:-$HOME/.cache/mttx-venv}
if ! "$venv/bin/python" -c 'import pagerduty, sys; sys.exit(pagerduty.__version__ != "7.2.0")' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'pagerduty==7.2.0'
fi
"$venv/bin/python" -c 'import pagerduty; print("pagerduty", pagerduty.__version__, "in", __import__("sys").prefix)'
