import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { fullConfig, type ContinualConfig } from './config';

const DAY_S = 86_400;

/**
 * A tiny `amazon2014-linked`-style folder: users active in two domains (some in one), their
 * interactions spread over ~10 months from 2012-09-01 so that the history and two 60-day windows
 * all hold data; short word titles a word tokenizer knows.
 */
export function writeTinyLinked(dir: string): { titles: string[]; startDate: string } {
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
  const domains = ['beauty', 'toy'];
  const items = domains.flatMap((d) =>
    Array.from({ length: 30 }, (_, i) => {
      const title = `${words[i % 12]} ${words[(i * 5 + d.length) % 12]} ${d} ${i}`;
      titles.push(title);
      return { domain: d, asin: `A${d}${i}`, title };
    }),
  );
  let rand = 987654;
  const next = (n: number): number => {
    rand = (rand * 1103515245 + 12345) % 2147483648;
    return rand % n;
  };
  const start = Date.UTC(2012, 8, 1) / 1000;
  const rows: unknown[] = [];
  let pos = 0;
  for (let u = 0; u < 40; u++) {
    const first = start + next(60) * DAY_S;
    const count = 10 + (u % 5);
    // Three users in 'beauty' only: the cross-domain filter leaves them out.
    const userDomains = u < 3 ? ['beauty'] : domains;
    let ts = first;
    for (let k = 0; k < count; k++) {
      ts += (5 + next(30)) * DAY_S;
      const d = userDomains[(u + k) % userDomains.length]!;
      rows.push({ user: `U${u}`, domain: d, asin: `A${d}${(u * 3 + k * 2) % 30}`, ts, pos: pos++ });
    }
  }
  const gz = (file: string, values: unknown[]): void => {
    mkdirSync(join(file, '..'), { recursive: true });
    writeFileSync(file, gzipSync(values.map((r) => JSON.stringify(r)).join('\n') + '\n'));
  };
  gz(join(dir, 'amazon2014-linked', 'derived', 'items.jsonl.gz'), items);
  gz(join(dir, 'amazon2014-linked', 'derived', 'interactions.jsonl.gz'), rows);
  return { titles, startDate: '2013-01-01' };
}

/** Every stage kind in seconds on the tiny data (dropout 0: a resumed run computes what a straight one does). */
export function tinyContinualConfig(root: string, dataDir: string): ContinualConfig {
  const full = fullConfig();
  const lora = { rank: 2, alpha: 4, dropout: 0 };
  return {
    ...full,
    name: 'tiny',
    stateDir: join(root, 'state'),
    resultsDir: join(root, 'results'),
    dataDir,
    source: { folder: 'amazon2014-linked', domains: ['beauty', 'toy'] },
    targets: ['beauty', 'toy'],
    base: join(root, 'tiny-base'),
    protocol: { candidates: 20, historyLength: 10, budget: { maxTokens: 384, maxTitleTokens: 4 } },
    startDate: '2013-01-01',
    windowDays: 60,
    windows: 2,
    casesPerDomain: 4,
    cpt: {
      ...full.cpt,
      batchSize: 2,
      microBatchSize: 2,
      initialSamples: 4,
      samplesPerWindow: 2,
      replayFraction: 0.5,
      annealSteps: 1,
      checkpointEvery: 1,
      lora,
      etaHigh: 1e-2,
      etaLow: 1e-4,
    },
    sft: {
      ...full.sft,
      samples: 2,
      batchSize: 2,
      microBatchSize: 2,
      learningRate: 1e-2,
      lora,
      checkpointEvery: 1,
    },
    sasrec: {
      maxLen: 10,
      hiddenDim: 8,
      numBlocks: 1,
      numHeads: 1,
      dropout: 0,
      learningRate: 1e-2,
      batchSize: 16,
      epochs: 1,
      timeBudgetMinutes: 5,
    },
    eval: { generation: false, scoreBatchSize: 20, batchCases: 2 },
  };
}
