/**
 * Summarises a V8 .cpuprofile (from `ingest.bench.ts --cpu-prof`) into where the ingest process
 * spends its CPU: self time per package/file and inclusive time of the functions that matter
 * for the ingest path (parse, validation, Kafka decoding, ClickHouse serialisation).
 *
 *   npx ts-node -r tsconfig-paths/register --transpile-only bench/ingest/profile-summary.ts <file.cpuprofile> \
 *     [--window-us from,to] [--json out.json]
 *
 * Hand-written because it is a few dozen lines over the documented profile format
 * (nodes/samples/timeDeltas), and a profiler UI cannot be scripted into a benchmark report.
 */
import { readFileSync, writeFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** Which part of the stack a frame belongs to, from its script URL. */
export function bucketOf(frame: CallFrame): string {
  const url = frame.url;
  if (url === '') {
    if (frame.functionName.startsWith('(')) return frame.functionName; // (idle), (garbage collector), (program)
    return `native ${frame.functionName || '(anonymous)'}`;
  }
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  const repo = /\/(libs|services)\/([^/]+)\/src\/(.*)$/.exec(url);
  if (repo) return `${repo[1]}/${repo[2]}/${repo[3]}`;
  if (url.startsWith('node:')) return url;
  return url;
}

/** Functions whose inclusive time answers "parse vs insert vs Kafka". */
const KEY_FUNCTIONS: Array<{ label: string; match: (f: CallFrame) => boolean }> = [
  {
    label: 'IngestPipeline.accept',
    match: (f) => f.functionName === 'accept' && f.url.includes('ingest-pipeline'),
  },
  {
    label: 'parseInteraction (JSON.parse + zod + limits)',
    match: (f) => f.functionName === 'parseInteraction',
  },
  { label: 'decodeJson (JSON.parse)', match: (f) => f.functionName === 'decodeJson' },
  { label: 'parseWith (zod safeParse)', match: (f) => f.functionName === 'parseWith' },
  { label: 'RecentIds.add/has', match: (f) => f.url.includes('recent-ids') },
  {
    label: 'ClickHouseIngestStore.insertInteractions',
    match: (f) => f.functionName === 'insertInteractions',
  },
  { label: 'InteractionRepository.insertBatch', match: (f) => f.functionName === 'insertBatch' },
  { label: '@clickhouse/client (all)', match: (f) => f.url.includes('@clickhouse/client') },
  {
    label: 'kafkajs protocol (fetch decoding, request encoding)',
    match: (f) => f.url.includes('kafkajs/src/protocol'),
  },
  {
    label: 'eachBatch message mapping (consumer service)',
    match: (f) => f.url.includes('ingest-consumer.service'),
  },
];

export type { CpuProfile };

export interface ProfileSummary {
  total_ms: number;
  busy_ms: number;
  self_by_bucket: Array<{ bucket: string; ms: number; share_of_busy: number }>;
  inclusive: Array<{ label: string; ms: number; share_of_busy: number }>;
}

/**
 * `windowUs` restricts the summary to samples taken inside [from, to] on the monotonic clock
 * (µs; V8's profile clock and process.hrtime are both CLOCK_MONOTONIC on Linux), so start-up
 * (ts-node transpiling, Nest wiring) does not dilute the steady-state picture.
 */
export function summarise(
  profile: CpuProfile,
  windowUs?: readonly [number, number],
  top = 25,
): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfUs = new Map<number, number>();
  let clock = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = profile.timeDeltas[i] ?? 0;
    clock += delta;
    if (windowUs && (clock < windowUs[0] || clock > windowUs[1])) continue;
    const id = profile.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + delta);
  }
  let total = 0;
  let idle = 0;
  const buckets = new Map<string, number>();
  const inclusive = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const node = byId.get(id)!;
    total += us;
    const bucket = bucketOf(node.callFrame);
    if (bucket === '(idle)') idle += us;
    buckets.set(bucket, (buckets.get(bucket) ?? 0) + us);
    // Charge this sample once to every key function on its stack (recursion counted once).
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const frame = byId.get(cur)!.callFrame;
      for (const k of KEY_FUNCTIONS) {
        if (!seen.has(k.label) && k.match(frame)) {
          seen.add(k.label);
          inclusive.set(k.label, (inclusive.get(k.label) ?? 0) + us);
        }
      }
    }
  }
  const busy = total - idle;
  const share = (us: number): number => Number((us / Math.max(1, busy)).toFixed(3));
  return {
    total_ms: Math.round(total / 1000),
    busy_ms: Math.round(busy / 1000),
    self_by_bucket: [...buckets.entries()]
      .filter(([b]) => b !== '(idle)')
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([bucket, us]) => ({ bucket, ms: Math.round(us / 1000), share_of_busy: share(us) })),
    inclusive: KEY_FUNCTIONS.map((k) => ({
      label: k.label,
      ms: Math.round((inclusive.get(k.label) ?? 0) / 1000),
      share_of_busy: share(inclusive.get(k.label) ?? 0),
    })),
  };
}

if (require.main === module) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: profile-summary.ts <file.cpuprofile> [--json out.json]\n');
    process.exit(2);
  }
  const windowAt = process.argv.indexOf('--window-us');
  const window =
    windowAt > 0 && process.argv[windowAt + 1]
      ? (process.argv[windowAt + 1]!.split(',').map(Number) as [number, number])
      : undefined;
  const summary = summarise(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, window);
  const jsonAt = process.argv.indexOf('--json');
  if (jsonAt > 0 && process.argv[jsonAt + 1])
    writeFileSync(process.argv[jsonAt + 1]!, `${JSON.stringify(summary, null, 2)}\n`);
  process.stdout.write(
    `profile: ${summary.total_ms} ms sampled, ${summary.busy_ms} ms busy (not idle)\n\nself time by bucket:\n`,
  );
  for (const b of summary.self_by_bucket)
    process.stdout.write(
      `  ${(b.share_of_busy * 100).toFixed(1).padStart(5)}%  ${String(b.ms).padStart(6)} ms  ${b.bucket}\n`,
    );
  process.stdout.write('\ninclusive time of key functions:\n');
  for (const k of summary.inclusive)
    process.stdout.write(
      `  ${(k.share_of_busy * 100).toFixed(1).padStart(5)}%  ${String(k.ms).padStart(6)} ms  ${k.label}\n`,
    );
}
