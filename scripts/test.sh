#!/usr/bin/env bash
# The test command: starts what the tests need (PostgreSQL, Chromium) and runs every test of the
# workspace against it. Build output goes to one shared target directory.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/mttx-target}
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

bash scripts/ensure-postgres.sh
bash scripts/ensure-chromium.sh
bash scripts/ensure-python.sh

if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --profile "${NEXTEST_PROFILE:-default}" "$@"
else
    cargo test --workspace "$@"
fi
