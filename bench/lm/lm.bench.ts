/**
 * libs/lm benchmark on this machine: every available backend as a column, which one `auto` picks,
 * and the PyTorch peer.
 *
 *   npm run bench:lm -- [--backends cpu,tensorflow,wasm,cpu-js] [--steps N] [--batch N] [--seq N]
 *       stories260K + LoRA r=8 (seq 256, batch 8, 5 steps); writes bench/results/lm.json.
 *   npm run bench:lm -- --model smollm2 [--steps N] [--batch N] [--seq N]
 *       SmolLM2-135M (GGUF) + LoRA r=8 (seq 256, batch 4, 2 steps); writes bench/results/lm-smollm2.json.
 *       `--model PATH` benchmarks any base loadBaseModel reads (lm-custom.json).
 *
 * Columns (each measured in its own child process, one after another: a tfjs engine holds one
 * backend well, and the memory of one is returned before the next starts):
 *   cpu          tfjs-backend-cpu + cprec's native kernels (the reference path)
 *   tensorflow   @tensorflow/tfjs-node (scripts/install-tfjs-node.sh), when installed
 *   tensorflow-gpu  @tensorflow/tfjs-node-gpu, when installed and an NVIDIA device exists
 *   wasm, cpu-js tfjs-backend-wasm and the plain JS cpu kernels: stories260K only (far too slow for
 *                SmolLM2; the JSON says so under `skipped`); cpu-js times one step without warm-up.
 * First a child runs `selectBackend('auto', { model, workload, shape })` for the training workload
 * (this run's batch × seq) and the ranking workload (this run's prompt) and reports what it picked
 * (`auto_pick`); the top-level keys (`train_tokens_per_s.cprec`, `ranking_ms.cprec`, …) are the
 * columns `auto` picked: training from the train decision, ranking and generation from the infer one.
 * `--remeasure-auto` makes it measure again instead of reusing its kept decision
 * (CPREC_BACKEND_REMEASURE=1); CPREC_BACKEND is removed from that child's environment.
 *
 * PyTorch (bench/lm/torch_peer.py) runs last, alone, when CPREC_TORCH_PYTHON names a Python with
 * torch, transformers, gguf and peft: on the same GGUF for SmolLM2; for stories260K it converts the
 * llama2.c checkpoint and first checks that its greedy continuation equals cprec's (the run fails
 * when it does not).
 *
 * Other flags: `--backend X` (or CPREC_LM_BACKEND=X) measures the one column X and reports it as
 * cprec (no auto child; infra/gpu/bench uses it); `--no-native` = `--backend cpu-js`; `--no-torch`;
 * `--out FILE` writes elsewhere (smoke tests); `--ignore-memory` runs a tensorflow column for
 * SmolLM2 even when MemAvailable is below its estimated need (~14 GB at 4 × 256).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import {
  type AutoDecision,
  type BackendPreference,
  type BackendReport,
  LlamaModel,
  Llama2cTokenizer,
  Trainer,
  attachLora,
  autoCandidates,
  generate,
  loadBaseModel,
  loadLlama2cCheckpoint,
  nvidiaDevicePresent,
  scoreCandidates,
  selectBackend,
  tfjsNodeGpuInstalled,
  tfjsNodeInstalled,
} from '@cprec/lm';

const ROOT = resolve(__dirname, '../..');
const MODEL_DIR = resolve(ROOT, '../shared/models/stories260K');
const STORIES_BIN = resolve(MODEL_DIR, 'stories260K.bin');
const STORIES_TOK = resolve(MODEL_DIR, 'tok512.bin');
const SMOLLM2 = resolve(ROOT, '../shared/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf');
const TORCH_PEER = resolve(__dirname, 'torch_peer.py');
const RESULT_MARK = '@@lm-bench-result ';

type Column = 'cpu' | 'cpu-js' | 'wasm' | 'tensorflow' | 'tensorflow-gpu';
const COLUMNS: readonly Column[] = ['cpu', 'tensorflow', 'tensorflow-gpu', 'wasm', 'cpu-js'];

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}
const flag = (name: string): boolean => process.argv.includes(`--${name}`);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

const round1 = (x: number): number => Number(x.toFixed(1));
const log = (s: string): void => void process.stderr.write(`${s}\n`);
const loadAverage = (): number => Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** MemAvailable from /proc/meminfo, in MB. */
function memAvailableMb(): number {
  const m = /MemAvailable:\s+(\d+) kB/.exec(readFileSync('/proc/meminfo', 'utf8'));
  return m ? Math.round(Number(m[1]) / 1024) : 0;
}

