import type { CorpusStats } from '@cprec/contracts';

export interface RoundPolicyConfig {
  /** Start a round when the last one started this long ago (0 = never by time). */
  intervalMs: number;
  /** Start a round once this many interactions arrived since the last round's watermark (0 = never by volume). */
  minNewInteractions: number;
}

/**
 * When to start a round without an operator: every T ms, or after K new interactions reported
 * by the sequencer's corpus statistics. Statistics are counted once per watermark interval
 * (a re-delivered message does not count twice) and only beyond the last round's watermark.
 */
export class RoundPolicy {
  private lastStartMs: number | null = null;
  private baselineWatermark = 0;
  private seenWatermark = 0;
  private newInteractions = 0;

  constructor(private readonly config: RoundPolicyConfig) {}

  /** The last round started at `startedMs` over data up to `watermark`. */
  roundStarted(startedMs: number, watermark: number): void {
    this.lastStartMs = Math.max(this.lastStartMs ?? 0, startedMs);
    if (watermark > this.baselineWatermark) {
      this.baselineWatermark = watermark;
      this.newInteractions = 0;
      this.seenWatermark = Math.max(this.seenWatermark, watermark);
    }
  }

  observe(stats: CorpusStats): void {
    if (stats.watermark <= this.seenWatermark || stats.watermark <= this.baselineWatermark) return;
    this.seenWatermark = stats.watermark;
    this.newInteractions += stats.domains.reduce((a, d) => a + d.new_interactions, 0);
  }

  get pendingInteractions(): number {
    return this.newInteractions;
  }

  get latestWatermark(): number {
    return this.seenWatermark;
  }

  /** Why a round should start now, or null. */
  due(nowMs: number): string | null {
    const { intervalMs, minNewInteractions } = this.config;
    if (minNewInteractions > 0 && this.newInteractions >= minNewInteractions)
      return `${this.newInteractions} new interactions since watermark ${this.baselineWatermark} (threshold ${minNewInteractions})`;
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
