/**
 * libs/lm benchmark: stories260K + LoRA r=8 on this machine.
 *   npx ts-node -r tsconfig-paths/register --transpile-only bench/lm/lm.bench.ts [--backend cpu|wasm|auto] [--steps N] [--batch N] [--no-native]
 * Writes bench/results/lm.json. Defaults keep the run short on the plain JS cpu backend.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import {
  BackendPreference,
  LlamaModel,
  Llama2cTokenizer,
  Trainer,
  attachLora,
  generate,
  loadLlama2cCheckpoint,
  scoreCandidates,
  selectBackend,
} from '@cprec/lm';

const MODEL_DIR = resolve(__dirname, '../../../shared/models/stories260K');
const OUT = resolve(__dirname, '../results/lm.json');

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function main(): Promise<void> {
  const backend = await selectBackend(
    arg('backend', process.env.CPREC_LM_BACKEND ?? 'cpu') as BackendPreference,
    { nativeKernels: !process.argv.includes('--no-native') && process.env.CPREC_NATIVE_KERNELS !== '0' },
  );
  // Without native kernels the plain JS cpu kernels need ~40 s per training step at batch 8 × 256
  // (softmax and batched matmul dominate), so that configuration times batch 1, one step, no warm-up
  // and says so in the result (`reduced_config`).
  const reduced = backend.backend === 'cpu' && !backend.nativeKernels;
  const trainSteps = Number(arg('steps', reduced ? '1' : '2'));
  const seqLen = 256;
  const batch = Number(arg('batch', reduced ? '1' : '8'));
  const weights = loadLlama2cCheckpoint(resolve(MODEL_DIR, 'stories260K.bin'));
  const tok = Llama2cTokenizer.fromFile(resolve(MODEL_DIR, 'tok512.bin'), weights.config.vocabSize);
  const model = new LlamaModel(weights);
  attachLora(model, { rank: 8, alpha: 16, dropout: 0.05 });
  const log = (s: string): void => void process.stderr.write(`${s}\n`);
  log(
    `backend ${backend.backend} (${backend.source}); stories260K + LoRA r=8, seq ${seqLen}, batch ${batch}`,
  );

  // Real text: TinyStories-style sentences tokenised and tiled to the sequence length.
  const story = tok.encode(
    'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends and her dog. ',
    { bos: false },
  );
  const rows = Array.from({ length: batch }, (_, b) => [
    1,
    ...Array.from({ length: seqLen - 1 }, (_, i) => story[(i + b * 7) % story.length]),
  ]);
  const full = rows.map((r) => r.map(() => 1));
  const answerOnly = rows.map((r) => r.map((_, i) => (i >= seqLen - 32 ? 1 : 0)));

  const trainer = new Trainer(model, { weightDecay: 0 });
  const trainRate = (mask: number[][]): number => {
    if (!reduced) trainer.trainStep({ inputIds: rows, lossMask: mask }, 1e-3); // warm-up (kernel setup, optimizer moments)
    const t0 = performance.now();
    for (let i = 0; i < trainSteps; i++) trainer.trainStep({ inputIds: rows, lossMask: mask }, 1e-3);
    return (trainSteps * batch * seqLen) / ((performance.now() - t0) / 1000);
  };
  const trainFull = trainRate(full);
  log(`train (full loss): ${trainFull.toFixed(0)} tokens/s`);
  const trainAnswer = trainRate(answerOnly);
  log(`train (answer-only loss): ${trainAnswer.toFixed(0)} tokens/s`);
  trainer.dispose();

  const genRate = (useCache: boolean, n: number): number => {
    generate(model, [1], { maxNewTokens: 4, useCache });
    const t0 = performance.now();
    const out = generate(model, [1], { maxNewTokens: n, useCache });
    return out.length / ((performance.now() - t0) / 1000);
  };
  const kvCache = genRate(true, 128);
  log(`generate with KV cache: ${kvCache.toFixed(1)} tokens/s`);
  const noCache = genRate(false, 48);
  log(`generate without cache: ${noCache.toFixed(1)} tokens/s`);

  const prompt = [
    1,
    ...tok.encode(
      'Lily went to the park and saw a big red ball. She wanted to play with it. Then she saw a',
      { bos: false },
    ),
  ];
  const titles = [
    'dog',
    'cat',
    'bird',
    'little boy',
    'big tree',
    'red car',
    'ball',
    'friend',
    'girl named Sue',
    'toy',
    'fish',
    'flower',
    'bear',
    'duck',
    'cake',
    'boat',
    'box',
    'hat',
    'bee',
    'sun',
  ];
  const candidates = titles.map((t) => tok.encode(t, { bos: false }));
  scoreCandidates(model, prompt, candidates);
  const times: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    scoreCandidates(model, prompt, candidates);
    times.push(performance.now() - t0);
  }
  const score20 = median(times);
  log(`score 20 candidates: ${score20.toFixed(1)} ms (median of 5)`);

  const result = {
    backend: backend.backend,
    backend_source: backend.source,
    native_kernels: backend.nativeKernels,
    model: 'stories260K',
    lora_rank: 8,
    seq_len: seqLen,
    batch,
    reduced_config: reduced,
    train_steps_timed: trainSteps,
    train_tokens_per_s: Math.round(trainFull),
    train_tokens_per_s_by_loss: { full_loss: Math.round(trainFull), answer_only: Math.round(trainAnswer) },
    generate_tokens_per_s: { kv_cache: Number(kvCache.toFixed(1)), no_cache: Number(noCache.toFixed(1)) },
    score20_ms: Number(score20.toFixed(1)),
    prompt_tokens: prompt.length,
    node: process.version,
    measured_at: new Date().toISOString(),
    tensors_after_dispose: 0,
  };
  model.dispose();
  result.tensors_after_dispose = tf.memory().numTensors;
  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(OUT, JSON.stringify(result, null, 2) + '\n');
  process.stdout.write(JSON.stringify(result, null, 2) + '\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`lm bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
