import { ChildProcess, fork } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import {
  FENCED_EXIT_CODE,
  type FromRunner,
  type RoundJob,
  type RunnerPhase,
  type RunnerResult,
  type RunnerStep,
  type ToRunner,
} from './protocol';

/** What a running round reports to its owner. */
export interface RoundListener {
  onPhase(phase: RunnerPhase, steps: number): void;
  onStep(step: RunnerStep): void;
  /** A runner process started (attempt 1 first); `resumedFrom` when it continues a checkpoint. */
  onAttempt?(attempt: number, resumedFrom: { phase: string; dataPosition: number } | null): void;
  /** A runner process died; it will be re-spawned unless attempts are exhausted. */
  onCrash?(attempt: number, reason: string): void;
  /**
   * A runner failed because a dependency is unreachable: the round waits for it (up to the
   * outage limit) and then resumes from its checkpoint. Called once per failed attempt.
   */
  onWaiting?(attempt: number, reason: string): void;
}

export type RoundOutcome =
  { kind: 'done'; result: RunnerResult } | { kind: 'stopped' } | { kind: 'failed'; reason: string };

/** Runs one round to an outcome; `stop()` cancels it. The port the round coordinator uses. */
export interface RoundExecutor {
  start(job: RoundJob, listener: RoundListener): RunningRound;
}

export interface RunningRound {
  readonly outcome: Promise<RoundOutcome>;
  /** Asks the round to stop after its current step; kills it after the grace period. */
  stop(): void;
  /**
   * SIGKILLs the runner now, without a stop message or a checkpoint: the lease was lost and
   * another trainer may be running the round from its checkpoint. The outcome is `stopped`.
   */
  abandon(): void;
  /** PID of the current runner process (tests kill it to simulate a crash). */
  readonly pid: number | null;
}

export interface SupervisorOptions {
  /** Re-spawns after a crash before the round is failed. */
  maxRestarts: number;
  /** After `stop`, how long the runner may take to reach a step boundary before SIGKILL. */
  stopGraceMs: number;
  /** Extra environment for runner processes. */
  env?: Record<string, string>;
  /** Where runner stdout/stderr go (inherit when omitted). */
  logFile?: (roundId: string, attempt: number) => string;
  /**
   * Riding out a dependency outage: a runner that fails because ClickHouse is unreachable is
   * re-spawned (resuming from the checkpoint) once `dependenciesUp` answers true, polled every
   * `pollMs`, without using up `maxRestarts`; the round fails only when the dependency stays
   * away for `maxMs` (counted from the first failure since the last step a runner made). Absent:
   * such a failure fails the round like any reported error.
   */
  outage?: { maxMs: number; pollMs: number; dependenciesUp: () => Promise<boolean> };
  /**
   * Fences runners with the actor's lease: the runner gets the lease's expiry at start and every
   * `pingMs`, and exits by itself once it passes (runner/fence.ts). Absent: not fenced.
   */
  lease?: { validUntil(): number | null; pingMs: number };
  /** The runner program (default `runnerEntry()`); tests substitute a scripted one. */
  runner?: { script: string; execArgv: string[] };
}

type AttemptResult =
  | RoundOutcome
  | { kind: 'crashed'; reason: string }
  | { kind: 'unavailable'; reason: string; progressed: boolean };

/**
 * How to start a runner: from TypeScript sources through ts-node (development, tests) when this
 * file is itself running as .ts, or the compiled `round-worker.js` next to it when built.
 */
export function runnerEntry(): { script: string; execArgv: string[] } {
  if (__filename.endsWith('.ts')) {
    return {
      script: join(__dirname, 'round-worker.ts'),
      execArgv: ['-r', 'ts-node/register/transpile-only', '-r', 'tsconfig-paths/register'],
    };
  }
  return { script: join(__dirname, 'round-worker.js'), execArgv: [] };
}

export const JOB_FILE = 'job.json';

/** Writes the job next to the round's checkpoints (so a restarted actor can resume it as it was). */
export function writeJob(job: RoundJob): void {
  mkdirSync(job.roundDir, { recursive: true });
  writeFileSync(join(job.roundDir, JOB_FILE), JSON.stringify(job, null, 2) + '\n');
}

/**
 * Spawns one runner process per attempt and supervises it: forwards its progress, re-spawns it
 * after a crash (a non-zero exit or a signal without a result) up to `maxRestarts` times — the
 * runner resumes from the round's checkpoint because it gets the same job and round folder —
 * and stops it on request: a `stop` message first (the runner ends after its current step),
 * SIGKILL when the grace period runs out.
 */
export class RoundSupervisor implements RoundExecutor {
  constructor(private readonly options: SupervisorOptions) {}

