import { TOPICS } from '@cprec/contracts';
import { ValidationError } from '../../errors';
import { fixedClock, RecordingPublisher, sequentialIds } from '../../testing/in-memory-ports';
import { TriggerRoundBodySchema } from './trigger-round.command';
import { TriggerRound } from './trigger-round.usecase';

describe('TriggerRound', () => {
  const setup = () => {
    const publisher = new RecordingPublisher();
    return { publisher, useCase: new TriggerRound(publisher, fixedClock(1234), sequentialIds('t')) };
  };

  it('publishes a trigger RoundCommand and returns its id', async () => {
    const { publisher, useCase } = setup();
    const accepted = await useCase.execute({
      requestedBy: 'alice',
      reason: 'drift',
      target_domains: ['games'],
    });
    expect(accepted).toEqual({ command_id: 't-1', kind: 'trigger', topic: TOPICS.roundCommands });
    expect(publisher.rounds).toEqual([
      {
        kind: 'trigger',
        command_id: 't-1',
        requested_by: 'alice',
        reason: 'drift',
        target_domains: ['games'],
        ts: 1234,
      },
    ]);
  });

  it('leaves target_domains out when not given (the trainer picks its defaults)', async () => {
    const { publisher, useCase } = setup();
    await useCase.execute({ requestedBy: 'alice', reason: '' });
    expect(publisher.rounds[0]).not.toHaveProperty('target_domains');
  });

  it('refuses a command that would not pass the contract, publishing nothing', async () => {
    const { publisher, useCase } = setup();
    await expect(useCase.execute({ requestedBy: '', reason: '' })).rejects.toThrow(ValidationError);
    expect(publisher.rounds).toHaveLength(0);
  });

  it('lets a publishing failure through (the API answers 5xx, nothing is claimed)', async () => {
    const { publisher, useCase } = setup();
    publisher.failWith = new Error('broker down');
    await expect(useCase.execute({ requestedBy: 'a', reason: '' })).rejects.toThrow('broker down');
  });

  describe('body schema', () => {
    it('accepts an empty body', () => {
      expect(TriggerRoundBodySchema.parse({})).toEqual({ reason: '' });
    });
    it.each([
      [{ target_domains: ['Games!'] }, /target_domains/],
      [{ target_domains: [] }, /target_domains/],
      [{ reason: 5 }, /reason/],
      [{ extra: 1 }, /extra/],
    ])('rejects %p', (body, message) => {
      const result = TriggerRoundBodySchema.safeParse(body);
      expect(result.success).toBe(false);
      expect(JSON.stringify(result.error?.issues)).toMatch(message);
    });
  });
});
