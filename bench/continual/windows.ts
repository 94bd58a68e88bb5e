import {
  createRng,
  deriveSeed,
  DomainSequenceBuilder,
  ItemPool,
  mixedSamples,
  MixedSequenceBuilder,
  protocolSample,
  shuffleInPlace,
  timeWindowExample,
  type DomainSequence,
  type Interaction,
  type PromptItem,
  type PromptProtocol,
  type SampleItems,
} from '@cprec/corpus';
import { casesFromExamples, type EvaluationCase } from '@cprec/training';

const DAY_MS = 86_400_000;

/**
 * One event-time window. Window 0 is the history, [−∞, start); windows 1..K are consecutive and
 * `windowDays` long. Round b (b = 0..K−1) trains on windows 0..b and is evaluated on window b+1.
 */
export interface WindowDef {
  index: number;
  /** Inclusive start (−Infinity is written as null in JSON: use `startMs ?? -Infinity`). */
  startMs: number | null;
  /** Exclusive end. */
  endMs: number;
  label: string;
}

const day = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

export function makeWindows(startMs: number, windowDays: number, count: number): WindowDef[] {
  if (!Number.isInteger(count) || count < 1) throw new RangeError('at least one window after the history');
  if (!(windowDays > 0)) throw new RangeError('windowDays must be > 0');
  const out: WindowDef[] = [{ index: 0, startMs: null, endMs: startMs, label: `history → ${day(startMs)}` }];
  for (let k = 1; k <= count; k++) {
    const s = startMs + (k - 1) * windowDays * DAY_MS;
    const e = s + windowDays * DAY_MS;
    out.push({ index: k, startMs: s, endMs: e, label: `${day(s)} → ${day(e)}` });
  }
  return out;
}

/** The window an event time falls in, or null after the last one. */
export function windowIndex(windows: readonly WindowDef[], tsMs: number): number | null {
  for (const w of windows) if ((w.startMs ?? -Infinity) <= tsMs && tsMs < w.endMs) return w.index;
  return null;
}

export interface WindowSettings {
  protocol: PromptProtocol;
  dataSeed: number;
  targets: readonly string[];
  casesPerDomain: number;
  initialSamples: number;
  samplesPerWindow: number;
  /** Mixed (annealing) samples per round: annealing steps × batch. */
  annealSamples: number;
  sftSamples: number;
}

export interface DomainCatalogue {
  /** Titled items per domain: the negatives' pool. */
  pools: ReadonlyMap<string, ItemPool>;
  titleOf(domain: string, itemId: string): string | undefined;
}

/** A domain sequence for SASRec: item ids with their event times, oldest first. */
export interface TimedSequence {
  u: string;
  items: Array<[string, number]>;
}

export interface WindowStats {
  window: number;
  label: string;
  interactions: Record<string, number>;
  users: number;
  /** Next-item positions with a titled target in the window (what samples are drawn from). */
  domainPositions: number;
  mixedPositions: number;
  /** Users of each target domain with an evaluation case in the window (before the subset). */
  evaluable: Record<string, number>;
}

export interface WindowedData {
  windows: WindowDef[];
  /** cpt[w]: the domain-specific samples drawn from window w (w = 0..K−1), in training order. */
  cpt: SampleItems[][];
  /** mixed[b]: round b's annealing samples, drawn from mixed windows with targets in windows ≤ b. */
  mixed: SampleItems[][];
  /** sft[b][domain]: round b's fine-tuning samples, drawn from the domain's windows ≤ b. */
  sft: Array<Record<string, SampleItems[]>>;
  /** cases[v][domain]: window v's frozen evaluation cases (v = 1..K; cases[0] is empty). */
  cases: Array<Record<string, EvaluationCase[]>>;
  /** Per target domain, every user's sequence with event times (SASRec's training data per round). */
  sequences: Record<string, TimedSequence[]>;
  /** Per target domain, the items SASRec indexes: the pool and everything in the sequences. */
  items: Record<string, string[]>;
  stats: WindowStats[];
}

interface Position {
  seq: number;
  t: number;
}

/** Draws `n` of `candidates` (a seeded shuffle of a copy, first n). */
function draw<T>(candidates: readonly T[], n: number, seed: number): T[] {
  return shuffleInPlace([...candidates], createRng(seed)).slice(0, n);
}

/**
 * Cuts the interactions into windows and draws, with seeds that depend only on the data seed and
 * the window (never on what was drawn before): per window the domain-specific CPT samples, per
 * round the annealing (mixed) samples and the fine-tuning samples of every target domain from the
 * windows so far, and per evaluation window the frozen cases of every target domain (the user's
 * first item in the window with the earlier items of the domain as history and 19 drawn
 * negatives — the evaluator's drift-window cases). Every sample and case follows one prompt
 * protocol; negatives exclude what the user had up to the window's end.
 */
