/**
 * Model-only cost of one `/v1/recommend` request (no HTTP): ms per request for batches of 1, 4
 * and 8 twenty-candidate requests on stories260K, and with PROFILE=1 the kernels of one request.
 *   npx ts-node -r tsconfig-paths/register --transpile-only bench/serving/scoring-profile.ts
 * Knobs: BACKEND (auto), MAXTOK (192 prompt tokens), TITLE (12 tokens per title).
 */
import { resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { selectBackend } from '@cprec/lm';
import { RecommenderRuntime } from '@cprec/training';
import { storyItem, storyRequest } from './story-requests';
const MODEL = resolve(__dirname, '../../../shared/models/stories260K/stories260K.bin');
const TOK = resolve(__dirname, '../../../shared/models/stories260K/tok512.bin');
async function main() {
  const b = await selectBackend((process.env.BACKEND ?? 'auto') as 'auto');
  console.log('backend', b.backend, JSON.stringify(b).slice(0, 200));
  const maxTokens = Number(process.env.MAXTOK ?? 192);
  const rt = await RecommenderRuntime.fromCheckpoint(MODEL, TOK, {
    budget: { maxTokens, maxTitleTokens: Number(process.env.TITLE ?? 12) },
  });
  const rec = rt.loadBase();
  const { encodePrompt } = await import('@cprec/training');
  const e = encodePrompt({ ...storyRequest(0), target: storyItem(5) }, rec.settings);
  console.log(
    'prompt tokens',
    e.inputIds.length,
    'history kept',
    e.historyItemIds.length,
    'title tokens',
    e.titleTokens,
  );
  for (let i = 0; i < 5; i++) rec.rank(storyRequest(i));
  for (const bs of [1, 4, 8]) {
    const n = 24 / bs;
    const t = performance.now();
    const cpu = process.cpuUsage();
    for (let i = 0; i < n; i++) rec.rankBatch(Array.from({ length: bs }, (_, j) => storyRequest(i + j)));
    const used = process.cpuUsage(cpu);
    console.log(
      `batch ${bs}: ${((performance.now() - t) / 24).toFixed(1)} ms/request wall, ${((used.user + used.system) / 1000 / 24).toFixed(1)} ms/request CPU`,
    );
  }
  if (process.env.PROFILE) {
    const p = await tf.profile(() => {
      rec.rank(storyRequest(0));
    });
    const agg = new Map<string, number>();
    for (const k of p.kernels) agg.set(k.name, (agg.get(k.name) ?? 0) + (k.kernelTimeMs as number));
    const top = [...p.kernels]
      .sort((a, b) => (b.kernelTimeMs as number) - (a.kernelTimeMs as number))
      .slice(0, 12);
    for (const k of top)
      console.log(k.name, (k.kernelTimeMs as number).toFixed(2), JSON.stringify(k.inputShapes));
    console.log(
      [...agg]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 15)
        .map(([k, v]) => `${k}:${v.toFixed(1)}`)
        .join(' '),
      'kernels',
      p.kernels.length,
    );
  }
}
main();
