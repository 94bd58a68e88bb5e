import { Command } from 'commander';
import { AcceptedCommand, acceptedLine, callOperator, operatorApiFromEnv, print } from '../operator-api';

/** `cprec promote <id>`: manual promotion through the evaluator (operator API). */
export function register(program: Command): void {
  program
    .command('promote <adapterId>')
    .description('ask the evaluator to promote an adapter, bypassing (and recording) the gate')
    .option('--reason <text>', 'why (recorded on the command)', '')
    .option('--json', 'print JSON')
    .action(async (adapterId: string, opts: { reason: string; json?: boolean }) => {
      const accepted = await callOperator<AcceptedCommand>(
        operatorApiFromEnv(),
        'POST',
        `/v1/adapters/${encodeURIComponent(adapterId)}/promote`,
        { reason: opts.reason },
      );
      print(!!opts.json, accepted, () => acceptedLine(accepted));
    });
}
