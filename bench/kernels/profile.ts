/**
 * Profiles the LM library's real work with the tfjs profiler and prints per-kernel time, so the
 * native kernel set is chosen from data and a missed target is explained: one LoRA CPT training
 * step (stories260K + LoRA r=8, seq 256, batch 8, the step `npm run bench:kernels` and
 * `npm run bench:lm` time) and a greedy generation of 32 tokens with the KV cache after a
 * 190-token prompt (what serving does). Usage:
 *   npx ts-node -r tsconfig-paths/register --transpile-only bench/kernels/profile.ts \
 *     [--backend cpu|tensorflow|wasm] [--js] [--generate] [--batch 8] [--seq 256] [--steps 1]
 *     [--shapes] [--top 25] [--json FILE]
 * --backend: cpu (default: with the native kernels), tensorflow (tfjs-node: TensorFlow's kernels,
 *   one op at a time) or wasm (inference only: it cannot train); --js: the plain tfjs JS cpu kernels;
 * --steps N: profile N steps after the warm-up and report the per-step mean; --shapes: also time by
 *   kernel and input shapes; --json FILE: the table as JSON (for docs).
 * "outside kernels" = wall time − the kernels' total: the tape, tfjs's dispatch, JS array handling.
 * PyTorch's side of the same step: bench/lm/torch_peer.py --checkpoint …/stories260K.bin
 *   --measure train --batch 8 --seq 256 --lora-dropout 0 --profile-train (torch.profiler's table).
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import {
  LlamaModel,
  Trainer,
  attachLora,
  generate,
  loadLlama2cCheckpoint,
  selectBackend,
  type BackendPreference,
} from '@cprec/lm';

const MODEL = join(__dirname, '..', '..', '..', 'shared', 'models', 'stories260K', 'stories260K.bin');

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

interface Row {
  kernel: string;
  calls: number;
  ms: number;
  share: number;
}

function table(
  infos: Awaited<ReturnType<typeof tf.profile>>[],
  title: string,
  wallMs: number,
): { title: string; wall_ms: number; kernel_ms: number; outside_kernels_ms: number; kernels: Row[] } {
  const steps = infos.length;
  const kernels = infos.flatMap((info) => info.kernels);
  const byKernel = new Map<string, { ms: number; calls: number }>();
  for (const k of kernels) {
    const entry = byKernel.get(k.name) ?? { ms: 0, calls: 0 };
    entry.ms += typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs / steps : 0;
    entry.calls += 1 / steps;
    byKernel.set(k.name, entry);
  }
  const total = [...byKernel.values()].reduce((s, e) => s + e.ms, 0);
  if (process.argv.includes('--shapes')) {
    const byShape = new Map<string, { ms: number; calls: number }>();
    for (const k of kernels) {
      const key = `${k.name} ${JSON.stringify(k.inputShapes)}`;
      const entry = byShape.get(key) ?? { ms: 0, calls: 0 };
      entry.ms += typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs / steps : 0;
      entry.calls += 1 / steps;
      byShape.set(key, entry);
    }
    for (const [key, e] of [...byShape.entries()].sort((a, b) => b[1].ms - a[1].ms).slice(0, 30))
      console.log(`${e.ms.toFixed(1).padStart(7)} ms ${String(Math.round(e.calls)).padStart(4)}× ${key}`);
  }
  const wall = wallMs / steps;
  console.log(
    `${title}${steps > 1 ? ` (mean of ${steps} steps)` : ''}: wall ${wall.toFixed(0)} ms, ` +
      `kernel total ${total.toFixed(0)} ms, outside kernels ${(wall - total).toFixed(0)} ms`,
  );
  console.log('| kernel | calls | ms | share |');
  console.log('|---|---:|---:|---:|');
  const rows: Row[] = [...byKernel.entries()]
    .sort((a, b) => b[1].ms - a[1].ms)
    .map(([kernel, e]) => ({
      kernel,
      calls: Math.round(e.calls),
      ms: Number(e.ms.toFixed(2)),
      share: Number(((100 * e.ms) / total).toFixed(1)),
    }));
  for (const r of rows.slice(0, Number(arg('top', '25'))))
    console.log(`| ${r.kernel} | ${r.calls} | ${r.ms.toFixed(1)} | ${r.share.toFixed(1)}% |`);
  return {
    title,
    wall_ms: Number(wall.toFixed(1)),
    kernel_ms: Number(total.toFixed(1)),
    outside_kernels_ms: Number((wall - total).toFixed(1)),
    kernels: rows,
  };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (!existsSync(MODEL)) throw new Error(`profile needs ${MODEL}`);
  const want = arg('backend', 'cpu') as BackendPreference;
  const backend = await selectBackend(want, { nativeKernels: !args.includes('--js') });
  if (backend.backend !== want) throw new Error(`${want} unavailable: ${backend.notes.join('; ')}`);
  const label =
    backend.backend === 'cpu'
      ? `cpu${backend.nativeKernels ? '+native' : ' (JS kernels)'}`
      : `${backend.backend} (${backend.source})`;
  const steps = Math.max(1, Number(arg('steps', '1')));
  const weights = loadLlama2cCheckpoint(MODEL);
  const model = new LlamaModel(weights);
  let report: ReturnType<typeof table>;
  const infos: Awaited<ReturnType<typeof tf.profile>>[] = [];
  if (args.includes('--generate')) {
    const prompt = [1, ...Array.from({ length: 189 }, (_, i) => (i * 31) % weights.config.vocabSize)];
    generate(model, prompt, { maxNewTokens: 32, temperature: 0 }); // warm-up
    const started = performance.now();
    for (let i = 0; i < steps; i++)
      infos.push(await tf.profile(() => void generate(model, prompt, { maxNewTokens: 32, temperature: 0 })));
    report = table(
      infos,
      `${label}, generate 32 tokens after a 190-token prompt`,
      performance.now() - started,
    );
  } else {
    const batch = Number(arg('batch', '8'));
    const seq = Number(arg('seq', '256'));
    attachLora(model, { rank: 8, alpha: 16, dropout: 0 });
    const trainer = new Trainer(model, { weightDecay: 0 });
    const inputIds = Array.from({ length: batch }, (_, b) =>
      Array.from({ length: seq }, (_, i) => (i === 0 ? 1 : (i * 31 + b * 7) % weights.config.vocabSize)),
    );
    const lossMask = inputIds.map((row) => row.map(() => 1));
    trainer.trainStep({ inputIds, lossMask }, 1e-3); // warm-up
    const started = performance.now();
    for (let i = 0; i < steps; i++)
      infos.push(await tf.profile(() => void trainer.trainStep({ inputIds, lossMask }, 1e-3)));
    const wall = performance.now() - started;
    report = table(infos, `${label}, LoRA training step (batch ${batch} × ${seq})`, wall);
    console.log(`${((batch * seq * steps) / (wall / 1000)).toFixed(0)} tokens/s while profiled`);
    trainer.dispose();
  }
  model.dispose();
  const json = arg('json', '');
  if (json)
    writeFileSync(
      json,
      JSON.stringify({ backend: label, measured_at: new Date().toISOString(), ...report }, null, 2) + '\n',
    );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
