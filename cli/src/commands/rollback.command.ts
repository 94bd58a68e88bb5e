import { Command } from 'commander';
import { AcceptedCommand, acceptedLine, callOperator, operatorApiFromEnv, print } from '../operator-api';

/** `cprec rollback --domain D [--to id]`: ask serving to switch one domain back (operator API). */
export function register(program: Command): void {
  program
    .command('rollback')
    .description(
      "roll one domain's adapter back to its previous one, or to --to <adapterId> (base: the base model); other domains keep theirs",
    )
    .requiredOption('--domain <domain>', 'target domain whose adapter is rolled back')
    .option('--to <adapterId>', 'adapter to switch the domain to')
    .option('--json', 'print JSON')
    .action(async (opts: { domain: string; to?: string; json?: boolean }) => {
      const accepted = await callOperator<AcceptedCommand>(
        operatorApiFromEnv(),
        'POST',
        '/v1/serving/rollback',
        { domain: opts.domain, ...(opts.to === undefined ? {} : { to_adapter_id: opts.to }) },
      );
      print(!!opts.json, accepted, () => acceptedLine(accepted));
    });
}
