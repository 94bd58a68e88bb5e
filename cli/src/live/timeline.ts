/**
 * What the live demo prints: the events it sees through the operator API as they happen, and at
 * the end the HR@1 timeline (one row per event-time window, one column per domain, with the
 * rounds and promotions between the windows where the stream was when they happened). Pure
 * functions over the API's JSON, so they are unit-tested without servers.
 */

export interface DriftPoint {
  adapter_id: string;
  domain: string;
  window_start_ms: number;
  window_end_ms: number;
  hr1: number;
  samples: number;
  ts_ms: number;
}

export interface Decision {
  adapter_id: string;
  decision: 'promoted' | 'rejected';
  reasons: string[];
  hr1: Record<string, number>;
  ts_ms: number;
  stream_ms: number | null;
}

export interface RoundMark {
  round_id: string;
  state: string;
  created_ms: number;
  requested_by?: string;
  stream_ms: number | null;
}

export interface AlertMark {
  adapter_id: string;
  domain: string;
  hr1: number;
  baseline_hr1: number;
  relative_drop: number;
  samples: number;
  refresh_requested: boolean;
  ts_ms: number;
  stream_ms: number | null;
}

/** GET /v1/drift. */
export interface DriftView {
  series: DriftPoint[];
  alerts: AlertMark[];
  promotions: Decision[];
  decisions?: Decision[];
  rounds: RoundMark[];
  stream?: { newest_ms: number | null; interactions: number };
}

export interface RoundRow {
  round_id: string;
  state: string;
  step: number;
  total_steps: number;
  message: string;
  requested_by: string;
  created_ms: number;
  target_domains: string[];
}

const pad = (n: number): string => String(n).padStart(2, '0');

/** An event time as a UTC day (the data's resolution). */
export function day(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '–';
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
}

const short = (id: string): string => (id.length > 28 ? `${id.slice(0, 12)}…${id.slice(-12)}` : id);

/**
 * Remembers what was already reported, and turns each new poll of the API into the lines that
 * describe what changed: rounds queued / finished, gate decisions, HR@1 windows, alerts.
 */
export class EventReporter {
  private readonly roundStates = new Map<string, string>();
  private readonly decisions = new Set<string>();
  /** Adapters decided since the last call (their generation check is worth a look-up). */
  newlyDecided: string[] = [];
  private readonly windows = new Set<string>();
  private readonly alerts = new Set<string>();

  /** Lines for everything new since the previous call (oldest first). */
  update(rounds: readonly RoundRow[], drift: DriftView): string[] {
    const lines: Array<{ ts: number; text: string }> = [];
    this.newlyDecided = [];
    for (const r of rounds) {
      const before = this.roundStates.get(r.round_id);
      if (before === r.state) continue;
      this.roundStates.set(r.round_id, r.state);
      const stream = drift.rounds.find((m) => m.round_id === r.round_id)?.stream_ms ?? null;
      if (before === undefined)
        lines.push({
          ts: r.created_ms,
          text: `round ${short(r.round_id)} started by ${r.requested_by} (stream at ${day(stream)}) — ${r.state}`,
        });
      if (['published', 'failed', 'cancelled'].includes(r.state))
        lines.push({
          ts: Date.now(),
          text: `round ${short(r.round_id)} ${r.state}: ${r.message.slice(0, 300)}`,
        });
    }
    for (const d of drift.decisions ?? drift.promotions) {
      const key = `${d.adapter_id}@${d.ts_ms}`;
      if (this.decisions.has(key)) continue;
      this.decisions.add(key);
      this.newlyDecided.push(d.adapter_id);
      const hr1 = Object.entries(d.hr1)
        .map(([domain, v]) => `${domain} ${v.toFixed(3)}`)
        .join(', ');
      lines.push({
        ts: d.ts_ms,
        text:
          d.decision === 'promoted'
            ? `gate: ${d.adapter_id} promoted${hr1 ? ` (HR@1 ${hr1})` : ''}`
            : `gate: ${d.adapter_id} rejected — ${d.reasons[0] ?? ''}`,
      });
    }
    const byWindow = new Map<string, DriftPoint[]>();
    for (const p of drift.series) {
      const key = `${p.adapter_id}|${p.window_end_ms}|${p.ts_ms}`;
      if (this.windows.has(`${key}|${p.domain}`)) continue;
      this.windows.add(`${key}|${p.domain}`);
      byWindow.set(key, [...(byWindow.get(key) ?? []), p]);
    }
    for (const points of byWindow.values()) {
      const p = points[0]!;
      lines.push({
        ts: p.ts_ms,
        text: `HR@1 ${day(p.window_start_ms)} → ${day(p.window_end_ms)} (${short(p.adapter_id)}): ${points
          .map((x) => `${x.domain} ${x.hr1.toFixed(3)} (${x.samples})`)
          .join(' · ')}`,
      });
    }
    for (const a of drift.alerts) {
      const key = `${a.domain}@${a.ts_ms}`;
      if (this.alerts.has(key)) continue;
      this.alerts.add(key);
      lines.push({
        ts: a.ts_ms,
        text: `DRIFT ALERT ${a.domain}: HR@1 ${a.hr1.toFixed(3)} vs ${a.baseline_hr1.toFixed(3)} at promotion (−${Math.round(100 * a.relative_drop)}%, ${a.samples} users)${a.refresh_requested ? '; refresh round requested' : ''}`,
      });
    }
    return lines.sort((a, b) => a.ts - b.ts).map((l) => l.text);
  }
}

