import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_CPT_CONFIG } from '@cprec/training';
import type { RoundJob } from './protocol';
import { RoundSupervisor, type RoundListener } from './supervisor';

/**
 * The supervisor's outage handling with real child processes: a scripted runner (plain JS, so no
 * ts-node start-up) fails as the round worker does when ClickHouse is unreachable — an `error`
 * message flagged `unavailable`, exit code 1 — for its first `FAILS` attempts, then succeeds.
 * The runner's own classification is `isClickHouseUnavailable` (libs/clickhouse errors.spec.ts).
 */
const FAKE_RUNNER = `
const fs = require('node:fs');
const counter = process.env.FAKE_COUNTER;
const fails = Number(process.env.FAKE_FAILS);
const send = (m) => new Promise((r) => process.send(m, undefined, undefined, () => r()));
process.on('message', async (m) => {
  if (m.type !== 'start') return;
  const n = fs.existsSync(counter) ? Number(fs.readFileSync(counter, 'utf8')) : 0;
  fs.writeFileSync(counter, String(n + 1));
  if (n < fails) {
    await send({ type: 'error', message: 'connect ECONNREFUSED 127.0.0.1:18123\\n    at stack', stopped: false, unavailable: true });
    process.exit(1);
  }
  await send({ type: 'started', resumedFrom: n > 0 ? { phase: 'stable', dataPosition: 4 } : null });
  await send({ type: 'step', step: { phase: 'stable', step: 1, roundStep: 1, roundSteps: 1, loss: 1, lr: 0.1, tokens: 8 } });
  await send({ type: 'result', result: { trunkDir: 'trunk', trunkGlobalStep: 1, adapters: [], stableSteps: 1, annealSteps: 0, skippedSamples: 0, resumedFrom: null, fineTuningNote: null } });
  process.exit(0);
});
send({ type: 'ready', pid: process.pid });
`;

let dir: string;
let script: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'cprec-supervisor-'));
  script = join(dir, 'fake-runner.js');
  writeFileSync(script, FAKE_RUNNER);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function job(): RoundJob {
  return {
    roundId: 'r1',
    roundDir: join(dir, 'round'),
    previousTrunkDir: null,
    sinceWatermark: 0,
    watermark: 1,
    model: { kind: 'tiny-random', dir, baseModelId: 'tiny', sha256: 'a'.repeat(64) },
    backend: 'cpu',
    cpt: { ...DEFAULT_CPT_CONFIG, maxStableSteps: null },
    data: { kind: 'synthetic', domainSamples: 1, mixedSamples: 1, seed: 1 },
    targetDomains: [],
  };
}

function listener(): RoundListener & { waits: string[]; crashes: string[]; attempts: number[] } {
  const waits: string[] = [];
  const crashes: string[] = [];
  const attempts: number[] = [];
  return {
    waits,
    crashes,
    attempts,
    onPhase: () => undefined,
    onStep: () => undefined,
    onAttempt: (attempt) => attempts.push(attempt),
    onCrash: (_attempt, reason) => crashes.push(reason),
    onWaiting: (_attempt, reason) => waits.push(reason),
  };
}

function supervisor(
  fails: number,
  outage: NonNullable<ConstructorParameters<typeof RoundSupervisor>[0]['outage']>,
) {
  return new RoundSupervisor({
    maxRestarts: 0,
    stopGraceMs: 5_000,
    env: { FAKE_COUNTER: join(dir, 'counter'), FAKE_FAILS: String(fails) },
    runner: { script, execArgv: [] },
    outage,
  });
}

describe('a round rides out a ClickHouse outage', () => {
  it('waits until the dependency answers, then re-spawns the runner (not counted as a crash)', async () => {
    let polls = 0;
    // Down for the first three polls, then back.
    const dependenciesUp = async () => ++polls > 3;
    const l = listener();
    const outcome = await supervisor(3, { maxMs: 60_000, pollMs: 10, dependenciesUp }).start(job(), l)
      .outcome;
    expect(outcome.kind).toBe('done');
    expect(l.crashes).toEqual([]); // maxRestarts 0: a counted crash would have failed the round
    expect(l.waits).toHaveLength(3);
    expect(l.waits[0]).toBe('connect ECONNREFUSED 127.0.0.1:18123'); // first line only
    expect(l.attempts).toEqual([4]);
    expect(polls).toBeGreaterThanOrEqual(4);
  }, 30_000);

  it('fails the round with the reason when the dependency stays away longer than the limit', async () => {
    const l = listener();
    const started = Date.now();
    const outcome = await supervisor(99, { maxMs: 300, pollMs: 20, dependenciesUp: async () => false }).start(
      job(),
      l,
    ).outcome;
    expect(outcome).toEqual({
      kind: 'failed',
      reason: expect.stringMatching(/stayed unreachable for more than 0 s; last: connect ECONNREFUSED/),
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(l.waits).toHaveLength(1);
  }, 30_000);

  it('without outage handling the same report fails the round at once', async () => {
    const s = new RoundSupervisor({
      maxRestarts: 2,
      stopGraceMs: 5_000,
      env: { FAKE_COUNTER: join(dir, 'counter'), FAKE_FAILS: '1' },
      runner: { script, execArgv: [] },
    });
    const outcome = await s.start(job(), listener()).outcome;
    expect(outcome).toEqual({ kind: 'failed', reason: expect.stringContaining('ECONNREFUSED') });
  }, 30_000);

  it('a stop during the wait ends the round as stopped', async () => {
    const running = supervisor(99, { maxMs: 60_000, pollMs: 20, dependenciesUp: async () => false }).start(
      job(),
      listener(),
    );
    setTimeout(() => running.stop(), 300);
    await expect(running.outcome).resolves.toEqual({ kind: 'stopped' });
  }, 30_000);
});
