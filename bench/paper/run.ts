import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { basename, join, sep } from 'node:path';
import { SFT_POOL, validateConfig, type CptVariant, type PaperConfig, type TargetKey } from './config';
import type { MeasuredCosts } from './costs';
import { buildCptData, buildTargetData, type CptData, type CptDataStats, type TargetData } from './data';
import { appendJsonLine, atomicWriteJson, fileSafe, readJson, readJsonLines } from './io';
import { evaluateLmRow, readCurve, runCpt, runSft, type CptOutput, type LmBase, type SftOutput } from './lm';
import { estimateSeconds, FALLBACK_COSTS, planStages, type StageDesc } from './plan';
import { ProgressLine } from './progress';
import { runRecommender, type RecommenderOutput } from './recommenders';
import { StageRunner, type StageContext, type StageRecord } from './runner';
import { readRows, rowMetrics, summarise, type RowResult, type Summary } from './summary';

export interface RunDeps {
  /** Loads the base LM (called once, at the first stage that needs it). */
  loadLm: () => Promise<LmBase>;
  log: (m: string) => void;
  /** Polled in long loops and between stages: true stops the run (`RunStoppedError`). */
  shouldStop?: () => boolean;
  /** Per-unit costs for the estimates behind the progress line's ETA. */
  costs?: Pick<MeasuredCosts, 'cptStep' | 'sftStep' | 'evalCase' | 'recommenderEpoch'>;
  progressWriter?: (line: string, final: boolean) => void;
  /** Seconds between load-average samples (0 = none). Default 60. */
  loadSampleSeconds?: number;
  /** Stop (cleanly, all earlier stages done) before the first stage of this kind, e.g. `cpt`. */
  until?: string;
}

export interface RunResult {
  executed: string[];
  reused: string[];
  summary: Summary;
}

interface DataOutput {
  file: string;
  stats: unknown;
  testFingerprint?: string;
}

interface RowOutput {
  rowFile: string;
  hr1: number;
  validRatio: number;
  rankingHr1: number;
}

interface RecStageOutput extends RowOutput {
  embeddingsFile: string | null;
  bestEpoch: number;
  stoppedBy: string;
}

/** The configuration slices a stage's output depends on (compared when a run resumes). */
function stageInputs(desc: StageDesc, c: PaperConfig): unknown {
  // Data stages use the candidate count and history length, not the token budget.
  const sampling = { candidates: c.protocol.candidates, historyLength: c.protocol.historyLength };
  const dataTarget = {
    protocol: sampling,
    dataSeed: c.dataSeed,
    testUsers: c.testUsers,
    validationUsers: c.validationUsers,
    sftPool: SFT_POOL,
  };
  const dataCpt = {
    protocol: sampling,
    dataSeed: c.dataSeed,
    cptDomains: c.cptDomains,
    mixedSource: c.mixedSource,
    sizes: [c.cpt.batchSize, c.cpt.stableSteps, c.cpt.annealSteps],
  };
  const base = basename(c.base);
  const cpt = { dataCpt, base, budget: c.protocol.budget, cpt: { ...c.cpt, checkpointEvery: undefined } };
  const rec = (seed: number) => ({
    dataTarget,
    // The wall-clock cap is an execution bound, not a setting: it must not bind (a fit records
    // `stoppedBy`), and raising it must not invalidate finished stages.
    recommenders: { ...c.recommenders, seeds: undefined, timeBudgetMinutes: undefined },
    seed,
  });
  const sft = (d: Extract<StageDesc, { kind: 'sft' }>) => ({
    dataTarget,
    base,
    budget: c.protocol.budget,
    cpt: d.variant ? { ...cpt, variant: d.variant } : null,
    sasrec: c.sft.hybrid ? rec(sasrecSeed(c, d.seed)) : null,
    sft: { ...c.sft, fewShot: undefined, samples: undefined, checkpointEvery: undefined },
    samples: d.samples,
    seed: d.seed,
  });
  switch (desc.kind) {
    case 'data-cpt':
      return dataCpt;
    case 'data-target':
      return { ...dataTarget, target: desc.target };
    case 'recommender':
      return { ...rec(desc.seed), target: desc.target, method: desc.method };
    case 'cpt':
      return { ...cpt, variant: desc.variant };
    case 'sft':
      return { ...(sft(desc) as object), target: desc.target };
    case 'eval':
      return {
        dataTarget,
        base,
        budget: c.protocol.budget,
        target: desc.target,
        method: desc.method,
        cpt: desc.variant ? { ...cpt, variant: desc.variant } : null,
        sft: desc.sft,
        samples: desc.samples,
        seed: desc.seed,
      };
  }
}

