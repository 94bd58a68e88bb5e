import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import '@tensorflow/tfjs-backend-cpu';
import { ItemPool, type Interaction } from '@cprec/corpus';
import { useNativeKernelsLikeProduction } from '@cprec/lm/testing/native-kernels';
import { readJson, readJsonLines } from '../paper/io';
import { RunStoppedError } from '../paper/runner';
import { tinyLm } from '../paper/testing';
import { planStages } from './plan';
import { writeContinualReport } from './report';
import { runContinual, type RunResult } from './run';
import { readRows, type Summary } from './summary';
import { tinyContinualConfig, writeTinyLinked } from './testing';
import {
  buildWindowedData,
  continualStableSamples,
  makeWindows,
  retrainStableSamples,
  sequencesUntil,
  windowIndex,
} from './windows';

jest.setTimeout(15 * 60_000);
useNativeKernelsLikeProduction();

const DAY = 86_400_000;
const T0 = Date.UTC(2013, 0, 1);

describe('windows', () => {
  it('cuts the stream into the history and consecutive windows, and places event times in them', () => {
    const w = makeWindows(T0, 30, 3);
    expect(w.map((x) => [x.index, x.startMs, x.endMs])).toEqual([
      [0, null, T0],
      [1, T0, T0 + 30 * DAY],
      [2, T0 + 30 * DAY, T0 + 60 * DAY],
      [3, T0 + 60 * DAY, T0 + 90 * DAY],
    ]);
    expect(w[1]!.label).toBe('2013-01-01 → 2013-01-31');
    expect(windowIndex(w, 0)).toBe(0);
    expect(windowIndex(w, T0 - 1)).toBe(0);
    expect(windowIndex(w, T0)).toBe(1);
    expect(windowIndex(w, T0 + 60 * DAY)).toBe(3);
    expect(windowIndex(w, T0 + 90 * DAY)).toBeNull();
    expect(() => makeWindows(T0, 30, 0)).toThrow(/at least one window/);
  });

  // Two domains, 24 items each; 12 users with an item every 10 days from 40 days before T0.
  const domains = ['a', 'b'];
  const interactions: Interaction[] = [];
  for (let u = 0; u < 12; u++)
    for (let k = 0; k < 12; k++) {
      const domain = domains[(u + k) % 2]!;
      interactions.push({
        eventId: `e${u}-${k}`,
        userId: `u${u}`,
        itemId: `${domain}${(u * 5 + k * 3) % 24}`,
        domain,
        tsMs: T0 - 40 * DAY + k * 10 * DAY + u * 3_600_000,
        seq: k,
      });
    }
  const times = (domain: string, itemId: string): number[] =>
    interactions.filter((x) => x.domain === domain && x.itemId === itemId).map((x) => x.tsMs);
  const catalogue = {
    pools: new Map(
      domains.map((d) => [
        d,
        new ItemPool(
          d,
          Array.from({ length: 24 }, (_, i) => `${d}${i}`),
        ),
      ]),
    ),
    titleOf: (d: string, id: string) => `${d} title ${id}`,
  };
  const windows = makeWindows(T0, 30, 2);
  const settings = {
    protocol: { candidates: 6, historyLength: 3, budget: { maxTokens: 256, maxTitleTokens: 4 } },
    dataSeed: 5,
    targets: ['a', 'b'],
    casesPerDomain: 3,
    initialSamples: 4,
    samplesPerWindow: 3,
    annealSamples: 2,
    sftSamples: 5,
  };
  const data = buildWindowedData(interactions, windows, catalogue, settings);

  it("draws each round's CPT samples from its own window, fine-tuning samples from the windows so far", () => {
    expect(data.cpt.map((s) => s.length)).toEqual([4, 3]);
    for (const [b, samples] of data.cpt.entries())
      for (const s of samples) {
        const domain = s.target.itemId[0]!;
        // Some user has the target at a time inside window b.
        const inWindow = times(domain, s.target.itemId).some((ts) => windowIndex(windows, ts) === b);
        expect(inWindow).toBe(true);
        expect(s.candidates).toHaveLength(6);
        expect(s.candidates.map((c) => c.itemId)).toContain(s.target.itemId);
        expect(s.history.length).toBeLessThanOrEqual(3);
      }
    for (const [b, perDomain] of data.sft.entries())
      for (const [domain, samples] of Object.entries(perDomain)) {
        expect(samples).toHaveLength(5);
        for (const s of samples) {
          expect(s.target.itemId.startsWith(domain)).toBe(true);
          // Some user had the target before the end of window b.
          const before = times(domain, s.target.itemId).some((ts) => ts < windows[b]!.endMs);
          expect(before).toBe(true);
        }
      }
    expect(data.mixed.map((m) => m.length)).toEqual([2, 2]);
  });

  it("freezes each window's cases: the user's first item in the window, the earlier ones as history, never a user item as a negative", () => {
    expect(data.cases[0]).toEqual({});
    for (let v = 1; v <= 2; v++)
      for (const domain of ['a', 'b']) {
        const cases = data.cases[v]![domain]!;
        expect(cases.length).toBeGreaterThan(0);
        expect(cases.length).toBeLessThanOrEqual(3);
        for (const c of cases) {
          const mine = interactions.filter((x) => x.userId === c.userId && x.domain === domain);
          const first = mine.find((x) => windowIndex(windows, x.tsMs) === v)!;
          expect(c.target.itemId).toBe(first.itemId);
          expect(c.history.map((h) => h.itemId)).toEqual(
            mine
              .filter((x) => x.tsMs < first.tsMs)
              .map((x) => x.itemId)
              .slice(-3),
          );
          const userItems = new Set(mine.map((x) => x.itemId));
          for (const cand of c.candidates)
            if (cand.itemId !== c.target.itemId) expect(userItems.has(cand.itemId)).toBe(false);
        }
      }
  });

  it('is deterministic: the same interactions in another order give the same data', () => {
    const again = buildWindowedData([...interactions].reverse(), windows, catalogue, settings);
    expect(JSON.stringify(again)).toBe(JSON.stringify(data));
  });

  it('continual rounds absorb their window plus a replayed share of older samples; a retrain takes them all', () => {
    const stable = continualStableSamples(data.cpt, 1, 1 / 3, 5);
    expect(stable).toHaveLength(3 + 1);
    expect(data.cpt[1]!.every((s) => stable.includes(s))).toBe(true);
    expect(continualStableSamples(data.cpt, 0, 0.5, 5)).toEqual(data.cpt[0]);
    const all = retrainStableSamples(data.cpt, 1, 5);
    expect(all).toHaveLength(7);
    expect([...data.cpt[0]!, ...data.cpt[1]!].every((s) => all.includes(s))).toBe(true);
  });

  it("gives SASRec every user's items before the end of the round's window", () => {
    const seqs = sequencesUntil(data.sequences.a!, windows[0]!.endMs);
    const before = interactions.filter((x) => x.domain === 'a' && x.tsMs < T0);
    expect(seqs.flat().sort()).toEqual(
      before
        .filter((x) => before.filter((y) => y.userId === x.userId).length >= 2)
        .map((x) => x.itemId)
        .sort(),
    );
  });
});

