/**
 * `npm run experiment:continual -- [command] [options]` — issue 17's continual experiment: the
 * linked stream cut into event-time windows; after each window frozen / continual / full-retrain /
 * SASRec are compared on the next window's users (the same frozen cases for every arm), with the
 * cost of each refresh and forgetting on the first window's users.
 *
 * Commands:
 *   run     (default) run or resume; finished rows, costs and summary.json go to the results folder
 *   plan    the stages in order with estimated times (from bench/results/paper/costs-<model>.json)
 *   report  regenerate docs/continual.md (tables, SVG figures) from the results' JSON (another
 *           run than `full`: <state>/continual.md)
 *
 * Options:
 *   --preset full|smoke   full (default): SmolLM2, 6 quarters; smoke: stories260K, minutes
 *   --base PATH           base model (.gguf, llama2.c .bin, HF folder)
 *   --name NAME           run name (state in .cprec/continual/NAME; only `full` writes bench/results/continual)
 *   --set key.path=JSON   override any setting, e.g. --set windows=4 --set casesPerDomain=60
 *   --until KIND          stop before the first stage of KIND (data, sasrec, cpt, sft, eval)
 *   --results DIR --out FILE   (report) where to read results and write the page
 *
 * Resumable: kill it at any moment (Ctrl-C, kill -9) and start the same command again; it
 * continues with the first unfinished stage (CPT, fine-tuning and evaluation resume inside a stage
 * from their own checkpoints). Run it at low priority:
 *   nohup nice -n 10 npm run experiment:continual > .cprec/continual/full.log 2>&1 &
 */
