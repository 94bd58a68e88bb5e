/**
 * Micro-benchmark behind a finding of bench:ingest: the ingest service's `RecentIds` (a Map whose
 * oldest entry is evicted with `keys().next()`) becomes quadratic once it is full, because V8's
 * ordered hash table keeps deleted entries as holes at the front until the next rehash and every
 * fresh iterator walks over them. Compared with a FIFO ring of ids + Set, which is O(1) per id.
 *
 *   npx ts-node -r tsconfig-paths/register --transpile-only bench/ingest/recent-ids.micro.ts [--capacity 500000] [--ids 800000]
 *
 * Prints CPU milliseconds per block of 50 000 `has` + `add` calls.
 */
import { RecentIds } from '../../services/ingest/src/pipeline/recent-ids';

/** The proposed replacement: eviction order = insertion order, kept in a ring, O(1) per id. */
export class RingRecentIds {
  private readonly ids = new Set<string>();
  private readonly ring: (string | undefined)[];
  private next = 0;

  constructor(private readonly capacity: number) {
    this.ring = new Array<string | undefined>(Math.max(0, capacity));
  }

  has(id: string): boolean {
    return this.ids.has(id);
  }

  add(id: string): void {
    if (this.capacity <= 0 || this.ids.has(id)) return;
    const evicted = this.ring[this.next];
    if (evicted !== undefined) this.ids.delete(evicted);
    this.ring[this.next] = id;
    this.next = (this.next + 1) % this.capacity;
    this.ids.add(id);
  }
}

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? Number(process.argv[i + 1]) : fallback;
}

function run(label: string, set: { has(id: string): boolean; add(id: string): void }, ids: number): number[] {
  const blocks: number[] = [];
  let before = process.cpuUsage();
  for (let i = 0; i < ids; i++) {
    const id = `bi-${i.toString(16).padStart(32, '0')}`;
    if (!set.has(id)) set.add(id);
    if ((i + 1) % 50_000 === 0) {
      const used = process.cpuUsage(before);
      blocks.push(Math.round((used.user + used.system) / 1000));
      before = process.cpuUsage();
    }
  }
  process.stdout.write(`${label}: CPU ms per 50k ids: ${blocks.join(' ')}\n`);
  return blocks;
}

if (require.main === module) {
  const capacity = arg('capacity', 500_000);
  const ids = arg('ids', 800_000);
  run(`RecentIds (services/ingest), capacity ${capacity}`, new RecentIds(capacity), ids);
  run(`RingRecentIds (proposed), capacity ${capacity}`, new RingRecentIds(capacity), ids);
}
