import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { randomWeights } from '@cprec/lm';
import { WordTokenizer } from '@cprec/training/testing';
import { fullConfig, type PaperConfig } from './config';
import { fromWeights, type LmBase } from './lm';

/**
 * Tiny real-format datasets for the harness tests: SeqRecBenchmark-style folders (two CPT
 * domains and the Steam target) and an `amazon2014-linked`-style folder with cross-domain users,
 * all written as the gzipped JSON lines the loaders read. Titles are short word sequences a word
 * tokenizer knows.
 */
export function writeTinyData(dir: string): { titles: string[] } {
  const words = [
    'red',
    'blue',
    'fast',
    'slow',
    'big',
    'small',
    'game',
    'cream',
    'shirt',
    'lamp',
    'deluxe',
    'pack',
  ];
  const titles: string[] = [];
  const title = (domain: string, i: number): string => {
    const t = `${words[i % 12]} ${words[(i * 7 + domain.length) % 12]} ${domain} ${i}`;
    titles.push(t);
    return t;
  };
  const gz = (file: string, rows: unknown[]): void => {
    mkdirSync(join(file, '..'), { recursive: true });
    writeFileSync(file, gzipSync(rows.map((r) => JSON.stringify(r)).join('\n') + '\n'));
  };
  let rand = 12345;
  const next = (n: number): number => {
    rand = (rand * 1103515245 + 12345) % 2147483648;
    return rand % n;
  };
  const seqrec = (folder: string, domain: string, users: number, items: number, length: number): void => {
    gz(
      join(dir, folder, 'derived', 'item2title.jsonl.gz'),
      Array.from({ length: items }, (_, i) => ({ item_id: 100 + i, title: title(domain, i) })),
    );
    gz(
      join(dir, folder, 'derived', 'user2item.jsonl.gz'),
      Array.from({ length: users }, (_, u) => {
        // A walk through neighbouring items: enough structure for the recommenders to learn.
        const start = next(items);
        const ids = Array.from(
          { length: length + (u % 3) },
          (_, k) => 100 + ((start + k * (1 + (u % 2))) % items),
        );
        return { user_id: 100 + u, item_ids: ids, timestamps: ids.map((_, k) => 86_400 * (1000 + u + k)) };
      }),
    );
  };
  seqrec('amazon2014-beauty', 'beauty', 30, 30, 6);
  seqrec('amazon2014-toy', 'toy', 30, 30, 6);
  seqrec('steam_100000', 'steam', 40, 36, 6);
  const linked = join(dir, 'amazon2014-linked', 'derived');
  const domains = ['beauty', 'toy'];
  gz(
    join(linked, 'items.jsonl.gz'),
    domains.flatMap((d) =>
      Array.from({ length: 30 }, (_, i) => ({ domain: d, asin: `A${d}${i}`, title: title(`${d}x`, i) })),
    ),
  );
  const rows: unknown[] = [];
  let pos = 0;
  for (let u = 0; u < 30; u++)
    for (let k = 0; k < 8; k++) {
      const d = domains[(u + k) % 2]!;
      rows.push({
        user: `U${u}`,
        domain: d,
        asin: `A${d}${(u * 3 + k) % 30}`,
        ts: 86_400 * (2000 + k),
        pos: pos++,
      });
    }
  gz(join(linked, 'interactions.jsonl.gz'), rows);
  return { titles };
}

/** A one-layer random LLaMA over a word tokenizer that knows every title and template word. */
export function tinyLm(titles: readonly string[]): LmBase {
  const tokenizer = WordTokenizer.forTitles(titles);
  const weights = randomWeights(
    {
      dim: 16,
      hiddenDim: 32,
      nLayers: 1,
      nHeads: 2,
      nKvHeads: 1,
      vocabSize: tokenizer.vocabSize,
      maxSeqLen: 384,
      normEps: 1e-5,
      ropeTheta: 10000,
      tiedClassifier: true,
    },
    7,
  );
  return fromWeights(weights, tokenizer, 'tiny-random', 't'.repeat(64));
}

/** Every stage kind on the tiny data, in seconds; dropout 0 so a resumed run computes what a straight one does. */
export function tinyConfig(root: string): PaperConfig {
  const full = fullConfig();
  const lora = { rank: 2, alpha: 4, dropout: 0 };
  return {
    ...full,
    name: 'tiny',
    stateDir: join(root, 'state'),
    resultsDir: join(root, 'results'),
    dataDir: join(root, 'data'),
    base: join(root, 'tiny-base'),
    protocol: { candidates: 20, historyLength: 10, budget: { maxTokens: 384, maxTitleTokens: 4 } },
    seeds: [1, 2],
    ablationSeeds: [1],
    targets: ['steam'],
    ablationTargets: ['steam'],
    fewShotTargets: ['steam'],
    testUsers: 6,
    validationUsers: 20,
    cptDomains: ['amazon2014-beauty', 'amazon2014-toy'],
    mixedSource: { folder: 'amazon2014-linked', domains: ['beauty', 'toy'] },
    cpt: {
      ...full.cpt,
      batchSize: 2,
      stableSteps: 4,
      annealSteps: 2,
      checkpointEvery: 1,
      lora,
      etaHigh: 1e-2,
      etaLow: 1e-4,
    },
    sft: {
      ...full.sft,
      samples: 6,
      fewShot: [2],
      batchSize: 2,
      epochs: 1,
      learningRate: 1e-2,
      lora,
      checkpointEvery: 1,
    },
    recommenders: {
      seeds: [1],
      sasrec: {
        maxLen: 10,
        hiddenDim: 8,
        numBlocks: 1,
        numHeads: 1,
        dropout: 0,
        learningRate: 1e-2,
        batchSize: 16,
      },
      gru4rec: { maxLen: 10, embeddingDim: 8, hiddenDim: 8, dropout: 0, learningRate: 1e-2, batchSize: 16 },
      maxEpochs: 2,
      patience: 1,
      timeBudgetMinutes: 60,
    },
    eval: { scoreBatchSize: 20, batchCases: 4 },
  };
}
