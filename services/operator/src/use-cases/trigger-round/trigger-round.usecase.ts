import { Inject, Injectable } from '@nestjs/common';
import { RoundCommandSchema } from '@cprec/contracts';
import { parseOrThrow } from '../../errors';
import {
  AcceptedCommand,
  Clock,
  CLOCK,
  COMMAND_PUBLISHER,
  CommandPublisher,
  ID_GENERATOR,
  IdGenerator,
} from '../../ports';
import { TriggerRoundCommand } from './trigger-round.command';

/**
 * Asks the trainer for a refresh round. Only publishes: the trainer owns the `rounds` table and
 * is expected to use the command id as the round id, so the caller can follow the round with
 * GET /v1/rounds/<command_id> once the trainer has queued it.
 */
@Injectable()
export class TriggerRound {
  constructor(
    @Inject(COMMAND_PUBLISHER) private readonly publisher: CommandPublisher,
    @Inject(CLOCK) private readonly clock: Clock,
    @Inject(ID_GENERATOR) private readonly ids: IdGenerator,
  ) {}

  async execute(command: TriggerRoundCommand): Promise<AcceptedCommand> {
    const message = parseOrThrow(
      RoundCommandSchema,
      {
        kind: 'trigger',
        command_id: this.ids.next(),
        requested_by: command.requestedBy,
        reason: command.reason,
        ...(command.target_domains === undefined ? {} : { target_domains: command.target_domains }),
        ts: this.clock.now(),
      },
      'round command',
    );
    const topic = await this.publisher.publishRoundCommand(message);
    return { command_id: message.command_id, kind: message.kind, topic };
  }
}
