import { Command } from 'commander';
import { AcceptedCommand, acceptedLine, callOperator, operatorApiFromEnv, print } from '../operator-api';

/** `cprec rollback [--to id]`: ask serving to switch back (operator API). */
export function register(program: Command): void {
  program
    .command('rollback')
    .description('roll serving back to its previous adapter, or to --to <adapterId>')
    .option('--to <adapterId>', 'adapter to switch to')
    .option('--json', 'print JSON')
    .action(async (opts: { to?: string; json?: boolean }) => {
      const accepted = await callOperator<AcceptedCommand>(
        operatorApiFromEnv(),
        'POST',
        '/v1/serving/rollback',
        opts.to === undefined ? {} : { to_adapter_id: opts.to },
      );
      print(!!opts.json, accepted, () => acceptedLine(accepted));
    });
}
