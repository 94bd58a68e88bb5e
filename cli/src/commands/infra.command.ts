import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command } from 'commander';

/** The repository root: cli/src/commands (ts-node) or dist/cli/src/commands (compiled). */
function infraScript(name: string): string {
  const candidates = [resolve(__dirname, '../../..'), resolve(__dirname, '../../../..'), process.cwd()];
  for (const root of candidates) {
    const script = join(root, 'infra', 'local', name);
    if (existsSync(script)) return script;
  }
  throw new Error(`infra/local/${name} not found (run cprec from the repository)`);
}

/** Runs one of the infra/local scripts in the foreground and exits with its code. */
function run(name: 'up' | 'down' | 'status', args: readonly string[] = []): void {
  const result = spawnSync('bash', [infraScript(name), ...args], { stdio: 'inherit' });
  if (result.error) throw result.error;
  process.exitCode = result.status ?? 1;
}

/** `cprec infra up|down|status`: the local Kafka and ClickHouse (infra/local). */
export function register(program: Command): void {
  const infra = program.command('infra').description('start, stop or check the local Kafka and ClickHouse');
  infra
    .command('up')
    .description('start Kafka and ClickHouse (installing them first if needed: infra/local/up)')
    .action(() => run('up'));
  infra
    .command('down')
    .description('stop Kafka and ClickHouse')
    .action(() => run('down'));
  infra
    .command('status')
    .description('show whether Kafka and ClickHouse are healthy (exit 1 when not)')
    .action(() => run('status'));
}
