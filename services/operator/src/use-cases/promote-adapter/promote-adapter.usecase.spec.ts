import { TOPICS } from '@cprec/contracts';
import { NotFoundError } from '../../errors';
import { fixedClock, InMemoryLookup, RecordingPublisher, sequentialIds } from '../../testing/in-memory-ports';
import { PromoteAdapterBodySchema } from './promote-adapter.command';
import { PromoteAdapter } from './promote-adapter.usecase';

describe('PromoteAdapter', () => {
  const setup = () => {
    const publisher = new RecordingPublisher();
    const lookup = new InMemoryLookup();
    return {
      publisher,
      lookup,
      useCase: new PromoteAdapter(publisher, lookup, fixedClock(5), sequentialIds('p')),
    };
  };

  it('asks the evaluator to promote a known adapter', async () => {
    const { publisher, lookup, useCase } = setup();
    lookup.addAdapter('a1');
    const accepted = await useCase.execute({ adapterId: 'a1', requestedBy: 'carol', reason: 'hotfix' });
    expect(accepted).toEqual({ command_id: 'p-1', kind: 'promote', topic: TOPICS.evaluatorCommands });
    expect(publisher.evaluator).toEqual([
      {
        kind: 'promote',
        command_id: 'p-1',
        adapter_id: 'a1',
        requested_by: 'carol',
        reason: 'hotfix',
        ts: 5,
      },
    ]);
  });

  it('answers not found for an unknown adapter, publishing nothing', async () => {
    const { publisher, useCase } = setup();
    await expect(useCase.execute({ adapterId: 'a9', requestedBy: 'carol', reason: '' })).rejects.toThrow(
      NotFoundError,
    );
    expect(publisher.evaluator).toHaveLength(0);
  });

  it('body schema rejects unknown fields and non-string reasons', () => {
    expect(PromoteAdapterBodySchema.safeParse({ reason: 1 }).success).toBe(false);
    expect(PromoteAdapterBodySchema.safeParse({ force: true }).success).toBe(false);
    expect(PromoteAdapterBodySchema.parse({})).toEqual({ reason: '' });
  });
});
