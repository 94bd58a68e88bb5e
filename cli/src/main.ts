#!/usr/bin/env node
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';

/**
 * The `cprec` command line. Each sub-command lives in `commands/<name>.command.ts` and exports
 * `register(program)`; they are discovered here so that adding a command touches one file.
 */
export interface CommandModule {
  register(program: Command): void;
}

async function main(): Promise<void> {
  const program = new Command('cprec').description('cprec: continual pre-training for LLM recommendation');
  const dir = join(__dirname, 'commands');
  const files = readdirSync(dir)
    .filter((f) => /\.command\.(js|ts)$/.test(f) && !f.endsWith('.d.ts'))
    .sort();
  for (const file of files) {
    const mod = (await import(join(dir, file))) as Partial<CommandModule>;
    if (typeof mod.register === 'function') mod.register(program);
  }
  await program.parseAsync(process.argv);
}

main().catch((err: unknown) => {
  process.stderr.write(`cprec: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
