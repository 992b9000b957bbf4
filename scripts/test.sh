#!/usr/bin/env bash
# Install the project with its test extras and run the whole suite
# (SQLite always; PostgreSQL too when one answers at 127.0.0.1:5432).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
exec .venv/bin/python -m pytest "$@"