export function buildWindowedData(
  interactions: readonly Interaction[],
  windows: readonly WindowDef[],
  catalogue: DomainCatalogue,
  s: WindowSettings,
): WindowedData {
  const K = windows.length - 1;
  const domainBuilder = new DomainSequenceBuilder();
  const mixedBuilder = new MixedSequenceBuilder();
  domainBuilder.add(interactions);
  mixedBuilder.add(interactions);
  const seqs: DomainSequence[] = [...domainBuilder.sequences()];
  const titled = (domain: string, itemId: string): boolean => catalogue.titleOf(domain, itemId) !== undefined;
  const w = (ts: number): number | null => windowIndex(windows, ts);

  // Next-item positions per window (titled targets, at least one earlier item).
  const positions: Position[][] = windows.map(() => []);
  seqs.forEach((seq, i) => {
    for (let t = 1; t < seq.items.length; t++) {
      const item = seq.items[t]!;
      const at = w(item.tsMs);
      if (at !== null && titled(seq.domain, item.itemId)) positions[at]!.push({ seq: i, t });
    }
  });
  const itemsBefore = (seq: DomainSequence, endMs: number): string[] =>
    seq.items.filter((x) => x.tsMs < endMs).map((x) => x.itemId);
  const sample = (p: Position, endMs: number, rngSeed: number): SampleItems => {
    const seq = seqs[p.seq]!;
    return protocolSample(s.protocol, {
      history: seq.items.slice(0, p.t).map((x) => x.itemId),
      target: seq.items[p.t]!.itemId,
      userItems: itemsBefore(seq, endMs),
      pool: catalogue.pools.get(seq.domain)!,
      titleOf: (id) => catalogue.titleOf(seq.domain, id),
      rng: createRng(rngSeed),
    });
  };
  const key = (p: Position): string => `${seqs[p.seq]!.userId}|${seqs[p.seq]!.domain}|${p.t}`;

  const cpt: SampleItems[][] = [];
  for (let b = 0; b < K; b++) {
    const n = b === 0 ? s.initialSamples : s.samplesPerWindow;
    const end = windows[b]!.endMs;
    cpt.push(
      draw(positions[b]!, n, deriveSeed(s.dataSeed, 'cpt', b)).map((p) =>
        sample(p, end, deriveSeed(s.dataSeed, 'cpt-sample', key(p))),
      ),
    );
  }

  // Mixed windows: cross-domain histories (titles of their own domains), target domain's candidates.
  const mixedSeqs = [...mixedBuilder.sequences()];
  const mixedPositions: Array<Array<{ seq: number; history: Interaction[]; target: Interaction }>> =
    windows.map(() => []);
  mixedSeqs.forEach((seq, i) => {
    for (const m of mixedSamples(seq, { windowSize: s.protocol.historyLength + 1 })) {
      const at = w(m.target.tsMs);
      if (at !== null && titled(m.target.domain, m.target.itemId))
        mixedPositions[at]!.push({ seq: i, history: [...m.history], target: m.target });
    }
  });
  const mixed: SampleItems[][] = [];
  for (let b = 0; b < K; b++) {
    const end = windows[b]!.endMs;
    const pool = mixedPositions.slice(0, b + 1).flat();
    mixed.push(
      draw(pool, s.annealSamples, deriveSeed(s.dataSeed, 'mixed', b)).map((m) => {
        const domain = m.target.domain;
        const userItems = mixedSeqs[m.seq]!.items.filter((x) => x.domain === domain && x.tsMs < end);
        const base = protocolSample(s.protocol, {
          history: [],
          target: m.target.itemId,
          userItems: userItems.map((x) => x.itemId),
          pool: catalogue.pools.get(domain)!,
          titleOf: (id) => catalogue.titleOf(domain, id),
          rng: createRng(deriveSeed(s.dataSeed, 'mixed-sample', mixedSeqs[m.seq]!.userId, m.target.eventId)),
        });
        const history: PromptItem[] = m.history
          .slice(Math.max(0, m.history.length - s.protocol.historyLength))
          .map((x) => ({ itemId: x.itemId, title: catalogue.titleOf(x.domain, x.itemId) ?? '' }));
        return { ...base, history };
      }),
    );
  }

  const sft: Array<Record<string, SampleItems[]>> = [];
  for (let b = 0; b < K; b++) {
    const end = windows[b]!.endMs;
    const perDomain: Record<string, SampleItems[]> = {};
    for (const domain of s.targets) {
      const pool = positions
        .slice(0, b + 1)
        .flat()
        .filter((p) => seqs[p.seq]!.domain === domain);
      perDomain[domain] = draw(pool, s.sftSamples, deriveSeed(s.dataSeed, 'sft', b, domain)).map((p) =>
        sample(p, end, deriveSeed(s.dataSeed, 'sft-sample', key(p))),
      );
    }
    sft.push(perDomain);
  }

  const cases: Array<Record<string, EvaluationCase[]>> = [{}];
  const evaluable: Array<Record<string, number>> = [{}];
  for (let v = 1; v <= K; v++) {
    const win = windows[v]!;
    const perDomain: Record<string, EvaluationCase[]> = {};
    const counts: Record<string, number> = {};
    for (const domain of s.targets) {
      const examples = seqs
        .filter((q) => q.domain === domain)
        .map((q) =>
          timeWindowExample(q, {
            splitId: `continual-w${v}-s${s.dataSeed}`,
            splitSeed: s.dataSeed,
            domainItems: catalogue.pools.get(domain)!,
            negatives: s.protocol.candidates - 1,
            titleOf: (id) => catalogue.titleOf(domain, id),
            t0: win.startMs!,
            t1: win.endMs,
          }),
        )
        .filter((e) => e !== undefined && titled(domain, e.target));
      counts[domain] = examples.length;
      // A fixed subset: the users of smallest seeded rank (independent of the file order).
      const ranked = examples
        .map((e) => ({ e: e!, r: deriveSeed(s.dataSeed, 'case', v, domain, e!.userId) }))
        .sort((a, b) => a.r - b.r || (a.e.userId < b.e.userId ? -1 : 1))
        .slice(0, s.casesPerDomain)
        .map((x) => x.e);
      perDomain[domain] = casesFromExamples(
        ranked,
        (id) => catalogue.titleOf(domain, id),
        s.protocol.historyLength,
      );
    }
    cases.push(perDomain);
    evaluable.push(counts);
  }

  const sequences: Record<string, TimedSequence[]> = {};
  const items: Record<string, string[]> = {};
  for (const domain of s.targets) {
    sequences[domain] = seqs
      .filter((q) => q.domain === domain)
      .map((q) => ({ u: q.userId, items: q.items.map((x) => [x.itemId, x.tsMs] as [string, number]) }));
    const all = new Set(catalogue.pools.get(domain)?.items ?? []);
    for (const q of sequences[domain]!) for (const [id] of q.items) all.add(id);
    items[domain] = [...all].sort();
  }

  const stats: WindowStats[] = windows.map((win) => {
    const inWindow = interactions.filter((x) => w(x.tsMs) === win.index);
    const counts = new Map<string, number>();
    for (const x of inWindow) counts.set(x.domain, (counts.get(x.domain) ?? 0) + 1);
    return {
      window: win.index,
      label: win.label,
      interactions: Object.fromEntries([...counts].sort(([a], [b]) => (a < b ? -1 : 1))),
      users: new Set(inWindow.map((x) => x.userId)).size,
      domainPositions: positions[win.index]!.length,
      mixedPositions: mixedPositions[win.index]!.length,
      evaluable: evaluable[win.index] ?? {},
    };
  });
  return { windows: [...windows], cpt, mixed, sft, cases, sequences, items, stats };
}