/** The run's settings, the same in the parent and its children (children get the same argv). */
interface Settings {
  kind: 'stories260k' | 'base';
  /** Model file (llama2.c .bin or a base loadBaseModel reads). */
  path: string;
  /** Result name: stories260K → lm.json, else lm-<name>.json. */
  name: string;
  batch: number;
  seq: number;
  steps: number;
}

function settings(): Settings {
  const which = arg('model', 'stories260k');
  const stories = which === 'stories260k';
  return {
    kind: stories ? 'stories260k' : 'base',
    path: stories ? STORIES_BIN : which === 'smollm2' ? SMOLLM2 : resolve(which),
    name: stories ? 'stories260K' : which === 'smollm2' ? 'smollm2' : 'custom',
    batch: Number(arg('batch', stories ? '8' : '4')),
    seq: Number(arg('seq', '256')),
    // A stories260K step takes ~0.1-0.3 s: 5 steps say more than 2; a SmolLM2 step takes seconds.
    steps: Number(arg('steps', stories ? '5' : '2')),
  };
}

// ---------------------------------------------------------------------------------------------------
// Inputs shared by every column and the PyTorch peer

interface StoriesInputs {
  tok: Llama2cTokenizer;
  story: number[];
  /** Ranking: a prompt and 20 candidate continuations. */
  prompt: number[];
  candidates: number[][];
  /** Conversion check: greedy continuation of this prompt. */
  checkPrompt: number[];
}

const CHECK_TOKENS = 48;

function storiesInputs(vocabSize: number): StoriesInputs {
  const tok = Llama2cTokenizer.fromFile(STORIES_TOK, vocabSize);
  const story = tok.encode(
    'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends and her dog. ',
    { bos: false },
  );
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
  const checkPrompt = [
    1,
    ...tok.encode('Once upon a time, there was a little girl named Lily.', { bos: false }),
  ];
  return { tok, story, prompt, candidates, checkPrompt };
}

/** Fixed pseudo-random ids from a base's ordinary vocabulary (above the special tokens), as the peer. */
function baseIds(vocab: number): () => number {
  let state = 12345;
  return (): number => {
    state = (Math.imul(state, 48271) >>> 0) % 2147483647;
    return 100 + (state % (vocab - 100));
  };
}

// ---------------------------------------------------------------------------------------------------
// Children: one column, or the auto decision

/** Makes `column` active, or throws when selectBackend fell back to another backend. */
async function activateColumn(column: Column): Promise<BackendReport> {
  const pref: BackendPreference = column === 'cpu-js' ? 'cpu' : column;
  const report = await selectBackend(pref, { nativeKernels: column === 'cpu' });
  const want = column === 'cpu-js' ? 'cpu' : column === 'tensorflow-gpu' ? 'tensorflow' : column;
  if (report.backend !== want)
    throw new Error(`${column} unavailable (got ${report.backend}): ${report.notes.join('; ')}`);
  if (column === 'tensorflow' && report.source.includes('gpu'))
    throw new Error(`${column}: this process loaded ${report.source}`);
  return report;
}

interface ColumnResult {
  column: Column;
  backend_source: string;
  native_kernels: boolean;
  notes: string[];
  batch: number;
  seq_len: number;
  train_steps_timed: number;
  warm_up: boolean;
  train_tokens_per_s: number | null;
  /** stories260K: loss on the last 32 tokens of each row (SFT-style). */
  train_tokens_per_s_answer_only?: number | null;
  ranking_ms: number | null;
  generate_tokens_per_s: number | null;
  generate_tokens_per_s_no_cache?: number | null;
  /** Greedy continuation of the check prompt (stories260K: compared across columns and with PyTorch). */
  greedy_ids: number[] | null;
  greedy_text?: string;
  base_sha256?: string;
  peak_rss_mb: number;
  tensors_after_dispose: number;
  errors: Record<string, string>;
}

