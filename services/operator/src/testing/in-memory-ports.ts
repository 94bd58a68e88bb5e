import type { StoredAdapter, StoredRoundState } from '@cprec/clickhouse';
import { TOPICS, type EvaluatorCommand, type RoundCommand, type ServingCommand } from '@cprec/contracts';
import type { Clock, CommandPublisher, ControlPlaneLookup, IdGenerator } from '../ports';

/** In-memory ports for use-case specs: they record what was published and hold seeded rows. */
export class RecordingPublisher implements CommandPublisher {
  readonly rounds: RoundCommand[] = [];
  readonly evaluator: EvaluatorCommand[] = [];
  readonly serving: ServingCommand[] = [];
  failWith: Error | null = null;

  async publishRoundCommand(command: RoundCommand): Promise<string> {
    this.check();
    this.rounds.push(command);
    return TOPICS.roundCommands;
  }
  async publishEvaluatorCommand(command: EvaluatorCommand): Promise<string> {
    this.check();
    this.evaluator.push(command);
    return TOPICS.evaluatorCommands;
  }
  async publishServingCommand(command: ServingCommand): Promise<string> {
    this.check();
    this.serving.push(command);
    return TOPICS.servingCommands;
  }
  private check(): void {
    if (this.failWith) throw this.failWith;
  }
}

export class InMemoryLookup implements ControlPlaneLookup {
  readonly rounds = new Map<string, StoredRoundState>();
  readonly adapters = new Map<string, StoredAdapter>();

  async getRound(roundId: string): Promise<StoredRoundState | null> {
    return this.rounds.get(roundId) ?? null;
  }
  async getAdapter(adapterId: string): Promise<StoredAdapter | null> {
    return this.adapters.get(adapterId) ?? null;
  }

  addRound(round_id: string, state: string): void {
    this.rounds.set(round_id, {
      round_id,
      state,
      step: 0,
      total_steps: 0,
      loss: null,
      lr: null,
      message: '',
      target_domains: [],
      requested_by: 'test',
      created_ms: 0,
      updated_ms: 0,
      version: 0,
    });
  }
  addAdapter(adapter_id: string): void {
    this.adapters.set(adapter_id, {
      adapter_id,
      adapter_kind: 'sft',
      round_id: 'r',
      target_domains: ['games'],
      uri: `file:///${adapter_id}`,
      sha256: '0'.repeat(64),
      lineage: {},
      created_ms: 0,
    });
  }
}

export const fixedClock = (ms: number): Clock => ({ now: () => ms });

export function sequentialIds(prefix = 'cmd'): IdGenerator {
  let n = 0;
  return { next: () => `${prefix}-${++n}` };
}
