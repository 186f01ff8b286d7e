#!/usr/bin/env bash
# The Pythons the tests call outside tools with, each a virtualenv under the cache, made once
# and reused, with pinned packages from PyPI:
# - mttx-venv: PagerDuty's official client (`pagerduty`), for the Analytics API's tests, and
#   aiosmtpd, the SMTP server the weekly mail's tests send to;
# - mttx-st: schemathesis, which fuzzes the API against its OpenAPI document;
# - mttx-nb: the Python example's packages (examples/python/requirements.txt: polars,
#   deltalake, pyarrow), for the test that runs it.
set -euo pipefail
venv=${MTTX_VENV:-$HOME/.cache/mttx-venv}
if ! "$venv/bin/python" -c 'import pagerduty, sys; sys.exit(pagerduty.__version__ != "7.2.0")' 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'pagerduty==7.2.0'
fi
if ! "$venv/bin/python" -c 'import aiosmtpd, sys; sys.exit(aiosmtpd.__version__ != "1.4.6")' 2>/dev/null; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'aiosmtpd==1.4.6'
fi
"$venv/bin/python" -c 'import pagerduty, aiosmtpd; print("pagerduty", pagerduty.__version__, "aiosmtpd", aiosmtpd.__version__, "in", __import__("sys").prefix)'

st_version=4.32.5
st_venv=${MTTX_ST_VENV:-$HOME/.cache/mttx-st}
if [ "$("$st_venv/bin/st" --version 2>/dev/null)" != "st, version $st_version" ]; then
    python3 -m venv "$st_venv"
    "$st_venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$st_version"
fi
"$st_venv/bin/st" --version

nb_venv=${MTTX_NB_VENV:-$HOME/.cache/mttx-nb}
requirements=examples/python/requirements.txt
if ! cmp -s "$requirements" "$nb_venv/requirements.txt" 2>/dev/null; then
    python3 -m venv "$nb_venv"
    "$nb_venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    cp "$requirements" "$nb_venv/requirements.txt"
fi
"$nb_venv/bin/python" -c 'import polars, deltalake; print("polars", polars.__version__, "deltalake", deltalake.__version__)'