/** Runs `fn`, keeping its error under `what` instead of ending the column. */
function attempt<T>(errors: Record<string, string>, what: string, fn: () => T): T | null {
  try {
    return fn();
  } catch (e) {
    errors[what] = errorText(e);
    log(`${what} failed: ${errors[what]}`);
    return null;
  }
}

function timedRanking(model: LlamaModel, prompt: number[], candidates: number[][]): number {
  scoreCandidates(model, prompt, candidates);
  const times: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t0 = performance.now();
    scoreCandidates(model, prompt, candidates);
    times.push(performance.now() - t0);
  }
  return round1(median(times));
}

function timedGeneration(model: LlamaModel, prompt: number[], n: number, useCache: boolean): number {
  generate(model, prompt, { maxNewTokens: 4, temperature: 0, useCache });
  const t0 = performance.now();
  const out = generate(model, prompt, { maxNewTokens: n, temperature: 0, useCache });
  return round1(out.length / ((performance.now() - t0) / 1000));
}

/** tokens/s of LoRA training steps at rows × mask (after one warm-up step unless `warmUp` is false). */
function timedTraining(
  trainer: Trainer,
  rows: number[][],
  mask: number[][],
  steps: number,
  warmUp: boolean,
): number {
  if (warmUp) trainer.trainStep({ inputIds: rows, lossMask: mask }, 1e-4);
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) trainer.trainStep({ inputIds: rows, lossMask: mask }, 1e-4);
  return round1((steps * rows.length * rows[0].length) / ((performance.now() - t0) / 1000));
}

/**
 * One column: inference on the base weights first (as the PyTorch peer, before LoRA is attached),
 * then LoRA r=8 training with the full loss (and, for stories260K, the answer-only loss).
 */
