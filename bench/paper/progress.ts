import { freemem, loadavg } from 'node:os';
import type { ProgressSink, StageDef } from './runner';

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(s % 60).padStart(2, '0')}s`;
}

/**
 * The progress line: stage n/N and its own progress, the share of the whole run's estimated cost
 * done, and the ETA = the remaining estimate × how much slower (or faster) than estimated the
 * stages of this process ran (the machine is shared; its load changes the speed).
 */
export class ProgressLine implements ProgressSink {
  private totalEstimate: number;
  private doneEstimate = 0;
  private current: { def: StageDef<unknown>; index: number; total: number; started: number } | null = null;
  private fraction = 0;
  private note = '';
  /** Measured and estimated seconds of stages run by this process (the speed calibration). */
  private measured = 0;
  private estimatedOfMeasured = 0;
  private lastPrint = 0;
  private readonly started = Date.now();

  constructor(
    estimates: readonly number[],
    private readonly write: (line: string, final: boolean) => void = defaultWriter(),
    private readonly minIntervalMs = 20_000,
  ) {
    this.totalEstimate = estimates.reduce((a, b) => a + b, 0);
  }

  stageStarted(def: StageDef<unknown>, index: number, total: number): void {
    this.current = { def, index, total, started: Date.now() };
    this.fraction = 0;
    this.note = '';
    this.print(true);
  }

  stageProgress(fraction: number, note?: string): void {
    this.fraction = Math.min(1, Math.max(0, fraction));
    if (note !== undefined) this.note = note;
    this.print(false);
  }

  stageFinished(def: StageDef<unknown>, seconds: number, reused: boolean): void {
    this.doneEstimate += def.estimateSeconds;
    if (!reused) {
      this.measured += seconds;
      this.estimatedOfMeasured += def.estimateSeconds;
      this.write(
        `[paper] done ${def.id} in ${formatDuration(seconds)} (estimated ${formatDuration(def.estimateSeconds)})`,
        true,
      );
    }
    this.current = null;
  }

  /** Measured / estimated seconds so far in this process (1 until a stage finished). */
  speedFactor(): number {
    if (this.estimatedOfMeasured <= 0) return 1;
    const inStage = this.current ? (Date.now() - this.current.started) / 1000 : 0;
    const estInStage = this.current ? this.current.def.estimateSeconds * this.fraction : 0;
    return (this.measured + inStage) / Math.max(1e-9, this.estimatedOfMeasured + estInStage);
  }

  /** Seconds left by the estimate, scaled by the measured speed. */
  eta(): number {
    const inStage = this.current ? this.current.def.estimateSeconds * this.fraction : 0;
    return (this.totalEstimate - this.doneEstimate - inStage) * this.speedFactor();
  }

  line(): string {
    const c = this.current;
    const inStage = c ? c.def.estimateSeconds * this.fraction : 0;
    const overall = this.totalEstimate > 0 ? (100 * (this.doneEstimate + inStage)) / this.totalEstimate : 100;
    const stage = c
      ? `${c.index}/${c.total} ${c.def.id} ${(100 * this.fraction).toFixed(0)}%${this.note ? ` ${this.note}` : ''}`
      : 'between stages';
    return (
      `[paper ${new Date().toISOString().slice(11, 19)}] ${stage} | run ${overall.toFixed(1)}% | ` +
      `elapsed ${formatDuration((Date.now() - this.started) / 1000)} | ETA ${formatDuration(this.eta())} | ` +
      `load ${loadavg()[0]!.toFixed(1)} | rss ${(process.memoryUsage().rss / 2 ** 30).toFixed(1)} GB, free ${(freemem() / 2 ** 30).toFixed(1)} GB`
    );
  }

  private print(force: boolean): void {
    const now = Date.now();
    if (!force && now - this.lastPrint < this.minIntervalMs) return;
    this.lastPrint = now;
    this.write(this.line(), force);
  }
}

/** A TTY gets one line redrawn in place; a log file gets a line per update (throttled by the caller). */
function defaultWriter(): (line: string, final: boolean) => void {
  const tty = process.stderr.isTTY;
  return (line, final) => {
    if (tty && !final) process.stderr.write(`\r\x1b[K${line}`);
    else process.stderr.write(`${tty ? '\r\x1b[K' : ''}${line}\n`);
  };
}
