#!/usr/bin/env bash
# npm run test:cluster: the failover tests on the cluster profile (test/cluster, jest project
# `cluster`). Installs ZooKeeper if missing, starts the cluster profile (bash infra/local/up
# --cluster: three Kafka brokers, ZooKeeper, two ClickHouse replicas on ports of their own, so a
# running single-node profile is left alone), runs the suite against it, and stops the cluster
# again if it was not running before (CPREC_CLUSTER_KEEP=1 keeps it). Extra arguments go to jest.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash infra/local/install --cluster
was_running=0
# Any of its servers running (even with another down) counts: someone else is using the cluster.
cluster_status="$(bash infra/local/status --cluster 2>/dev/null || true)"
grep -qE ' (healthy|listening) ' <<< "$cluster_status" && was_running=1
started=$SECONDS
bash infra/local/up --cluster
echo "==> cluster profile up in $((SECONDS - started))s"
# The principals' passwords (shared with the single-node profile) and the cluster's endpoints.
source infra/local/lib.sh
export_secrets
set -a
# shellcheck disable=SC1091
source "$CPREC_STATE_DIR/cluster/cluster.env"
set +a

status=0
npx jest --ci --selectProjects cluster --runInBand --forceExit "$@" || status=1
if (( was_running == 0 )) && [[ "${CPREC_CLUSTER_KEEP:-0}" != 1 ]]; then
  bash infra/local/down --cluster
fi
exit $status