/**
 * Stored stage inputs without the fields that stopped being inputs: stages finished before
 * `recommenders.timeBudgetMinutes` was dropped from the inputs (2026-12-02) stored it.
 */
function withoutExecutionBounds(stored: unknown): unknown {
  return JSON.parse(JSON.stringify(stored), (key, value: unknown) =>
    key === 'timeBudgetMinutes' ? undefined : value,
  );
}

/**
 * Where the state that is slow to recompute lives: stage records, SASRec item tables, CPT rounds,
 * fine-tuning checkpoints, fine-tuned adapters until their rows are scored, and evaluation logs.
 * It sits in the results folder, so the full run's copy is committed with its results, and a run
 * continues from the last commit on a fresh machine. A working session's machine does not outlive
 * the session: in the third sitting, a CPT round at step 247 of 300, the SASRec table and the
 * fine-tuned rows' state were lost with it. Prepared data stays in `stateDir`: it is quick to
 * rebuild and bulky, and it is rebuilt when a stage that still has to run needs it
 * (`rebuildMissingInputs`).
 */
export function durableStateDir(config: PaperConfig): string {
  return join(config.resultsDir, 'state');
}

/** The finished stages whose files a stage reads. */
export function stageNeeds(desc: StageDesc, c: PaperConfig): string[] {
  switch (desc.kind) {
    case 'data-cpt':
    case 'data-target':
      return [];
    case 'recommender':
      return [`data/${desc.target}`];
    case 'cpt':
      return ['data/cpt'];
    case 'sft':
      return [
        `data/${desc.target}`,
        ...(desc.variant ? [`cpt/${desc.variant}`] : []),
        ...(c.sft.hybrid ? [`rec/${desc.target}/sasrec/seed${sasrecSeed(c, desc.seed)}`] : []),
      ];
    case 'eval':
      return [
        `data/${desc.target}`,
        ...(desc.method === 'cprec-zero-shot' ? ['cpt/cprec'] : []),
        ...(desc.sft ? [desc.sft] : []),
      ];
  }
}

/** The files a finished stage's output points to (what a later stage reads). */
function outputFiles(kind: StageDesc['kind'], output: unknown): string[] {
  const o = output as Partial<DataOutput & RecStageOutput & CptOutput & SftOutput>;
  switch (kind) {
    case 'data-cpt':
    case 'data-target':
      return [o.file!];
    case 'recommender':
      return o.embeddingsFile ? [o.embeddingsFile] : [];
    case 'cpt':
      return [o.adapterDir!];
    case 'sft':
      return [o.outDir!];
    case 'eval':
      return [];
  }
}

/**
 * Before a run: every stage that still has to run needs its inputs' files. A finished stage whose
 * files are gone (a fresh machine: they were in `stateDir`) and that such a stage needs is
 * forgotten, so it runs again. Stages nothing pending needs stay finished: a row whose fine-tuned
 * adapter is gone is not fine-tuned again. Returns the forgotten stages with their old outputs,
 * to check a rebuilt data stage against (`sameTestCases`).
 */
export function rebuildMissingInputs(
  stages: StageDesc[],
  config: PaperConfig,
  runner: StageRunner,
): Map<string, unknown> {
  const byId = new Map(stages.map((s) => [s.id, s]));
  const pending = new Set(stages.filter((s) => !runner.completed(s.id)).map((s) => s.id));
  const forgotten = new Map<string, unknown>();
  // Reverse plan order: a stage's inputs come before it, so each is visited after its users.
  for (const desc of [...stages].reverse()) {
    if (!pending.has(desc.id)) continue;
    for (const need of stageNeeds(desc, config)) {
      const record = runner.completed<unknown>(need);
      if (!record) continue;
      if (outputFiles(byId.get(need)!.kind, record.output).every((f) => existsSync(f))) continue;
      forgotten.set(need, record.output);
      runner.forget(need);
      pending.add(need);
    }
  }
  return forgotten;
}

