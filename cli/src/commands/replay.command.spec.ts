import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Command } from 'commander';
import { TOPICS } from '@cprec/contracts';
import { planReplay, register, replayCommand, ReplayCommandOptions } from './replay.command';

async function parse(args: string[]): Promise<ReplayCommandOptions> {
  let captured: ReplayCommandOptions | null = null;
  const command = replayCommand(async (options) => {
    captured = options;
  })
    .exitOverride()
    .configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  await command.parseAsync(args, { from: 'user' });
  if (!captured) throw new Error('action did not run');
  return captured;
}

describe('cprec replay arguments', () => {
  it("defaults to the installation's topics: CPREC_TOPIC_PREFIX as the services read it", async () => {
    let captured: ReplayCommandOptions | null = null;
    const command = replayCommand(
      async (options) => {
        captured = options;
      },
      { CPREC_TOPIC_PREFIX: 'acme.' },
    ).exitOverride();
    await command.parseAsync([], { from: 'user' });
    expect(captured!.interactionsTopic).toBe(`acme.${TOPICS.interactions}`);
    expect(captured!.itemsTopic).toBe(`acme.${TOPICS.items}`);
    expect(() => replayCommand(async () => undefined, { CPREC_TOPIC_PREFIX: 'no spaces' })).toThrow(
      /topic prefix/,
    );
  });

  it('registers the replay sub-command on the program', () => {
    const program = new Command('cprec');
    register(program);
    expect(program.commands.map((c) => c.name())).toEqual(['replay']);
  });

  it('collects repeated --dataset, parses numbers and applies defaults', async () => {
    const options = await parse([
      '--dataset',
      'a',
      '--dataset',
      'b',
      '--speed',
      '2.5',
      '--rate-cap',
      '1000',
      '--limit',
      '50',
      '--resume',
    ]);
    expect(options).toMatchObject({
      dataset: ['a', 'b'],
      speed: 2.5,
      rateCap: 1000,
      limit: 50,
      resume: true,
      users: 1000,
      seed: 42,
      batchSize: 1000,
      interactionsTopic: TOPICS.interactions,
      itemsTopic: TOPICS.items,
      progress: true,
    });
  });

  it('rejects --speed together with --as-fast-as-possible, and non-positive counts', async () => {
    await expect(parse(['--speed', '1', '--as-fast-as-possible'])).rejects.toThrow(/cannot be used with/);
    await expect(parse(['--users', '0'])).rejects.toThrow(/positive integer/);
    await expect(parse(['--speed', '-1'])).rejects.toThrow(/positive number/);
  });
});

describe('planReplay', () => {
  it('defaults to the synthetic generator and keys progress by stream and destination, not pacing', async () => {
    const base = await parse(['--users', '10']);
    const plan = planReplay(base, {});
    expect(plan.datasets.map((d) => d.format)).toEqual(['synthetic']);
    expect(plan.brokers).toBe('127.0.0.1:19092');
    expect(planReplay(await parse(['--users', '10', '--speed', '3', '--limit', '5']), {}).key).toBe(plan.key);
    expect(planReplay(await parse(['--users', '11']), {}).key).not.toBe(plan.key);
    expect(planReplay(await parse(['--users', '10', '--items-topic', 'x']), {}).key).not.toBe(plan.key);
    expect(planReplay(base, { CPREC_KAFKA_BROKERS: 'other:9092' }).key).not.toBe(plan.key);
  });

  it('opens dataset folders by detected format and adds the generator only with --synthetic', async () => {
    const root = mkdtempSync(join(tmpdir(), 'cprec-replay-cmd-'));
    try {
      const dir = join(root, 'amazon2018-game');
      mkdirSync(join(dir, 'derived'), { recursive: true });
      writeFileSync(
        join(dir, 'derived', 'user2item.jsonl.gz'),
        gzipSync('{"user_id":1,"item_ids":[2],"timestamps":[3]}\n'),
      );
      writeFileSync(join(dir, 'derived', 'item2title.jsonl.gz'), gzipSync('{"item_id":2,"title":"x"}\n'));
      expect(planReplay(await parse(['--dataset', dir]), {}).datasets.map((d) => [d.name, d.format])).toEqual(
        [['amazon2018-game', 'seqrec-jsonl']],
      );
      expect(
        planReplay(await parse(['--dataset', dir, '--synthetic']), {}).datasets.map((d) => d.format),
      ).toEqual(['seqrec-jsonl', 'synthetic']);
      const defaults = await parse([]);
      expect(() => planReplay({ ...defaults, dataset: [root] }, {})).toThrow(/unknown dataset layout/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
