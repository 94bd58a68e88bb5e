import { ChildProcess, fork } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { EvaluationJob, EvaluationJobResult, FromEvaluationProcess } from '../evaluation/protocol';
import { EvaluationAbortedError, type EvaluationRunner } from '../ports';

export interface EvaluationProcessOptions {
  /** A process that has not answered after this long is killed and the job fails. */
  timeoutMs: number;
  /** Where the process's stdout/stderr go (inherit when omitted). */
  logFile?: (jobId: string) => string;
  env?: Record<string, string>;
  onProgress?: (jobId: string, done: number, total: number) => void;
}

/** ts-node from sources (development, tests) when this file runs as .ts; the compiled worker otherwise. */
function workerEntry(): { script: string; execArgv: string[] } {
  if (__filename.endsWith('.ts')) {
    return {
      script: join(__dirname, 'evaluation-worker.ts'),
      execArgv: ['-r', 'ts-node/register/transpile-only', '-r', 'tsconfig-paths/register'],
    };
  }
  return { script: join(__dirname, 'evaluation-worker.js'), execArgv: [] };
}

/**
 * Runs each evaluation job in a fresh forked process (the trainer's runner pattern, one-shot):
 * the job goes in over IPC, the result comes back, the process exits. A crash, an error report
 * or the timeout fails the job with the reason; `stopAll` kills running jobs at shutdown.
 */
export class EvaluationProcessRunner implements EvaluationRunner {
  private readonly running = new Set<ChildProcess>();
  private stopping = false;

  constructor(private readonly options: EvaluationProcessOptions) {}

  run(job: EvaluationJob): Promise<EvaluationJobResult> {
    return new Promise((resolve, reject) => {
      if (this.stopping) return reject(new EvaluationAbortedError('the evaluator is shutting down'));
      const { script, execArgv } = workerEntry();
      let stdio: Array<'inherit' | 'ignore' | 'ipc' | number> = ['ignore', 'inherit', 'inherit', 'ipc'];
      let logFd: number | null = null;
      if (this.options.logFile) {
        const file = this.options.logFile(job.jobId);
        mkdirSync(dirname(file), { recursive: true });
        logFd = openSync(file, 'a');
        stdio = ['ignore', logFd, logFd, 'ipc'];
      }
      const proc = fork(script, [], {
        execArgv,
        env: { ...process.env, ...this.options.env, TS_NODE_TRANSPILE_ONLY: 'true' },
        stdio,
      });
      if (logFd !== null) closeSync(logFd);
      this.running.add(proc);
      let result: EvaluationJobResult | null = null;
      let reported: string | null = null;
      const timer = setTimeout(() => {
        reported ??= `evaluation timed out after ${this.options.timeoutMs} ms`;
        proc.kill('SIGKILL');
      }, this.options.timeoutMs);
      proc.on('message', (m: FromEvaluationProcess) => {
        if (m.type === 'ready') proc.send({ type: 'start', job });
        else if (m.type === 'progress') this.options.onProgress?.(job.jobId, m.done, m.total);
        else if (m.type === 'result') result = m.result;
        else if (m.type === 'error') reported = m.message;
      });
      proc.on('error', (err) => {
        reported ??= `evaluation process error: ${err.message}`;
      });
      proc.on('exit', (code, signal) => {
        clearTimeout(timer);
        this.running.delete(proc);
        if (result) return resolve(result);
        if (this.stopping)
          return reject(new EvaluationAbortedError(`evaluation ${job.jobId} stopped at shutdown`));
        reject(
          new Error(
            reported ?? `evaluation process ${signal ? `killed by ${signal}` : `exited with code ${code}`}`,
          ),
        );
      });
    });
  }

  /** Kills every running evaluation (their jobs fail; the adapters stay undecided). */
  stopAll(): void {
    this.stopping = true;
    for (const proc of this.running) proc.kill('SIGKILL');
  }
}
