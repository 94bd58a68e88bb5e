import { TOPICS } from '@cprec/contracts';
import { NotFoundError } from '../../errors';
import { fixedClock, InMemoryLookup, RecordingPublisher, sequentialIds } from '../../testing/in-memory-ports';
import { RollbackServing } from './rollback-serving.usecase';

describe('RollbackServing', () => {
  const setup = () => {
    const publisher = new RecordingPublisher();
    const lookup = new InMemoryLookup();
    return {
      publisher,
      lookup,
      useCase: new RollbackServing(publisher, lookup, fixedClock(7), sequentialIds('s')),
    };
  };

  it("without a target asks serving to go back to the domain's previous adapter", async () => {
    const { publisher, useCase } = setup();
    const accepted = await useCase.execute({ requestedBy: 'dan', domain: 'games' });
    expect(accepted).toEqual({ command_id: 's-1', kind: 'rollback', topic: TOPICS.servingCommands });
    expect(publisher.serving).toEqual([
      { kind: 'rollback', command_id: 's-1', domain: 'games', requested_by: 'dan', ts: 7 },
    ]);
  });

  it('accepts base (the base model alone) as a target without looking it up', async () => {
    const { publisher, useCase } = setup();
    await useCase.execute({ requestedBy: 'dan', domain: 'books', to_adapter_id: 'base' });
    expect(publisher.serving[0]).toMatchObject({ domain: 'books', to_adapter_id: 'base' });
  });

  it('names a known target adapter', async () => {
    const { publisher, lookup, useCase } = setup();
    lookup.addAdapter('a1');
    await useCase.execute({ requestedBy: 'dan', domain: 'games', to_adapter_id: 'a1' });
    expect(publisher.serving[0].to_adapter_id).toBe('a1');
  });

  it('answers not found for an unknown target, publishing nothing', async () => {
    const { publisher, useCase } = setup();
    await expect(
      useCase.execute({ requestedBy: 'dan', domain: 'games', to_adapter_id: 'ghost' }),
    ).rejects.toThrow(NotFoundError);
    expect(publisher.serving).toHaveLength(0);
  });
});