  start(job: RoundJob, listener: RoundListener): RunningRound {
    writeJob(job);
    let child: ChildProcess | null = null;
    let stopping = false;
    let killTimer: NodeJS.Timeout | null = null;
    const { maxRestarts, stopGraceMs, lease } = this.options;

    const attemptOnce = (attempt: number): Promise<AttemptResult> =>
      new Promise((resolveAttempt) => {
        const { script, execArgv } = this.options.runner ?? runnerEntry();
        let stdio: Array<'inherit' | 'ignore' | 'ipc' | number> = ['ignore', 'inherit', 'inherit', 'ipc'];
        let logFd: number | null = null;
        if (this.options.logFile) {
          const file = this.options.logFile(job.roundId, attempt);
          mkdirSync(dirname(file), { recursive: true });
          logFd = openSync(file, 'a');
          stdio = ['ignore', logFd, logFd, 'ipc'];
        }
        const proc = fork(script, [], {
          execArgv,
          env: { ...process.env, ...this.options.env, TS_NODE_TRANSPILE_ONLY: 'true' },
          stdio,
        });
        // The child has its own copy of the log descriptor.
        if (logFd !== null) closeSync(logFd);
        child = proc;
        const renewal = lease
          ? setInterval(() => {
              const validUntil = lease.validUntil();
              if (validUntil !== null && proc.connected)
                proc.send({ type: 'lease', validUntil } satisfies ToRunner);
            }, lease.pingMs)
          : null;
        let result: RunnerResult | null = null;
        let error: { message: string; stopped: boolean; unavailable?: boolean } | null = null;
        let progressed = false;
        proc.on('message', (m: FromRunner) => {
          switch (m.type) {
            case 'ready':
              proc.send({
                type: 'start',
                job,
                ...(lease ? { leaseUntil: lease.validUntil() ?? 0 } : {}),
              } satisfies ToRunner);
              if (stopping) proc.send({ type: 'stop' } satisfies ToRunner);
              break;
            case 'started':
              listener.onAttempt?.(attempt, m.resumedFrom);
              break;
            case 'phase':
              listener.onPhase(m.phase, m.steps);
              break;
            case 'step':
              progressed = true;
              listener.onStep(m.step);
              break;
            case 'result':
              result = m.result;
              break;
            case 'error':
              error = { message: m.message, stopped: m.stopped, unavailable: m.unavailable };
              break;
          }
        });
        proc.on('error', (err) => {
          // Spawn failures also emit 'exit' (or never start); record why.
          error ??= { message: `runner process error: ${err.message}`, stopped: false };
        });
        proc.on('exit', (code, signal) => {
          child = null;
          if (renewal) clearInterval(renewal);
          if (result) return resolveAttempt({ kind: 'done', result });
          if (stopping) return resolveAttempt({ kind: 'stopped' });
          // A reported training error (bad data, bad config) is deterministic: re-running it
          // would fail the same way, so it fails the round at once. A crash is retried.
          const reported = error as { message: string; stopped: boolean; unavailable?: boolean } | null;
          if (reported && !reported.stopped && code === 1)
            return resolveAttempt(
              reported.unavailable && this.options.outage
                ? { kind: 'unavailable', reason: firstLine(reported.message), progressed }
                : { kind: 'failed', reason: reported.message },
            );
          resolveAttempt({
            kind: 'crashed',
            reason: signal
              ? `killed by ${signal}`
              : code === FENCED_EXIT_CODE
                ? 'stopped itself: the lease expired'
                : `exited with code ${code}`,
          });
        });
      });

    const outcome = (async (): Promise<RoundOutcome> => {
      let crashes = 0;
      let outageSince: number | null = null;
      for (let attempt = 1; ; attempt++) {
        const r = await attemptOnce(attempt);
        if (r.kind === 'unavailable') {
          if (stopping) return { kind: 'stopped' };
          const outage = this.options.outage!;
          if (r.progressed || outageSince === null) outageSince = Date.now();
          listener.onWaiting?.(attempt, r.reason);
          const back = await waitUntilUp(outage, outageSince, () => stopping);
          if (stopping) return { kind: 'stopped' };
          if (!back)
            return {
              kind: 'failed',
              reason: `a dependency stayed unreachable for more than ${Math.round(outage.maxMs / 1000)} s; last: ${r.reason}`,
            };
          continue;
        }
        outageSince = null;
        if (r.kind !== 'crashed') return r;
        if (stopping) return { kind: 'stopped' };
        crashes++;
        listener.onCrash?.(attempt, r.reason);
        if (crashes > maxRestarts)
          return { kind: 'failed', reason: `runner crashed ${crashes} times; last: ${r.reason}` };
      }
    })().finally(() => {
      if (killTimer) clearTimeout(killTimer);
    });

    return {
      outcome,
      stop: () => {
        if (stopping) return;
        stopping = true;
        const proc = child as ChildProcess | null;
        if (proc?.connected) proc.send({ type: 'stop' } satisfies ToRunner);
        killTimer = setTimeout(() => (child as ChildProcess | null)?.kill('SIGKILL'), stopGraceMs);
      },
      abandon: () => {
        stopping = true;
        (child as ChildProcess | null)?.kill('SIGKILL');
      },
      get pid() {
        return (child as ChildProcess | null)?.pid ?? null;
      },
    };
  }
}

const firstLine = (message: string): string => message.split('\n', 1)[0] ?? message;

/**
 * Polls `dependenciesUp` until it answers true (→ true), the outage has lasted `maxMs` since
 * `since` (→ false) or the round is being stopped (→ false).
 */
async function waitUntilUp(
  outage: NonNullable<SupervisorOptions['outage']>,
  since: number,
  stopping: () => boolean,
): Promise<boolean> {
  for (;;) {
    if (stopping()) return false;
    const up = await outage.dependenciesUp().catch(() => false);
    if (up) return true;
    if (Date.now() - since >= outage.maxMs) return false;
    await new Promise((r) => setTimeout(r, outage.pollMs));
  }
}
