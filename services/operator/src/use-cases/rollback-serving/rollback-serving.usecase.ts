import { Inject, Injectable } from '@nestjs/common';
import { ServingCommandSchema } from '@cprec/contracts';
import { NotFoundError, parseOrThrow } from '../../errors';
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
import { RollbackServingCommand } from './rollback-serving.command';

/**
 * Asks serving to switch one domain back: to a named adapter (which must exist; `base` is the base
 * model alone) or, without one, to the adapter that served the domain before its current one
 * (serving knows each domain's history).
 */
@Injectable()
export class RollbackServing {
  constructor(
    @Inject(COMMAND_PUBLISHER) private readonly publisher: CommandPublisher,
    @Inject(CONTROL_PLANE_LOOKUP) private readonly lookup: ControlPlaneLookup,
    @Inject(CLOCK) private readonly clock: Clock,
    @Inject(ID_GENERATOR) private readonly ids: IdGenerator,
  ) {}

  async execute(command: RollbackServingCommand): Promise<AcceptedCommand> {
    if (
      command.to_adapter_id !== undefined &&
      command.to_adapter_id !== 'base' &&
      (await this.lookup.getAdapter(command.to_adapter_id)) === null
    ) {
      throw new NotFoundError(`adapter ${command.to_adapter_id} not found`);
    }
    const message = parseOrThrow(
      ServingCommandSchema,
      {
        kind: 'rollback',
        command_id: this.ids.next(),
        domain: command.domain,
        ...(command.to_adapter_id === undefined ? {} : { to_adapter_id: command.to_adapter_id }),
        requested_by: command.requestedBy,
        ts: this.clock.now(),
      },
      'serving command',
    );
    const topic = await this.publisher.publishServingCommand(message);
    return { command_id: message.command_id, kind: message.kind, topic };
  }
}
