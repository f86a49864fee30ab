#!/usr/bin/env bash
# The main job, end to end: the refund desk on the local stack (see infra/local/demo.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
exec .venv/bin/python infra/local/demo.py
