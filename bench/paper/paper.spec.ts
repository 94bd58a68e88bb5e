import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import '@tensorflow/tfjs-backend-cpu';
import { useNativeKernelsLikeProduction } from '@cprec/lm/testing/native-kernels';
import { matchGeneration } from '@cprec/metrics';
import { ItemIndex } from '@cprec/sasrec';
import { candidateKey, testFingerprint, type TargetData } from './data';
import { readJson, readJsonLines } from './io';
import { readCurve } from './lm';
import { fullConfig, SFT_POOL, validateConfig } from './config';
import { planStages } from './plan';
import { casesToSplits } from './recommenders';
import { runPaper, type RunResult } from './run';
import { RunStoppedError } from './runner';
import { pairedBootstrap, seedInterval, tInterval, wilsonInterval } from './stats';
import { readRows, rowMetrics, summarise, type RowResult } from './summary';
import { tinyConfig, tinyLm, writeTinyData } from './testing';

// The whole pipeline about four times over on a tiny random model.
jest.setTimeout(20 * 60_000);
useNativeKernelsLikeProduction();

const quiet = { log: () => undefined, progressWriter: () => undefined, loadSampleSeconds: 0 };

describe('the paper harness on tiny data', () => {
  let root: string;
  let titles: string[];
  let straight: RunResult;
  let straightRoot: string;
  /** Stop polls of the straight run: where the kills of the resumption test are spread. */
  let polls = 0;

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'cprec-paper-'));
    straightRoot = join(root, 'straight');
    titles = writeTinyData(join(root, 'data')).titles;
    const config = { ...tinyConfig(straightRoot), dataDir: join(root, 'data') };
    straight = await runPaper(config, {
      ...quiet,
      loadLm: async () => tinyLm(titles),
      shouldStop: () => (polls++, false),
    });
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('runs every stage and writes the summary in the schema the issue asks for', () => {
    const config = tinyConfig(straightRoot);
    expect(straight.executed).toEqual(planStages(config).map((s) => s.id));
    const summary = readJson<ReturnType<typeof summarise>>(join(straightRoot, 'results', 'summary.json'));
    const methods = summary.rows.map((r) => r.method).sort();
    expect(methods).toEqual(
      [
        'base-zero-shot',
        'cprec',
        'cprec-zero-shot',
        'gru4rec',
        'llara',
        'popularity',
        'sasrec',
        'title-similarity',
      ].sort(),
    );
    for (const r of summary.rows) {
      expect(r.target).toBe('steam');
      expect(r.hr1).toBeGreaterThanOrEqual(0);
      expect(r.hr1).toBeLessThanOrEqual(1);
      expect(r.hr1_ci95[0]).toBeLessThanOrEqual(r.hr1 + 1e-12);
      expect(r.hr1_ci95[1]).toBeGreaterThanOrEqual(r.hr1 - 1e-12);
      expect(r.valid_ratio).toBeGreaterThanOrEqual(0);
      expect(r.test_users).toBe(config.testUsers);
      expect(r.seeds).toBe(r.method === 'llara' || r.method === 'cprec' ? 2 : 1);
    }
    expect(summary.paired).toHaveLength(1);
    expect(summary.paired[0]).toMatchObject({ target: 'steam', seeds: 2, test_users: config.testUsers });
    expect(summary.paired[0]!.p_value).toBeGreaterThan(0);
    expect(summary.paired[0]!.p_value).toBeLessThanOrEqual(1);
    expect(summary.ablations.map((a) => a.method).sort()).toEqual(
      ['cprec', 'cprec-cosine', 'cprec-ds-only', 'cprec-mix-stable', 'llara'].sort(),
    );
    expect(summary.few_shot.map((p) => p.samples)).toEqual([2, 6]);
    expect(summary.rows_done).toBe(summary.rows_planned);
  });

  it('gives every method the same test users and the same 20 candidates, in the same order', () => {
    const data = readJson<TargetData>(join(straightRoot, 'state', 'data', 'steam.json'));
    const expected = data.test.map((c) => `${c.userId}:${candidateKey(c.candidates.map((x) => x.itemId))}`);
    const rows = readRows(join(straightRoot, 'results', 'rows'));
    const planned = planStages(tinyConfig(straightRoot)).filter(
      (s) => s.kind === 'eval' || s.kind === 'recommender',
    );
    expect(rows.map((r) => r.id).sort()).toEqual(
      planned.map((s) => s.id.replace(/^(eval|rec)\//, '')).sort(),
    );
    for (const row of rows) {
      expect(row.testFingerprint).toBe(testFingerprint(data.test));
      // `cands` is what each model actually ranked: the recommender's dense candidates mapped
      // back to ids, the LM's encoded prompt's candidate list.
      expect(row.users.map((u) => `${u.u}:${u.cands}`)).toEqual(expected);
    }
    for (const c of data.test) expect(c.candidates).toHaveLength(20);
  });

  it('runs CPT under WSA: warm-up ≥ 1 step from η_l, plateau at η_h, last step at exactly η_l', () => {
    const config = tinyConfig(straightRoot);
    const curve = readCurve(join(straightRoot, 'results', 'state', 'cpt', 'cprec', 'curve.jsonl'));
    expect(curve).toHaveLength(config.cpt.stableSteps + config.cpt.annealSteps);
    expect(curve[0]!.lr).toBe(config.cpt.etaLow);
    expect(curve[0]!.phase).toBe('warmup');
    expect(curve.some((p) => p.lr === config.cpt.etaHigh)).toBe(true);
    expect(curve[curve.length - 1]!.lr).toBe(config.cpt.etaLow);
    expect(curve[curve.length - 1]!.phase).toBe('annealing');
    const cosine = readCurve(join(straightRoot, 'results', 'state', 'cpt', 'cosine', 'curve.jsonl'));
    expect(cosine[cosine.length - 1]!.lr).toBe(config.cpt.etaLow);
    expect(cosine.filter((p) => p.lr === config.cpt.etaHigh).length).toBeLessThanOrEqual(1);
  });

  it('continues after kills at any point (between stages, mid-CPT, mid-SFT, mid-evaluation) with the results of a straight run', async () => {
    const killedRoot = join(root, 'killed');
    const config = { ...tinyConfig(killedRoot), dataDir: join(root, 'data') };
    let count = 0;
    // A poll count at 10% lands in the recommenders/CPT, then SFT and evaluations further on.
    const kills = [0.1, 0.45, 0.8].map((f) => Math.floor(f * polls));
    const stoppedIn: string[] = [];
    for (const at of kills) {
      const err = await runPaper(config, {
        ...quiet,
        loadLm: async () => tinyLm(titles),
        shouldStop: () => ++count >= at,
      }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(RunStoppedError);
      // "run stopped (in cpt/cprec: …)" or "(before sft/…)": the stage kind the kill hit.
      stoppedIn.push(/\((?:in|before) ([a-z-]+)\//.exec((err as Error).message)![1]!);
    }
    const resumed = await runPaper(config, { ...quiet, loadLm: async () => tinyLm(titles) });
    // Nothing finished before the last kill ran again.
    expect(resumed.reused.length).toBeGreaterThan(0);
    for (const id of resumed.executed) expect(resumed.reused).not.toContain(id);
    expect(resumed.reused.length + resumed.executed.length).toBe(planStages(config).length);
    // The kills fell in different kinds of stages.
    expect(new Set(stoppedIn).size).toBeGreaterThanOrEqual(2);
    // Same numbers as the straight run, row by row.
    const a = readRows(join(straightRoot, 'results', 'rows'));
    const b = readRows(join(killedRoot, 'results', 'rows'));
    expect(b.map((r) => r.id)).toEqual(a.map((r) => r.id));
    a.forEach((r, i) => {
      expect(b[i]!.users.map((u) => [u.u, u.hit, u.valid, u.rank])).toEqual(
        r.users.map((u) => [u.u, u.hit, u.valid, u.rank]),
      );
    });
    // No progress checkpoints left behind by finished fine-tunings.
    const sft = join(killedRoot, 'results', 'state', 'sft');
    expect(readdirSync(sft).filter((f) => f.endsWith('.progress'))).toEqual([]);
    // The evaluation logs hold each case once after the re-runs (a resumed row skipped logged cases).
    for (const f of readdirSync(join(killedRoot, 'results', 'state', 'eval'))) {
      const users = readJsonLines<{ u: string }>(join(killedRoot, 'results', 'state', 'eval', f)).map(
        (x) => x.u,
      );
      expect(new Set(users).size).toBe(users.length);
    }
  });

  it('continues on a fresh machine from the results folder alone (the state folder lost), with the results of a straight run', async () => {
    const freshRoot = join(root, 'fresh');
    const config = { ...tinyConfig(freshRoot), dataDir: join(root, 'data') };
    let count = 0;
    // Past the CPT run and into the fine-tuned rows: some SFT adapters and rows finished.
    const at = Math.floor(0.6 * polls);
    await expect(
      runPaper(config, { ...quiet, loadLm: async () => tinyLm(titles), shouldStop: () => ++count >= at }),
    ).rejects.toBeInstanceOf(RunStoppedError);
    const stagesDir = join(freshRoot, 'results', 'state', 'stages');
    const finished = readdirSync(stagesDir).map((f) => readJson<{ id: string }>(join(stagesDir, f)).id);
    const finishedRows = finished.filter((id) => id.startsWith('eval/') || id.startsWith('rec/'));
    expect(finished).toContain('cpt/cprec');
    expect(finishedRows.some((id) => id.startsWith('eval/') && id.includes('/n'))).toBe(true);

    // The new machine has the commit: the results folder, not the state folder.
    rmSync(join(freshRoot, 'state'), { recursive: true, force: true });
    const resumed = await runPaper(config, { ...quiet, loadLm: async () => tinyLm(titles) });
    // The data the pending stages read is rebuilt; the CPT run (its adapter is in the results
    // folder) and every finished row are not run again.
    expect(resumed.executed).toContain('data/steam');
    expect(resumed.executed).not.toContain('cpt/cprec');
    for (const id of finishedRows) expect(resumed.reused).toContain(id);
    // Nor a finished fine-tuning, even one whose rows were still to be scored: its adapter is kept
    // in the results folder until they are, then deleted.
    const finishedSft = finished.filter((id) => id.startsWith('sft/'));
    expect(finishedSft.length).toBeGreaterThan(0);
    for (const id of finishedSft) expect(resumed.reused).toContain(id);
    const durableSft = join(freshRoot, 'results', 'state', 'sft');
    expect(existsSync(durableSft) ? readdirSync(durableSft) : []).toEqual([]);
    const a = readRows(join(straightRoot, 'results', 'rows'));
    const b = readRows(join(freshRoot, 'results', 'rows'));
    expect(b.map((r) => r.id)).toEqual(a.map((r) => r.id));
    a.forEach((r, i) => {
      expect(b[i]!.users.map((u) => [u.u, u.hit, u.valid, u.rank])).toEqual(
        r.users.map((u) => [u.u, u.hit, u.valid, u.rank]),
      );
    });
  });

  it('refuses to resume a stage with other settings instead of mixing two experiments', async () => {
    const config = { ...tinyConfig(straightRoot), dataDir: join(root, 'data'), testUsers: 5 };
    await expect(runPaper(config, { ...quiet, loadLm: async () => tinyLm(titles) })).rejects.toThrow(
      /completed with other settings/,
    );
    expect(existsSync(join(straightRoot, 'results', 'summary.json'))).toBe(true);
  });

  it("keeps finished stages when only the recommenders' wall-clock cap changes (also records that stored it)", async () => {
    // Records written before the cap stopped being a stage input hold it in their inputs.
    const stagesDir = join(straightRoot, 'results', 'state', 'stages');
    let legacy = 0;
    for (const f of readdirSync(stagesDir)) {
      const record = readJson<{ inputs: Record<string, unknown> }>(join(stagesDir, f));
      const text = JSON.stringify(record);
      const withCap = text.replace(/"recommenders":\{/g, '"recommenders":{"timeBudgetMinutes":2,');
      if (withCap === text) continue;
      legacy++;
      writeFileSync(join(stagesDir, f), withCap);
    }
    expect(legacy).toBeGreaterThan(0);
    const config = tinyConfig(straightRoot);
    const raised = {
      ...config,
      dataDir: join(root, 'data'),
      recommenders: { ...config.recommenders, timeBudgetMinutes: 999 },
    };
    const resumed = await runPaper(raised, { ...quiet, loadLm: async () => tinyLm(titles) });
    expect(resumed.executed).toEqual([]);
    expect(resumed.reused).toEqual(planStages(config).map((s) => s.id));
  });
});

describe('generation matching and Valid Ratio on crafted answers', () => {
  // Titles as the prompt shows them (one cut at the title cap).
  const shown = [
    'Super Mario Odyssey',
    'Mario Kart 8 Deluxe',
    'The Legend of Zelda: Breath',
    'FIFA 19',
    'FIFA 19 Champions Edition',
  ];
  const target = 1;
  const outcome = (answer: string): { hit: 0 | 1; valid: 0 | 1 } => {
    const m = matchGeneration(answer, shown);
    return { hit: m.valid && m.index === target ? 1 : 0, valid: m.valid ? 1 : 0 };
  };
  const named = (answer: string): number | null => {
    const m = matchGeneration(answer, shown);
    return m.valid ? m.index : null;
  };

  it('counts exact, quoted, prefix and contained answers as valid; empty, unknown and ambiguous ones not', () => {
    expect(outcome(' Mario Kart 8 Deluxe')).toEqual({ hit: 1, valid: 1 });
    expect(outcome('"mario kart 8 deluxe".\nmore text')).toEqual({ hit: 1, valid: 1 });
    expect(outcome('Mario Kart 8 Del')).toEqual({ hit: 1, valid: 1 }); // cut by the token limit
    expect(named('FIFA 19 Champ')).toBe(4); // the title it begins, not "FIFA 19" it contains
    expect(outcome('I recommend Super Mario Odyssey to this user')).toEqual({ hit: 0, valid: 1 });
    expect(named('The Legend of Zelda: Breath')).toBe(2); // the title as shown (cut at the cap)
    expect(named('FIFA 19')).toBe(3); // exact beats the longer title it prefixes
    expect(named('I like FIFA 19 Champions Edition')).toBe(4); // the longest contained title
    expect(outcome('')).toEqual({ hit: 0, valid: 0 });
    expect(outcome('Halo 3')).toEqual({ hit: 0, valid: 0 });
    expect(outcome('Super Mario Odyssey or Mario Kart 8 Deluxe')).toEqual({ hit: 0, valid: 0 }); // ambiguous
  });

  it('HR@1 and Valid Ratio are over all users: an invalid answer is a miss, not dropped', () => {
    const answers = ['Mario Kart 8 Deluxe', 'FIFA 19', 'Halo 3', '', 'mario kart 8 deluxe'];
    const users = answers.map((a, i) => ({ u: `u${i}`, ...outcome(a), rank: 1 + i, cands: 'x' }));
    const m = rowMetrics(users);
    expect(m.n).toBe(5);
    expect(m.hr1).toBeCloseTo(2 / 5, 12);
    expect(m.validRatio).toBeCloseTo(3 / 5, 12);
    expect(m.hr1OverValid).toBeCloseTo(2 / 3, 12);
    expect(m.ranking).toEqual({
      hr1: 1 / 5,
      hr5: 1,
      ndcg5: (1 + 1 / Math.log2(3) + 0.5 + 1 / Math.log2(5) + 1 / Math.log2(6)) / 5,
    });
  });
});

describe('recommenders rank exactly the frozen candidates', () => {
  it('casesToSplits keeps the last-10 history, every candidate and their order', () => {
    const items = Array.from({ length: 30 }, (_, i) => `i${i}`);
    const index = ItemIndex.fromIds(items);
    const item = (k: number) => ({ itemId: `i${k}`, title: `t${k}` });
    const c = {
      domain: 'steam',
      userId: 'u',
      historyLength: 12,
      history: Array.from({ length: 10 }, (_, k) => item(k)),
      candidates: Array.from({ length: 20 }, (_, k) => item(29 - k)),
      target: item(20),
    };
    const [s] = casesToSplits(index, [c]);
    expect(index.decode(s!.history)).toEqual(c.history.map((h) => h.itemId));
    expect(index.decode(s!.candidates)).toEqual(c.candidates.map((h) => h.itemId));
    expect(index.decode([s!.target])).toEqual(['i20']);
  });
});

describe('statistics', () => {
  it('intervals: t over seeds, Wilson over users for one seed', () => {
    const [lo, hi] = tInterval([0.3, 0.32, 0.34]);
    expect((lo + hi) / 2).toBeCloseTo(0.32, 12);
    expect(hi - lo).toBeCloseTo(2 * 4.303 * (0.02 / Math.sqrt(3)), 3);
    expect(seedInterval([0.3], 500)).toEqual(wilsonInterval(150, 500));
    const [wl, wh] = wilsonInterval(150, 500);
    expect(wl).toBeGreaterThan(0.25);
    expect(wh).toBeLessThan(0.35);
  });

  it('paired bootstrap: a consistent gain is significant, identical methods are not', () => {
    const n = 500;
    const b = Array.from({ length: n }, (_, i) => (i % 5 === 0 ? 1 : 0)); // 0.2
    const a = b.map((x, i) => (x === 1 || i % 10 === 1 ? 1 : 0)); // 0.3, never worse
    const gain = pairedBootstrap(a, b, 2000);
    expect(gain.difference).toBeCloseTo(0.1, 12);
    expect(gain.pValue).toBeLessThan(0.01);
    expect(gain.ci95[0]).toBeGreaterThan(0);
    const same = pairedBootstrap(b, b, 2000);
    expect(same.difference).toBe(0);
    expect(same.pValue).toBe(1);
  });

  it('summarise refuses rows of one target scored on other test cases', () => {
    const row = (id: string, fp: string): RowResult => ({
      id,
      target: 'game',
      method: 'sasrec',
      kind: 'recommender',
      seed: 1,
      samples: 0,
      variant: null,
      ...rowMetrics([{ u: 'a', hit: 1, valid: 1, rank: 1, cands: 'k' }]),
      testFingerprint: fp,
      users: [{ u: 'a', hit: 1, valid: 1, rank: 1, cands: 'k' }],
      seconds: 0,
    });
    expect(() => summarise([row('x', 'f1'), row('y', 'f2')], { mainSamples: 1, rowsPlanned: 2 })).toThrow(
      /other test cases/,
    );
  });
});

describe('the plan keeps what matters most first', () => {
  it('orders the headline comparison, then data, recommenders, CPRec CPT, zero-shot, main rows, first-seed extras, Food.com, further seeds', () => {
    const config = {
      ...tinyConfig('/tmp/x'),
      targets: ['game', 'steam', 'food'] as const,
      ablationTargets: ['game'] as const,
      fewShotTargets: ['game'] as const,
      seeds: [1, 2, 3],
      ablationSeeds: [1, 2],
    };
    const ids = planStages({
      ...config,
      targets: [...config.targets],
      ablationTargets: ['game'],
      fewShotTargets: ['game'],
    }).map((s) => s.id);
    const at = (id: string) => {
      const i = ids.indexOf(id);
      expect(i).toBeGreaterThanOrEqual(0);
      return i;
    };
    expect(at('data/cpt')).toBe(0);
    // The headline comparison (first target, first seed) comes before every other model stage.
    expect(ids.slice(0, 18)).toEqual([
      'data/cpt',
      'data/game',
      'data/steam',
      'data/food',
      'rec/game/popularity/seed1',
      'rec/steam/popularity/seed1',
      'rec/food/popularity/seed1',
      'rec/game/title-similarity/seed1',
      'rec/steam/title-similarity/seed1',
      'rec/food/title-similarity/seed1',
      'rec/game/sasrec/seed1',
      'sft/game/llara/n6/seed1',
      'eval/game/llara/n6/seed1',
      'cpt/cprec',
      'eval/game/base-zero-shot',
      'eval/game/cprec-zero-shot',
      'sft/game/cprec/n6/seed1',
      'eval/game/cprec/n6/seed1',
    ]);
    expect(at('rec/food/sasrec/seed1')).toBeLessThan(at('eval/steam/base-zero-shot'));
    expect(at('rec/game/gru4rec/seed1')).toBeLessThan(at('sft/game/llara/n6/seed2'));
    expect(at('cpt/cprec')).toBeLessThan(at('eval/game/base-zero-shot'));
    expect(at('eval/steam/cprec/n6/seed3')).toBeLessThan(at('cpt/ds-only'));
    expect(at('eval/game/cprec-mix-stable/n6/seed1')).toBeLessThan(at('sft/food/llara/n6/seed1'));
    expect(at('eval/game/cprec/n2/seed1')).toBeLessThan(at('sft/food/llara/n6/seed1'));
    expect(at('eval/food/cprec/n6/seed3')).toBeLessThan(at('sft/game/cprec-ds-only/n6/seed2'));
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe('the data curve', () => {
  it('takes few-shot points below and above the main size, never the main size itself or beyond the pool', () => {
    const base = fullConfig();
    const withPoints = (fewShot: number[]) => ({ ...base, sft: { ...base.sft, fewShot } });
    expect(() => validateConfig(withPoints([128, 512, SFT_POOL]))).not.toThrow();
    expect(() => validateConfig(withPoints([base.sft.samples]))).toThrow(/main rows' point/);
    expect(() => validateConfig(withPoints([SFT_POOL + 1]))).toThrow(/at most 4096/);
    expect(() => validateConfig(withPoints([0]))).toThrow(/sft\.fewShot/);
  });
});
