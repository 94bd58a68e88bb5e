import { runEvaluationJob } from '../evaluation/evaluation-job';
import type { FromEvaluationProcess, ToEvaluationProcess } from '../evaluation/protocol';

/**
 * Entry point of an evaluation process (forked by EvaluationProcessRunner with an IPC channel):
 * one job in, one result out, then exit. Scoring is synchronous tfjs work that would stall the
 * actor's event loop and with it the Kafka heartbeats, so it runs here.
 */

const send = (message: FromEvaluationProcess): Promise<void> =>
  new Promise((resolve) => {
    if (!process.send) return resolve();
    process.send(message, undefined, undefined, () => resolve());
  });

let started = false;
let lastProgress = 0;

process.on('message', (raw: ToEvaluationProcess) => {
  if (raw.type !== 'start' || started) return;
  started = true;
  void runEvaluationJob(raw.job, (done, total) => {
    // At most a few progress messages per second: they only feed logs.
    const now = Date.now();
    if (now - lastProgress < 250 && done < total) return;
    lastProgress = now;
    void send({ type: 'progress', done, total });
  })
    .then(async (result) => {
      await send({ type: 'result', result });
      process.exit(0);
    })
    .catch(async (err: unknown) => {
      await send({ type: 'error', message: err instanceof Error ? err.message : String(err) });
      process.exit(1);
    });
});

// The parent is gone: nobody can use the result.
process.on('disconnect', () => process.exit(2));

void send({ type: 'ready', pid: process.pid });
