import { parseArgs } from 'node:util';

/** What an experiment's command line says: the command, its string options and its `--set`s. */
export interface ExperimentArgs {
  /** The first positional argument, or `fallback`. */
  command: string;
  /** The named string options that were given. */
  options: Record<string, string | undefined>;
  /** `--set key.path=JSON`, in order. */
  sets: Array<[string, string]>;
}

/**
 * The experiments' shared command line: `[command] [--name value …] [--set key=value …]`, parsed
 * with node's `util.parseArgs` (strict: an unknown option or a missing value is an error naming it,
 * with `usage` saying where the options are documented).
 */
export function parseExperimentArgs(
  argv: string[],
  names: readonly string[],
  fallback: string,
  usage: string,
): ExperimentArgs {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        ...Object.fromEntries(names.map((n) => [n, { type: 'string' as const }])),
        set: { type: 'string', multiple: true },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw new Error(`${(err as Error).message} (${usage})`);
  }
  if (parsed.positionals.length > 1)
    throw new Error(`one command at most, got ${parsed.positionals.join(' ')} (${usage})`);
  const sets = ((parsed.values.set ?? []) as string[]).map((kv): [string, string] => {
    const at = kv.indexOf('=');
    if (at < 1) throw new Error(`--set ${kv}: expected key=value`);
    return [kv.slice(0, at), kv.slice(at + 1)];
  });
  const options: Record<string, string | undefined> = {};
  for (const n of names) options[n] = parsed.values[n] as string | undefined;
  return { command: parsed.positionals[0] ?? fallback, options, sets };
}
