import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { openDataset } from '../registry';

/**
 * Streams real folders from ../shared/data and checks the counts their SOURCE.md documents
 * (the numbers below are copied from each SOURCE.md "Statistics" table — documented facts about
 * the files, not results computed by this code).
 */
const DATA = resolve(__dirname, '../../../../../shared/data');
const present = existsSync(DATA);
const describeIfData = present ? describe : describe.skip;
if (!present) process.stderr.write(`real-data.spec: ${DATA} is absent, skipping the real-dataset checks\n`);

async function countDataset(
  path: string,
): Promise<{ interactions: number; users: number; items: number; titled: number; ordered: boolean }> {
  const ds = openDataset({ path });
  const users = new Set<string>();
  const items = new Set<string>();
  let interactions = 0;
  let ordered = true;
  const lastTs = new Map<string, number>();
  for await (const e of ds.interactions()) {
    interactions++;
    users.add(e.user_id);
    items.add(e.item_id);
    if (e.ts < (lastTs.get(e.user_id) ?? -Infinity)) ordered = false;
    lastTs.set(e.user_id, e.ts);
  }
  let titled = 0;
  for await (const item of ds.items()) if (item.title.length > 0) titled++;
  return { interactions, users: users.size, items: items.size, titled, ordered };
}

describeIfData('real datasets in ../shared/data', () => {
  it('amazon2018-game matches SOURCE.md: 50,597 users, 16,874 items, 453,637 interactions, all titled', async () => {
    const counts = await countDataset(join(DATA, 'amazon2018-game'));
    expect(counts).toEqual({
      interactions: 453_637,
      users: 50_597,
      items: 16_874,
      titled: 16_874,
      ordered: true,
    });
  }, 60_000);

  it('amazon2018-scientific-unisrec matches SOURCE.md: 8,442 users, 4,385 items, 59,384 interactions', async () => {
    const counts = await countDataset(join(DATA, 'amazon2018-scientific-unisrec'));
    expect(counts).toEqual({
      interactions: 59_384,
      users: 8_442,
      items: 4_385,
      titled: 4_385,
      ordered: true,
    });
  }, 60_000);
});
