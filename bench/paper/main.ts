/**
 * `npm run experiment:paper -- [command] [options]` — the CPRec paper's experiment (issue 14).
 *
 * Commands:
 *   run     (default) run or resume the experiment; finished results go to bench/results/paper/
 *   plan    print the stages in order with their estimated times (from the measured costs)
 *   costs   measure per-sample costs on this machine for the base model → costs-<model>.json
 *   report  regenerate docs/results.md (tables, SVG figures) from bench/results/paper/*.json
 *
 * Options:
 *   --preset full|smoke   full (default): SmolLM2, 3 targets, 3 seeds; smoke: stories260K, minutes
 *   --base PATH           base model (.gguf, llama2.c .bin, HF folder); env CPREC_PAPER_BASE
 *   --name NAME           run name (state in .cprec/paper/NAME)
 *   --set key.path=JSON   override any setting, e.g. --set testUsers=600 --set seeds=[1,2]
 *   --until KIND          (run) stop before the first stage of KIND (data-cpt, data-target,
 *                         recommender, cpt, sft, eval), e.g. --until cpt runs data + recommenders
 *   --samples N           (costs) how many samples/cases to time, default 8
 *   --results DIR --out FILE   (report) where to read results and write the report
 *
 * A run is resumable: kill it at any moment (Ctrl-C, kill -9) and start the same command again;
 * it continues with the first unfinished stage. Run it at low priority, e.g.
 *   nohup nice -n 10 npm run experiment:paper > .cprec/paper/full.log 2>&1 &
 * Memory: a SmolLM2 training step (one ~450-token sample) takes the process to ~12–13 GB RSS on the
 * tensorflow backend; on the shared 23 GB machine do not run it next to other multi-GB jobs (it
 * drove the machine into swapless thrashing once). The progress line shows RSS and free memory.
 */
import { existsSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { selectBackend } from '@cprec/lm';
import { PRESETS, REPO_ROOT, validateConfig, withOverride, type PaperConfig } from './config';
import { measureCosts, type MeasuredCosts } from './costs';
import { parseExperimentArgs } from './cli-args';
import { atomicWriteJson, readJsonIfExists } from './io';
import { loadLmBase } from './lm';
import { FALLBACK_COSTS, planReport } from './plan';
import { formatDuration } from './progress';
import { writeReport } from './report';
import { RunStoppedError } from './runner';
import { runPaper } from './run';

const log = (m: string): void =>
  void process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${m}\n`);

interface Args {
  command: string;
  config: PaperConfig;
  samples: number;
  results: string | null;
  out: string | null;
  until: string | undefined;
}

function parseArgs(argv: string[]): Args {
  const { command, options, sets } = parseExperimentArgs(
    argv,
    ['preset', 'base', 'name', 'samples', 'results', 'out', 'until'],
    'run',
    'see the header of bench/paper/main.ts',
  );
  const preset = options.preset ?? 'full';
  const base = options.base ?? process.env.CPREC_PAPER_BASE;
  const name = options.name;
  const samples = Number(options.samples ?? 8);
  if (!Number.isInteger(samples) || samples < 1) throw new Error(`--samples must be a positive integer`);
  const results = options.results ?? null;
  const out = options.out ?? null;
  const until = options.until;
  const make = PRESETS[preset];
  if (!make) throw new Error(`unknown preset ${preset} (${Object.keys(PRESETS).join(', ')})`);
  let config = make();
  if (base) config = { ...config, base: resolve(base) };
  // Only the full run writes to bench/results/paper; another name keeps its results in its state.
  if (name)
    config = {
      ...config,
      name,
      stateDir: resolve(REPO_ROOT, '.cprec/paper', name),
      resultsDir: name === 'full' ? config.resultsDir : resolve(REPO_ROOT, '.cprec/paper', name, 'results'),
    };
  for (const [k, v] of sets) config = withOverride(config, k, v);
  return { command, config: validateConfig(config), samples, results, out, until };
}

/** Costs describe the machine and the model, not a run: always next to the full run's results. */
function costsFile(config: PaperConfig): string {
  return join(
    REPO_ROOT,
    'bench/results/paper',
    `costs-${basename(config.base).replace(/\.[^.]+$/, '')}.json`,
  );
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const { config } = args;
  switch (args.command) {
    case 'costs': {
      log(`measuring costs of ${config.base} with ${args.samples} samples per measure`);
      const lm = await loadLmBase(config.base);
      const costs = await measureCosts(lm, config, args.samples, log);
      lm.model.dispose();
      atomicWriteJson(costsFile(config), costs);
      log(`wrote ${costsFile(config)}:\n${JSON.stringify(costs, null, 1)}`);
      return;
    }
    case 'plan': {
      const measured = readJsonIfExists<MeasuredCosts>(costsFile(config));
      const costs = measured ?? FALLBACK_COSTS;
      const plan = planReport(config, costs);
      let t = 0;
      for (const l of plan.lines) {
        t += l.seconds;
        process.stdout.write(
          `${formatDuration(t).padStart(8)}  +${formatDuration(l.seconds).padStart(7)}  ${l.id}\n`,
        );
      }
      process.stdout.write(
        `\n${measured ? `costs measured ${measured.date} (load ${measured.load.start.toFixed(1)})` : 'no measured costs: fallback guesses'}\n` +
          Object.entries(plan.byKind)
            .map(
              ([k, v]) =>
                `${k.padEnd(12)} ${String(v.stages).padStart(3)} stages  ${formatDuration(v.seconds)}`,
            )
            .join('\n') +
          `\ntotal ${formatDuration(plan.totalSeconds)}\n`,
      );
      return;
    }
    case 'report': {
      const results = args.results ? resolve(args.results) : config.resultsDir;
      const out = args.out ? resolve(args.out) : resolve(REPO_ROOT, 'docs/results.md');
      writeReport(results, out, log);
      return;
    }
    case 'run': {
      if (!existsSync(config.base)) throw new Error(`base model ${config.base} does not exist (--base PATH)`);
      const costs = readJsonIfExists<MeasuredCosts>(costsFile(config)) ?? undefined;
      let stopping = false;
      // Ctrl-C / SIGTERM: finish the current step, write its checkpoint, and exit; a second one kills.
      for (const signal of ['SIGINT', 'SIGTERM'] as const)
        process.on(signal, () => {
          if (stopping) process.exit(130);
          stopping = true;
          log(`${signal}: stopping after the current step (send again to kill at once)`);
        });
      // The backend for the whole process, recommenders included (tfjs's default is the plain JS
      // cpu kernels, ~10x slower for SASRec on Games): the one measured fastest for this model.
      const backend = await selectBackend('auto', { model: config.base, workload: 'train' });
      log(
        `run ${config.name}: state ${config.stateDir}, results ${config.resultsDir}, base ${config.base}, ` +
          `backend ${backend.backend}${backend.nativeKernels ? ' + native kernels' : ''}`,
      );
      try {
        const result = await runPaper(config, {
          loadLm: () => loadLmBase(config.base),
          log,
          shouldStop: () => stopping,
          ...(costs ? { costs } : {}),
          ...(args.until ? { until: args.until } : {}),
        });
        log(
          `done: ${result.executed.length} stages run, ${result.reused.length} reused; ` +
            `regenerate the report with: npm run experiment:paper -- report`,
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
      throw new Error(`unknown command ${args.command} (run, plan, costs, report)`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
