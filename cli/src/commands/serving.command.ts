import { Command } from 'commander';
import { callOperator, formatMs, operatorApiFromEnv, print, renderTable } from '../operator-api';

interface ServingRow {
  event: string;
  /** '' on rows from before per-domain serving: every domain without a row of its own. */
  domain: string;
  adapter_id: string;
  previous_adapter_id: string;
  ts_ms: number;
}

/** `cprec serving`: which adapter serves which domain (operator API, from serving_events). */
export function register(program: Command): void {
  program
    .command('serving')
    .description('show the adapter serving each domain (a domain not listed is answered by the base model)')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const view = await callOperator<{ domains: ServingRow[] }>(operatorApiFromEnv(), 'GET', '/v1/serving');
      print(!!opts.json, view, () =>
        view.domains.length === 0
          ? 'every domain is served by the base model\n'
          : renderTable(
              ['domain', 'adapter', 'since', 'how', 'before'],
              [...view.domains]
                .sort((a, b) => a.domain.localeCompare(b.domain))
                .map((r) => [
                  r.domain === '' ? '(all others)' : r.domain,
                  r.adapter_id === 'base' ? 'base (no adapter)' : r.adapter_id,
                  formatMs(r.ts_ms),
                  r.event,
                  r.previous_adapter_id || '-',
                ]),
            ),
      );
    });
}
