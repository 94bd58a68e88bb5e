/**
 * Times SmolLM2-135M LoRA training steps (`Trainer.trainStep`, LoRA r=8 on every projection,
 * AdamW) step by step: wall time, tokens/s, the process's CPU time (user + system, all threads)
 * and page faults per step, with the load average. Usage:
 *   npx ts-node -r tsconfig-paths/register --transpile-only bench/kernels/train-smollm2.ts \
 *     [--batch 4] [--seq 256] [--answer N] [--dropout 0.05] [--steps 4] [--backend cpu]
 * --answer N: loss on the last N tokens of each row only (SFT-style mask); default every token.
 *
 * Why CPU time next to wall time: this 2-vCPU machine is shared, and under load a step's wall
 * time says more about the neighbours than about the code; CPU time per step moves much less
 * (it still grows somewhat with contention). Compare wall times only between runs made in the
 * same minute, alternating, and report the load (docs/kernels.md). The first step also pays for
 * growing the heap and the buffer pool, so the summary uses the steps after it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  LlamaModel,
  Trainer,
  attachLora,
  loadBaseModel,
  selectBackend,
  type BackendPreference,
} from '@cprec/lm';

const MODEL = join(
  __dirname,
  '..',
  '..',
  '..',
  'shared',
  'models',
  'smollm2-135m-instruct',
  'SmolLM2-135M-Instruct.Q4_1.gguf',
);

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v)) throw new Error(`--${name} needs a number`);
  return v;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

const loadavg = (): string => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

async function main(): Promise<void> {
  if (!existsSync(MODEL)) throw new Error(`the benchmark needs ${MODEL}`);
  const batch = option('batch', 4);
  const seq = option('seq', 256);
  const answer = option('answer', 0);
  const dropout = option('dropout', 0.05);
  const steps = option('steps', 4);
  const b = process.argv.indexOf('--backend');
  const backend = await selectBackend(b >= 0 ? (process.argv[b + 1] as BackendPreference) : 'cpu');
  const base = await loadBaseModel(MODEL);
  const model = new LlamaModel(base.weights);
  const vocab = base.weights.config.vocabSize;
  attachLora(model, { rank: 8, alpha: 16, dropout });
  const trainer = new Trainer(model, { weightDecay: 0 });
  let state = 1;
  const token = (): number => ((state = (state * 48271) % 2147483647) % (vocab - 100)) + 100;
  const inputIds = Array.from({ length: batch }, () => Array.from({ length: seq }, token));
  const lossMask = inputIds.map((row) => row.map((_, t) => (answer === 0 || t >= seq - answer ? 1 : 0)));
  console.log(
    `SmolLM2-135M LoRA r=8 (dropout ${dropout}), batch ${batch} × ${seq}, loss on ` +
      `${answer === 0 ? 'every token' : `the last ${answer} tokens`}; ${backend.backend}` +
      `${backend.nativeKernels ? ' + native kernels' : ''}, fused training ` +
      `${process.env.CPREC_FUSED_TRAINING === '0' ? 'off' : 'on'}, OPENBLAS_CORETYPE ${process.env.OPENBLAS_CORETYPE ?? '-'}`,
  );
  const rates: number[] = [];
  const cpus: number[] = [];
  for (let step = 0; step < steps; step++) {
    const started = performance.now();
    const cpu = process.cpuUsage();
    const faults = process.resourceUsage().minorPageFault;
    const loss = trainer.trainStep({ inputIds, lossMask }, 1e-4);
    const wall = performance.now() - started;
    const used = process.cpuUsage(cpu);
    const cpuMs = (used.user + used.system) / 1000;
    const rate = (batch * seq * 1000) / wall;
    if (step > 0) {
      rates.push(rate);
      cpus.push(cpuMs);
    }
    console.log(
      `step ${step}: loss ${loss.toFixed(6)}, ${wall.toFixed(0)} ms, ${rate.toFixed(1)} tokens/s, ` +
        `CPU ${cpuMs.toFixed(0)} ms (user ${(used.user / 1000).toFixed(0)}), ` +
        `${process.resourceUsage().minorPageFault - faults} page faults, ` +
        `RSS ${(process.memoryUsage().rss / 1e9).toFixed(2)} GB, loadavg ${loadavg()}`,
    );
  }
  if (rates.length > 0)
    console.log(
      `median of steps 1-${steps - 1}: ${median(rates).toFixed(1)} tokens/s, CPU ${median(cpus).toFixed(0)} ms per step ` +
        `(${((batch * seq * 1000) / median(cpus)).toFixed(1)} tokens per CPU-second)`,
    );
  trainer.dispose();
  model.dispose();
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
