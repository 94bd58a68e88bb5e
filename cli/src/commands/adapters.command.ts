import { Command } from 'commander';
import {
  callOperator,
  formatMs,
  formatNumber,
  operatorApiFromEnv,
  print,
  renderTable,
} from '../operator-api';

interface AdapterSummary {
  adapter_id: string;
  adapter_kind: string;
  round_id: string;
  target_domains: string[];
  created_ms: number;
  hr1: Record<string, number>;
  hr1_mean: number | null;
  status: string;
  /** The domains it serves now (serving holds one adapter per domain). */
  serving_domains: string[];
  reasons: string[];
}

/** `cprec adapters`: the adapter table of the operator API (HR@1 per domain, gate status). */
export function register(program: Command): void {
  program
    .command('adapters')
    .description('list adapters with HR@1 and status (operator API)')
    .option('--limit <n>', 'adapters to list', '50')
    .option('--json', 'print JSON')
    .action(async (opts: { limit: string; json?: boolean }) => {
      const view = await callOperator<{ adapters: AdapterSummary[]; serving: Record<string, string> }>(
        operatorApiFromEnv(),
        'GET',
        `/v1/adapters?limit=${encodeURIComponent(opts.limit)}`,
      );
      print(!!opts.json, view, () =>
        view.adapters.length === 0
          ? 'no adapters yet\n'
          : renderTable(
              ['adapter', 'kind', 'round', 'domains', 'created', 'HR@1', 'status'],
              view.adapters.map((a) => [
                a.adapter_id,
                a.adapter_kind,
                a.round_id,
                a.target_domains.join(','),
                formatMs(a.created_ms),
                Object.keys(a.hr1).length === 0
                  ? '-'
                  : Object.entries(a.hr1)
                      .map(([d, v]) => `${d}=${formatNumber(v, 3)}`)
                      .join(' '),
                a.serving_domains.length > 0 ? `serving ${a.serving_domains.join(',')}` : a.status,
              ]),
            ),
      );
    });
}
