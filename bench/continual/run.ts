import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import type { MeasuredCosts } from '../paper/costs';
import { atomicWriteJson, fileSafe, readJson } from '../paper/io';
import type { LmBase } from '../paper/lm';
import { ProgressLine } from '../paper/progress';
import { StageRunner, type StageContext, type StageRecord } from '../paper/runner';
import {
  evaluateBundle,
  runRound,
  runSasrec,
  runSft,
  type RoundOutput,
  type SasrecOutput,
  type SftOutput,
} from './arms';
import { resultDefiningConfig, validateConfig, type ContinualConfig } from './config';
import { buildContinualData } from './data';
import { estimateSeconds, planStages, type Arm, type StageDesc } from './plan';
import { readRows, summarise, type CostRecord, type RowResult, type Summary } from './summary';
import { continualStableSamples, retrainStableSamples, type WindowedData } from './windows';

export interface RunDeps {
  /** Loads the base LM (once, at the first stage that needs it). */
  loadLm: () => Promise<LmBase>;
  log: (m: string) => void;
  /** Polled in long loops and between stages: true stops the run (`RunStoppedError`). */
  shouldStop?: () => boolean;
  costs?: Pick<MeasuredCosts, 'cptStep' | 'sftStep' | 'evalCase'>;
  progressWriter?: (line: string, final: boolean) => void;
  /** Stop (cleanly, every earlier stage done) before the first stage of this kind. */
  until?: string;
}

export interface RunResult {
  executed: string[];
  reused: string[];
  summary: Summary;
}

interface DataOutput {
  file: string;
  users: number;
  stats: WindowedData['stats'];
}

/** Stage outputs carry the CPU seconds they used (wall time follows the shared machine's load). */
type Timed<T> = T & { cpuSeconds: number };

interface EvalOutput {
  rowFile: string;
  hr1: number;
  users: number;
}

const casesKey = (cases: WindowedData['cases'][number][string]): string =>
  createHash('sha256')
    .update(
      JSON.stringify(
        (cases ?? []).map((c) => [c.userId, c.candidates.map((x) => x.itemId), c.target.itemId]),
      ),
    )
    .digest('hex')
    .slice(0, 16);

/** What a stage's output depends on (compared when a run resumes; another value refuses to mix). */
function stageInputs(d: StageDesc, c: ContinualConfig): unknown {
  const defining = resultDefiningConfig(c) as Record<string, unknown>;
  const { eval: evalSettings, ...training } = defining;
  switch (d.kind) {
    case 'data':
      return {
        source: c.source,
        minDomains: c.minDomains,
        maxUsers: c.maxUsers,
        targets: c.targets,
        protocol: c.protocol,
        windows: [c.startDate, c.windowDays, c.windows],
        dataSeed: c.dataSeed,
        casesPerDomain: c.casesPerDomain,
        samples: [
          c.cpt.initialSamples,
          c.cpt.samplesPerWindow,
          c.cpt.annealSteps,
          c.cpt.batchSize,
          c.sft.samples,
        ],
      };
    case 'sasrec':
      return {
        data: stageInputs({ id: 'data', kind: 'data' }, c),
        sasrec: c.sasrec,
        b: d.b,
        domain: d.domain,
      };
    case 'cpt':
    case 'sft':
      return { ...training, id: d.id };
    case 'eval':
      return { ...training, eval: evalSettings, id: d.id };
  }
}

/** The cost records of every arm at every round, from the stage records so far. */
function costRecords(
  c: ContinualConfig,
  record: <T>(id: string) => StageRecord<Timed<T>> | null,
): CostRecord[] {
  const out: CostRecord[] = [];
  const sum = (ids: string[]) => {
    let tokens = 0;
    let wall = 0;
    let cpu = 0;
    const detail: Record<string, number> = {};
    for (const id of ids) {
      const r = record<Partial<RoundOutput & SftOutput & SasrecOutput>>(id);
      if (!r) return null;
      wall += r.seconds;
      cpu += r.output.cpuSeconds;
      if (id.startsWith('cpt/')) {
        tokens += r.output.tokens ?? 0;
        detail.cpt_samples = (detail.cpt_samples ?? 0) + (r.output.stableSamples ?? 0);
        detail.cpt_steps = (detail.cpt_steps ?? 0) + (r.output.steps ?? 0);
      } else if (id.startsWith('sft/')) {
        tokens += r.output.tokens ?? 0;
        detail.sft_samples = (detail.sft_samples ?? 0) + (r.output.samples ?? 0);
      } else if (id.startsWith('sasrec/')) {
        detail.sasrec_interactions = (detail.sasrec_interactions ?? 0) + (r.output.trainInteractions ?? 0);
      }
    }
    return { tokens, wallSeconds: wall, cpuSeconds: cpu, detail };
  };
  for (let b = 0; b < c.windows; b++) {
    const sasrec = c.targets.map((d) => `sasrec/b${b}/${d}`);
    const lm = (arm: 'continual' | 'retrain', at: number) => [
      `cpt/${arm}/b${at}`,
      ...c.targets.map((d) => `sft/${arm}/b${at}/${d}`),
      // The hybrid prompts need the round's SASRec item table: part of the refresh.
      ...(c.sft.hybrid ? c.targets.map((d) => `sasrec/b${at}/${d}`) : []),
    ];
    const entries: Array<[Arm, string[] | null]> = [
      ['sasrec', sasrec],
      ['continual', lm('continual', b)],
      ['retrain', b === 0 ? lm('continual', 0) : lm('retrain', b)],
      ['frozen', b === 0 ? lm('continual', 0) : null],
    ];
    for (const [arm, ids] of entries) {
      if (ids === null) {
        out.push({ arm, boundary: b, tokens: 0, wallSeconds: 0, cpuSeconds: 0, detail: {} });
        continue;
      }
      const s = sum(ids);
      if (s) out.push({ arm, boundary: b, ...s });
    }
  }
  return out;
}