/**
 * Deletes the fine-tuned adapters kept in the durable folder once every row scored with them is
 * finished: nothing pending reads them any more, and each is ~16 MB of the committed results.
 * (Should a later stage need one again, `rebuildMissingInputs` fine-tunes it again.)
 */
export function pruneScoredAdapters(stages: StageDesc[], runner: StageRunner, durable: string): void {
  for (const desc of stages) {
    if (desc.kind !== 'sft') continue;
    const outDir = runner.completed<SftOutput>(desc.id)?.output.outDir;
    if (!outDir || !outDir.startsWith(durable + sep) || !existsSync(outDir)) continue;
    const users = stages.filter((s) => s.kind === 'eval' && s.sft === desc.id);
    if (users.every((s) => runner.completed(s.id))) rmSync(outDir, { recursive: true, force: true });
  }
}

/** The SASRec whose item table a seed's hybrid prompts use: its own seed when trained, else the first. */
function sasrecSeed(c: PaperConfig, seed: number): number {
  return c.recommenders.seeds.includes(seed) ? seed : c.recommenders.seeds[0]!;
}

/**
 * The whole experiment as resumable stages (see plan.ts for the order): every stage's output is
 * checkpointed under `config.stateDir`, every finished row, CPT curve and fine-tuning curve is
 * written to `config.resultsDir` as it comes, with `summary.json` and `stages.json` refreshed
 * after each stage.
 */
