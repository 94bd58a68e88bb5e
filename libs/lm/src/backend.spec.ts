import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import {
  AUTO_MEMORY_FRACTION,
  autoDecisions,
  backendCacheFile,
  backendReport,
  machineFingerprint,
  measureOnActiveBackend,
  measurementShape,
  modelShapeOf,
  selectBackend,
  setAutoSeamForTests,
  tensorflowInfo,
  tfjsNodeInstalled,
  type BackendMeasure,
} from './backend';
import { generate } from './generate';
import { LlamaModel } from './model';
import { SMOLLM2_GGUF, smollm2Available } from './testing/smollm2';
import { STORIES260K_CHECKPOINT, stories260kAvailable } from './testing/stories260k';
import { maxAbsDiff, tinyConfig } from './testing/tiny';
import { randomWeights } from './weights';

describe('backend selection', () => {
  const weights = randomWeights(tinyConfig(), 41);
  const ids = [[1, 2, 3, 4, 5, 6, 7]];
  const run = (): { logits: Float32Array; greedy: number[] } => {
    const model = new LlamaModel(weights);
    const logits = tf.tidy(
      () => model.forward(ids, { attentionMask: [[0, 1, 1, 1, 1, 1, 1]] }).dataSync() as Float32Array,
    );
    const greedy = generate(model, [1, 2, 3], { maxNewTokens: 8 });
    model.dispose();
    return { logits, greedy };
  };

  it('falls back to the plain cpu backend when asked to skip native kernels, and reports it', async () => {
    const r = await selectBackend('cpu', { nativeKernels: false });
    expect(r.backend).toBe('cpu');
    expect(tf.getBackend()).toBe('cpu');
    expect(r.nativeKernels).toBe(false);
    expect(r.notes).toContain('native kernels disabled by request');
    expect(backendReport()).toBe(r);
  });

  it('the same model runs on wasm with the cpu results', async () => {
    await selectBackend('cpu', { nativeKernels: false });
    const cpu = run();
    const r = await selectBackend('wasm');
    expect(r.backend).toBe('wasm');
    const wasm = run();
    expect(maxAbsDiff(wasm.logits, cpu.logits)).toBeLessThan(1e-4);
    expect(wasm.greedy).toEqual(cpu.greedy);
  });
});

/**
 * `tensorflow` is @tensorflow/tfjs-node (scripts/install-tfjs-node.sh). Without it these cases are
 * skipped with a message, except in CI where the script has run and its absence is a failure.
 */
function tensorflowOrSkip(): boolean {
  if (tfjsNodeInstalled()) return true;
  const why = '@tensorflow/tfjs-node is not installed (bash scripts/install-tfjs-node.sh installs it)';
  if (process.env.CI === 'true') throw new Error(`${why}: required in CI`);
  console.warn(`${why}: tensorflow backend cases skipped`);
  return false;
}
const describeTf = tensorflowOrSkip() ? describe : describe.skip;

describeTf('the tensorflow backend (tfjs-node from the TensorFlow wheel)', () => {
  it("selectBackend('tensorflow') makes tfjs run on TensorFlow and says which package provides it", async () => {
    const r = await selectBackend('tensorflow');
    expect(r).toMatchObject({ backend: 'tensorflow', source: '@tensorflow/tfjs-node', tfjsNode: true });
    expect(tf.getBackend()).toBe('tensorflow');
    const x = tf.tensor2d([
      [1, 2],
      [3, 4],
    ]);
    expect(Array.from(tf.matMul(x, x).dataSync())).toEqual([7, 10, 15, 22]);
    tf.dispose(x);
    await selectBackend('cpu');
    expect(tf.getBackend()).toBe('cpu');
  });

  it('reports the TensorFlow version, thread pools and instruction sets (cprec doctor)', () => {
    const info = tensorflowInfo();
    expect(info).not.toBeNull();
    expect(info).toMatchObject({
      package: '@tensorflow/tfjs-node',
      packageVersion: '4.22.0',
      tensorflowVersion: '2.18.1',
    });
    expect(info?.intraOpThreads).toBeGreaterThan(0);
    expect(info?.interOpThreads).toBeGreaterThan(0);
    expect(info?.installStamp).toMatch(/wheel=810c75d7/);
    if (process.arch === 'x64') expect(info?.isa).toContain('avx');
  });
});

