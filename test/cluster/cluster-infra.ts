import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { clickHouseSettingsFromEnv } from '@cprec/clickhouse';
import { pollUntil } from '../support/infra';

/**
 * The cluster profile's servers for the failover tests (`npm run test:cluster`, which starts them
 * with `bash infra/local/up --cluster` and loads .cprec/cluster/cluster.env): find a node's pid,
 * SIGKILL it, start it again. Node numbers are 1-based, as in infra/local/cluster.sh.
 */

const REPO = join(__dirname, '..', '..');

function clusterShell(command: string): string {
  return execFileSync('bash', [
    '-c',
    `set -euo pipefail; source ${join(REPO, 'infra/local/lib.sh')} --cluster; ` +
      `source ${join(REPO, 'infra/local/cluster.sh')}; ${command}`,
  ])
    .toString()
    .trim();
}

/** Refuses to run against anything but the cluster profile. */
export function requireClusterProfile(): { brokers: string[]; replicas: readonly string[] } {
  const replicas = clickHouseSettingsFromEnv().replicas ?? [];
  const brokers = (process.env.CPREC_KAFKA_BROKERS ?? '').split(',').filter(Boolean);
  if (process.env.CPREC_INFRA_PROFILE !== 'cluster' || replicas.length < 2 || brokers.length < 3)
    throw new Error(
      'the cluster tests need the cluster profile: run them with `npm run test:cluster` ' +
        '(or `bash infra/local/up --cluster` and `set -a && . .cprec/cluster/cluster.env && . .cprec/secrets/cprec.env && set +a`)',
    );
  return { brokers, replicas };
}

export function kafkaNodePid(node: number): number {
  return Number(clusterShell(`select_kafka_node ${node}; kafka_pid`));
}

export function clickHouseReplicaPid(replica: number): number {
  return Number(clusterShell(`select_clickhouse_node ${replica}; clickhouse_pid`));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGKILL (no controlled shutdown, nothing flushed) and wait until the process is gone. */
export async function killProcess(pid: number, what: string): Promise<void> {
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`no pid for ${what}`);
  process.kill(pid, 'SIGKILL');
  await pollUntil(async () => !alive(pid), Boolean, `${what} (pid ${pid}) to die`, 30_000);
}

/**
 * `bash infra/local/up --cluster`: starts whatever node is down and waits until every broker is
 * registered and every replica answers. Migrations run for `database` only (the suite's own).
 */
export function upCluster(database: string): number {
  const started = Date.now();
  execFileSync('bash', [join(REPO, 'infra', 'local', 'up'), '--cluster'], {
    stdio: 'ignore',
    env: { ...process.env, CPREC_CLICKHOUSE_DB: database },
  });
  return Date.now() - started;
}
