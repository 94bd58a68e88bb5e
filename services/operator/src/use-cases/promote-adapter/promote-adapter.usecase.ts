import { Inject, Injectable } from '@nestjs/common';
import { EvaluatorCommandSchema } from '@cprec/contracts';
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
import { PromoteAdapterCommand } from './promote-adapter.command';

/**
 * Manual promotion: the evaluator owns the decision (and records that the gate was bypassed),
 * so this only asks it to, for an adapter the trainer has published.
 */
@Injectable()
export class PromoteAdapter {
  constructor(
    @Inject(COMMAND_PUBLISHER) private readonly publisher: CommandPublisher,
    @Inject(CONTROL_PLANE_LOOKUP) private readonly lookup: ControlPlaneLookup,
    @Inject(CLOCK) private readonly clock: Clock,
    @Inject(ID_GENERATOR) private readonly ids: IdGenerator,
  ) {}

  async execute(command: PromoteAdapterCommand): Promise<AcceptedCommand> {
    const adapter = await this.lookup.getAdapter(command.adapterId);
    if (adapter === null) throw new NotFoundError(`adapter ${command.adapterId} not found`);
    const message = parseOrThrow(
      EvaluatorCommandSchema,
      {
        kind: 'promote',
        command_id: this.ids.next(),
        adapter_id: command.adapterId,
        requested_by: command.requestedBy,
        reason: command.reason,
        ts: this.clock.now(),
      },
      'evaluator command',
    );
    const topic = await this.publisher.publishEvaluatorCommand(message);
    return { command_id: message.command_id, kind: message.kind, topic };
  }
}
