/**
 * HTTP client of the operator API for the `cprec` commands (round, adapters, promote, rollback),
 * plus the plain-text table they print. Node's fetch is enough: a handful of JSON calls.
 */
export const DEFAULT_OPERATOR_URL = 'http://127.0.0.1:8100';

export interface OperatorApiOptions {
  url: string;
  token: string | null;
}

export function operatorApiFromEnv(env: NodeJS.ProcessEnv = process.env): OperatorApiOptions {
  const token = env.CPREC_OPERATOR_TOKEN?.trim();
  return { url: env.CPREC_OPERATOR_URL ?? DEFAULT_OPERATOR_URL, token: token ? token : null };
}

export class OperatorApiError extends Error {
  override readonly name = 'OperatorApiError';
  constructor(
    message: string,
    readonly status: number | null,
  ) {
    super(message);
  }
}

export async function callOperator<T>(
  options: OperatorApiOptions,
  method: 'GET' | 'POST',
  path: string,
  body?: object,
): Promise<T> {
  const headers: Record<string, string> = {
    accept: 'application/json',
    'x-requested-by': `cli:${process.env.USER ?? 'unknown'}`,
  };
  if (method === 'POST') {
    if (options.token === null) {
      throw new OperatorApiError('this command needs the operator token: set CPREC_OPERATOR_TOKEN', null);
    }
    headers.authorization = `Bearer ${options.token}`;
    headers['content-type'] = 'application/json';
  }
  const url = new URL(path, options.url);
  let res: Response;
  try {
    res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new OperatorApiError(
      `operator not reachable at ${options.url} (${cause?.code ?? cause?.message ?? (err as Error).message}); ` +
        'start it (services/operator) or set CPREC_OPERATOR_URL',
      null,
    );
  }
  const text = await res.text();
  let parsed: unknown = null;
  try {
    parsed = text === '' ? null : JSON.parse(text);
  } catch {
    parsed = text;
  }
  if (!res.ok) {
    const message =
      parsed !== null && typeof parsed === 'object' && 'message' in parsed
        ? String(parsed.message)
        : String(text);
    throw new OperatorApiError(`${method} ${url.pathname}: HTTP ${res.status}: ${message}`, res.status);
  }
  return parsed as T;
}

/** A left-aligned text table; cells are single-line (newlines become spaces). */
export function renderTable(headers: readonly string[], rows: ReadonlyArray<ReadonlyArray<string>>): string {
  const clean = (s: string) => s.replace(/\s+/g, ' ');
  const all = [headers.map(clean), ...rows.map((r) => r.map(clean))];
  const widths = headers.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(all[0]), line(widths.map((w) => '-'.repeat(w))), ...all.slice(1).map(line)].join('\n') + '\n';
}

export const formatMs = (ms: number): string =>
  ms > 0 ? new Date(ms).toISOString().replace('T', ' ').slice(0, 19) : '-';
export const formatNumber = (v: number | null | undefined, digits: number): string =>
  v === null || v === undefined || Number.isNaN(v) ? '-' : v.toFixed(digits);

/** Prints `data` as JSON with --json, else the human rendering. */
export function print(json: boolean, data: unknown, human: () => string): void {
  process.stdout.write(json ? JSON.stringify(data, null, 2) + '\n' : human());
}

/** The reply of every mutation. */
export interface AcceptedCommand {
  command_id: string;
  kind: string;
  topic: string;
}

export const acceptedLine = (a: AcceptedCommand): string =>
  `${a.kind} accepted: command ${a.command_id} on ${a.topic}\n`;
