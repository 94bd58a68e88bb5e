import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { clickHouseReplicaPid, kafkaNodePid, requireClusterProfile } from '../test/cluster/cluster-infra';

/**
 * `--profile single|cluster` of the benchmarks (issue 16). `single` (the default) leaves the
 * environment as it is: the single-node servers of `bash infra/local/up`. `cluster` loads the
 * endpoints `bash infra/local/up --cluster` wrote to `.cprec/cluster/cluster.env` into this
 * process's environment (so every service process the benchmark spawns inherits them) and checks
 * them with the cluster tests' own guard (test/cluster/cluster-infra.ts). The secrets come from
 * the environment in both profiles (`set -a && . .cprec/secrets/cprec.env && set +a`).
 */
export type InfraProfile = 'single' | 'cluster';

const REPO_ROOT = resolve(__dirname, '..');

export function parseProfile(value: string): InfraProfile {
  if (value !== 'single' && value !== 'cluster')
    throw new InvalidArgumentError('must be "single" or "cluster"');
  return value;
}

export function parseReplicaCount(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 9)
    throw new InvalidArgumentError('must be an integer from 1 to 9');
  return n;
}

export interface ProfileInfo {
  profile: InfraProfile;
  /** ClickHouse replica URLs (one entry, CPREC_CLICKHOUSE_URL, on the single node). */
  clickHouseUrls: string[];
  kafkaBrokers: string[];
}

/** Applies the profile to process.env (cluster: from cluster.env) and describes it. */
export function useInfraProfile(profile: InfraProfile): ProfileInfo {
  if (profile === 'single')
    return {
      profile,
      clickHouseUrls: [process.env.CPREC_CLICKHOUSE_URL ?? 'http://127.0.0.1:18123'],
      kafkaBrokers: (process.env.CPREC_KAFKA_BROKERS ?? '127.0.0.1:19092').split(',').filter(Boolean),
    };
  const stateDir = process.env.CPREC_STATE_DIR ?? join(REPO_ROOT, '.cprec');
  const file = join(stateDir, 'cluster', 'cluster.env');
  if (!existsSync(file))
    throw new Error(
      `--profile cluster: ${file} not found; start the cluster with bash infra/local/up --cluster`,
    );
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const m = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) process.env[m[1]!] = m[2]!;
  }
  const { brokers, replicas } = requireClusterProfile();
  return { profile, clickHouseUrls: [...replicas], kafkaBrokers: brokers };
}

/**
 * Pids of the profile's servers, for CPU accounting: one ClickHouse and one Kafka on the single
 * node (from infra/local/status), every replica and broker on the cluster (cluster-infra.ts).
 */
export function serverPidsOf(
  info: ProfileInfo,
  singleNode: () => { clickhouse: number | null; kafka: number | null },
): {
  clickhouse: number[];
  kafka: number[];
} {
  if (info.profile === 'single') {
    const s = singleNode();
    return {
      clickhouse: s.clickhouse === null ? [] : [s.clickhouse],
      kafka: s.kafka === null ? [] : [s.kafka],
    };
  }
  const safe = (f: () => number): number[] => {
    try {
      const pid = f();
      return Number.isInteger(pid) && pid > 0 ? [pid] : [];
    } catch {
      return [];
    }
  };
  return {
    clickhouse: info.clickHouseUrls.flatMap((_, i) => safe(() => clickHouseReplicaPid(i + 1))),
    kafka: info.kafkaBrokers.flatMap((_, i) => safe(() => kafkaNodePid(i + 1))),
  };
}
