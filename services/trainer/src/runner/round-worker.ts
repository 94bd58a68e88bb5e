import { isClickHouseUnavailable } from '@cprec/clickhouse';
import { RoundStoppedError } from '@cprec/training';
import { RunnerFence } from './fence';
import { fineTuningFor } from './llara-fine-tuning';
import { FENCED_EXIT_CODE, type FromRunner, type ToRunner } from './protocol';
import { runRoundJob } from './round-job';

/**
 * Entry point of a round runner process (forked by RoundSupervisor with an IPC channel).
 * Training is synchronous tfjs work that would stall the actor's event loop — and with it Kafka
 * heartbeats — so each round runs here. The parent sends `start` with the job and may send
 * `stop` (checked between steps); progress goes back as messages. The exit code tells the
 * parent what happened: 0 done (result sent), 3 stopped, 1 failed (error sent).
 */

const send = (message: FromRunner): Promise<void> =>
  new Promise((resolve) => {
    if (!process.send) return resolve();
    process.send(message, undefined, undefined, () => resolve());
  });

let stopRequested = false;
let started = false;
let fence: RunnerFence | null = null;

/**
 * At a step boundary, before the step's checkpoint: a runner whose parent lost its lease leaves
 * at once, writing nothing more (a graceful stop would checkpoint into a round folder the new
 * active trainer may already be using).
 */
function exitIfFenced(): void {
  if (fence?.expired()) process.exit(FENCED_EXIT_CODE);
}

process.on('message', (raw: ToRunner) => {
  if (raw.type === 'stop') {
    stopRequested = true;
    return;
  }
  if (raw.type === 'lease') {
    fence?.renew(raw.validUntil);
    return;
  }
  if (raw.type !== 'start' || started) return;
  started = true;
  if (raw.leaseUntil !== undefined) fence = new RunnerFence(raw.leaseUntil);
  // Steps are sent immediately, but a step message in flight when the process is killed is lost
  // with it; the parent treats step messages as progress reports, never as the source of truth.
  void runRoundJob(
    raw.job,
    {
      onStarted: (resumedFrom) => void send({ type: 'started', resumedFrom }),
      onPhase: (phase, steps) => void send({ type: 'phase', phase, steps }),
      onStep: async (step) => {
        exitIfFenced();
        await send({ type: 'step', step });
        const delay =
          raw.job.stepDelayMs ?? (raw.job.data.kind === 'synthetic' ? (raw.job.data.stepDelayMs ?? 0) : 0);
        if (delay > 0) await new Promise((r) => setTimeout(r, delay));
      },
      shouldStop: () => stopRequested,
    },
    fineTuningFor(raw.job),
  )
    .then(async (result) => {
      await send({ type: 'result', result });
      process.exit(0);
    })
    .catch(async (err: unknown) => {
      const stopped = err instanceof RoundStoppedError;
      const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
      // Classified here, where the error object still is (the parent only gets its text).
      const unavailable = !stopped && isClickHouseUnavailable(err);
      await send({ type: 'error', message, stopped, unavailable });
      process.exit(stopped ? 3 : 1);
    });
});

process.on('disconnect', () => {
  // The parent is gone: nobody can use the result. The checkpoint lets a new parent resume.
  process.exit(2);
});

void send({ type: 'ready', pid: process.pid });
