#!/usr/bin/env bash
# The main job, end to end: a worker in the background, one run through the whole stack.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=.venv/bin
mkdir -p .aios/logs

"$BIN/aios" worker >>.aios/logs/demo-worker.log 2>&1 &
worker=$!
trap 'kill -TERM "$worker" 2>/dev/null; wait "$worker" 2>/dev/null || true' EXIT

"$BIN/aios" ping "hello from make demo" --as demo
echo
echo "The stack keeps running: 'make down' stops it. Worker log: .aios/logs/demo-worker.log"
