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

export interface RunningService {
  spec: ServiceSpec;
  port: number;
  child: ChildProcess;
  logFile: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts one service from its sources (ts-node, as in development); output to `<logDir>/<name>.log`. */
export function spawnService(
  spec: ServiceSpec,
  env: NodeJS.ProcessEnv,
  logDir: string,
): RunningService | null {
  const main = join(REPO_ROOT, 'services', spec.name, 'src', 'main.ts');
  if (!existsSync(main)) return null;
  mkdirSync(logDir, { recursive: true });
  const logFile = join(logDir, `${spec.name}.log`);
  const out = createWriteStream(logFile, { flags: 'a' });
  const port = portOf(spec, env);
  const child = spawn(process.execPath, [...NODE_ARGS, main], {
    cwd: REPO_ROOT,
    // Each service as its own principal (its line of the secrets file), not as the launcher.
    env: { ...serviceEnvironment(env), [spec.portVariable]: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.pipe(out);
  child.stderr?.pipe(out);
  return { spec, port, child, logFile };
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
