import { mkdtempSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { InteractionEvent, ItemEvent } from '@cprec/contracts';
import { InteractionEventSchema, ItemEventSchema } from '@cprec/contracts';
import { openDataset, detectFormat } from '../registry';
import { amazonRawDataset } from './amazon-raw';
import { recBoleDataset } from './recbole';
import { eventId } from '../event-id';

async function collect<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const value of stream) out.push(value);
  return out;
}

const jsonl = (rows: unknown[]): Buffer => gzipSync(rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
let root: string;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'cprec-loaders-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

function expectValid(interactions: InteractionEvent[], items: ItemEvent[]): void {
  for (const e of interactions) expect(InteractionEventSchema.safeParse(e).success).toBe(true);
  for (const i of items) expect(ItemEventSchema.safeParse(i).success).toBe(true);
}

describe('SeqRecBenchmark JSONL layout', () => {
  function writeFolder(): string {
    const dir = join(root, 'amazon2018-game');
    mkdirSync(join(dir, 'derived'), { recursive: true });
    writeFileSync(
      join(dir, 'derived', 'user2item.jsonl.gz'),
      jsonl([
        { user_id: 100, item_ids: [11, 12, 11], timestamps: [86400, 86400, 172800] },
        { user_id: 101, item_ids: [12], timestamps: [0] },
      ]),
    );
    writeFileSync(
      join(dir, 'derived', 'item2title.jsonl.gz'),
      jsonl([
        { item_id: 11, title: 'Tom &amp; Jerry&quot;s   Chase\n(PC)' },
        { item_id: 12, title: ' Caf&eacute;  Racer ' },
        { item_id: 13, title: '' },
      ]),
    );
    return dir;
  }

  it('streams one event per list entry with namespaced users, ms timestamps and running seq', async () => {
    const ds = openDataset({ path: writeFolder() });
    expect(ds.format).toBe('seqrec-jsonl');
    const events = await collect(ds.interactions());
    expect(events.map((e) => [e.user_id, e.item_id, e.domain, e.ts, e.seq])).toEqual([
      ['amazon2018-game:100', '11', 'game', 86_400_000, 0],
      ['amazon2018-game:100', '12', 'game', 86_400_000, 1],
      ['amazon2018-game:100', '11', 'game', 172_800_000, 2],
      ['amazon2018-game:101', '12', 'game', 0, 3],
    ]);
    expect(events[0]!.event_id).toBe(eventId('amazon2018-game', 'amazon2018-game:100', '11', 86_400_000, 0));
    const items = await collect(ds.items());
    expect(items).toEqual([
      { item_id: '11', domain: 'game', title: 'Tom & Jerry"s Chase (PC)' },
      { item_id: '12', domain: 'game', title: 'Café Racer' },
    ]);
    expectValid(events, items);
  });

  it('gives identical event ids on a second pass and distinct ids for repeated items', async () => {
    const ds = openDataset({ path: writeFolder(), domain: 'video_games' });
    const first = (await collect(ds.interactions())).map((e) => e.event_id);
    const second = (await collect(ds.interactions())).map((e) => e.event_id);
    expect(second).toEqual(first);
    expect(new Set(first).size).toBe(first.length);
  });

  it('reports misaligned lists with the file position', async () => {
    const dir = writeFolder();
    writeFileSync(
      join(dir, 'derived', 'user2item.jsonl.gz'),
      jsonl([{ user_id: 1, item_ids: [1, 2], timestamps: [0] }]),
    );
    await expect(collect(openDataset({ path: dir }).interactions())).rejects.toThrow(
      /user2item\.jsonl\.gz:1: item_ids has 2 entries but timestamps has 1/,
    );
  });
});

describe('amazon2014-linked layout', () => {
  it('takes each row domain from the data, keeps reviewer ids, skips untitled items and filters domains', async () => {
    const dir = join(root, 'amazon2014-linked');
    mkdirSync(join(dir, 'derived'), { recursive: true });
    writeFileSync(
      join(dir, 'derived', 'interactions.jsonl.gz'),
      jsonl([
        { user: 'A1', domain: 'sport', asin: 'S1', ts: 100, pos: 0 },
        { user: 'A1', domain: 'beauty', asin: 'B1', ts: 200, pos: 0 },
        { user: 'A2', domain: 'toy', asin: 'T1', ts: 150, pos: 3 },
      ]),
    );
    writeFileSync(
      join(dir, 'derived', 'items.jsonl.gz'),
      jsonl([
        { domain: 'beauty', asin: 'B1', title: 'Lip &amp; Cheek' },
        { domain: 'sport', asin: 'S1', title: null },
        { domain: 'toy', asin: 'T1', title: 'Blocks' },
      ]),
    );
    expect(detectFormat(dir)).toBe('amazon2014-linked');
    const all = await collect(openDataset({ path: dir }).interactions());
    expect(all.map((e) => [e.user_id, e.domain, e.item_id, e.ts, e.seq])).toEqual([
      ['A1', 'sport', 'S1', 100_000, 0],
      ['A1', 'beauty', 'B1', 200_000, 1],
      ['A2', 'toy', 'T1', 150_000, 2],
    ]);
    const titled = openDataset({ path: dir, domains: ['beauty', 'toy'] });
    const events = await collect(titled.interactions());
    expect(events.map((e) => e.item_id)).toEqual(['B1', 'T1']);
    const items = await collect(titled.items());
    expect(items).toEqual([
      { item_id: 'B1', domain: 'beauty', title: 'Lip & Cheek' },
      { item_id: 'T1', domain: 'toy', title: 'Blocks' },
    ]);
    expectValid(events, items);
  });
});

describe('RecBole atomic files', () => {
  it('reads a plain .inter with timestamps and a .item with a title column', async () => {
    const dir = join(root, 'ml');
    mkdirSync(dir);
    writeFileSync(
      join(dir, 'ml.inter'),
      'user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t10\t5\t1000\n2\t11\t3\t999.5\n',
    );
    writeFileSync(
      join(dir, 'ml.item'),
      'item_id:token\tmovie_title:token_seq\tyear:token\n10\tHeat &amp; Dust\t1995\n11\tAlien\t1979\n',
    );
    const ds = openDataset({ path: dir });
    expect(ds.format).toBe('recbole');
    const events = await collect(ds.interactions());
    expect(events.map((e) => [e.user_id, e.item_id, e.domain, e.ts])).toEqual([
      ['ml:1', '10', 'ml', 1_000_000],
      ['ml:2', '11', 'ml', 999_500],
    ]);
    expect(await collect(ds.items())).toEqual([
      { item_id: '10', domain: 'ml', title: 'Heat & Dust' },
      { item_id: '11', domain: 'ml', title: 'Alien' },
    ]);
  });

  it('synthesises one day per position when .inter has no timestamp column', async () => {
    const dir = join(root, 'x');
    mkdirSync(dir);
    writeFileSync(join(dir, 'x.inter'), 'user_id:token\titem_id:token\na\t1\nb\t2\na\t3\n');
    const events = await collect(
      recBoleDataset({ dir, dataset: 'x', domain: 'x', syntheticStartMs: 0 }).interactions(),
    );
    expect(events.map((e) => [e.user_id, e.item_id, e.ts])).toEqual([
      ['x:a', '1', 0],
      ['x:b', '2', 0],
      ['x:a', '3', 86_400_000],
    ]);
  });

  it('rebuilds UniSRec sequences from the longest split row and maps indices back to ASINs', async () => {
    const dir = join(root, 'Scientific');
    mkdirSync(dir);
    const header = 'user_id:token\titem_id_list:token_seq\titem_id:token\n';
    writeFileSync(join(dir, 'Scientific.train.inter'), header + '0\t0\t1\n0\t0 1\t2\n1\t2\t0\n');
    writeFileSync(join(dir, 'Scientific.valid.inter'), header + '0\t0 1 2\t3\n1\t2\t0\n');
    writeFileSync(join(dir, 'Scientific.test.inter'), header + '0\t0 1 2 3\t1\n1\t2 0\t3\n');
    writeFileSync(join(dir, 'Scientific.item2index'), 'B00A\t0\nB00B\t1\nB00C\t2\nB00D\t3\n');
    writeFileSync(join(dir, 'Scientific.user2index'), 'AUSER0\t0\nAUSER1\t1\n');
    writeFileSync(
      join(dir, 'Scientific.text'),
      'item_id:token\ttext:token_seq\nB00A\tSanding Roll. Industrial &amp; Scientific. ACME. \nB00B\tGloves. Safety. \n',
    );
    const ds = openDataset({ path: dir, name: 'sci' });
    const events = await collect(ds.interactions());
    const day = 86_400_000;
    const start = Date.UTC(2018, 0, 1);
    expect(events.map((e) => [e.user_id, e.item_id, e.domain, e.ts - start])).toEqual([
      ['AUSER0', 'B00A', 'scientific', 0],
      ['AUSER0', 'B00B', 'scientific', day],
      ['AUSER0', 'B00C', 'scientific', 2 * day],
      ['AUSER0', 'B00D', 'scientific', 3 * day],
      ['AUSER0', 'B00B', 'scientific', 4 * day],
      ['AUSER1', 'B00C', 'scientific', 0],
      ['AUSER1', 'B00A', 'scientific', day],
      ['AUSER1', 'B00D', 'scientific', 2 * day],
    ]);
    expect(await collect(ds.items())).toEqual([
      { item_id: 'B00A', domain: 'scientific', title: 'Sanding Roll. Industrial & Scientific. ACME.' },
      { item_id: 'B00B', domain: 'scientific', title: 'Gloves. Safety.' },
    ]);
  });
});

describe('Amazon raw JSON dumps', () => {
  it('reads strict-JSON reviews and python-literal 2014 metadata', async () => {
    const dir = join(root, 'amazon-beauty-raw');
    mkdirSync(dir);
    writeFileSync(
      join(dir, 'reviews_Beauty_5.json.gz'),
      jsonl([
        {
          reviewerID: 'A2',
          asin: '0001',
          reviewerName: 'x',
          overall: 5,
          unixReviewTime: 1400000000,
          reviewTime: '05 13, 2014',
        },
        { reviewerID: 'A1', asin: '0002', unixReviewTime: 1300000000 },
      ]),
    );
    const meta = [
      `{'asin': '0001', 'title': 'Rose &amp; Lily "Night" Cream', 'price': 3.17, 'related': {'also_bought': ['0002']}, 'categories': [['Beauty', 'Skin']], 'brand': 'L\\'Or'}`,
      `{"asin": "0002", "title": "Strict JSON Soap"}`,
      `{'asin': '0003', 'categories': [['Beauty']], 'salesRank': None}`,
    ];
    writeFileSync(join(dir, 'meta_Beauty.json.gz'), gzipSync(meta.join('\n')));
    const ds = openDataset({ path: dir, domain: 'beauty' });
    expect(ds.format).toBe('amazon-raw-json');
    const events = await collect(ds.interactions());
    expect(events.map((e) => [e.user_id, e.item_id, e.ts, e.seq])).toEqual([
      ['A2', '0001', 1_400_000_000_000, 0],
      ['A1', '0002', 1_300_000_000_000, 1],
    ]);
    const items = await collect(ds.items());
    expect(items).toEqual([
      {
        item_id: '0001',
        domain: 'beauty',
        title: 'Rose & Lily "Night" Cream',
        attributes: { brand: "L'Or" },
      },
      { item_id: '0002', domain: 'beauty', title: 'Strict JSON Soap' },
    ]);
    expectValid(events, items);
  });

  it('names the line of an unreadable record', async () => {
    const file = join(root, 'reviews.json');
    writeFileSync(file, '{"reviewerID": "A", "asin": "B", "unixReviewTime": 1}\n{"reviewerID": \n');
    const ds = amazonRawDataset({ reviews: file, dataset: 'r', domain: 'd' });
    await expect(collect(ds.interactions())).rejects.toThrow(/reviews\.json:2: neither JSON/);
  });
});
