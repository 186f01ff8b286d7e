#!/usr/bin/env bash
# The test command: starts what the tests need (PostgreSQL, a hot standby, Chromium, Python,
# zsh, fish and Prometheus, an S3 server and Azurite) and runs every test of the workspace
# against it. Build output goes to one shared target directory.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mttx-target}
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

bash scripts/ensure-postgres.sh
bash scripts/ensure-chromium.sh
bash scripts/ensure-python.sh
bash scripts/ensure-packages.sh
# A primary and its hot standby (streaming replication) for the standby test.
bash scripts/ensure-standby.sh
export MTTX_STANDBY_PRIMARY_URL=${MTTX_STANDBY_PRIMARY_URL:-postgres://postgres@127.0.0.1:5433/postgres}
export MTTX_STANDBY_URL=${MTTX_STANDBY_URL:-postgres://postgres@127.0.0.1:5434/postgres}
# Object stores on loopback (scripts/ensure-objstores.sh): moto for S3, Azurite for Azure Blob.
# The facts tests on s3:// and az:// (and the processes they start) reach them through each
# store's usual environment variables, as a user's mttx would reach the real ones.
bash scripts/ensure-objstores.sh
source scripts/objstores-env.sh

if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --profile "${NEXTEST_PROFILE:-default}" "$@"
else
    cargo test --workspace "$@"
fi
