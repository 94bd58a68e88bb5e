import { Inject, Injectable } from '@nestjs/common';
import { RoundCommandSchema } from '@cprec/contracts';
import { ConflictError, NotFoundError, parseOrThrow } from '../../errors';
import {
  AcceptedCommand,
  Clock,
  CLOCK,
  COMMAND_PUBLISHER,
  CommandPublisher,
  CONTROL_PLANE_LOOKUP,
  ControlPlaneLookup,
  ID_GENERATOR,
  IdGenerator,
} from '../../ports';
import { CancelRoundCommand } from './cancel-round.command';

/** States after which a round cannot be cancelled any more. */
export const FINISHED_ROUND_STATES: readonly string[] = ['published', 'failed', 'cancelled'];

/** Asks the trainer to cancel a round it knows about and that has not finished. */
@Injectable()
export class CancelRound {
  constructor(
    @Inject(COMMAND_PUBLISHER) private readonly publisher: CommandPublisher,
    @Inject(CONTROL_PLANE_LOOKUP) private readonly lookup: ControlPlaneLookup,
    @Inject(CLOCK) private readonly clock: Clock,
    @Inject(ID_GENERATOR) private readonly ids: IdGenerator,
  ) {}

  async execute(command: CancelRoundCommand): Promise<AcceptedCommand> {
    const round = await this.lookup.getRound(command.roundId);
    if (round === null) throw new NotFoundError(`round ${command.roundId} not found`);
    if (FINISHED_ROUND_STATES.includes(round.state)) {
      throw new ConflictError(`round ${command.roundId} is already ${round.state}`);
    }
    const message = parseOrThrow(
      RoundCommandSchema,
      {
        kind: 'cancel',
        command_id: this.ids.next(),
        round_id: command.roundId,
        requested_by: command.requestedBy,
        ts: this.clock.now(),
      },
      'round command',
    );
    const topic = await this.publisher.publishRoundCommand(message);
    return { command_id: message.command_id, kind: message.kind, topic };
  }
}
