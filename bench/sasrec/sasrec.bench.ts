/**
 * libs/sasrec benchmark: SASRec trained on a real target domain (Steam, 100k-user sample, 5-core)
 * for a time-boxed number of epochs; reports training sequences/s and HR@1 / NDCG@5 on
 * leave-one-out with 19 random negatives (items the user never interacted with, the SASRec
 * protocol), next to the popularity baseline and chance (1/20).
 *
 *   npx ts-node -r tsconfig-paths/register --transpile-only bench/sasrec/sasrec.bench.ts \
 *     [--data ../shared/data/steam_100000/derived/user2item.jsonl.gz] [--epochs 200] [--budget-min 10] \
 *     [--eval-users 2000] [--backend cpu|wasm|auto] [--no-native] [--hidden 64] [--max-len 50] [--blocks 2] \
 *     [--batch 128] [--out bench/results/sasrec.json]
 *
 * Training stops at whichever comes first, the epoch count or the time budget. Split protocol:
 * train on every user's sequence without its last item, test on the last item given the rest.
 */
import { createReadStream, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { createGunzip } from 'node:zlib';
import * as tf from '@tensorflow/tfjs-core';
import { BackendPreference, selectBackend } from '@cprec/lm';
import {
  evaluateOnSplits,
  ItemIndex,
  leaveOneOutSplits,
  Popularity,
  RankingMetrics,
  SasRec,
  SasRecConfig,
  SeededRandom,
} from '@cprec/sasrec';

const DEFAULT_DATA = resolve(__dirname, '../../../shared/data/steam_100000/derived/user2item.jsonl.gz');
const DEFAULT_OUT = resolve(__dirname, '../results/sasrec.json');

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

const log = (s: string): void => void process.stderr.write(`${s}\n`);

interface UserSequence {
  user_id: number;
  item_ids: number[];
  timestamps: number[];
}

/**
 * Tiny local reader for the SeqRecBenchmark `user2item.jsonl.gz` layout (one user per line, items
 * in time order). The proper loaders belong to libs/datasets; this keeps the bench standalone.
 */
async function readUserSequences(file: string): Promise<UserSequence[]> {
  const lines = createInterface({ input: createReadStream(file).pipe(createGunzip()), crlfDelay: Infinity });
  const users: UserSequence[] = [];
  for await (const line of lines) {
    if (line.trim() === '') continue;
    const row = JSON.parse(line) as UserSequence;
    if (!Array.isArray(row.item_ids)) throw new Error(`${file}: line without item_ids: ${line.slice(0, 80)}`);
    users.push(row);
  }
  return users;
}

function summarise(m: RankingMetrics): Record<string, number> {
  return {
    hr1: m.hitRate[1],
    hr5: m.hitRate[5],
    hr10: m.hitRate[10],
    ndcg5: m.ndcg[5],
    ndcg10: m.ndcg[10],
    meanRank: m.meanRank,
  };
}

async function main(): Promise<void> {
  const dataFile = resolve(arg('data', DEFAULT_DATA));
  if (!existsSync(dataFile)) {
    log(`skipping: ${dataFile} not found (real data lives in ../shared/data)`);
    return;
  }
  const backend = await selectBackend(
    arg('backend', process.env.CPREC_LM_BACKEND ?? 'cpu') as BackendPreference,
    {
      nativeKernels: !process.argv.includes('--no-native') && process.env.CPREC_NATIVE_KERNELS !== '0',
    },
  );
  log(
    `backend ${backend.backend} (${backend.source})${backend.notes.length ? `; ${backend.notes.join('; ')}` : ''}`,
  );

  const users = await readUserSequences(dataFile);
  const index = ItemIndex.fromSequences(users.map((u) => u.item_ids));
  const sequences = users.map((u) => index.encode(u.item_ids));
  const numItems = index.size;
  const interactions = sequences.reduce((n, s) => n + s.length, 0);
  log(`${dataFile}: ${users.length} users, ${numItems} items, ${interactions} interactions`);

  const seed = Number(arg('seed', '42'));
  const allSplits = leaveOneOutSplits(sequences, numItems, 19, seed);
  const evalUsers = Number(arg('eval-users', '2000'));
  // A fixed random subset keeps evaluation affordable on the plain JS backend.
  const splits = new SeededRandom(seed + 1).shuffle([...allSplits]).slice(0, evalUsers);
  const trainSequences = sequences.map((s) => s.slice(0, -1));

  const config: Partial<SasRecConfig> & { numItems: number } = {
    numItems,
    maxLen: Number(arg('max-len', '50')),
    hiddenDim: Number(arg('hidden', '64')),
    numBlocks: Number(arg('blocks', '2')),
    numHeads: 1,
    dropout: 0.2,
    learningRate: 1e-3,
    batchSize: Number(arg('batch', '128')),
    seed,
  };
  const epochs = Number(arg('epochs', '200'));
  const budgetMs = Number(arg('budget-min', '10')) * 60_000;

  const popularity = new Popularity({ numItems });
  await popularity.fit(trainSequences);
  const popularityMetrics = evaluateOnSplits(popularity, splits);
  log(
    `popularity: HR@1 ${popularityMetrics.hitRate[1].toFixed(4)} NDCG@5 ${popularityMetrics.ndcg[5].toFixed(4)}`,
  );

  const model = new SasRec(config);
  const tensorsBefore = tf.memory().numTensors;
  const fit = await model.fit(trainSequences, {
    epochs,
    timeBudgetMs: budgetMs,
    onEpochEnd: (r) =>
      log(
        `epoch ${r.epoch}: loss ${r.loss.toFixed(4)}, ${r.sequences} sequences in ${(r.elapsedMs / 1000).toFixed(1)} s`,
      ),
  });
  const trainSeconds = fit.elapsedMs / 1000;
  const sequencesPerSecond = fit.sequences / trainSeconds;
  const evalStarted = Date.now();
  const sasrecMetrics = evaluateOnSplits(model, splits);
  const evalSeconds = (Date.now() - evalStarted) / 1000;
  log(
    `sasrec: ${fit.epochs.length} epochs (${fit.sequences} sequences) in ${trainSeconds.toFixed(0)} s = ` +
      `${sequencesPerSecond.toFixed(1)} sequences/s; HR@1 ${sasrecMetrics.hitRate[1].toFixed(4)} ` +
      `NDCG@5 ${sasrecMetrics.ndcg[5].toFixed(4)} (${splits.length} users, eval ${evalSeconds.toFixed(0)} s)`,
  );
  const leakedTensors = tf.memory().numTensors - tensorsBefore;
  model.dispose();

  const out = resolve(arg('out', DEFAULT_OUT));
  mkdirSync(dirname(out), { recursive: true });
  const result = {
    bench: 'sasrec',
    date: new Date().toISOString(),
    machine: {
      cpus: cpus().length,
      cpuModel: cpus()[0]?.model,
      loadAverage1m: loadavg()[0],
      node: process.version,
    },
    backend: { name: backend.backend, source: backend.source, nativeKernels: backend.nativeKernels },
    dataset: { file: dataFile, users: users.length, items: numItems, interactions },
    protocol:
      'leave-one-out: last item as target, 19 negatives the user never interacted with; pessimistic ties',
    evalUsers: splits.length,
    config: model.config,
    training: {
      epochsRequested: epochs,
      budgetMinutes: budgetMs / 60_000,
      epochsCompleted: fit.epochs.length,
      lastEpochPartial:
        fit.epochs.length > 0 && fit.epochs[fit.epochs.length - 1].sequences < trainSequences.length,
      sequences: fit.sequences,
      seconds: trainSeconds,
      sequencesPerSecond,
      lossByEpoch: fit.epochs.map((e) => e.loss),
      leakedTensors,
    },
    evalSeconds,
    metrics: {
      sasrec: summarise(sasrecMetrics),
      popularity: summarise(popularityMetrics),
      random: { hr1: 1 / 20 },
    },
  };
  writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
  log(`wrote ${out}`);
}

main().catch((error: unknown) => {
  log(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exitCode = 1;
});