async function measureColumn(s: Settings, column: Column): Promise<ColumnResult> {
  const report = await activateColumn(column);
  const errors: Record<string, string> = {};
  // The plain JS kernels need ~40 s per stories260K step at 8 × 256: one step, no warm-up.
  const slow = column === 'cpu-js';
  const steps = slow ? 1 : s.steps;
  log(`[${column}] ${report.source}; ${s.name}, LoRA r=8, ${s.batch} × ${s.seq}, ${steps} step(s) timed`);
  let model: LlamaModel;
  let prompt: number[];
  let candidates: number[][];
  let genPrompt: number[];
  let genTokens: number;
  let rows: number[][];
  let checkPrompt: number[];
  let tok: Llama2cTokenizer | null = null;
  let baseSha: string | undefined;
  if (s.kind === 'stories260k') {
    const weights = loadLlama2cCheckpoint(s.path);
    const inp = storiesInputs(weights.config.vocabSize);
    tok = inp.tok;
    model = new LlamaModel(weights);
    prompt = inp.prompt;
    candidates = inp.candidates;
    genPrompt = [1];
    genTokens = 128;
    checkPrompt = inp.checkPrompt;
    rows = Array.from({ length: s.batch }, (_, b) => [
      1,
      ...Array.from({ length: s.seq - 1 }, (_, i) => inp.story[(i + b * 7) % inp.story.length]),
    ]);
  } else {
    const base = await loadBaseModel(s.path);
    baseSha = base.baseChecksum;
    model = new LlamaModel(base.weights);
    const rnd = baseIds(base.weights.config.vocabSize);
    prompt = Array.from({ length: 280 }, rnd);
    candidates = Array.from({ length: 20 }, () => Array.from({ length: 8 }, rnd));
    genPrompt = prompt.slice(0, 32);
    genTokens = 32;
    checkPrompt = genPrompt;
    rows = Array.from({ length: s.batch }, () => Array.from({ length: s.seq }, rnd));
  }

  const greedy = attempt(errors, 'greedy', () =>
    generate(model, checkPrompt, {
      maxNewTokens: s.kind === 'stories260k' ? CHECK_TOKENS : 32,
      temperature: 0,
    }),
  );
  const ranking = attempt(errors, 'ranking', () => timedRanking(model, prompt, candidates));
  if (ranking !== null)
    log(`[${column}] ranking ${candidates.length} candidates: ${ranking} ms (median of 5)`);
  const gen = attempt(errors, 'generation', () => timedGeneration(model, genPrompt, genTokens, true));
  if (gen !== null) log(`[${column}] greedy generation with the KV cache: ${gen} tokens/s`);
  const genNoCache =
    s.kind === 'stories260k'
      ? attempt(errors, 'generation_no_cache', () => timedGeneration(model, genPrompt, 48, false))
      : undefined;

  attachLora(model, { rank: 8, alpha: 16, dropout: 0.05 });
  const trainer = new Trainer(model, { weightDecay: 0 });
  const full = rows.map((r) => r.map(() => 1));
  const train = attempt(errors, 'training', () => timedTraining(trainer, rows, full, steps, !slow));
  if (train !== null) log(`[${column}] LoRA training, ${s.batch} × ${s.seq}, full loss: ${train} tokens/s`);
  let answerOnly: number | null | undefined;
  if (s.kind === 'stories260k' && train !== null) {
    const mask = rows.map((r) => r.map((_, i) => (i >= s.seq - 32 ? 1 : 0)));
    answerOnly = attempt(errors, 'training_answer_only', () =>
      timedTraining(trainer, rows, mask, steps, !slow),
    );
    if (answerOnly !== null) log(`[${column}] LoRA training, answer-only loss: ${answerOnly} tokens/s`);
  }
  trainer.dispose();
  model.dispose();
  return {
    column,
    backend_source: report.source,
    native_kernels: report.nativeKernels,
    notes: report.notes,
    batch: s.batch,
    seq_len: s.seq,
    train_steps_timed: steps,
    warm_up: !slow,
    train_tokens_per_s: train,
    ...(s.kind === 'stories260k' ? { train_tokens_per_s_answer_only: answerOnly ?? null } : {}),
    ranking_ms: ranking,
    generate_tokens_per_s: gen,
    ...(genNoCache !== undefined ? { generate_tokens_per_s_no_cache: genNoCache } : {}),
    greedy_ids: greedy,
    ...(tok && greedy ? { greedy_text: tok.decode([...checkPrompt, ...greedy]) } : {}),
    ...(baseSha ? { base_sha256: baseSha } : {}),
    peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
    tensors_after_dispose: tf.memory().numTensors,
    errors,
  };
}

interface AutoResult {
  train: AutoDecision | null;
  infer: AutoDecision | null;
  candidates: string[];
  notes: string[];
  env_backend_removed: string | null;
}

/** What `selectBackend('auto')` picks for this model at this run's training and ranking shapes. */
async function measureAuto(s: Settings): Promise<AutoResult> {
  const promptLen =
    s.kind === 'stories260k'
      ? storiesInputs(loadLlama2cCheckpoint(s.path).config.vocabSize).prompt.length
      : 280;
  const notes: string[] = [];
  const pick = async (workload: 'train' | 'infer', shape: { batch: number; seq: number }) => {
    const r = await selectBackend('auto', { model: s.path, workload, shape });
    notes.push(...r.notes.map((n) => `${workload}: ${n}`));
    log(`[auto] ${workload} ${shape.batch}x${shape.seq} -> ${r.auto?.backend} (${r.auto?.from})`);
    return r.auto ?? null;
  };
  return {
    train: await pick('train', { batch: s.batch, seq: s.seq }),
    infer: await pick('infer', { batch: 1, seq: promptLen }),
    candidates: autoCandidates(),
    notes,
    env_backend_removed: process.env.CPREC_BENCH_ENV_BACKEND ?? null,
  };
}

// ---------------------------------------------------------------------------------------------------
// Parent

interface ChildRun<T> {
  result: T | null;
  error: string | null;
  wall_s: number;
  load_average: { before: number; after: number };
}