const cpuNow = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/**
 * The whole experiment as resumable stages (plan.ts): every stage's output is checkpointed under
 * `config.stateDir`; rows, cost records and `summary.json` are written to `config.resultsDir` as
 * they come.
 */
export async function runContinual(config: ContinualConfig, deps: RunDeps): Promise<RunResult> {
  validateConfig(config);
  const { stateDir, resultsDir } = config;
  const rowsDir = join(resultsDir, 'rows');
  mkdirSync(stateDir, { recursive: true });
  mkdirSync(rowsDir, { recursive: true });
  atomicWriteJson(join(stateDir, 'config.json'), config);
  atomicWriteJson(join(resultsDir, 'config.json'), config);
  const stages = planStages(config);
  const estimates = stages.map((d) => estimateSeconds(d, config, deps.costs));
  const progress = new ProgressLine(estimates, deps.progressWriter);
  const runner = new StageRunner(stateDir, stages.length, progress, deps.shouldStop);
  const rowsPlanned = 8 * config.windows * config.targets.length;
  const log = deps.log;

  let lm: LmBase | null = null;
  const getLm = async (): Promise<LmBase> => (lm ??= await deps.loadLm());
  let data: WindowedData | null = null;
  const record = <T>(id: string): StageRecord<T> | null => runner.completed<T>(id);
  const outputOf = <T>(id: string): T => {
    const r = record<T>(id);
    if (!r) throw new Error(`stage ${id} has not run (it should have, earlier in the plan)`);
    return r.output;
  };
  const windowed = (): WindowedData => (data ??= readJson<WindowedData>(outputOf<DataOutput>('data').file));
  const labels = (): string[] => windowed().windows.map((w) => w.label);

  const writeRow = (row: RowResult): string => {
    const file = join(rowsDir, `${fileSafe(row.id)}.json`);
    atomicWriteJson(file, row);
    return file;
  };
  const refresh = (): Summary => {
    const costs = costRecords(config, record);
    atomicWriteJson(join(resultsDir, 'costs.json'), costs);
    const summary = summarise(readRows(rowsDir), costs, data ? labels() : [], rowsPlanned);
    atomicWriteJson(join(resultsDir, 'summary.json'), summary);
    const done = stages
      .map((s) => record<unknown>(s.id))
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
      done: done.length,
      stages: done,
    });
    return summary;
  };

  /** Rows that copy another stage's outcomes (round 0 is the same model for three arms; the frozen model never changes). */
  const sharedRows = (): void => {
    if (!record('data')) return;
    const d = windowed();
    for (const domain of config.targets) {
      const base = record<EvalOutput>(`eval/continual/b0/${domain}/next`);
      if (!base) continue;
      const source = readJson<RowResult>(base.output.rowFile);
      const copies: Array<[Arm, number, 'next' | 'first']> = [
        ['frozen', 0, 'next'],
        ['retrain', 0, 'next'],
        ...(['frozen', 'continual', 'retrain'] as const).map(
          (arm) => [arm, 0, 'first'] as [Arm, number, 'first'],
        ),
        ...Array.from(
          { length: config.windows - 1 },
          (_, k) => ['frozen', k + 1, 'first'] as [Arm, number, 'first'],
        ),
      ];
      for (const [arm, b, set] of copies)
        writeRow({
          ...source,
          id: `${arm}/b${b}/${domain}/${set}`,
          arm,
          boundary: b,
          window: set === 'next' ? b + 1 : 1,
          set,
          casesKey: casesKey(d.cases[set === 'next' ? b + 1 : 1]![domain]),
          sharedWith: 'continual/b0',
        });
    }
  };

  const execute = async (desc: StageDesc, ctx: StageContext): Promise<unknown> => {
    const cpu0 = cpuNow();
    const timed = <T extends object>(out: T): Timed<T> => ({ ...out, cpuSeconds: cpuNow() - cpu0 });
    switch (desc.kind) {
      case 'data': {
        const built = await buildContinualData(config, log);
        const { users, ...windowedData } = built;
        const file = join(stateDir, 'data', 'windows.json');
        atomicWriteJson(file, windowedData);
        data = windowedData;
        atomicWriteJson(join(resultsDir, 'data.json'), {
          users,
          windows: windowedData.windows,
          stats: windowedData.stats,
        });
        return timed({ file, users, stats: windowedData.stats } satisfies DataOutput);
      }
      case 'sasrec': {
        const d = windowed();
        const { b, domain } = desc;
        const out = await runSasrec(
          config,
          {
            items: d.items[domain]!,
            sequences: d.sequences[domain]!,
            endMs: d.windows[b]!.endMs,
            next: d.cases[b + 1]![domain]!,
            first: d.cases[1]![domain]!,
            dir: join(stateDir, 'sasrec', `b${b}`, domain),
          },
          ctx,
        );
        for (const [set, users, window] of [
          ['next', out.next, b + 1],
          ['first', out.first, 1],
        ] as const)
          writeRow({
            id: `sasrec/b${b}/${domain}/${set}`,
            arm: 'sasrec',
            boundary: b,
            window,
            set,
            domain,
            users,
            casesKey: casesKey(d.cases[window]![domain]),
          });
        log(
          `  sasrec b${b} ${domain}: HR@1 ${(out.next.filter((u) => u.rank === 1).length / out.next.length).toFixed(4)} on window ${b + 1} (${out.trainSequences} sequences, ${out.epochs} epochs)`,
        );
        return timed(out);
      }
      case 'cpt': {
        const d = windowed();
        const { arm, b } = desc;
        const previous =
          arm === 'continual' && b > 0 ? outputOf<RoundOutput>(`cpt/continual/b${b - 1}`).trunkDir : null;
        const stable =
          arm === 'continual'
            ? continualStableSamples(d.cpt, b, config.cpt.replayFraction, config.dataSeed)
            : retrainStableSamples(d.cpt, b, config.dataSeed);
        const out = await runRound(
          await getLm(),
          config,
          {
            roundId: `${arm}-b${b}`,
            dir: join(stateDir, 'cpt', arm, `b${b}`),
            previousTrunkDir: previous,
            stable,
            mixed: d.mixed[b]!,
          },
          ctx,
          log,
        );
        return timed(out);
      }
      case 'sft': {
        const d = windowed();
        const { arm, b, domain } = desc;
        const out = await runSft(
          await getLm(),
          config,
          {
            initAdapterDir: outputOf<RoundOutput>(`cpt/${arm}/b${b}`).adapterDir,
            train: d.sft[b]![domain]!,
            embeddingsFile: config.sft.hybrid
              ? outputOf<SasrecOutput>(`sasrec/b${b}/${domain}`).embeddingsFile
              : null,
            outDir: join(stateDir, 'sft', arm, `b${b}`, domain),
          },
          ctx,
          log,
        );
        return timed(out);
      }
      case 'eval': {
        const d = windowed();
        const { arm, b, domain, set } = desc;
        const window = set === 'next' ? b + 1 : 1;
        const bundle =
          arm === 'frozen'
            ? outputOf<SftOutput>(`sft/continual/b0/${domain}`).outDir
            : outputOf<SftOutput>(`sft/${arm}/b${b}/${domain}`).outDir;
        const cases = d.cases[window]![domain]!;
        const users = await evaluateBundle(
          await getLm(),
          config,
          bundle,
          cases,
          join(stateDir, 'eval', `${fileSafe(desc.id.slice('eval/'.length))}.jsonl`),
          ctx,
        );
        const rowFile = writeRow({
          id: `${arm}/b${b}/${domain}/${set}`,
          arm,
          boundary: b,
          window,
          set,
          domain,
          users,
          casesKey: casesKey(cases),
        });
        const hr1 = users.filter((u) => u.rank === 1).length / users.length;
        log(`  ${arm} b${b} ${domain} on window ${window}: HR@1 ${hr1.toFixed(4)} (${users.length} users)`);
        return timed({ rowFile, hr1, users: users.length } satisfies EvalOutput);
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
        run: (ctx) => execute(desc, ctx),
      });
      sharedRows();
      refresh();
    }
  } finally {
    (lm as LmBase | null)?.model.dispose();
  }
  if (record('data')) windowed();
  sharedRows();
  const summary = refresh();
  return { executed: runner.executed, reused: runner.reused, summary };
}
