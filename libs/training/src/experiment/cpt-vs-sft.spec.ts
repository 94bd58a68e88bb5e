import { extname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { selectBackend } from '@cprec/lm';
import { registerNativeKernels } from '@cprec/lm/kernels';
import type { CptVsSftResult } from './cpt-vs-sft';
import type { CptVsSftWorkerData, CptVsSftWorkerMessage } from './cpt-vs-sft-worker';

// Training a tiny LM end to end (CPT, two fine-tunings, evaluation) per seed.
jest.setTimeout(30 * 60_000);

/**
 * The paper's claim on a world where it must hold: users' tastes are shared across domains and
 * titles carry their topic's word in every domain, the target domain is sparse (24 fine-tuning
 * samples), so what CPT learns on the source domains (preferring candidates of the history's
 * topic) is what the target needs. Two seeds; the margin required is max(0.1, 3 binomial
 * standard errors) of the test split's HR@1.
 *
 * The HR@1 asserted is the likelihood-ranking one (exact candidate scoring, what serving and the
 * promotion gate use): a tiny random-base model does not learn to copy a candidate title
 * through LoRA in a CI budget (measured with tune.ts), so its generation HR@1 mostly measures
 * answer validity, not recommendation. Generation HR@1 is still logged.
 *
 * Measured 2026-11-22 (test split of 400, 4 candidates, chance 0.25), likelihood HR@1 SFT-only vs
 * CPT+SFT: seed 1 0.275 vs 0.3825 (margin 0.108 against a required 0.100), seed 2 0.2375 vs
 * 0.4525. Seed 1's margin is narrow: the effect is real but this world is small.
 */
// With the native kernels, the two seeds side by side in worker threads take 137 s with both
// cores to themselves, and ≈ 260 s in the unit tier while the other Jest worker shares the cores
// (≈ 6 minutes one seed after the other); with the plain JS kernels it would take hours, so
// without the addon it is skipped, except in CI where the addon is built and its absence is a
// failure. CPREC_SKIP_EXPERIMENT_TESTS=1 skips it for quick local runs.
const nativeBuilt = registerNativeKernels().loaded;
if (!nativeBuilt && process.env.CI !== 'true')
  console.warn('CPT-vs-SFT experiment skipped: native kernels not built (bash scripts/build-native.sh)');
const describeExperiment =
  process.env.CPREC_SKIP_EXPERIMENT_TESTS === '1' || (!nativeBuilt && process.env.CI !== 'true')
    ? describe.skip
    : describe;

/**
 * `runCptVsSft(quickSyntheticComparison(seed))` in a worker thread (cpt-vs-sft-worker.ts), so the
 * seeds run in parallel on separate cores and their results still meet in this process for the
 * cross-seed assertion. The worker runs the same code through ts-node (as the serving scoring
 * pool's workers do under Jest), outside Jest's module sandbox.
 */
function runSeedInWorker(seed: number, workers: Worker[]): Promise<CptVsSftResult> {
  const file = join(__dirname, `cpt-vs-sft-worker${extname(__filename)}`);
  const execArgv =
    extname(__filename) === '.ts'
      ? ['--require', 'ts-node/register/transpile-only', '--require', 'tsconfig-paths/register']
      : [];
  const data: CptVsSftWorkerData = { seed };
  const worker = new Worker(file, { workerData: data, execArgv, env: process.env });
  workers.push(worker);
  return new Promise<CptVsSftResult>((resolve, reject) => {
    worker.once('message', (m: CptVsSftWorkerMessage) => {
      if (m.kind === 'result') resolve(m.result);
      else reject(new Error(`seed ${seed}: ${m.error}`));
      void worker.terminate();
    });
    worker.once('error', (err) => reject(new Error(`seed ${seed}: worker crashed: ${err.message}`)));
    worker.once('exit', (code) => reject(new Error(`seed ${seed}: worker exited with code ${code}`)));
  });
}

describeExperiment('CPT on source domains, then SFT, beats SFT alone on the target domain', () => {
  const results: CptVsSftResult[] = [];
  const workers: Worker[] = [];
  beforeAll(async () => {
    const backend = await selectBackend('auto');
    if (!backend.nativeKernels)
      throw new Error('the experiment needs the native kernels (bash scripts/build-native.sh)');
    results.push(...(await Promise.all([1, 2].map((seed) => runSeedInWorker(seed, workers)))));
    console.log(JSON.stringify(results, null, 1));
  });
  afterAll(async () => {
    await Promise.all(workers.map((w) => w.terminate()));
  });

  it('wins on HR@1 for every seed by a margin far outside seed noise', () => {
    for (const r of results) {
      const n = r.testExamples;
      const p = (r.sftOnly.likelihoodHr1 + r.cptThenSft.likelihoodHr1) / 2;
      const standardError = Math.sqrt((2 * p * (1 - p)) / n);
      expect(r.cptThenSft.likelihoodHr1 - r.sftOnly.likelihoodHr1).toBeGreaterThan(
        Math.max(0.1, 3 * standardError),
      );
    }
    const mean = (f: (r: CptVsSftResult) => number) => results.reduce((a, r) => a + f(r), 0) / results.length;
    const spread = Math.max(
      ...results.map((r) => Math.abs(r.cptThenSft.likelihoodHr1 - mean((x) => x.cptThenSft.likelihoodHr1))),
    );
    expect(mean((r) => r.cptThenSft.likelihoodHr1) - mean((r) => r.sftOnly.likelihoodHr1)).toBeGreaterThan(
      2 * spread,
    );
  });
});
