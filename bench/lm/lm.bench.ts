/**
 * libs/lm benchmark on this machine.
 *   npm run bench:lm -- [--backend cpu|wasm|auto] [--steps N] [--batch N] [--no-native]
 *       stories260K + LoRA r=8; writes bench/results/lm.json.
 *   npm run bench:lm -- --model smollm2 [--steps N]
 *       SmolLM2-135M (GGUF) + LoRA r=8, side by side with PyTorch when CPREC_TORCH_PYTHON names a
 *       Python with torch, transformers, gguf and peft (bench/lm/torch_peer.py); writes
 *       bench/results/lm-smollm2.json. `--model PATH` benchmarks any base loadBaseModel reads.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import {
  BackendPreference,
  LlamaModel,
  Llama2cTokenizer,
  Trainer,
  attachLora,
  generate,
  loadBaseModel,
  loadLlama2cCheckpoint,
  scoreCandidates,
  selectBackend,
} from '@cprec/lm';

const MODEL_DIR = resolve(__dirname, '../../../shared/models/stories260K');
const OUT = resolve(__dirname, '../results/lm.json');
const SMOLLM2 = resolve(
  __dirname,
  '../../../shared/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf',
);
const TORCH_PEER = resolve(__dirname, 'torch_peer.py');

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function main(): Promise<void> {
  const which = arg('model', 'stories260k');
  if (which !== 'stories260k') {
    await benchBaseModel(
      which === 'smollm2' ? SMOLLM2 : resolve(which),
      which === 'smollm2' ? 'smollm2' : 'custom',
    );
    return;
  }
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

const loadAverage = (): number => Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);

/**
 * The issue-12 measurements for a real base: LoRA r=8 training at sequence 256 × batch 4 with the
 * full causal-LM loss, one 20-candidate ranking (a 280-token prompt, 20 candidates of 8 tokens
 * sharing its cache), greedy generation with the KV cache, and peak RSS; then the same with
 * PyTorch in its own process (never concurrently: both use every core).
 */
async function benchBaseModel(path: string, name: string): Promise<void> {
  const log = (s: string): void => void process.stderr.write(`${s}\n`);
  const backend = await selectBackend((arg('backend', 'auto') as BackendPreference) ?? 'auto');
  const loadBefore = loadAverage();
  const base = await loadBaseModel(path);
  const V = base.weights.config.vocabSize;
  // Fixed pseudo-random ids from the ordinary vocabulary (above the special tokens), as the peer.
  let state = 12345;
  const rnd = (): number => {
    state = (Math.imul(state, 48271) >>> 0) % 2147483647;
    return 100 + (state % (V - 100));
  };
  const model = new LlamaModel(base.weights);
  log(`${name}: backend ${backend.backend} (${backend.source}), load average ${loadBefore}`);

  const prompt = Array.from({ length: 280 }, rnd);
  const candidates = Array.from({ length: 20 }, () => Array.from({ length: 8 }, rnd));
  scoreCandidates(model, prompt, candidates);
  const rankTimes: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    scoreCandidates(model, prompt, candidates);
    rankTimes.push(performance.now() - t0);
  }
  const rankingMs = median(rankTimes);
  log(`ranking 20 candidates after 280 tokens: ${rankingMs.toFixed(0)} ms (median of 5)`);

  generate(model, prompt.slice(0, 32), { maxNewTokens: 4, temperature: 0 });
  const g0 = performance.now();
  const generated = generate(model, prompt.slice(0, 32), { maxNewTokens: 32, temperature: 0 });
  const generateTps = generated.length / ((performance.now() - g0) / 1000);
  log(`greedy generation with the KV cache: ${generateTps.toFixed(1)} tokens/s`);

  const seqLen = 256;
  const batch = Number(arg('batch', '4'));
  const steps = Number(arg('steps', '2'));
  attachLora(model, { rank: 8, alpha: 16, dropout: 0.05 });
  const trainer = new Trainer(model, { weightDecay: 0 });
  const rows = Array.from({ length: batch }, () => Array.from({ length: seqLen }, rnd));
  const mask = rows.map((r) => r.map(() => 1));
  trainer.trainStep({ inputIds: rows, lossMask: mask }, 1e-4);
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) trainer.trainStep({ inputIds: rows, lossMask: mask }, 1e-4);
  const trainTps = (steps * batch * seqLen) / ((performance.now() - t0) / 1000);
  log(`LoRA r=8 training, ${batch} × ${seqLen}, full loss: ${trainTps.toFixed(1)} tokens/s`);
  trainer.dispose();
  model.dispose();
  const peakRssMb = Math.round(process.resourceUsage().maxRSS / 1024);
  const loadAfter = loadAverage();

  let torch: Record<string, number | string> | null = null;
  let torchNote = 'CPREC_TORCH_PYTHON not set: PyTorch peer not run';
  const python = process.env.CPREC_TORCH_PYTHON;
  if (python) {
    log(`PyTorch peer: ${python} ${TORCH_PEER}`);
    const r = spawnSync(
      python,
      [
        TORCH_PEER,
        '--gguf',
        path,
        '--threads',
        String(availableParallelism()),
        '--batch',
        String(batch),
        '--train-steps',
        String(steps),
      ],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 3_600_000 },
    );
    if (r.status === 0) {
      torch = JSON.parse(r.stdout.trim().split('\n').at(-1) as string) as Record<string, number | string>;
      torchNote = `torch ${String(torch.torch)}, ${String(torch.threads)} threads, same GGUF de-quantised to float32`;
    } else torchNote = `PyTorch peer failed (exit ${r.status}): see stderr`;
  }
  const ratio = (a: number, b: number | undefined): number | null =>
    typeof b === 'number' && b > 0 ? Number((a / b).toFixed(3)) : null;
  const result = {
    model: name,
    path,
    base_sha256: base.baseChecksum,
    backend: backend.backend,
    backend_source: backend.source,
    lora_rank: 8,
    seq_len: seqLen,
    batch,
    train_steps_timed: steps,
    train_tokens_per_s: {
      cprec: Number(trainTps.toFixed(1)),
      torch: (torch?.train_tokens_per_s as number) ?? null,
    },
    ranking_ms: { cprec: Number(rankingMs.toFixed(1)), torch: (torch?.ranking_ms as number) ?? null },
    generate_tokens_per_s: Number(generateTps.toFixed(1)),
    generate_tokens_per_s_torch: (torch?.generate_tokens_per_s as number) ?? null,
    peak_rss_mb: peakRssMb,
    peak_rss_mb_torch: (torch?.peak_rss_mb as number) ?? null,
    ratio_vs_torch: {
      training: ratio(trainTps, torch?.train_tokens_per_s as number | undefined),
      // > 1 means cprec ranks faster.
      ranking: torch ? ratio(torch.ranking_ms as number, rankingMs) : null,
    },
    torch_note: torchNote,
    load_average: { before: loadBefore, after_cprec: loadAfter, after_torch: torch ? loadAverage() : null },
    cores: availableParallelism(),
    node: process.version,
    measured_at: new Date().toISOString(),
  };
  const out = resolve(__dirname, `../results/lm-${name}.json`);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
  process.stdout.write(JSON.stringify(result, null, 2) + '\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`lm bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
