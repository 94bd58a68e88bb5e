import { ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { serviceEnvironment } from '@cprec/contracts';

export const REPO_ROOT = resolve(__dirname, '../../..');
const NODE_ARGS = ['-r', 'ts-node/register/transpile-only', '-r', 'tsconfig-paths/register'];

export interface ServiceSpec {
  name: 'ingest' | 'sequencer' | 'trainer' | 'evaluator' | 'serving' | 'operator';
  portVariable: string;
  defaultPort: number;
}

export const SERVICES: readonly ServiceSpec[] = [
  { name: 'ingest', portVariable: 'INGEST_PORT', defaultPort: 8101 },
  { name: 'sequencer', portVariable: 'SEQUENCER_PORT', defaultPort: 8102 },
  { name: 'trainer', portVariable: 'TRAINER_PORT', defaultPort: 8103 },
  { name: 'evaluator', portVariable: 'EVALUATOR_PORT', defaultPort: 8104 },
  { name: 'serving', portVariable: 'SERVING_PORT', defaultPort: 8105 },
  { name: 'operator', portVariable: 'OPERATOR_PORT', defaultPort: 8100 },
];

/** A service's port: its *_PORT variable when set (tests, a second installation), else the default. */
export function portOf(spec: ServiceSpec, env: NodeJS.ProcessEnv): number {
  const raw = env[spec.portVariable];
  const port = raw === undefined || raw === '' ? spec.defaultPort : Number(raw);
  if (!Number.isInteger(port) || port < 1 || port > 65_535)
    throw new Error(`${spec.portVariable}=${raw}: not a port number`);
  return port;
}

export type ServiceName = ServiceSpec['name'];

/** Replica n (from 1) of a service listens on its port + (n − 1) × this. */
export const REPLICA_PORT_STRIDE = 100;

/**
 * `npm start -- --replicas ingest=2,serving=3` (or CPREC_REPLICAS): processes per service, 1 for
 * those not named. The sequencer and the trainer accept more than one too: one is active, the
 * others are standbys that take over (their leases, docs/scaling.md).
 */
export function parseReplicas(text: string | undefined): Map<ServiceName, number> {
  const counts = new Map<ServiceName, number>(SERVICES.map((s) => [s.name, 1]));
  for (const part of (text ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const m = /^([a-z]+)=(\d+)$/.exec(part);
    const name = m?.[1] as ServiceName | undefined;
    const n = Number(m?.[2]);
    if (!m || !counts.has(name!))
      throw new Error(
        `--replicas: "${part}" is not service=N (services: ${SERVICES.map((x) => x.name).join(', ')})`,
      );
    if (!Number.isInteger(n) || n < 1 || n > 9) throw new Error(`--replicas: ${part}: N must be 1 to 9`);
    counts.set(name!, n);
  }
  return counts;
}

/**
 * Replica n's environment: its own port (the service's + (n − 1) × REPLICA_PORT_STRIDE) and, for
 * serving with an explicit SERVING_INSTANCE_ID, its own instance id (each serving replica has a
 * consumer group of its own; the default id already includes the port).
 */
export function replicaEnvironment(
  spec: ServiceSpec,
  env: NodeJS.ProcessEnv,
  replica: number,
): NodeJS.ProcessEnv {
  if (replica === 1) return env;
  const out: NodeJS.ProcessEnv = {
    ...env,
    [spec.portVariable]: String(portOf(spec, env) + (replica - 1) * REPLICA_PORT_STRIDE),
  };
  if (spec.name === 'serving' && env.SERVING_INSTANCE_ID)
    out.SERVING_INSTANCE_ID = `${env.SERVING_INSTANCE_ID}-${replica}`;
  return out;
}

export interface RunningService {
  spec: ServiceSpec;
  /** 1 for the first process of a service, 2… for further replicas. */
  replica: number;
  port: number;
  child: ChildProcess;
  logFile: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts one process of a service from its sources (ts-node, as in development); output to
 * `<logDir>/<name>.log` (`<name>-<n>.log` for replica n ≥ 2).
 */
export function spawnService(
  spec: ServiceSpec,
  baseEnv: NodeJS.ProcessEnv,
  logDir: string,
  replica = 1,
): RunningService | null {
  const main = join(REPO_ROOT, 'services', spec.name, 'src', 'main.ts');
  if (!existsSync(main)) return null;
  mkdirSync(logDir, { recursive: true });
  const logFile = join(logDir, replica === 1 ? `${spec.name}.log` : `${spec.name}-${replica}.log`);
  const out = createWriteStream(logFile, { flags: 'a' });
  const env = replicaEnvironment(spec, baseEnv, replica);
  const port = portOf(spec, env);
  const child = spawn(process.execPath, [...NODE_ARGS, main], {
    cwd: REPO_ROOT,
    // Each service as its own principal (its line of the secrets file), not as the launcher.
    env: { ...serviceEnvironment(env), [spec.portVariable]: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.pipe(out);
  child.stderr?.pipe(out);
  return { spec, replica, port, child, logFile };
}

export async function waitHealthy(service: RunningService, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (service.child.exitCode !== null)
      throw new Error(
        `${service.spec.name} exited with code ${service.child.exitCode}; see ${service.logFile}`,
      );
    try {
      const res = await fetch(`http://127.0.0.1:${service.port}/health`);
      if (res.ok) return;
    } catch {
      // not up yet
    }
    await sleep(500);
  }
  throw new Error(`${service.spec.name} not healthy after ${timeoutMs / 1000}s; see ${service.logFile}`);
}

/** SIGTERM to every service (newest first) and wait until they have all exited. */
export async function stopServices(services: readonly RunningService[]): Promise<void> {
  for (const { child } of [...services].reverse()) if (child.exitCode === null) child.kill('SIGTERM');
  await Promise.all(
    services.map(({ child }) =>
      child.exitCode === null && child.signalCode === null ? new Promise((r) => child.once('exit', r)) : null,
    ),
  );
}
