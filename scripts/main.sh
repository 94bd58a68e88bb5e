#!/usr/bin/env bash
# The README's main command: sets up everything, starts Kafka + ClickHouse, then runs the whole
# pipeline (services, replay, a CPT round with fine-tuning, evaluation, promotion, serving) on the
# default synthetic data — or on `npm start -- --dataset PATH`. Runs until Ctrl-C.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/bootstrap.sh
bash infra/local/up
exec node -r ts-node/register/transpile-only -r tsconfig-paths/register cli/src/main.ts demo "$@"
