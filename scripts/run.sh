#!/usr/bin/env bash
# Set everything up on a fresh machine and run the bot:
#   virtualenv + install, config.toml from the example (first time), database created/migrated.
# With no token configured this starts the local sandbox instead of the real bot.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[ -f config.toml ] || install -m 600 config.example.toml config.toml
chmod 600 config.toml  # it may hold the bot token
.venv/bin/python -m bot --config config.toml init
exec .venv/bin/python -m bot --config config.toml run "$@"