function runChild<T>(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): ChildRun<T> {
  const before = loadAverage();
  const t0 = performance.now();
  const r = spawnSync(
    process.execPath,
    ['-r', 'ts-node/register/transpile-only', '-r', 'tsconfig-paths/register', __filename, ...args],
    {
      cwd: ROOT,
      env,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      timeout: timeoutMs,
      maxBuffer: 64 * 2 ** 20,
    },
  );
  const wall = round1((performance.now() - t0) / 1000);
  const load = { before, after: loadAverage() };
  const line = (r.stdout ?? '')
    .split('\n')
    .reverse()
    .find((l) => l.startsWith(RESULT_MARK));
  if (r.status === 0 && line)
    return {
      result: JSON.parse(line.slice(RESULT_MARK.length)) as T,
      error: null,
      wall_s: wall,
      load_average: load,
    };
  const why = r.error
    ? errorText(r.error)
    : r.signal
      ? `killed by ${r.signal}${r.signal === 'SIGKILL' ? ' (out of memory?)' : ''}`
      : `exit ${r.status}`;
  return { result: null, error: why, wall_s: wall, load_average: load };
}

/** Estimated resident memory (MB) a column needs, when it is big enough to check before starting. */
function memoryNeedMb(s: Settings, column: Column): number {
  if (s.kind !== 'base' || !column.startsWith('tensorflow')) return 0;
  // TensorFlow held 13.7 GB for a SmolLM2 step at 4 × 256 (docs/backends.md); it grows with tokens.
  return Math.max(3000, Math.round((14_000 * s.batch * s.seq) / 1024));
}

interface TorchRun {
  result: Record<string, unknown> | null;
  note: string;
  conversionFailed: boolean;
}

function runTorch(s: Settings, inputs: Record<string, unknown> | null): TorchRun {
  const python = process.env.CPREC_TORCH_PYTHON;
  if (flag('no-torch'))
    return { result: null, note: '--no-torch: PyTorch peer not run', conversionFailed: false };
  if (!python)
    return {
      result: null,
      note: 'CPREC_TORCH_PYTHON not set: PyTorch peer not run',
      conversionFailed: false,
    };
  const args = [
    TORCH_PEER,
    ...(s.kind === 'stories260k' ? ['--checkpoint', s.path, '--tokenizer', STORIES_TOK] : ['--gguf', s.path]),
    '--threads',
    String(availableParallelism()),
    '--batch',
    String(s.batch),
    '--seq',
    String(s.seq),
    '--train-steps',
    String(s.steps),
  ];
  let inputsFile: string | null = null;
  if (s.kind === 'stories260k') args.push('--answer-tokens', '32', '--generate-tokens', '128');
  if (inputs) {
    inputsFile = join(tmpdir(), `cprec-lm-bench-inputs-${process.pid}.json`);
    writeFileSync(inputsFile, JSON.stringify(inputs));
    args.push('--inputs', inputsFile);
  }
  log(`PyTorch peer: ${python} ${args.join(' ')}`);
  const r = spawnSync(python, args, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 3_600_000,
  });
  if (inputsFile) rmSync(inputsFile, { force: true });
  if (r.status === 0) {
    const torch = JSON.parse(r.stdout.trim().split('\n').at(-1) as string) as Record<string, unknown>;
    const how =
      s.kind === 'stories260k'
        ? 'the llama2.c checkpoint converted to LlamaForCausalLM (greedy continuation identical to cprec)'
        : 'same GGUF de-quantised to float32';
    return {
      result: torch,
      note: `torch ${String(torch.torch)}, ${String(torch.threads)} threads, ${how}`,
      conversionFailed: false,
    };
  }
  return {
    result: null,
    note: `PyTorch peer failed (exit ${r.status}${r.signal ? `, ${r.signal}` : ''}): see stderr`,
    conversionFailed: r.status === 3,
  };
}

const ratio = (a: number | null | undefined, b: unknown): number | null =>
  typeof a === 'number' && typeof b === 'number' && a > 0 && b > 0 ? Number((a / b).toFixed(3)) : null;

