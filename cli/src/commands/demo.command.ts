import { ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command } from 'commander';

const REPO_ROOT = resolve(__dirname, '../../..');
const NODE_ARGS = ['-r', 'ts-node/register/transpile-only', '-r', 'tsconfig-paths/register'];

interface ServiceSpec {
  name: string;
  portVariable: string;
  port: number;
}

/** Start order: consumers of a topic before its producers, the operator (the face) last. */
const SERVICES: ServiceSpec[] = [
  { name: 'ingest', portVariable: 'INGEST_PORT', port: 8101 },
  { name: 'sequencer', portVariable: 'SEQUENCER_PORT', port: 8102 },
  { name: 'trainer', portVariable: 'TRAINER_PORT', port: 8103 },
  { name: 'evaluator', portVariable: 'EVALUATOR_PORT', port: 8104 },
  { name: 'serving', portVariable: 'SERVING_PORT', port: 8105 },
  { name: 'operator', portVariable: 'OPERATOR_PORT', port: 8100 },
];

interface DemoOptions {
  dataset: string[];
  users: number;
  target: string;
  timeoutMin: number;
  exit: boolean;
  model?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const say = (line: string) => process.stdout.write(`[demo] ${line}\n`);

async function waitHealthy(spec: ServiceSpec, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null)
      throw new Error(`${spec.name} exited with code ${child.exitCode}; see .cprec/logs/${spec.name}.log`);
    try {
      const res = await fetch(`http://127.0.0.1:${spec.port}/health`);
      if (res.ok) return;
    } catch {
      // not up yet
    }
    await sleep(500);
  }
  throw new Error(`${spec.name} not healthy after ${timeoutMs / 1000}s; see .cprec/logs/${spec.name}.log`);
}

async function json<T>(url: string, init?: RequestInit): Promise<T> {
  const res = await fetch(url, init);
  const text = await res.text();
  if (!res.ok) throw new Error(`${init?.method ?? 'GET'} ${url}: ${res.status} ${text}`);
  return JSON.parse(text) as T;
}

