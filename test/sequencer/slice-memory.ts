/**
 * Peak server memory of one sample query on generated data (docs/sequencer.md, "Corpus slices
 * for the trainer"). Creates a database of its own, ingests generated interactions (`--long`
 * users of `--length` items and `--short` users of 1..40 items, over three domains), rebuilds the
 * sequences, streams one mixed-sample query and one domain-sample query (defaults: window 20,
 * history cap 10) through SequenceRepository, and reads each query's `memory_usage` (its peak)
 * from system.query_log. Drops the database at the end.
 *
 *   node -r ts-node/register/transpile-only -r tsconfig-paths/register \
 *     test/sequencer/slice-memory.ts --long 20 --length 1200 --short 2000
 *
 * Needs the local ClickHouse (bash infra/local/up). Not a test: it asserts nothing.
 */
import { randomBytes } from 'node:crypto';
import { createClient } from '@clickhouse/client';
import {
  ClickHouse,
  clickHouseSettingsFromEnv,
  createClickHouse,
  CorpusSample,
  ident,
  InteractionRepository,
  runMigrations,
  SequenceRepository,
  SequenceStore,
  sql,
} from '@cprec/clickhouse';
import { generateInteractions, randomUsers } from './long-sequences';

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const value = Number(process.argv[i + 1]);
  if (!Number.isSafeInteger(value) || value < 0) throw new Error(`--${name} needs a non-negative integer`);
  return value;
}

async function main(): Promise<void> {
  const long = option('long', 20);
  const length = option('length', 1200);
  const short = option('short', 2000);
  const tag = randomBytes(4).toString('hex');
  const settings = { ...clickHouseSettingsFromEnv(), database: `cprec_slice_memory_${tag}` };
  const application = `cprec-slice-memory-${tag}`;
  await runMigrations(settings);
  const ch = createClickHouse(settings);
  // Same settings as the production client, plus logging of this client's queries.
  const logged = new ClickHouse(
    createClient({
      url: settings.url,
      database: settings.database,
      username: settings.username,
      password: settings.password,
      request_timeout: settings.requestTimeoutMs,
      application,
      clickhouse_settings: {
        send_progress_in_http_headers: 1,
        http_headers_progress_interval_ms: '10000',
        log_queries: 1,
      },
    }),
    settings,
  );
  try {
    const domains = ['beauty', 'toy', 'sport'];
    const users = [
      ...randomUsers('long-', long, { min: length, max: length }, domains, 1),
      ...randomUsers('short-', short, { min: 1, max: 40 }, domains, 2),
    ];
    const records = generateInteractions(users, 3);
    const interactions = new InteractionRepository(ch);
    for (let i = 0; i < records.length; i += 50_000)
      await interactions.insertBatch(records.slice(i, i + 50_000), 1000);
    await new SequenceStore(ch).rebuild({ safetyMarginMs: 0, nowMs: Date.now() + 60_000 });
    console.log(`${users.length} users (${long} of ${length} items), ${records.length} interactions`);

    const repo = new SequenceRepository(logged);
    const run = async (kind: string, stream: AsyncIterable<CorpusSample>): Promise<void> => {
      let n = 0;
      const started = Date.now();
      try {
        for await (const _sample of stream) n++;
        console.log(`${kind}: ${n} samples in ${Date.now() - started} ms`);
      } catch (err) {
        console.log(`${kind}: failed after ${Date.now() - started} ms: ${(err as Error).message}`);
      }
    };
    await run('mixed samples (windowSize 20)', repo.streamMixedSamples({ withTitles: false }));
    await run('domain samples (historyCap 10)', repo.streamDomainSamples({ withTitles: false }));

    await ch.command(sql`SYSTEM FLUSH LOGS`);
    // type 2: finished; 3, 4: failed before / while running.
    const rows = await ch.query<{
      type: number;
      memory_usage: string;
      query_duration_ms: string;
      kind: string;
    }>(
      sql`SELECT type, memory_usage, query_duration_ms,
  if(position(query, 'mixed_sequences') > 0, 'mixed', 'domain') AS kind
FROM ${ident('system', 'query_log')}
WHERE http_user_agent LIKE ${`%${application}%`} AND type > 1 AND query LIKE '%ARRAY JOIN%'
ORDER BY event_time, query_start_time`,
    );
    for (const r of rows)
      console.log(
        `query_log: ${r.kind} query, type ${r.type}, peak memory ` +
          `${(Number(r.memory_usage) / 1e6).toFixed(1)} MB, ${r.query_duration_ms} ms`,
      );
  } finally {
    await ch.command(sql`DROP DATABASE IF EXISTS ${ident(settings.database)}`);
    await logged.close();
    await ch.close();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