describe('auto: the backend measured fastest per model and workload, cached per machine', () => {
  let dir: string;
  const saved = { ...process.env };
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'cprec-backend-'));
    process.env.CPREC_BACKEND_CACHE = join(dir, 'backend-auto.json');
    delete process.env.CPREC_BACKEND;
    delete process.env.CPREC_BACKEND_REMEASURE;
    delete process.env.CPREC_BASE_MODEL;
  });
  afterEach(() => {
    setAutoSeamForTests(null);
    process.env = { ...saved };
    rmSync(dir, { recursive: true, force: true });
  });

  /** Fixed timings per backend, counting the calls. */
  function fixed(ms: Record<string, number>): { measure: BackendMeasure; calls: string[] } {
    const calls: string[] = [];
    return {
      calls,
      measure: (b, model, workload) => {
        calls.push(`${b}:${model.dim}:${workload}`);
        // The backend being measured is the active one.
        expect(tf.getBackend()).toBe(b);
        return Promise.resolve(ms[b]);
      },
    };
  }

  it('picks the faster backend, measures once and keeps the decision with the machine fingerprint', async () => {
    const m = fixed({ wasm: 10, cpu: 20 });
    setAutoSeamForTests({ candidates: ['cpu', 'wasm'], measure: m.measure });
    const first = await selectBackend('auto', { model: tinyConfig(), workload: 'train' });
    expect(first.backend).toBe('wasm');
    expect(tf.getBackend()).toBe('wasm');
    expect(first.auto).toMatchObject({ backend: 'wasm', from: 'measured', msPerRun: { wasm: 10, cpu: 20 } });
    // Two rounds in alternating order (the second because the first was cheap).
    expect(m.calls).toEqual(['cpu:16:train', 'wasm:16:train', 'wasm:16:train', 'cpu:16:train']);

    const again = await selectBackend('auto', { model: tinyConfig(), workload: 'train' });
    expect(again.auto).toMatchObject({ backend: 'wasm', from: 'cached' });
    expect(m.calls).toHaveLength(4);

    const kept = JSON.parse(readFileSync(backendCacheFile(), 'utf8')) as { fingerprint: string };
    expect(kept.fingerprint).toBe(machineFingerprint().hash);
    expect(autoDecisions()).toMatchObject({
      current: true,
      decisions: [{ backend: 'wasm', workload: 'train' }],
    });
  });

  it('decides per model shape and per workload', async () => {
    setAutoSeamForTests({ candidates: ['cpu', 'wasm'], measure: fixed({ wasm: 10, cpu: 20 }).measure });
    await selectBackend('auto', { model: tinyConfig(), workload: 'train' });
    setAutoSeamForTests({ candidates: ['cpu', 'wasm'], measure: fixed({ wasm: 30, cpu: 20 }).measure });
    expect((await selectBackend('auto', { model: tinyConfig(), workload: 'infer' })).backend).toBe('cpu');
    expect((await selectBackend('auto', { model: tinyConfig({ dim: 32 }), workload: 'train' })).backend).toBe(
      'cpu',
    );
    // The first decision still stands for its own model and workload.
    expect((await selectBackend('auto', { model: tinyConfig(), workload: 'train' })).auto).toMatchObject({
      backend: 'wasm',
      from: 'cached',
    });
    expect(autoDecisions().decisions).toHaveLength(3);
    // …and per shape: TensorFlow wins small training steps here and loses big ones.
    const shapes: string[] = [];
    setAutoSeamForTests({
      candidates: ['cpu', 'wasm'],
      measure: (b, _model, _workload, shape) => {
        shapes.push(`${shape.batch}x${shape.seq}`);
        return Promise.resolve(b === 'wasm' ? 1 : 2);
      },
    });
    const small = await selectBackend('auto', {
      model: tinyConfig(),
      workload: 'train',
      shape: { batch: 1, seq: 16 },
    });
    expect(small.auto).toMatchObject({ backend: 'wasm', from: 'measured', shape: { batch: 1, seq: 16 } });
    expect(new Set(shapes)).toEqual(new Set(['1x16']));
    expect(autoDecisions().decisions).toHaveLength(4);
  });

  it("measures at the caller's shape, else the benchmark shapes, within the context", () => {
    const c = tinyConfig({ maxSeqLen: 512 });
    expect(measurementShape(c, 'train')).toEqual({ batch: 4, seq: 256 });
    expect(measurementShape(c, 'infer')).toEqual({ batch: 1, seq: 280 });
    expect(measurementShape(c, 'train', { batch: 8, seq: 1024 })).toEqual({ batch: 8, seq: 512 });
    expect(measurementShape(tinyConfig(), 'infer')).toEqual({ batch: 1, seq: 56 });
  });

  it('measures again when the machine or libraries change (here: a thread setting)', async () => {
    const m = fixed({ wasm: 10, cpu: 20 });
    setAutoSeamForTests({ candidates: ['cpu', 'wasm'], measure: m.measure });
    const before = machineFingerprint().hash;
    await selectBackend('auto', { model: tinyConfig() });
    process.env.TF_NUM_INTRAOP_THREADS = '1';
    expect(machineFingerprint().hash).not.toBe(before);
    expect(autoDecisions().current).toBe(false);
    expect((await selectBackend('auto', { model: tinyConfig() })).auto?.from).toBe('measured');
    expect(m.calls).toHaveLength(8);
    process.env.CPREC_BACKEND_REMEASURE = '1';
    await selectBackend('auto', { model: tinyConfig() });
    expect(m.calls).toHaveLength(12);
  });

  it('CPREC_BACKEND wins over auto without measuring anything; a wrong value is a clear error', async () => {
    const m = fixed({ wasm: 10, cpu: 20 });
    setAutoSeamForTests({ candidates: ['cpu', 'wasm'], measure: m.measure });
    process.env.CPREC_BACKEND = 'cpu';
    const r = await selectBackend('auto', { model: tinyConfig() });
    expect(r.backend).toBe('cpu');
    expect(r.auto).toMatchObject({ backend: 'cpu', from: 'env' });
    expect(r.notes).toContain('CPREC_BACKEND=cpu');
    expect(m.calls).toHaveLength(0);
    // An explicit preference is the caller's choice: the variable only replaces `auto`.
    expect((await selectBackend('wasm')).backend).toBe('wasm');
    process.env.CPREC_BACKEND = 'gpu';
    await expect(selectBackend('auto')).rejects.toThrow(
      /CPREC_BACKEND=gpu is not a backend; use one of auto, /,
    );
  });

  it('the cpu backend keeps the job unless another is more than 5% faster (noise does not flip decisions)', async () => {
    setAutoSeamForTests({ candidates: ['cpu', 'wasm'], measure: fixed({ wasm: 20, cpu: 20.9 }).measure });
    expect((await selectBackend('auto', { model: tinyConfig() })).backend).toBe('cpu');
    setAutoSeamForTests({ candidates: ['cpu', 'wasm'], measure: fixed({ wasm: 20, cpu: 21.1 }).measure });
    expect((await selectBackend('auto', { model: tinyConfig({ dim: 32 }) })).backend).toBe('wasm');
  });

  it('with no model named (no opts.model, no $CPREC_BASE_MODEL) it keeps cpu without measuring', async () => {
    const m = fixed({ wasm: 10, cpu: 20 });
    setAutoSeamForTests({ candidates: ['cpu', 'wasm'], measure: m.measure });
    const r = await selectBackend('auto');
    expect(r.backend).toBe('cpu');
    expect(r.auto).toMatchObject({ backend: 'cpu', from: 'no-model' });
    expect(m.calls).toHaveLength(0);
  });

  it("leaves out a backend that would hold more than 40% of the machine's memory (cpu stays eligible)", async () => {
    const huge = Math.round(totalmem() / 2 ** 20); // all of it
    setAutoSeamForTests({
      candidates: ['cpu', 'wasm'],
      measure: (b) => Promise.resolve(b === 'wasm' ? { ms: 1, rssMb: huge } : { ms: 10, rssMb: huge }),
    });
    const r = await selectBackend('auto', { model: tinyConfig() });
    expect(r.backend).toBe('cpu');
    expect(r.auto).toMatchObject({
      rssMb: { wasm: huge, cpu: huge },
      memoryLimitMb: Math.round((AUTO_MEMORY_FRACTION * totalmem()) / 2 ** 20),
    });
    expect(r.notes.join('\n')).toMatch(
      /auto: wasm left out: it would hold ~\d+ MB, more than 40% of this machine's \d+ MB/,
    );
  });

  it('with one candidate there is nothing to measure', async () => {
    const m = fixed({ cpu: 20 });
    setAutoSeamForTests({ candidates: ['cpu'], measure: m.measure });
    const r = await selectBackend('auto', { model: tinyConfig() });
    expect(r.auto).toMatchObject({ backend: 'cpu', from: 'only' });
    expect(m.calls).toHaveLength(0);
  });

  it('a backend that fails its measurement is left out with a note', async () => {
    setAutoSeamForTests({
      candidates: ['cpu', 'wasm'],
      measure: (b) => (b === 'wasm' ? Promise.reject(new Error('kernel missing')) : Promise.resolve(50)),
    });
    const r = await selectBackend('auto', { model: tinyConfig() });
    expect(r.backend).toBe('cpu');
    expect(r.notes).toContain('auto: wasm failed the measurement: kernel missing');
  });

  it('the real measurement: prefill + 20 candidates, and a LoRA step, per backend, leaving no tensors', async () => {
    setAutoSeamForTests({ candidates: ['cpu', 'wasm'] });
    const n = tf.memory().numTensors;
    const r = await selectBackend('auto', { model: tinyConfig(), workload: 'infer' });
    const times = r.auto?.msPerRun ?? {};
    expect({ measured: Object.keys(times).sort(), notes: r.notes }).toEqual({
      measured: ['cpu', 'wasm'],
      notes: [],
    });
    for (const ms of Object.values(times)) expect(ms).toBeGreaterThan(0);
    expect(r.backend).toBe(Number(times.cpu) <= Number(times.wasm) ? 'cpu' : 'wasm');
    // Training is measured on the backends that can train (wasm lacks UnsortedSegmentSum's kernel).
    for (const b of tfjsNodeInstalled() ? (['cpu', 'tensorflow'] as const) : (['cpu'] as const)) {
      await selectBackend(b);
      const cost = await measureOnActiveBackend(tinyConfig(), 'train');
      expect(cost.ms).toBeGreaterThan(0);
      expect(cost.rssMb).toBeGreaterThan(0);
    }
    expect(tf.memory().numTensors).toBe(n);
  });

  it("reads a base model's shape from its header, and $CPREC_BASE_MODEL names the model when none is given", async () => {
    if (stories260kAvailable())
      expect(await modelShapeOf(STORIES260K_CHECKPOINT)).toMatchObject({
        dim: 64,
        hiddenDim: 172,
        nLayers: 5,
        nHeads: 8,
        nKvHeads: 4,
        vocabSize: 512,
        tiedClassifier: true,
      });
    if (!smollm2Available()) return;
    expect(await modelShapeOf(SMOLLM2_GGUF)).toMatchObject({
      dim: 576,
      hiddenDim: 1536,
      nLayers: 30,
      nHeads: 9,
      nKvHeads: 3,
      vocabSize: 49152,
      tiedClassifier: true,
    });
    const seen: number[] = [];
    setAutoSeamForTests({
      candidates: ['cpu', 'wasm'],
      measure: (b, model) => {
        seen.push(model.dim);
        return Promise.resolve(b === 'cpu' ? 1 : 2);
      },
    });
    process.env.CPREC_BASE_MODEL = SMOLLM2_GGUF;
    const r = await selectBackend('auto');
    expect(seen).toEqual([576, 576, 576, 576]);
    expect(r.auto).toMatchObject({ model: SMOLLM2_GGUF, backend: 'cpu' });
  });
});
