/**
 * CPU time per 20-candidate ranking (5-item history) on stories260K with a merged LoRA r=8 adapter,
 * through serving's own runtime (servingRuntime → RecommenderRuntime.load → rankBatch), in-process:
 * no Kafka, ClickHouse or HTTP. CPU time (process.cpuUsage) is robust to machine load; the
 * fused-decoder counter shows whether the native block ran (nLayers calls per forward).
 *   npx ts-node -r tsconfig-paths/register --transpile-only bench/serving/ranking-cpu-probe.ts
 * Knobs: BACKEND (auto), N (rankings, 60), MERGE (1), MAXTOK (SERVING_MAX_TOKENS, 0 = serving's
 * default: the base's context, 512 on stories260K — a 402-token prompt with all 5 history items;
 * the budget of 256 that bench:serving ran with before db8e9db keeps 1 item in ~247 tokens).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import {
  attachLora,
  LlamaModel,
  loadBaseModel,
  saveLoraAdapter,
  selectBackend,
  type BackendPreference,
} from '@cprec/lm';
import { encodePrompt } from '@cprec/training';
import { loadNativeAddon } from '../../libs/lm/src/kernels/native-addon';
import type { ServingConfig } from '../../services/serving/src/config';
import { loadSmokeTested, servingRuntime } from '../../services/serving/src/scoring/serving-runtime';
import { storyItem, storyRequest } from './story-requests';

process.env.OPENBLAS_NUM_THREADS ??= '1'; // as services/serving/src/main.ts
const MODEL = resolve(__dirname, '../../../shared/models/stories260K/stories260K.bin');
const TOK = resolve(__dirname, '../../../shared/models/stories260K/tok512.bin');

async function main(): Promise<void> {
  const backend = await selectBackend((process.env.BACKEND ?? 'auto') as BackendPreference, {
    model: MODEL,
    workload: 'infer',
  });
  const base = await loadBaseModel({ model: MODEL, tokenizer: TOK });
  const addon = loadNativeAddon().addon;
  let fusedCalls = 0;
  if (addon?.decoderLayer) {
    const inner = addon.decoderLayer.bind(addon);
    (addon as { decoderLayer: typeof inner }).decoderLayer = (args) => {
      fusedCalls++;
      return inner(args);
    };
  }

  // The bench's adapter: LoRA r=8, alpha 16, small random B so the merge changes the weights.
  const dir = mkdtempSync(join(tmpdir(), 'cprec-probe-'));
  const src = new LlamaModel(base.weights);
  attachLora(src, { rank: 8, alpha: 16, dropout: 0 }, 1);
  let s = 2;
  const rand = () => (s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32;
  for (const [name, v] of src.loraVariables())
    if (name.endsWith('lora_B'))
      v.assign(
        tf.tensor(
          Float32Array.from({ length: v.size }, () => (rand() - 0.5) * 0.04),
          v.shape,
        ),
      );
  saveLoraAdapter(src, dir, { baseModelId: base.baseModelId, baseChecksum: base.baseChecksum });
  src.dispose();

  const config = {
    SERVING_MAX_TOKENS: Number(process.env.MAXTOK ?? 0),
    SERVING_MAX_TITLE_TOKENS: 12,
    SERVING_MERGE_LORA: Number(process.env.MERGE ?? 1),
    SERVING_MAX_ROWS_PER_FORWARD: 64,
  } as ServingConfig;
  const runtime = servingRuntime(base, config);
  const baseRec = loadSmokeTested(runtime, 'base', null); // serving holds the base too
  const rec = loadSmokeTested(runtime, 'probe-lora-r8', dir);

  const e = encodePrompt({ ...storyRequest(0), target: storyItem(5) }, rec.settings);
  console.log(
    `prompt tokens ${e.inputIds.length}, history kept ${e.historyItemIds.length}, title tokens ${e.titleTokens}`,
  );
  for (let i = 0; i < 5; i++) rec.rank(storyRequest(i));
  const n = Number(process.env.N ?? 60);
  const measure = (label: string, r: typeof rec) => {
    fusedCalls = 0;
    const t = performance.now();
    const cpu = process.cpuUsage();
    for (let i = 0; i < n; i++) r.rank(storyRequest(i));
    const used = process.cpuUsage(cpu);
    console.log(
      `${label}: ${((used.user + used.system) / 1000 / n).toFixed(1)} ms CPU/ranking, ` +
        `${((performance.now() - t) / n).toFixed(1)} ms wall/ranking, fused decoder calls/ranking ${(fusedCalls / n).toFixed(1)}`,
    );
  };
  console.log(
    `backend ${backend.backend}, native ${backend.nativeKernels ?? '?'}, loadavg ${loadavg()
      .map((x) => x.toFixed(2))
      .join(' ')}, merge ${config.SERVING_MERGE_LORA}, layers ${base.weights.config.nLayers}`,
  );
  measure('adapter (merged)', rec);
  measure('base', baseRec);
  rec.dispose();
  baseRec.dispose();
  runtime.dispose();
  rmSync(dir, { recursive: true, force: true });
}

void main();
