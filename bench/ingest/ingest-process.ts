import { ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const REPO_ROOT = resolve(__dirname, '../..');

/**
 * The ingest service as a separate OS process, started the way test/support/service-process.ts
 * does (ts-node transpile-only + tsconfig-paths), with room for extra Node flags (--cpu-prof)
 * and access to the pid, which the benchmark needs for RSS sampling.
 */
export interface IngestProcess {
  readonly child: ChildProcess;
  readonly port: number;
  readonly logFile: string;
  /** SIGTERM, wait for the graceful shutdown (the CPU profile is written on a clean exit). */
  stop(timeoutMs?: number): Promise<number | null>;
}

export function startIngestProcess(opts: {
  port: number;
  env: Record<string, string>;
  nodeArgs?: readonly string[];
  logName: string;
}): IngestProcess {
  const logDir = join(REPO_ROOT, '.cprec', 'logs');
  mkdirSync(logDir, { recursive: true });
  const logFile = join(logDir, `${opts.logName}.log`);
  const out = createWriteStream(logFile);
  const child = spawn(
    process.execPath,
    [
      ...(opts.nodeArgs ?? []),
      '-r',
      'ts-node/register/transpile-only',
      '-r',
      'tsconfig-paths/register',
      join(REPO_ROOT, 'services', 'ingest', 'src', 'main.ts'),
    ],
    {
      cwd: REPO_ROOT,
      env: { ...process.env, ...opts.env, INGEST_PORT: String(opts.port), TS_NODE_TRANSPILE_ONLY: 'true' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  child.stdout?.pipe(out);
  child.stderr?.pipe(out);
  return {
    child,
    port: opts.port,
    logFile,
    stop: async (timeoutMs = 30_000) => {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Resident set size of a process in bytes, from /proc (Linux); null once it has exited. */
export function readRssBytes(pid: number): number | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return match ? Number(match[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** User + system CPU seconds a process has used so far, from /proc/<pid>/stat (Linux). */
export function readCpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return ticks / 100; // USER_HZ is 100 on every Linux this runs on
  } catch {
    return null;
  }
}

/** Sum of a Prometheus counter across its label sets, from the text exposition format. */
export function counterTotal(metricsText: string, name: string): number {
  let total = 0;
  for (const line of metricsText.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(value)) total += value;
  }
  return total;
}

export async function waitForHealth(proc: IngestProcess, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null)
      throw new Error(
        `ingest exited (${proc.child.exitCode ?? proc.child.signalCode}) during start; see ${proc.logFile}`,
      );
    try {
      const res = await fetch(`http://127.0.0.1:${proc.port}/health`);
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline)
      throw new Error(`ingest not healthy after ${timeoutMs} ms; see ${proc.logFile}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function scrapeMetrics(port: number): Promise<string | null> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    return res.status === 200 ? await res.text() : null;
  } catch {
    return null;
  }
}
