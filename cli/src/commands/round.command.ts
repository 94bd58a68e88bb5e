import { Command } from 'commander';
import {
  AcceptedCommand,
  acceptedLine,
  callOperator,
  formatMs,
  formatNumber,
  operatorApiFromEnv,
  print,
  renderTable,
} from '../operator-api';

interface Round {
  round_id: string;
  state: string;
  step: number;
  total_steps: number;
  loss: number | null;
  lr: number | null;
  message: string;
  target_domains: string[];
  created_ms: number;
  updated_ms: number;
}

interface RoundDetail {
  round: Round;
  steps: Array<{ phase: string; step: number; loss: number; lr: number }>;
  total_points: number;
}

const roundRow = (r: Round): string[] => [
  r.round_id,
  r.state,
  r.total_steps > 0 ? `${r.step}/${r.total_steps}` : String(r.step),
  formatNumber(r.loss, 4),
  r.lr === null ? '-' : r.lr.toExponential(2),
  r.target_domains.join(',') || 'default',
  formatMs(r.created_ms),
];
const ROUND_HEADERS = ['round', 'state', 'step', 'loss', 'lr', 'domains', 'created'];

/** `cprec round trigger|status|cancel`: the operator API's round endpoints. */
export function register(program: Command): void {
  const round = program
    .command('round')
    .description('trigger, follow or cancel CPT refresh rounds (operator API)');

  round
    .command('trigger')
    .description('ask the trainer for a refresh round')
    .option('--domains <list>', 'comma-separated target domains (default: the trainer’s)')
    .option('--reason <text>', 'why (recorded on the command)', '')
    .option('--json', 'print JSON')
    .action(async (opts: { domains?: string; reason: string; json?: boolean }) => {
      const domains = opts.domains
        ?.split(',')
        .map((d) => d.trim())
        .filter(Boolean);
      const accepted = await callOperator<AcceptedCommand>(operatorApiFromEnv(), 'POST', '/v1/rounds', {
        reason: opts.reason,
        ...(domains && domains.length > 0 ? { target_domains: domains } : {}),
      });
      print(
        !!opts.json,
        accepted,
        () => acceptedLine(accepted) + `follow it with: cprec round status ${accepted.command_id}\n`,
      );
    });

  round
    .command('status [id]')
    .description('list recent rounds, or show one round with its latest steps')
    .option('--limit <n>', 'rounds to list', '20')
    .option('--json', 'print JSON')
    .action(async (id: string | undefined, opts: { limit: string; json?: boolean }) => {
      const api = operatorApiFromEnv();
      if (id === undefined) {
        const { rounds } = await callOperator<{ rounds: Round[] }>(
          api,
          'GET',
          `/v1/rounds?limit=${encodeURIComponent(opts.limit)}`,
        );
        print(!!opts.json, rounds, () =>
          rounds.length === 0 ? 'no rounds yet\n' : renderTable(ROUND_HEADERS, rounds.map(roundRow)),
        );
        return;
      }
      const detail = await callOperator<RoundDetail>(
        api,
        'GET',
        `/v1/rounds/${encodeURIComponent(id)}?max_points=200`,
      );
      print(!!opts.json, detail, () => {
        const last = detail.steps.slice(-10);
        return (
          renderTable(ROUND_HEADERS, [roundRow(detail.round)]) +
          (detail.round.message ? `message: ${detail.round.message}\n` : '') +
          (last.length === 0
            ? 'no training steps yet\n'
            : `\nlast ${last.length} of ${detail.total_points} steps:\n` +
              renderTable(
                ['step', 'phase', 'loss', 'lr'],
                last.map((s) => [String(s.step), s.phase, formatNumber(s.loss, 4), s.lr.toExponential(2)]),
              ))
        );
      });
    });

  round
    .command('cancel <id>')
    .description('cancel a round that has not finished')
    .option('--json', 'print JSON')
    .action(async (id: string, opts: { json?: boolean }) => {
      const accepted = await callOperator<AcceptedCommand>(
        operatorApiFromEnv(),
        'POST',
        `/v1/rounds/${encodeURIComponent(id)}/cancel`,
        {},
      );
      print(!!opts.json, accepted, () => acceptedLine(accepted));
    });
}
