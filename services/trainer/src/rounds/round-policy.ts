import type { CorpusStats } from '@cprec/contracts';

export interface RoundPolicyConfig {
  /** Start a round when the last one started this long ago (0 = never by time). */
  intervalMs: number;
  /** Start a round once this many interactions arrived since the last round's watermark (0 = never by volume). */
  minNewInteractions: number;
  /**
   * Start a round once the stream's event time (the newest interaction's `ts`) moved this far
   * since the last round started (0 = never by stream time). A replay at an accelerated clock
   * (or a platform with a backlog) gets rounds per stretch of its own time, not of the wall clock.
   */
  streamIntervalMs?: number;
}

const DAY_MS = 86_400_000;

/** A stream-time span as people read it: days, else hours, else minutes. */
export function formatStreamSpan(ms: number): string {
  if (ms >= DAY_MS) return `${+(ms / DAY_MS).toFixed(1)} days`;
  if (ms >= 3_600_000) return `${+(ms / 3_600_000).toFixed(1)} h`;
  return `${Math.round(ms / 60_000)} min`;
}

/**
 * When to start a round without an operator: every T ms, after K new interactions reported by the
 * sequencer's corpus statistics, or after S of stream (event) time. Statistics are counted once
 * per watermark interval (a re-delivered message does not count twice) and only beyond the last
 * round's watermark. Stream time is what the trainer last observed as the newest event time; the
 * interval and stream rules count from the first observation when no round has started yet.
 */
export class RoundPolicy {
  private lastStartMs: number | null = null;
  private baselineWatermark = 0;
  private seenWatermark = 0;
  private newInteractions = 0;
  private streamNowMs: number | null = null;
  private streamAtLastStartMs: number | null = null;

  constructor(private readonly config: RoundPolicyConfig) {}

  /** The last round started at `startedMs` over data up to `watermark`. */
  roundStarted(startedMs: number, watermark: number): void {
    this.lastStartMs = Math.max(this.lastStartMs ?? 0, startedMs);
    if (watermark > this.baselineWatermark) {
      this.baselineWatermark = watermark;
      this.newInteractions = 0;
      this.seenWatermark = Math.max(this.seenWatermark, watermark);
    }
    if (this.streamNowMs !== null) this.streamAtLastStartMs = this.streamNowMs;
  }

  observe(stats: CorpusStats): void {
    if (stats.watermark <= this.seenWatermark || stats.watermark <= this.baselineWatermark) return;
    this.seenWatermark = stats.watermark;
    this.newInteractions += stats.domains.reduce((a, d) => a + d.new_interactions, 0);
  }

  /** The newest event time in the corpus (the stream's clock); it never goes back. */
  observeStreamTime(newestEventMs: number): void {
    this.streamNowMs = Math.max(this.streamNowMs ?? newestEventMs, newestEventMs);
    this.streamAtLastStartMs ??= this.streamNowMs;
  }

  /** Whether the policy wants the stream's clock (the stream rule is on). */
  get watchesStreamTime(): boolean {
    return (this.config.streamIntervalMs ?? 0) > 0;
  }

  get pendingInteractions(): number {
    return this.newInteractions;
  }

  get latestWatermark(): number {
    return this.seenWatermark;
  }

  /** Stream time since the last round started (null before the stream's clock was observed). */
  get streamSinceLastStartMs(): number | null {
    return this.streamNowMs === null || this.streamAtLastStartMs === null
      ? null
      : this.streamNowMs - this.streamAtLastStartMs;
  }

  /** Why a round should start now, or null. */
  due(nowMs: number): string | null {
    const { intervalMs, minNewInteractions } = this.config;
    const streamIntervalMs = this.config.streamIntervalMs ?? 0;
    if (minNewInteractions > 0 && this.newInteractions >= minNewInteractions)
      return `${this.newInteractions} new interactions since watermark ${this.baselineWatermark} (threshold ${minNewInteractions})`;
    const streamed = this.streamSinceLastStartMs;
    if (streamIntervalMs > 0 && streamed !== null && streamed >= streamIntervalMs)
      return `${formatStreamSpan(streamed)} of stream time since the last round (interval ${formatStreamSpan(streamIntervalMs)}, stream at ${new Date(this.streamNowMs!).toISOString().slice(0, 10)})`;
    if (intervalMs > 0) {
      if (this.lastStartMs === null) {
        // Count the interval from the first time we are asked, not from 1970.
        this.lastStartMs = nowMs;
        return null;
      }
      if (nowMs - this.lastStartMs >= intervalMs)
        return `${Math.round((nowMs - this.lastStartMs) / 1000)} s since the last round (interval ${Math.round(intervalMs / 1000)} s)`;
    }
    return null;
  }
}
