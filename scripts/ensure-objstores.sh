#!/usr/bin/env bash
# The object stores the tests write facts to, installed once under the cache and reused:
# - moto's server mode (PyPI, pinned), an S3-compatible server; 5.2.0 answers conditional
#   puts with a 500, 5.2.1 answers them as S3 does (412), which delta-rs commits rely on;
# - Azurite (npm, pinned), Microsoft's Azure Storage emulator; the tests run its blob service.
# Each test starts its own server on a free loopback port (bin/moto_server, azurite-blob),
# so nothing is left running here.
set -euo pipefail
cache=$HOME/.cache

moto_version=5.2.1
moto=${MTTX_MOTO_VENV:-$cache/mttx-moto}
if ! "$moto/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$moto_version')" 2>/dev/null; then
    python3 -m venv "$moto"
    "$moto/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$moto_version"
fi
echo "moto $("$moto/bin/python" -c 'import moto; print(moto.__version__)') in $moto"

azurite_version=3.35.0
azurite=${MTTX_AZURITE_DIR:-$cache/mttx-azurite}
have=$(node -p "require('$azurite/node_modules/azurite/package.json').version" 2>/dev/null || true)
if [ "$have" != "$azurite_version" ]; then
    mkdir -p "$azurite"
    npm install --prefix "$azurite" --no-audit --no-fund --loglevel=error "azurite@$azurite_version"
fi
echo "azurite $(node -p "require('$azurite/node_modules/azurite/package.json').version") in $azurite"

# The servers: started once in the background (no file descriptor of ours kept open) and
# reused; each keeps its objects in memory. Tests write under their own prefix of one bucket
# and one container, both made here.
state=$cache/mttx-objstores
mkdir -p "$state"
moto_port=${MTTX_MOTO_PORT:-5390}
azurite_port=${MTTX_AZURITE_PORT:-10000}
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
await() {
    for _ in $(seq 1 100); do listening "$1" && return 0; sleep 0.2; done
    echo "ensure-objstores: $2 did not start on 127.0.0.1:$1; its log: $state/$2.log" >&2
    tail -n 20 "$state/$2.log" >&2
    exit 1
}
if ! listening "$moto_port"; then
    setsid nohup "$moto/bin/moto_server" -H 127.0.0.1 -p "$moto_port" \
        >"$state/moto.log" 2>&1 </dev/null &
    await "$moto_port" moto
fi
if ! listening "$azurite_port"; then
    setsid nohup "$azurite/node_modules/.bin/azurite-blob" --blobHost 127.0.0.1 \
        --blobPort "$azurite_port" --inMemoryPersistence --skipApiVersionCheck --silent \
        >"$state/azurite.log" 2>&1 </dev/null &
    await "$azurite_port" azurite
fi

# The bucket (moto takes an unsigned PUT) and the container (Azurite wants Shared Key, with
# its well-known development account); both calls are idempotent.
curl -s -o /dev/null -X PUT "http://127.0.0.1:$moto_port/mttx"
python3 - "$azurite_port" <<'PY'
import base64, hashlib, hmac, sys, urllib.error, urllib.request
from email.utils import formatdate
port = sys.argv[1]
account = "devstoreaccount1"
key = base64.b64decode("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==")
date, version = formatdate(usegmt=True), "2021-08-06"
to_sign = "PUT\n\n\n\n\napplication/octet-stream\n" + "\n" * 6 + f"x-ms-date:{date}\nx-ms-version:{version}\n/{account}/{account}/mttx\nrestype:container"
signature = base64.b64encode(hmac.new(key, to_sign.encode(), hashlib.sha256).digest()).decode()
request = urllib.request.Request(
    f"http://127.0.0.1:{port}/{account}/mttx?restype=container", method="PUT", data=b"",
    headers={"Content-Type": "application/octet-stream", "x-ms-date": date, "x-ms-version": version,
             "Authorization": f"SharedKey {account}:{signature}"})
try:
    urllib.request.urlopen(request)
except urllib.error.HTTPError as e:
    if e.code != 409:  # 409: it exists already
        sys.exit(f"ensure-objstores: Azurite refused to make the container: {e.code} {e.read()[:300]!r}")
PY
echo "moto (S3) on 127.0.0.1:$moto_port, bucket mttx; Azurite (blob) on 127.0.0.1:$azurite_port, container mttx"