describe('the continual harness on tiny data', () => {
  const quiet = {
    log: process.env.CONTINUAL_DEBUG ? (m: string) => void process.stderr.write(`${m}\n`) : () => undefined,
    progressWriter: () => undefined,
  };
  let root: string;
  let titles: string[];
  let straight: RunResult;
  let polls = 0;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'cprec-continual-'));
    titles = writeTinyLinked(join(root, 'data')).titles;
    straight = await runContinual(tinyContinualConfig(join(root, 'straight'), join(root, 'data')), {
      ...quiet,
      loadLm: async () => tinyLm(titles),
      shouldStop: () => (polls++, false),
    });
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it("runs every stage and writes summary.json in the issue's schema", () => {
    const config = tinyContinualConfig(join(root, 'straight'), join(root, 'data'));
    expect(straight.executed).toEqual(planStages(config).map((s) => s.id));
    const summary = readJson<Summary>(join(root, 'straight', 'results', 'summary.json'));
    expect(summary.complete).toBe(true);
    expect(summary.rows_done).toBe(summary.rows_planned);
    expect(summary.windows.map((e) => `${e.window}:${e.arm}`)).toEqual([
      '1:frozen',
      '1:continual',
      '1:retrain',
      '1:sasrec',
      '2:frozen',
      '2:continual',
      '2:retrain',
      '2:sasrec',
    ]);
    for (const e of summary.windows) {
      expect(e.hr1).toBeGreaterThanOrEqual(0);
      expect(e.hr1).toBeLessThanOrEqual(1);
      expect(e.hr1_ci95[0]).toBeLessThanOrEqual(e.hr1 + 1e-12);
      expect(e.hr1_ci95[1]).toBeGreaterThanOrEqual(e.hr1 - 1e-12);
      expect(e.tokens).toBeGreaterThanOrEqual(0);
      expect(e.wall_s).toBeGreaterThanOrEqual(0);
      expect(e.users).toBeGreaterThan(0);
    }
    const at = (arm: string, v: number) => summary.windows.find((e) => e.arm === arm && e.window === v)!;
    // Round 0 is one model for three arms; afterwards frozen costs nothing, retrain more than continual.
    expect(at('frozen', 1).hr1).toBe(at('continual', 1).hr1);
    expect(at('retrain', 1).hr1).toBe(at('continual', 1).hr1);
    expect(at('frozen', 2).tokens).toBe(0);
    expect(at('continual', 2).tokens).toBeGreaterThan(0);
    expect(at('retrain', 2).tokens).toBeGreaterThan(at('continual', 2).tokens);
    expect(summary.forgetting.map((e) => `${e.boundary}:${e.arm}`).sort()).toEqual(
      [
        '0:frozen',
        '0:continual',
        '0:retrain',
        '0:sasrec',
        '1:frozen',
        '1:continual',
        '1:retrain',
        '1:sasrec',
      ].sort(),
    );
  });

  it('scores every arm of a window on the same users and the same candidates', () => {
    const rows = readRows(join(root, 'straight', 'results', 'rows'));
    const byWindow = new Map<string, string[]>();
    for (const r of rows) {
      const key = `${r.window}|${r.domain}`;
      const signature = `${r.casesKey}|${r.users.map((u) => `${u.u}:${u.cands}`).join(',')}`;
      byWindow.set(key, [...(byWindow.get(key) ?? []), signature]);
    }
    for (const signatures of byWindow.values()) expect(new Set(signatures).size).toBe(1);
  });

  it('continues after kills at any point with the results of a straight run', async () => {
    const killedRoot = join(root, 'killed');
    const config = tinyContinualConfig(killedRoot, join(root, 'data'));
    let count = 0;
    const kills = [0.15, 0.5, 0.85].map((f) => Math.floor(f * polls));
    const stoppedIn: string[] = [];
    for (const at of kills) {
      const err = await runContinual(config, {
        ...quiet,
        loadLm: async () => tinyLm(titles),
        shouldStop: () => ++count >= at,
      }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(RunStoppedError);
      stoppedIn.push(/\((?:in|before) ([a-z]+)\//.exec((err as Error).message)?.[1] ?? '?');
    }
    const resumed = await runContinual(config, { ...quiet, loadLm: async () => tinyLm(titles) });
    expect(resumed.reused.length).toBeGreaterThan(0);
    for (const id of resumed.executed) expect(resumed.reused).not.toContain(id);
    expect(resumed.reused.length + resumed.executed.length).toBe(planStages(config).length);
    expect(new Set(stoppedIn).size).toBeGreaterThanOrEqual(2);
    const a = readRows(join(root, 'straight', 'results', 'rows'));
    const b = readRows(join(killedRoot, 'results', 'rows'));
    expect(b.map((r) => r.id)).toEqual(a.map((r) => r.id));
    a.forEach((r, i) =>
      expect(b[i]!.users.map((u) => [u.u, u.rank])).toEqual(r.users.map((u) => [u.u, u.rank])),
    );
    // Every evaluation log holds each case once (a resumed evaluation skipped the logged ones).
    const evalDir = join(killedRoot, 'state', 'eval');
    for (const f of readdirSync(evalDir)) {
      const users = readJsonLines<{ u: string }>(join(evalDir, f)).map((x) => x.u);
      expect(new Set(users).size).toBe(users.length);
    }
  });

  it('refuses to resume with other settings instead of mixing two experiments', async () => {
    const config = { ...tinyContinualConfig(join(root, 'straight'), join(root, 'data')), casesPerDomain: 3 };
    await expect(runContinual(config, { ...quiet, loadLm: async () => tinyLm(titles) })).rejects.toThrow(
      /completed with other settings/,
    );
  });

  it('writes the page and its SVG figures from the JSON alone', () => {
    const out = join(root, 'page', 'continual.md');
    writeContinualReport(join(root, 'straight', 'results'), out, () => undefined);
    for (const f of ['hr1.svg', 'cost.svg', 'forgetting.svg'])
      expect(existsSync(join(root, 'page', 'continual', f))).toBe(true);
    const empty = join(root, 'empty', 'continual.md');
    writeContinualReport(join(root, 'nothing-here'), empty, () => undefined, 'PLAN');
    const text = readFileSync(empty, 'utf8');
    expect(text).toMatch(/Not run yet/);
    expect(text).toMatch(/PLAN/);
    expect(readFileSync(out, 'utf8')).toMatch(/\| 2 \| .* \| continual \|/);
  });
});