async function parent(): Promise<void> {
  const s = settings();
  const explicitArg = flag('no-native')
    ? 'cpu-js'
    : (process.argv.includes('--backend') ? arg('backend', '') : process.env.CPREC_LM_BACKEND) || '';
  const listed = arg('backends', '');
  if (explicitArg && explicitArg !== 'auto' && !COLUMNS.includes(explicitArg as Column))
    throw new Error(`--backend ${explicitArg}: use one of auto, ${COLUMNS.join(', ')}`);
  // --backend X: that column only, reported as cprec (no auto child). Otherwise every column this
  // machine has, and auto's pick as cprec.
  const single = explicitArg !== '' && explicitArg !== 'auto' ? (explicitArg as Column) : null;
  const skipped: Record<string, string> = {};
  let columns: Column[];
  if (single) columns = [single];
  else if (listed) columns = listed.split(',').map((c) => c.trim() as Column);
  else {
    columns = ['cpu'];
    if (tfjsNodeGpuInstalled() && nvidiaDevicePresent()) columns.push('tensorflow-gpu');
    if (tfjsNodeInstalled()) columns.push('tensorflow');
    else skipped.tensorflow = '@tensorflow/tfjs-node is not installed (scripts/install-tfjs-node.sh)';
    if (s.kind === 'stories260k') columns.push('wasm', 'cpu-js');
  }
  for (const c of columns) if (!COLUMNS.includes(c)) throw new Error(`unknown column ${c}`);
  if (s.kind === 'base')
    for (const c of ['wasm', 'cpu-js'] as const) {
      if (columns.includes(c)) columns = columns.filter((x) => x !== c);
      skipped[c] =
        c === 'wasm'
          ? 'not measured for this model: tfjs-wasm cannot train an LM (no UnsortedSegmentSum kernel) and is far too slow for a 135M model'
          : 'not measured for this model: the plain JS cpu kernels take ~40 s per stories260K step; a SmolLM2 step would take hours';
    }
  const loadBefore = loadAverage();
  log(
    `bench:lm ${s.name}: columns ${columns.join(', ')}; ${s.batch} × ${s.seq}, ${s.steps} step(s); load ${loadBefore}`,
  );

  // 1. auto's pick, in its own child (it measures the candidates itself unless it kept a decision).
  let auto: ChildRun<AutoResult> | null = null;
  if (!single) {
    const env: NodeJS.ProcessEnv = { ...process.env };
    if (env.CPREC_BACKEND) env.CPREC_BENCH_ENV_BACKEND = env.CPREC_BACKEND;
    delete env.CPREC_BACKEND;
    if (flag('remeasure-auto')) env.CPREC_BACKEND_REMEASURE = '1';
    auto = runChild<AutoResult>([...process.argv.slice(2), '--auto-child'], env, 3_600_000);
    if (auto.error) log(`auto child failed: ${auto.error}`);
    // explicit `--backend auto`: only the picked columns.
    if (explicitArg === 'auto' && auto.result) {
      const picks = [auto.result.train?.backend, auto.result.infer?.backend]
        .map((b) => String(b) as Column)
        .filter((b) => COLUMNS.includes(b));
      columns = [...new Set(picks)];
    }
  }

  // 2. every column, one child each.
  const backends: Record<
    string,
    ColumnResult & { wall_s: number; load_average: { before: number; after: number } }
  > = {};
  const failed: Record<string, string> = {};
  for (const column of columns) {
    const need = memoryNeedMb(s, column);
    const avail = memAvailableMb();
    if (need > avail && !flag('ignore-memory')) {
      skipped[column] = `needs ~${need} MB, MemAvailable was ${avail} MB (--ignore-memory runs it anyway)`;
      log(`[${column}] skipped: ${skipped[column]}`);
      continue;
    }
    const run = runChild<ColumnResult>(
      [...process.argv.slice(2), '--child', column],
      process.env,
      4 * 3_600_000,
    );
    if (run.result) backends[column] = { ...run.result, wall_s: run.wall_s, load_average: run.load_average };
    else {
      failed[column] = run.error ?? 'no result';
      log(`[${column}] failed: ${failed[column]}`);
    }
  }
  const loadAfterCprec = loadAverage();

  // Greedy continuations agree across columns (stories260K: the same golden text on every backend).
  const ref = backends.cpu ?? Object.values(backends)[0];
  if (ref?.greedy_ids)
    for (const b of Object.values(backends))
      (b as ColumnResult & { greedy_matches_reference?: boolean }).greedy_matches_reference =
        JSON.stringify(b.greedy_ids) === JSON.stringify(ref.greedy_ids);

  // 3. PyTorch, alone.
  let torchInputs: Record<string, unknown> | null = null;
  if (s.kind === 'stories260k') {
    const inp = storiesInputs(loadLlama2cCheckpoint(s.path).config.vocabSize);
    torchInputs = { prompt: inp.prompt, candidates: inp.candidates, generate_prompt: [1] };
    if (ref?.greedy_ids)
      torchInputs.check = { prompt: inp.checkPrompt, expect: ref.greedy_ids, from: ref.column };
    else if (process.env.CPREC_TORCH_PYTHON && !flag('no-torch'))
      throw new Error('no column produced a greedy continuation: the PyTorch conversion cannot be checked');
  }
  const torch = runTorch(s, torchInputs);
  if (torch.conversionFailed)
    throw new Error(
      'the PyTorch peer\'s converted stories260K does not continue the prompt as cprec does (see "CONVERSION CHECK FAILED" above): its numbers would not be comparable',
    );
  const t = torch.result;
  const loadAfterTorch = t ? loadAverage() : null;
  // The ids served the comparisons above; the text (stories260K) and the verdict stay in the result.
  for (const b of Object.values(backends)) delete (b as Partial<ColumnResult>).greedy_ids;

  for (const b of Object.values(backends))
    (b as ColumnResult & { ratio_vs_torch?: unknown }).ratio_vs_torch = {
      training: ratio(b.train_tokens_per_s, t?.train_tokens_per_s),
      ranking: ratio(t?.ranking_ms as number | undefined, b.ranking_ms), // > 1: cprec ranks faster
      generation: ratio(b.generate_tokens_per_s, t?.generate_tokens_per_s),
    };

  // 4. cprec = what auto picked (or the one column asked for).
  const trainPick: string | null = single ?? auto?.result?.train?.backend ?? null;
  const inferPick: string | null = single ?? auto?.result?.infer?.backend ?? null;
  const trainCol = trainPick ? (backends[trainPick] ?? null) : null;
  const inferCol = inferPick ? (backends[inferPick] ?? null) : null;
  const cprecIs = {
    training: trainPick,
    ranking: inferPick,
    generation: inferPick,
    rule: single
      ? `--backend ${single}: the one column measured`
      : "selectBackend('auto', { model, workload, shape }) in a child: training = its train pick at this batch × seq, ranking and generation = its infer pick at this prompt",
  };
  const common = {
    auto_pick: auto
      ? auto.result
        ? { ...auto.result, wall_s: auto.wall_s }
        : { error: auto.error, wall_s: auto.wall_s }
      : null,
    cprec_is: cprecIs,
    backends,
    failed,
    skipped,
    torch: t,
    torch_note: torch.note,
    cores: availableParallelism(),
    node: process.version,
    measured_at: new Date().toISOString(),
  };

  let result: Record<string, unknown>;
  if (s.kind === 'stories260k') {
    result = {
      // The keys the earlier single-backend lm.json had, for the backend auto picks.
      backend: trainPick,
      backend_source: trainCol?.backend_source ?? null,
      native_kernels: trainCol?.native_kernels ?? null,
      model: 'stories260K',
      lora_rank: 8,
      seq_len: s.seq,
      batch: s.batch,
      reduced_config: trainPick === 'cpu-js',
      train_steps_timed: trainCol?.train_steps_timed ?? s.steps,
      train_tokens_per_s: trainCol?.train_tokens_per_s ?? null,
      train_tokens_per_s_by_loss: {
        full_loss: trainCol?.train_tokens_per_s ?? null,
        answer_only: trainCol?.train_tokens_per_s_answer_only ?? null,
      },
      generate_tokens_per_s: {
        kv_cache: inferCol?.generate_tokens_per_s ?? null,
        no_cache: inferCol?.generate_tokens_per_s_no_cache ?? null,
      },
      score20_ms: inferCol?.ranking_ms ?? null,
      prompt_tokens: storiesInputs(loadLlama2cCheckpoint(s.path).config.vocabSize).prompt.length,
      inference_note:
        'ranking and generation on the base weights, before LoRA is attached (as the PyTorch peer)',
      train_tokens_per_s_torch: (t?.train_tokens_per_s as number | undefined) ?? null,
      ratio_vs_torch: {
        training: ratio(trainCol?.train_tokens_per_s, t?.train_tokens_per_s),
        ranking: ratio(t?.ranking_ms as number | undefined, inferCol?.ranking_ms),
        generation: ratio(inferCol?.generate_tokens_per_s, t?.generate_tokens_per_s),
      },
      load_average: { before: loadBefore, after_cprec: loadAfterCprec, after_torch: loadAfterTorch },
      tensors_after_dispose: trainCol?.tensors_after_dispose ?? null,
      ...common,
    };
  } else {
    result = {
      model: s.name,
      path: s.path,
      base_sha256: Object.values(backends)[0]?.base_sha256 ?? null,
      backend: trainPick,
      backend_source: trainCol?.backend_source ?? null,
      lora_rank: 8,
      seq_len: s.seq,
      batch: s.batch,
      train_steps_timed: s.steps,
      train_tokens_per_s: {
        cprec: trainCol?.train_tokens_per_s ?? null,
        torch: t?.train_tokens_per_s ?? null,
      },
      ranking_ms: { cprec: inferCol?.ranking_ms ?? null, torch: t?.ranking_ms ?? null },
      generate_tokens_per_s: inferCol?.generate_tokens_per_s ?? null,
      generate_tokens_per_s_torch: t?.generate_tokens_per_s ?? null,
      // The picked columns' child processes (each ran ranking, generation and training).
      peak_rss_mb:
        trainCol || inferCol ? Math.max(trainCol?.peak_rss_mb ?? 0, inferCol?.peak_rss_mb ?? 0) : null,
      peak_rss_mb_torch: t?.peak_rss_mb ?? null,
      ratio_vs_torch: {
        training: ratio(trainCol?.train_tokens_per_s, t?.train_tokens_per_s),
        // > 1 means cprec ranks faster.
        ranking: ratio(t?.ranking_ms as number | undefined, inferCol?.ranking_ms),
        generation: ratio(inferCol?.generate_tokens_per_s, t?.generate_tokens_per_s),
      },
      load_average: { before: loadBefore, after_cprec: loadAfterCprec, after_torch: loadAfterTorch },
      ...common,
    };
  }
  const out = resolve(
    arg(
      'out',
      resolve(__dirname, s.kind === 'stories260k' ? '../results/lm.json' : `../results/lm-${s.name}.json`),
    ),
  );
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
  process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  log(`wrote ${out}`);
  const target = ratio(trainCol?.train_tokens_per_s, t?.train_tokens_per_s);
  if (target !== null)
    log(
      `training: ${trainPick} ${trainCol?.train_tokens_per_s} vs PyTorch ${String(t?.train_tokens_per_s)} tokens/s = ${target}× (target ≥ 1.0×: ${target >= 1 ? 'met' : 'MISSED'})`,
    );
}

async function main(): Promise<void> {
  const s = settings();
  if (flag('child')) {
    const column = arg('child', '') as Column;
    if (!COLUMNS.includes(column)) throw new Error(`--child ${column}: not a column`);
    const r = await measureColumn(s, column);
    process.stdout.write(`\n${RESULT_MARK}${JSON.stringify(r)}\n`);
    return;
  }
  if (flag('auto-child')) {
    const r = await measureAuto(s);
    process.stdout.write(`\n${RESULT_MARK}${JSON.stringify(r)}\n`);
    return;
  }
  await parent();
}

main().catch((e: unknown) => {
  process.stderr.write(`lm bench failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