import { existsSync, mkdirSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { parseExperimentArgs } from '../paper/cli-args';
import type { MeasuredCosts } from '../paper/costs';
import { readJsonIfExists } from '../paper/io';
import { loadLmBase } from '../paper/lm';
import { formatDuration } from '../paper/progress';
import { RunStoppedError } from '../paper/runner';
import { PRESETS, REPO_ROOT, validateConfig, withOverride, type ContinualConfig } from './config';
import { cptSamples, estimateSeconds, planStages } from './plan';
import { writeContinualReport } from './report';
import { runContinual } from './run';

const log = (m: string): void =>
  void process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${m}\n`);

interface Args {
  command: string;
  config: ContinualConfig;
  results: string | null;
  out: string | null;
  until: string | undefined;
}

function parseArgs(argv: string[]): Args {
  const { command, options, sets } = parseExperimentArgs(
    argv,
    ['preset', 'base', 'name', 'results', 'out', 'until'],
    'run',
    'see the header of bench/continual/main.ts',
  );
  const preset = options.preset ?? 'full';
  const base = options.base ?? process.env.CPREC_CONTINUAL_BASE;
  const name = options.name;
  const results = options.results ?? null;
  const out = options.out ?? null;
  const until = options.until;
  const make = PRESETS[preset];
  if (!make) throw new Error(`unknown preset ${preset} (${Object.keys(PRESETS).join(', ')})`);
  let config = make();
  if (base) config = { ...config, base: resolve(base) };
  if (name) {
    const stateDir = resolve(REPO_ROOT, '.cprec/continual', name);
    config = {
      ...config,
      name,
      stateDir,
      resultsDir: name === 'full' ? resolve(REPO_ROOT, 'bench/results/continual') : join(stateDir, 'results'),
    };
  }
  for (const [k, v] of sets) config = withOverride(config, k, v);
  return { command, config: validateConfig(config), results, out, until };
}

/** Per-unit costs measured for this base model by the paper harness (same machine, same protocol family). */
function measuredCosts(config: ContinualConfig): MeasuredCosts | null {
  const file = join(
    REPO_ROOT,
    'bench/results/paper',
    `costs-${basename(config.base).replace(/\.[^.]+$/, '')}.json`,
  );
  return readJsonIfExists<MeasuredCosts>(file);
}

export function planText(config: ContinualConfig, costs: MeasuredCosts | null): string {
  const stages = planStages(config);
  const rows: string[] = [];
  let t = 0;
  const byKind = new Map<string, { n: number; s: number }>();
  for (const d of stages) {
    const s = estimateSeconds(d, config, costs ?? undefined);
    t += s;
    const k = byKind.get(d.kind) ?? { n: 0, s: 0 };
    byKind.set(d.kind, { n: k.n + 1, s: k.s + s });
    const detail =
      d.kind === 'cpt'
        ? ` (${cptSamples(config, d.arm, d.b)} samples)`
        : d.kind === 'eval'
          ? ` (${config.casesPerDomain} cases)`
          : '';
    rows.push(`${formatDuration(t).padStart(8)}  +${formatDuration(s).padStart(7)}  ${d.id}${detail}`);
  }
  rows.push('');
  rows.push(
    costs
      ? `per-sample costs measured ${costs.date} for ${costs.baseModelId} (machine load ${costs.load.start.toFixed(1)}): CPT ${costs.cptStep.perSample.toFixed(1)} s/sample wall (${costs.cptStep.cpuPerSample.toFixed(1)} CPU), SFT ${costs.sftStep.perSample.toFixed(1)} s, evaluation ${costs.evalCase.likelihoodOnly.toFixed(1)} s/case`
      : 'no measured costs for this base model: fallback guesses (SmolLM2 on 2 loaded cores)',
  );
  for (const [k, v] of byKind)
    rows.push(`${k.padEnd(8)} ${String(v.n).padStart(4)} stages  ${formatDuration(v.s)}`);
  rows.push(`total ${formatDuration(t)} (wall, at the load the costs were measured under)`);
  if (costs) {
    // CPU seconds follow the work, not the machine's load: what an idle machine would need.
    let cpu = 0;
    const evalCpu =
      (costs.evalCase.cpuBoth * costs.evalCase.likelihoodOnly) / Math.max(1e-9, costs.evalCase.both);
    for (const d of stages) {
      if (d.kind === 'cpt') cpu += cptSamples(config, d.arm, d.b) * costs.cptStep.cpuPerSample;
      else if (d.kind === 'sft') cpu += config.sft.samples * config.sft.epochs * costs.sftStep.cpuPerSample;
      else if (d.kind === 'eval')
        cpu += config.casesPerDomain * (config.eval.generation ? costs.evalCase.cpuBoth : evalCpu);
    }
    rows.push(
      `CPU time of CPT, fine-tuning and evaluation: ${formatDuration(cpu)} (all threads; ~${formatDuration(cpu / 2)} wall on 2 idle cores)`,
    );
  }
  return rows.join('\n') + '\n';
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const { config } = args;
  switch (args.command) {
    case 'plan': {
      process.stdout.write(planText(config, measuredCosts(config)));
      return;
    }
    case 'report': {
      const results = args.results ? resolve(args.results) : config.resultsDir;
      // Only the full run's results make docs/continual.md; another run's page stays in its state.
      const out = args.out
        ? resolve(args.out)
        : config.name === 'full'
          ? resolve(REPO_ROOT, 'docs/continual.md')
          : join(config.stateDir, 'continual.md');
      mkdirSync(dirname(out), { recursive: true });
      // The page shows the plan's totals (the stage list is `plan`'s job).
      const plan = planText(config, measuredCosts(config));
      writeContinualReport(results, out, log, plan.slice(plan.indexOf('\n\n') + 2));
      return;
    }
    case 'run': {
      if (!existsSync(config.base)) throw new Error(`base model ${config.base} does not exist (--base PATH)`);
      let stopping = false;
      for (const signal of ['SIGINT', 'SIGTERM'] as const)
        process.on(signal, () => {
          if (stopping) process.exit(130);
          stopping = true;
          log(`${signal}: stopping after the current step (send again to kill at once)`);
        });
      log(`run ${config.name}: state ${config.stateDir}, results ${config.resultsDir}, base ${config.base}`);
      const costs = measuredCosts(config);
      try {
        const result = await runContinual(config, {
          loadLm: () => loadLmBase(config.base),
          log,
          shouldStop: () => stopping,
          ...(costs ? { costs } : {}),
          ...(args.until ? { until: args.until } : {}),
        });
        log(
          `done: ${result.executed.length} stages run, ${result.reused.length} reused; ${result.summary.rows_done}/${result.summary.rows_planned} rows; ` +
            `the page: npm run experiment:continual -- report${
              config.name === 'full'
                ? ''
                : ` ${process.argv
                    .slice(2)
                    .filter((a) => a !== 'run')
                    .join(' ')} (→ ${join(config.stateDir, 'continual.md')})`
            }`,
        );
      } catch (err) {
        if (err instanceof RunStoppedError) {
          log(`${err.message}; start the same command again to continue`);
          process.exitCode = 2;
          return;
        }
        throw err;
      }
      return;
    }
    default:
      throw new Error(`unknown command ${args.command} (run, plan, report)`);
  }
}

if (require.main === module)
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
