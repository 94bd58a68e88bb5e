import { rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { RoundStoppedError, SftStoppedError } from '@cprec/training';
import { atomicWriteJson, fileSafe, readJsonIfExists } from './io';

/** One unit of the run whose output is checkpointed: a finished stage is never run again. */
export interface StageDef<T> {
  readonly id: string;
  /** data | recommender | cpt | sft | eval — what the ETA calibrates per kind. */
  readonly kind: string;
  /** Predicted seconds (cost model); the ETA scales it by the measured speed. */
  readonly estimateSeconds: number;
  /**
   * The settings this stage's output depends on. A resumed run with other values stops with a
   * clear message instead of mixing two experiments' outputs.
   */
  readonly inputs: unknown;
  /**
   * Whether a finished stage's stored inputs match `inputs` (default: equal as JSON). Lets a
   * harness drop a field from its inputs (e.g. an execution bound) without refusing stages
   * finished before the change.
   */
  readonly sameInputs?: (stored: unknown) => boolean;
  readonly run: (ctx: StageContext) => Promise<T>;
}

export interface StageContext {
  /** Reports progress within the stage (0–1), for the progress line. */
  progress(fraction: number, note?: string): void;
  /** Throws `RunStoppedError` when the run was asked to stop (polled in long loops). */
  checkStop(): void;
  /** Whether the run was asked to stop (for loops that checkpoint before stopping themselves). */
  stopRequested(): boolean;
}

export interface StageRecord<T> {
  id: string;
  kind: string;
  inputs: unknown;
  output: T;
  seconds: number;
  estimateSeconds: number;
  startedAt: string;
  finishedAt: string;
  /** 1-minute load average at the start and the end of the stage. */
  load: [number, number];
  pid: number;
}

export class RunStoppedError extends Error {
  constructor(where: string) {
    super(`run stopped (${where})`);
    this.name = 'RunStoppedError';
  }
}

export class StageInputsChangedError extends Error {
  constructor(id: string, before: unknown, now: unknown) {
    super(
      `stage ${id} was completed with other settings:\n  then: ${JSON.stringify(before)}\n  now:  ${JSON.stringify(now)}\n` +
        'use another --name (a fresh state directory), or delete that stage file to recompute it',
    );
    this.name = 'StageInputsChangedError';
  }
}

export interface ProgressSink {
  stageStarted(def: StageDef<unknown>, index: number, total: number): void;
  stageProgress(fraction: number, note?: string): void;
  stageFinished(def: StageDef<unknown>, seconds: number, reused: boolean): void;
}

/**
 * Runs stages in order; each finished stage's output is written atomically to
 * `<stateDir>/stages/<id>.json`, so a killed run (any signal, any moment) continues with the first
 * stage that has no record. Stages themselves resume from their own finer checkpoints (CPT
 * progress, SFT progress, the per-case evaluation log).
 */
export class StageRunner {
  /** Stage ids that ran (not reused) in this process. */
  readonly executed: string[] = [];
  readonly reused: string[] = [];
  private index = 0;

  constructor(
    private readonly stateDir: string,
    private readonly total: number,
    private readonly sink: ProgressSink,
    private readonly shouldStop: () => boolean = () => false,
  ) {}

  recordPath(id: string): string {
    return join(this.stateDir, 'stages', `${fileSafe(id)}.json`);
  }

  /** Drops a finished stage's record so the stage runs again (its files are gone). */
  forget(id: string): void {
    rmSync(this.recordPath(id), { force: true });
  }

  completed<T>(id: string): StageRecord<T> | null {
    return readJsonIfExists<StageRecord<T>>(this.recordPath(id));
  }

  async run<T>(def: StageDef<T>): Promise<T> {
    this.index++;
    const done = this.completed<T>(def.id);
    if (done) {
      const same = def.sameInputs
        ? def.sameInputs(done.inputs)
        : JSON.stringify(done.inputs) === JSON.stringify(def.inputs);
      if (!same) throw new StageInputsChangedError(def.id, done.inputs, def.inputs);
      this.reused.push(def.id);
      this.sink.stageFinished(def as StageDef<unknown>, done.seconds, true);
      return done.output;
    }
    if (this.shouldStop()) throw new RunStoppedError(`before ${def.id}`);
    this.sink.stageStarted(def as StageDef<unknown>, this.index, this.total);
    const started = Date.now();
    const load0 = loadavg()[0]!;
    const output = await def
      .run({
        progress: (f, note) => this.sink.stageProgress(f, note),
        checkStop: () => {
          if (this.shouldStop()) throw new RunStoppedError(`in ${def.id}`);
        },
        stopRequested: () => this.shouldStop(),
      })
      .catch((err: unknown) => {
        // A library loop that stopped itself (after writing its checkpoint) is the same stop.
        if (err instanceof RoundStoppedError || err instanceof SftStoppedError)
          throw new RunStoppedError(`in ${def.id}: ${err.message}`);
        throw err;
      });
    const seconds = (Date.now() - started) / 1000;
    const record: StageRecord<T> = {
      id: def.id,
      kind: def.kind,
      inputs: def.inputs,
      output,
      seconds,
      estimateSeconds: def.estimateSeconds,
      startedAt: new Date(started).toISOString(),
      finishedAt: new Date().toISOString(),
      load: [load0, loadavg()[0]!],
      pid: process.pid,
    };
    atomicWriteJson(this.recordPath(def.id), record);
    this.executed.push(def.id);
    this.sink.stageFinished(def as StageDef<unknown>, seconds, false);
    return output;
  }
}