/** SASRec's training sequences at round b: every user's items before the end of window b. */
export function sequencesUntil(sequences: readonly TimedSequence[], endMs: number): string[][] {
  return sequences
    .map((q) => q.items.filter(([, ts]) => ts < endMs).map(([id]) => id))
    .filter((items) => items.length >= 2);
}

/**
 * The stable-phase data of a continual round: the window's samples, then `replayFraction` of
 * their number drawn from the earlier windows' samples (services: TRAINER_REPLAY_FRACTION), mixed
 * in by a seeded shuffle.
 */
export function continualStableSamples(
  cpt: readonly SampleItems[][],
  b: number,
  replayFraction: number,
  seed: number,
): SampleItems[] {
  const fresh = cpt[b] ?? [];
  if (b === 0) return [...fresh];
  const older = cpt.slice(0, b).flat();
  const replay = draw(older, Math.round(replayFraction * fresh.length), deriveSeed(seed, 'replay', b));
  return shuffleInPlace([...fresh, ...replay], createRng(deriveSeed(seed, 'stable', b)));
}

/** The stable-phase data of a full retrain at round b: every window's samples so far, shuffled. */
export function retrainStableSamples(cpt: readonly SampleItems[][], b: number, seed: number): SampleItems[] {
  return shuffleInPlace(cpt.slice(0, b + 1).flat(), createRng(deriveSeed(seed, 'retrain', b)));
}