export async function runPaper(config: PaperConfig, deps: RunDeps): Promise<RunResult> {
  validateConfig(config);
  const { stateDir, resultsDir } = config;
  mkdirSync(stateDir, { recursive: true });
  mkdirSync(join(resultsDir, 'rows'), { recursive: true });
  atomicWriteJson(join(stateDir, 'config.json'), config);
  atomicWriteJson(join(resultsDir, 'config.json'), config);
  const stages = planStages(config);
  const costs = deps.costs ?? FALLBACK_COSTS;
  const estimates = stages.map((d) => estimateSeconds(d, config, costs));
  const progress = new ProgressLine(estimates, deps.progressWriter);
  const durable = durableStateDir(config);
  const runner = new StageRunner(durable, stages.length, progress, deps.shouldStop);
  const rebuilt = rebuildMissingInputs(stages, config, runner);
  if (rebuilt.size > 0)
    deps.log(`rebuilding what pending stages need and this machine lacks: ${[...rebuilt.keys()].join(', ')}`);
  pruneScoredAdapters(stages, runner, durable);
  const rowsPlanned = stages.filter((s) => s.kind === 'eval' || s.kind === 'recommender').length;
  const log = deps.log;

  const loadFile = join(durable, 'load.jsonl');
  const sampleLoad = () => appendJsonLine(loadFile, { t: new Date().toISOString(), load1: loadavg()[0] });
  sampleLoad();
  const every = deps.loadSampleSeconds ?? 60;
  const sampler = every > 0 ? setInterval(sampleLoad, every * 1000) : null;
  sampler?.unref();

  let lm: LmBase | null = null;
  const getLm = async (): Promise<LmBase> => (lm ??= await deps.loadLm());
  const memo = new Map<string, unknown>();
  const cached = <T>(key: string, load: () => T): T => {
    if (!memo.has(key)) memo.set(key, load());
    return memo.get(key) as T;
  };
  const outputOf = <T>(id: string): T => {
    const record = runner.completed<T>(id);
    if (!record) throw new Error(`stage ${id} has not run (it should have, earlier in the plan)`);
    return record.output;
  };
  const cptData = (): CptData =>
    cached('data/cpt', () => readJson<CptData>(outputOf<DataOutput>('data/cpt').file));
  const targetData = (t: TargetKey): TargetData =>
    cached(`data/${t}`, () => readJson<TargetData>(outputOf<DataOutput>(`data/${t}`).file));

  const writeRow = (row: RowResult): string => {
    const file = join(resultsDir, 'rows', `${fileSafe(row.id)}.json`);
    atomicWriteJson(file, row);
    return file;
  };
  const refreshResults = (): Summary => {
    const summary = summarise(readRows(join(resultsDir, 'rows')), {
      mainSamples: config.sft.samples,
      rowsPlanned,
    });
    atomicWriteJson(join(resultsDir, 'summary.json'), summary);
    const records = stages
      .map((s) => runner.completed<unknown>(s.id))
      .filter((r): r is StageRecord<unknown> => r !== null)
      .map(({ id, kind, seconds, estimateSeconds: est, startedAt, finishedAt, load }) => ({
        id,
        kind,
        seconds,
        estimateSeconds: est,
        startedAt,
        finishedAt,
        load,
      }));
    atomicWriteJson(join(resultsDir, 'stages.json'), {
      planned: stages.length,
      done: records.length,
      stages: records,
    });
    const samples = readJsonLines<{ t: string; load1: number }>(loadFile);
    atomicWriteJson(join(resultsDir, 'load.json'), { samples: samples.length, load1: samples });
    return summary;
  };

  const execute = async (desc: StageDesc, ctx: StageContext): Promise<unknown> => {
    switch (desc.kind) {
      case 'data-cpt': {
        const data = await buildCptData(config, log);
        const file = join(stateDir, 'data', 'cpt.json');
        atomicWriteJson(file, data);
        memo.set('data/cpt', data);
        atomicWriteJson(join(resultsDir, 'data-cpt.json'), data.stats);
        return { file, stats: data.stats } satisfies DataOutput;
      }
      case 'data-target': {
        const data = await buildTargetData(config, desc.target, log);
        // Rebuilt on a fresh machine for the stages still to run: the rows already finished were
        // scored on the old test cases, so the new ones must be the same.
        const before = rebuilt.get(desc.id) as DataOutput | undefined;
        if (before?.testFingerprint !== undefined && before.testFingerprint !== data.testFingerprint)
          throw new Error(
            `${desc.id} rebuilt with other test cases (fingerprint ${data.testFingerprint}, the finished rows used ` +
              `${before.testFingerprint}): the data or the code that samples it changed; use another --name`,
          );
        const file = join(stateDir, 'data', `${desc.target}.json`);
        atomicWriteJson(file, data);
        memo.set(desc.id, data);
        atomicWriteJson(join(resultsDir, `data-${desc.target}.json`), {
          ...data.stats,
          testFingerprint: data.testFingerprint,
          testUsers: data.test.map((c) => c.userId),
        });
        return { file, stats: data.stats, testFingerprint: data.testFingerprint } satisfies DataOutput;
      }
      case 'recommender': {
        const target = targetData(desc.target);
        const dir = join(durable, 'rec', desc.target);
        mkdirSync(dir, { recursive: true });
        const started = Date.now();
        const out: RecommenderOutput = await runRecommender(
          config,
          target,
          desc.method,
          desc.seed,
          dir,
          ctx,
          log,
        );
        const row: RowResult = {
          id: desc.id.slice('rec/'.length),
          target: desc.target,
          method: desc.method,
          kind: 'recommender',
          seed: desc.seed,
          samples: 0,
          variant: null,
          ...rowMetrics(out.users),
          rankingPerToken: null,
          testFingerprint: out.testFingerprint,
          users: out.users,
          seconds: (Date.now() - started) / 1000,
        };
        const rowFile = writeRow(row);
        atomicWriteJson(join(resultsDir, 'recommenders', `${fileSafe(row.id)}.json`), {
          epochs: out.epochs,
          bestEpoch: out.bestEpoch,
          stoppedBy: out.stoppedBy,
          trainSequences: out.trainSequences,
          fitSeconds: out.fitSeconds,
        });
        log(
          `  ${row.id}: HR@1 ${row.hr1.toFixed(4)} NDCG@5 ${row.ranking.ndcg5.toFixed(4)} (best epoch ${out.bestEpoch})`,
        );
        return {
          rowFile,
          hr1: row.hr1,
          validRatio: 1,
          rankingHr1: row.ranking.hr1,
          embeddingsFile: out.embeddingsFile,
          bestEpoch: out.bestEpoch,
          stoppedBy: out.stoppedBy,
        } satisfies RecStageOutput;
      }
      case 'cpt': {
        const out = await runCpt(
          await getLm(),
          config,
          desc.variant,
          cptData(),
          join(durable, 'cpt', desc.variant),
          ctx,
          log,
        );
        atomicWriteJson(join(resultsDir, `cpt-${desc.variant}.json`), {
          ...out,
          dataStats: cptData().stats satisfies CptDataStats,
          curve: readCurve(out.curveFile),
        });
        return out;
      }
      case 'sft': {
        const target = targetData(desc.target);
        const init = desc.variant ? outputOf<CptOutput>(`cpt/${desc.variant}`).adapterDir : null;
        const embeddingsFile = config.sft.hybrid
          ? outputOf<RecStageOutput>(`rec/${desc.target}/sasrec/seed${sasrecSeed(config, desc.seed)}`)
              .embeddingsFile
          : null;
        const out = await runSft(
          await getLm(),
          config,
          target,
          {
            initAdapterDir: init,
            samples: desc.samples,
            seed: desc.seed,
            embeddingsFile,
            // In the durable folder until its rows are scored (pruneScoredAdapters): an SFT stage
            // is ~47 min, a sitting's machine may not outlive the row's evaluation.
            outDir: join(durable, 'sft', fileSafe(desc.id.slice('sft/'.length))),
            checkpointDir: join(durable, 'sft', `${fileSafe(desc.id.slice('sft/'.length))}.progress`),
          },
          ctx,
          log,
        );
        atomicWriteJson(join(resultsDir, 'sft', `${fileSafe(desc.id.slice('sft/'.length))}.json`), out);
        return out;
      }
      case 'eval': {
        const target = targetData(desc.target);
        const model =
          desc.method === 'base-zero-shot'
            ? ({ kind: 'base' } as const)
            : desc.method === 'cprec-zero-shot'
              ? ({ kind: 'adapter', adapterDir: outputOf<CptOutput>('cpt/cprec').adapterDir } as const)
              : ({ kind: 'sft', outDir: outputOf<SftOutput>(desc.sft!).outDir } as const);
        const started = Date.now();
        const out = await evaluateLmRow(
          await getLm(),
          config,
          target,
          model,
          join(durable, 'eval', `${fileSafe(desc.id.slice('eval/'.length))}.jsonl`),
          ctx,
        );
        const row: RowResult = {
          id: desc.id.slice('eval/'.length),
          target: desc.target,
          method: desc.method,
          kind: 'lm',
          seed: desc.seed,
          samples: desc.samples,
          variant: desc.variant,
          ...rowMetrics(out.users),
          testFingerprint: out.testFingerprint,
          users: out.users,
          seconds: (Date.now() - started) / 1000,
          secondsPerCase: out.secondsPerCase,
          promptTokens: out.promptTokens,
          loweredCapShare: out.loweredCapShare,
          style: out.style,
        };
        const rowFile = writeRow(row);
        log(
          `  ${row.id}: generation HR@1 ${row.hr1.toFixed(4)}, Valid ${row.validRatio.toFixed(3)}, likelihood HR@1 ${row.ranking.hr1.toFixed(4)}; e.g. ${JSON.stringify(out.users.slice(0, 3).map((u) => u.answer))}`,
        );
        return {
          rowFile,
          hr1: row.hr1,
          validRatio: row.validRatio,
          rankingHr1: row.ranking.hr1,
        } satisfies RowOutput;
      }
    }
  };

  try {
    for (const [i, desc] of stages.entries()) {
      if (deps.until !== undefined && desc.kind === deps.until) break;
      await runner.run({
        id: desc.id,
        kind: desc.kind,
        estimateSeconds: estimates[i]!,
        inputs: stageInputs(desc, config),
        sameInputs: (stored) =>
          JSON.stringify(withoutExecutionBounds(stored)) === JSON.stringify(stageInputs(desc, config)),
        run: (ctx) => execute(desc, ctx),
      });
      pruneScoredAdapters(stages, runner, durable);
      refreshResults();
    }
  } finally {
    if (sampler) clearInterval(sampler);
    (lm as LmBase | null)?.model.dispose();
  }
  const summary = refreshResults();
  return { executed: runner.executed, reused: runner.reused, summary };
}

export type { CptVariant };