/**
 * The HR@1 timeline as text: one row per window (newest observation per domain), the rounds
 * started and adapters promoted placed between the windows by the stream time they happened at.
 */
export function formatTimeline(drift: DriftView, options: { sinceMs?: number } = {}): string {
  const since = options.sinceMs ?? 0;
  const series = drift.series.filter((p) => p.ts_ms >= since);
  const domains = [...new Set(series.map((p) => p.domain))].sort();
  const windows = [...new Set(series.map((p) => p.window_end_ms))].sort((a, b) => a - b);
  if (windows.length === 0) return 'HR@1 timeline: no window was observed yet.\n';
  const cell = new Map<string, DriftPoint>();
  for (const p of series) {
    const key = `${p.window_end_ms}|${p.domain}`;
    const had = cell.get(key);
    if (!had || had.ts_ms <= p.ts_ms) cell.set(key, p);
  }
  const adapters = new Map<string, string>();
  for (const p of series)
    if (!adapters.has(p.adapter_id)) adapters.set(p.adapter_id, `a${adapters.size + 1}`);
  const marks: Array<{ at: number; text: string }> = [
    ...drift.rounds
      .filter((r) => r.created_ms >= since && r.stream_ms !== null)
      .map((r) => ({
        at: r.stream_ms!,
        text: `● round ${short(r.round_id)} started (${r.requested_by ?? '?'})`,
      })),
    ...drift.promotions
      .filter((p) => p.ts_ms >= since && p.stream_ms !== null)
      .map((p) => ({
        at: p.stream_ms!,
        text: `▲ promoted ${p.adapter_id}${adapters.has(p.adapter_id) ? ` (${adapters.get(p.adapter_id)})` : ''}`,
      })),
    ...drift.alerts
      .filter((a) => a.ts_ms >= since && a.stream_ms !== null)
      .map((a) => ({
        at: a.stream_ms!,
        text: `! drift alert ${a.domain}: ${a.hr1.toFixed(3)} vs ${a.baseline_hr1.toFixed(3)}`,
      })),
  ].sort((a, b) => a.at - b.at);
  const width = 20;
  const lines = [
    'HR@1 timeline — event time; HR@1 over 20 candidates (users active in the window) of the adapter serving each domain',
    `${'window'.padEnd(26)}${domains.map((d) => d.padEnd(width)).join('')}`,
  ];
  let m = 0;
  for (const end of windows) {
    const start = series.find((p) => p.window_end_ms === end)!.window_start_ms;
    while (m < marks.length && marks[m]!.at < end) lines.push(`  ${day(marks[m]!.at)}  ${marks[m++]!.text}`);
    lines.push(
      `${`${day(start)} → ${day(end)}`.padEnd(26)}${domains
        .map((d) => {
          const p = cell.get(`${end}|${d}`);
          return (p ? `${p.hr1.toFixed(3)} (${p.samples}) ${adapters.get(p.adapter_id)}` : '–').padEnd(width);
        })
        .join('')}`,
    );
  }
  while (m < marks.length) lines.push(`  ${day(marks[m]!.at)}  ${marks[m++]!.text}`);
  lines.push(`adapters: ${[...adapters].map(([id, tag]) => `${tag} = ${id}`).join(', ')}`);
  return lines.join('\n') + '\n';
}

export interface EvaluationRow {
  adapter_id: string;
  domain: string;
  method: string;
  samples: number;
  hr1: number;
  valid_ratio: number;
}

/** The generation check of an adapter's evaluations, one line (null when generation did not run). */
export function generationLine(adapterId: string, evaluations: readonly EvaluationRow[]): string | null {
  const generated = evaluations.filter((e) => e.adapter_id === adapterId && e.method === 'generation');
  if (generated.length === 0) return null;
  return `  generation check of ${adapterId}: ${generated
    .sort((a, b) => (a.domain < b.domain ? -1 : 1))
    .map(
      (e) => `${e.domain} Valid Ratio ${e.valid_ratio.toFixed(3)}, HR@1 ${e.hr1.toFixed(3)} (${e.samples})`,
    )
    .join(' · ')}`;
}
