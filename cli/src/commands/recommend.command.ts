import { Command } from 'commander';
import { print, renderTable } from '../operator-api';

export const DEFAULT_SERVING_URL = 'http://127.0.0.1:8105';

interface RecommendOptions {
  domain: string;
  user?: string;
  history?: string;
  candidates?: string;
  k: string;
  nCandidates?: string;
  json?: boolean;
}

interface RecommendReply {
  items: Array<{ item_id: string; title: string; score: number; rank: number }>;
  adapter_id: string;
  adapter_version: string;
  first_stage: string;
  latency_ms: number;
}

const list = (v: string | undefined): string[] | undefined =>
  v === undefined
    ? undefined
    : v
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);

/** The body of POST /v1/recommend from the command's options (validated again by serving). */
export function recommendBody(opts: RecommendOptions): Record<string, unknown> {
  if (opts.user === undefined && opts.history === undefined)
    throw new Error('give --user <id> or --history <item,item,...>');
  const k = Number(opts.k);
  if (!Number.isInteger(k) || k < 1) throw new Error(`-k must be a positive integer, got ${opts.k}`);
  const body: Record<string, unknown> = { domain: opts.domain, k };
  if (opts.user !== undefined) body.user_id = opts.user;
  const history = list(opts.history);
  if (history) body.history = history;
  const candidates = list(opts.candidates);
  if (candidates) body.candidate_ids = candidates;
  if (opts.nCandidates !== undefined) body.n_candidates = Number(opts.nCandidates);
  return body;
}

/** `cprec recommend`: asks the serving API (CPREC_SERVING_URL) for a ranked list. */
export function register(program: Command): void {
  program
    .command('recommend')
    .description('recommend items to a user (or for an explicit history) through the serving API')
    .requiredOption('--domain <domain>', 'target domain')
    .option('--user <userId>', 'user whose stored history is used')
    .option('--history <ids>', 'explicit history: comma-separated item ids, oldest first')
    .option(
      '--candidates <ids>',
      'comma-separated candidate item ids to re-rank (default: first stage proposes)',
    )
    .option('-k <n>', 'items to return', '10')
    .option('--n-candidates <n>', 'first-stage candidates when --candidates is absent')
    .option('--json', 'print JSON')
    .action(async (opts: RecommendOptions) => {
      const url = new URL('/v1/recommend', process.env.CPREC_SERVING_URL ?? DEFAULT_SERVING_URL);
      let res: Response;
      try {
        res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/json' },
          body: JSON.stringify(recommendBody(opts)),
        });
      } catch (err) {
        const cause = (err as { cause?: { code?: string } }).cause;
        throw new Error(
          `serving not reachable at ${url.origin} (${cause?.code ?? (err as Error).message}); start services/serving or set CPREC_SERVING_URL`,
        );
      }
      const text = await res.text();
      if (!res.ok) {
        let message = text;
        try {
          message = String((JSON.parse(text) as { message?: unknown }).message ?? text);
        } catch {
          // not JSON: print as is
        }
        throw new Error(`POST /v1/recommend: HTTP ${res.status}: ${message}`);
      }
      const reply = JSON.parse(text) as RecommendReply;
      print(!!opts.json, reply, () =>
        [
          renderTable(
            ['rank', 'item', 'score', 'title'],
            reply.items.map((i) => [String(i.rank), i.item_id, i.score.toFixed(3), i.title]),
          ),
          `adapter ${reply.adapter_id} (${reply.adapter_version}), candidates ${reply.first_stage}, ${reply.latency_ms} ms\n`,
        ].join(''),
      );
    });
}
