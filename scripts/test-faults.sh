#!/usr/bin/env bash
# The fault and fuzz suite alone (test/faults; `npm test` runs it too, inside the integration tier):
# seeded fuzz on every consumed topic, SIGKILL of each service mid-work, Kafka killed and
# restarted mid-round, ClickHouse down for 60 s mid-ingest and mid-round (docs/reliability.md).
# It kills and restarts the local Kafka and ClickHouse; they are left running. Extra arguments go
# to Jest (e.g. a file: npm run test:faults -- test/faults/fuzz.test.ts).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash infra/local/up
source infra/local/lib.sh
export_secrets
export CPREC_TEST_RUN="${CPREC_TEST_RUN:-$(node -e 'process.stdout.write("f" + Date.now().toString(36) + require("crypto").randomBytes(2).toString("hex"))')}"
status=0
npx jest --ci --selectProjects integration --runInBand --forceExit "${@:-test/faults}" || status=1
# Whatever a failed suite left under this run id (and stale namespaces older than a day).
node -r ts-node/register/transpile-only -r tsconfig-paths/register test/support/isolation-cli.ts \
  cleanup "$CPREC_TEST_RUN" --stale-hours 24 || status=1
# Never leave the shared servers down (a fault test interrupted mid-outage).
bash infra/local/up >/dev/null 2>&1 || status=1
exit $status
