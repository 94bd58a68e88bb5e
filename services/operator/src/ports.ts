import type { ControlPlaneRepository } from '@cprec/clickhouse';
import type { EvaluatorCommand, RoundCommand, ServingCommand } from '@cprec/contracts';

/**
 * What the use cases need from the outside world, as interfaces so they can be unit-tested with
 * in-memory implementations: publishing commands to the other actors' mailboxes (Kafka in
 * production, see kafka/kafka-command.publisher.ts) and reading the control-plane tables.
 */
export interface CommandPublisher {
  /** Each resolves, once the broker has the command, with the topic it was published to. */
  publishRoundCommand(command: RoundCommand): Promise<string>;
  publishEvaluatorCommand(command: EvaluatorCommand): Promise<string>;
  publishServingCommand(command: ServingCommand): Promise<string>;
}
export const COMMAND_PUBLISHER = Symbol('COMMAND_PUBLISHER');

/** The reads the mutations check against (existence, state). ControlPlaneRepository implements it. */
export type ControlPlaneLookup = Pick<ControlPlaneRepository, 'getRound' | 'getAdapter'>;
export const CONTROL_PLANE_LOOKUP = Symbol('CONTROL_PLANE_LOOKUP');

/** Ids and time, injected so use cases are deterministic under test. */
export interface Clock {
  now(): number;
}
export interface IdGenerator {
  next(): string;
}
export const CLOCK = Symbol('CLOCK');
export const ID_GENERATOR = Symbol('ID_GENERATOR');

/** The outcome of every mutation: the command that was published. */
export interface AcceptedCommand {
  command_id: string;
  kind: string;
  topic: string;
}