function runReplay(options: DemoOptions, env: NodeJS.ProcessEnv): Promise<void> {
  const args = [
    ...NODE_ARGS,
    join(REPO_ROOT, 'cli/src/main.ts'),
    'replay',
    '--no-progress',
    '--as-fast-as-possible',
  ];
  if (options.dataset.length > 0) for (const d of options.dataset) args.push('--dataset', d);
  else
    args.push('--synthetic', '--users', String(options.users), '--domains', `beauty,books,${options.target}`);
  return new Promise((resolveRun, reject) => {
    const child = spawn(process.execPath, args, {
      cwd: REPO_ROOT,
      env,
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    child.on('exit', (code) => (code === 0 ? resolveRun() : reject(new Error(`replay exited with ${code}`))));
  });
}

interface RoundView {
  round_id: string;
  state: string;
  step: number;
  total_steps: number;
  loss: number | null;
  lr: number | null;
  message?: string;
}

export function register(program: Command): void {
  program
    .command('demo')
    .description(
      'run the whole pipeline on synthetic data (or --dataset): services, replay, a round, evaluation, serving',
    )
    .option(
      '--dataset <path>',
      'replay a dataset folder instead of synthetic data (repeatable)',
      (v: string, acc: string[]) => [...acc, v],
      [],
    )
    .option('--users <n>', 'synthetic users', (v) => Number.parseInt(v, 10), 400)
    .option('--target <domain>', 'target domain fine-tuned and served', 'games')
    .option(
      '--timeout-min <m>',
      'give up waiting for the round after this many minutes',
      (v) => Number(v),
      30,
    )
    .option('--exit', 'stop everything at the end instead of running until Ctrl-C')
    .option(
      '--model <path>',
      'base LM of every service (.gguf, llama2.c .bin or HF folder; default CPREC_BASE_MODEL or stories260K)',
    )
    .action(async (options: DemoOptions) => {
      const token = process.env.OPERATOR_TOKEN ?? randomBytes(16).toString('hex');
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        OPERATOR_TOKEN: token,
        KAFKAJS_NO_PARTITIONER_WARNING: '1',
        TRAINER_TARGET_DOMAINS: process.env.TRAINER_TARGET_DOMAINS ?? options.target,
        EVALUATOR_TARGET_DOMAINS: process.env.EVALUATOR_TARGET_DOMAINS ?? options.target,
        ...(options.model ? { CPREC_BASE_MODEL: resolve(options.model) } : {}),
      };
      const logDir = join(REPO_ROOT, '.cprec', 'logs');
      mkdirSync(logDir, { recursive: true });
      const children: { spec: ServiceSpec; child: ChildProcess }[] = [];
      let stopping = false;
      const stopAll = async () => {
        if (stopping) return;
        stopping = true;
        say('stopping services…');
        for (const { child } of [...children].reverse()) child.kill('SIGTERM');
        await Promise.all(
          children.map(({ child }) =>
            child.exitCode === null ? new Promise((r) => child.once('exit', r)) : null,
          ),
        );
      };
      process.once('SIGINT', () => void stopAll().then(() => process.exit(0)));
      process.once('SIGTERM', () => void stopAll().then(() => process.exit(0)));

      try {
        for (const spec of SERVICES) {
          const main = join(REPO_ROOT, 'services', spec.name, 'src', 'main.ts');
          if (!existsSync(main)) {
            say(`${spec.name}: not built in this version, skipped`);
            continue;
          }
          const out = createWriteStream(join(logDir, `${spec.name}.log`), { flags: 'a' });
          const child = spawn(process.execPath, [...NODE_ARGS, main], {
            cwd: REPO_ROOT,
            env: { ...env, [spec.portVariable]: String(spec.port) },
            stdio: ['ignore', 'pipe', 'pipe'],
          });
          child.stdout?.pipe(out);
          child.stderr?.pipe(out);
          children.push({ spec, child });
          await waitHealthy(spec, child, 180_000);
          say(`${spec.name} healthy on http://127.0.0.1:${spec.port}`);
        }

        say(
          options.dataset.length > 0
            ? `replaying ${options.dataset.join(', ')}`
            : `replaying synthetic data (${options.users} users)`,
        );
        await runReplay(options, env);

        const operator = 'http://127.0.0.1:8100';
        const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
        // Let the sequencer absorb the stream before the round reads its samples.
        await sleep(12_000);
        const accepted = await json<{ command_id: string }>(`${operator}/v1/rounds`, {
          method: 'POST',
          headers: auth,
          body: JSON.stringify({ target_domains: [options.target], reason: 'npm start demo' }),
        });
        const roundId = accepted.command_id;
        say(`round ${roundId} triggered`);
        const deadline = Date.now() + options.timeoutMin * 60_000;
        let last = '';
        let round: RoundView | null = null;
        while (Date.now() < deadline) {
          try {
            round = (await json<{ round: RoundView }>(`${operator}/v1/rounds/${roundId}`)).round;
            const line = `${round.state} step ${round.step}/${round.total_steps}${round.loss === null ? '' : ` loss ${round.loss.toFixed(3)}`}${round.lr === null ? '' : ` lr ${round.lr.toExponential(2)}`}`;
            if (line !== last) say(`round ${line}`);
            last = line;
            if (['published', 'failed', 'cancelled'].includes(round.state)) break;
          } catch {
            // not queued yet
          }
          await sleep(2_000);
        }
        if (round?.state !== 'published')
          throw new Error(`round ended as ${round?.state ?? 'unknown'}: ${round?.message ?? ''}`);

        // Evaluation and promotion happen in the evaluator: wait until the gate has decided on
        // every adapter of the round (the CPT one is recorded zero-shot, the SFT one is gated).
        const { adapters } = await json<{ adapters: Array<{ adapter_id: string; round_id: string }> }>(
          `${operator}/v1/adapters`,
        );
        const mine = adapters.filter((a) => a.round_id === roundId).map((a) => a.adapter_id);
        let decisions: Array<{ adapter_id: string; decision: string; reasons: string[] }> = [];
        const gateDeadline = Date.now() + options.timeoutMin * 60_000;
        while (Date.now() < gateDeadline) {
          const { promotions } = await json<{
            promotions: Array<{ adapter_id: string; decision: string; reasons: string[] }>;
          }>(`${operator}/v1/promotions?limit=100`);
          decisions = promotions.filter((p) => mine.includes(p.adapter_id));
          if (mine.every((id) => decisions.some((d) => d.adapter_id === id))) break;
          await sleep(2_000);
        }
        for (const d of decisions)
          say(
            `gate: ${d.adapter_id} ${d.decision}${d.reasons.length > 0 ? ` (${d.reasons.join('; ')})` : ''}`,
          );
        const evaluations: Array<Record<string, unknown>> = [];
        for (const id of mine)
          evaluations.push(
            ...(
              await json<{ evaluations: Array<Record<string, unknown>> }>(
                `${operator}/v1/evaluations?adapter_id=${encodeURIComponent(id)}`,
              )
            ).evaluations,
          );
        // A promoted adapter reaches serving through Kafka; give the hot swap a moment.
        const promoted = decisions.find((d) => d.decision === 'promoted');
        for (let i = 0; promoted && i < 60; i++) {
          const view = await json<{ current: { adapter_id: string } | null }>(`${operator}/v1/serving`).catch(
            () => null,
          );
          if (view?.current?.adapter_id === promoted.adapter_id) break;
          await sleep(1_000);
        }
        say('evaluation on the frozen test split (20 candidates):');
        console.table(
          evaluations.map((e) => ({
            adapter: e.adapter_id,
            domain: e.domain,
            method: e.method,
            samples: e.samples,
            'HR@1': Number(e.hr1).toFixed(3),
            'Valid Ratio': Number(e.valid_ratio).toFixed(3),
            'NDCG@5': Number(e.ndcg5).toFixed(3),
          })),
        );
        const serving = await json<Record<string, unknown>>(`${operator}/v1/serving`).catch(() => null);
        say(`serving: ${JSON.stringify(serving)}`);
        say(`dashboard: ${operator}/   (operator token for its buttons: ${token})`);
        if (options.exit) await stopAll();
        else say('running; Ctrl-C stops the services (npm run infra:down stops Kafka and ClickHouse)');
      } catch (err) {
        say(`failed: ${(err as Error).message}`);
        await stopAll();
        process.exitCode = 1;
      }
    });
}
