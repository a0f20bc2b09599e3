#!/usr/bin/env bash
# Build the NestJS baseline for bench/: install exactly what package-lock.json
# pins (npm ci), then compile src/ into dist/ with tsc.
#
# Idempotent and quiet: npm ci runs only when package-lock.json changed since
# the last install, tsc only when a source or config file is newer than its
# output. Prints nothing on success; on failure, the failing step's output and
# a non-zero exit code. Needs Node >= 20 and npm.
#
#     bench/baselines/nestjs/build.sh && node bench/baselines/nestjs/dist/main.js --port 0
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

log=$(mktemp)
trap 'rm -f "$log"' EXIT

run() {
    if ! "$@" >"$log" 2>&1; then
        echo "nestjs baseline: '$*' failed in $(pwd):" >&2
        cat "$log" >&2
        exit 1
    fi
}

command -v npm >/dev/null || { echo "nestjs baseline: npm not found (Node >= 20 needed)" >&2; exit 1; }

stamp=node_modules/.bench-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
    run npm ci --no-audit --no-fund --loglevel=error
    echo "$want" >"$stamp"
    rm -rf dist
fi

if [[ ! -f dist/main.js ]] || [[ -n $(find src tsconfig.json package-lock.json -newer dist/main.js -print -quit) ]]; then
    rm -rf dist
    run node node_modules/typescript/bin/tsc -p tsconfig.json
fi
