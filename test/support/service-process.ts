import { ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { serviceEnvironment } from '@cprec/contracts';

export const REPO_ROOT = resolve(__dirname, '../..');

export interface RunningService {
  name: string;
  port: number;
  child: ChildProcess;
  /** SIGKILL: no shutdown hooks, nothing flushed — a crash. */
  kill(): Promise<void>;
  /** SIGTERM and wait for a clean exit. */
  stop(): Promise<number | null>;
}

/** A free-ish port per test run: random in a range no cprec default uses. */
export function randomPort(): number {
  return 20000 + Math.floor(Math.random() * 20000);
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((r) => child.once('exit', (code) => r(code)));
}

/**
 * Starts a real service process (TypeScript through ts-node, as in development) and waits until
 * its /health answers 200. Output goes to .cprec/logs/test-<name>-<port>.log for post-mortems.
 */
export async function startService(
  name: string,
  port: number,
  env: Record<string, string>,
  portVariable: string,
  timeoutMs = 90_000,
): Promise<RunningService> {
  const logDir = join(REPO_ROOT, '.cprec', 'logs');
  mkdirSync(logDir, { recursive: true });
  const logFile = join(logDir, `test-${name}-${port}.log`);
  const out = createWriteStream(logFile);
  const child = spawn(
    process.execPath,
    [
      // Extra node flags for profiling a service under a test or benchmark (e.g. --cpu-prof).
      ...(process.env.CPREC_SERVICE_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
      '-r',
      'ts-node/register/transpile-only',
      '-r',
      'tsconfig-paths/register',
      join(REPO_ROOT, 'services', name, 'src', 'main.ts'),
    ],
    {
      cwd: REPO_ROOT,
      // The service's own principal (its line of the secrets file), not the tests' admin.
      env: {
        ...serviceEnvironment(process.env),
        ...env,
        [portVariable]: String(port),
        TS_NODE_TRANSPILE_ONLY: 'true',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  child.stdout?.pipe(out);
  child.stderr?.pipe(out);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null)
      throw new Error(`${name} exited with ${child.exitCode} during start; see ${logFile}`);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/health`);
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`${name} did not become healthy within ${timeoutMs} ms; see ${logFile}`);
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  return {
    name,
    port,
    child,
    kill: async () => {
      child.kill('SIGKILL');
      await exited(child);
    },
    stop: async () => {
      child.kill('SIGTERM');
      return exited(child);
    },
  };
}

/** Polls until `probe` returns true or the time runs out (then throws with the last value). */
export async function eventually<T>(
  probe: () => Promise<T>,
  accept: (value: T) => boolean,
  what: string,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  let lastError: unknown = null;
  for (;;) {
    try {
      last = await probe();
      lastError = null;
      if (accept(last)) return last;
    } catch (err) {
      lastError = err; // a server restarting is expected while waiting
    }
    if (Date.now() > deadline) {
      const detail = lastError
        ? `last error ${(lastError as Error).message}`
        : `last value ${JSON.stringify(last)}`;
      throw new Error(`timed out waiting for ${what}; ${detail}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}
