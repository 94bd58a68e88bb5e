import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import {
  ClickHouse,
  clickHouseSettingsFromEnv,
  createClickHouse,
  ident,
  InteractionRecord,
  InteractionRepository,
  runMigrations,
  SequenceRepository,
  SequenceStore,
  sql,
} from '@cprec/clickhouse';
import { hasValidMixedSequence, interactionFromEvent, MixedSequenceBuilder } from '@cprec/corpus';
import { openDataset } from '@cprec/datasets';
import { requireInfra, uniqueName } from '../support/infra';
import { REPO_ROOT } from '../support/service-process';

/**
 * The real linked Amazon data (4 domains, ≈0.94M interactions, cross-domain user ids): loaded into
 * a database of its own, sequences built in ClickHouse, and the number of users with a valid mixed
 * sequence compared with a direct computation by the pure libs/corpus functions.
 */
const DATA = resolve(REPO_ROOT, '..', 'shared', 'data', 'amazon2014-linked');
const present = existsSync(resolve(DATA, 'derived', 'interactions.jsonl.gz'));
const TITLED = ['beauty', 'clothing', 'toy'];

if (!present) {
  console.warn(`skipping amazon2014-linked sequencer test: ${DATA} is absent`);
}
const describeIfData = present ? describe : describe.skip;

describeIfData('sequencer on the linked Amazon data', () => {
  const database = uniqueName('cprec_it_seq_amazon');
  const settings = { ...clickHouseSettingsFromEnv(), database };
  let ch: ClickHouse;
  const direct = { all: 0, titled: 0, interactions: 0 };

  beforeAll(async () => {
    await requireInfra({ clickhouse: true });
    await runMigrations(settings);
    ch = createClickHouse(settings);
    const interactions = new InteractionRepository(ch);
    const dataset = openDataset({ path: DATA });

    // The file is grouped by user, so one user's mixed sequence is complete when the next user
    // starts: the direct computation needs one user in memory at a time.
    const closed = new Set<string>();
    let user: string | null = null;
    let builder = new MixedSequenceBuilder();
    const finishUser = (): void => {
      if (user === null) return;
      const sequence = builder.sequence(user);
      if (hasValidMixedSequence(sequence)) direct.all++;
      const titled = new MixedSequenceBuilder();
      titled.add(sequence.items.filter((i) => TITLED.includes(i.domain)));
      if (hasValidMixedSequence(titled.sequence(user))) direct.titled++;
      closed.add(user);
    };
    let batch: InteractionRecord[] = [];
    let inFlight: Promise<void> = Promise.resolve();
    for await (const event of dataset.interactions()) {
      direct.interactions++;
      if (event.user_id !== user) {
        finishUser();
        if (closed.has(event.user_id)) throw new Error(`${event.user_id} is not contiguous in the file`);
        user = event.user_id;
        builder = new MixedSequenceBuilder();
      }
      builder.add([interactionFromEvent(event)]);
      batch.push({ ...event, ts_ms: event.ts });
      if (batch.length === 100_000) {
        // One insert in flight while the next batch is parsed: reading and inserting overlap.
        await inFlight;
        inFlight = interactions.insertBatch(batch, 1_000);
        batch = [];
      }
    }
    finishUser();
    await inFlight;
    await interactions.insertBatch(batch, 1_000);
    await new SequenceStore(ch).rebuild({ safetyMarginMs: 0 });
  }, 300_000);

  // Dropping ~1M rows' parts waits for merges: on a loaded machine that outlived the default hook
  // timeout once (the suite's own test had passed).
  afterAll(async () => {
    if (ch) {
      await ch.command(sql`DROP DATABASE IF EXISTS ${ident(database)}`);
      await ch.close();
    }
  }, 300_000);

  it('counts users with a valid mixed sequence as the pure functions do', async () => {
    const repo = new SequenceRepository(ch);
    const all = await repo.countUsersWithValidMixedSequence();
    const titled = await repo.countUsersWithValidMixedSequence({ domains: TITLED });
    console.log(
      `amazon2014-linked: ${direct.interactions} interactions; users with a valid mixed sequence (N = 20): ` +
        `${all} (4 domains), ${titled} (${TITLED.join(', ')})`,
    );
    expect(all).toBe(direct.all);
    expect(titled).toBe(direct.titled);
    expect(all).toBeGreaterThan(1000);
    const [stored] = await ch.query<{ n: string }>(sql`SELECT sum(n) AS n FROM mixed_sequences FINAL`);
    expect(Number(stored.n)).toBe(direct.interactions); // the source has no exact duplicates
  });
});
