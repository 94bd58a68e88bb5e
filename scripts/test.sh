#!/usr/bin/env bash
# The test command of the README and of CI: sets up everything (npm packages, OS packages,
# Kafka, ClickHouse, native kernels), runs lint and type checks, then every test tier.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash scripts/bootstrap.sh
# build-native.sh never fails (the library falls back to the JS kernels), but the test run needs
# the addon: without it 256+ native-kernel tests and the CPT-vs-SFT experiment would be skipped
# and the run would still look green.
addon="$ROOT/libs/lm/native/build/Release/cprec_kernels.node"
node -e 'require(process.argv[1])' "$addon" || {
  echo "native kernels missing or not loading: $addon (see the build-native.sh output above)" >&2
  exit 1
}
bash infra/local/up

echo "==> typecheck"
npx tsc -p tsconfig.json --noEmit
echo "==> lint"
npx eslint .
npx prettier --check . > /dev/null || { npx prettier --list-different .; echo "prettier: files above need formatting (npm run format)"; exit 1; }

mkdir -p .cprec/test-results
status=0
echo "==> unit tests"
# Two workers: Jest's default on a 2-core machine is one (cores - 1), and the unit specs are
# single-threaded CPU work (tiny models), so the second core would sit idle.
# CI=true: the specs that would skip without the native addon fail instead (they only read it
# for that; Jest's own CI behaviour is already on with --ci).
CI=true npx jest --ci --selectProjects unit --maxWorkers=2 --json --outputFile=.cprec/test-results/unit.json || status=1
echo "==> integration and end-to-end tests (real Kafka + ClickHouse)"
# Every suite runs in a namespace of its own — database and topic names prefixed with
# cprec_t_<run>_<suite> (test/support/harness.ts) — and removes it afterwards, so nothing a test
# does is seen by `npm start`. The run id names this tier's namespaces; the clean-up below removes
# whatever a crashed suite left (and namespaces of runs older than a day), and the comparison
# fails the run if the production database or topics changed while the tier ran.
export CPREC_TEST_RUN="${CPREC_TEST_RUN:-$(node -e 'process.stdout.write(Date.now().toString(36) + require("crypto").randomBytes(2).toString("hex"))')}"
isolation() { node -r ts-node/register/transpile-only -r tsconfig-paths/register test/support/isolation-cli.ts "$@"; }
isolation snapshot .cprec/test-results/production-before.json || status=1
npx jest --ci --selectProjects integration --runInBand --forceExit --json --outputFile=.cprec/test-results/integration.json || status=1
isolation cleanup "$CPREC_TEST_RUN" --stale-hours 24 || status=1
echo "==> production untouched by the tests"
isolation compare .cprec/test-results/production-before.json || status=1

# Jest's own summary is per run; print one closing line over both tiers.
node -e '
const fs = require("fs");
let passed = 0, failed = 0, skipped = 0;
for (const f of ["unit", "integration"]) {
  const p = `.cprec/test-results/${f}.json`;
  if (!fs.existsSync(p)) { failed += 1; continue; }
  const r = JSON.parse(fs.readFileSync(p, "utf8"));
  passed += r.numPassedTests; failed += r.numFailedTests + (r.numRuntimeErrorTestSuites || 0);
  skipped += r.numPendingTests + r.numTodoTests;
}
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
if (passed === 0) process.exit(1);
'
exit $status
