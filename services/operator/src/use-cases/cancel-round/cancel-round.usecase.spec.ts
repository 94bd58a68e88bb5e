import { ConflictError, NotFoundError } from '../../errors';
import { fixedClock, InMemoryLookup, RecordingPublisher, sequentialIds } from '../../testing/in-memory-ports';
import { CancelRound } from './cancel-round.usecase';

describe('CancelRound', () => {
  const setup = () => {
    const publisher = new RecordingPublisher();
    const lookup = new InMemoryLookup();
    return {
      publisher,
      lookup,
      useCase: new CancelRound(publisher, lookup, fixedClock(99), sequentialIds('c')),
    };
  };

  it.each(['queued', 'warmup', 'stable', 'annealing', 'fine_tuning'])('cancels a %s round', async (state) => {
    const { publisher, lookup, useCase } = setup();
    lookup.addRound('r1', state);
    const accepted = await useCase.execute({ roundId: 'r1', requestedBy: 'bob' });
    expect(accepted.command_id).toBe('c-1');
    expect(publisher.rounds).toEqual([
      { kind: 'cancel', command_id: 'c-1', round_id: 'r1', requested_by: 'bob', ts: 99 },
    ]);
  });

  it('answers not found for an unknown round', async () => {
    const { publisher, useCase } = setup();
    await expect(useCase.execute({ roundId: 'nope', requestedBy: 'bob' })).rejects.toThrow(NotFoundError);
    expect(publisher.rounds).toHaveLength(0);
  });

  it.each(['published', 'failed', 'cancelled'])('refuses to cancel a %s round', async (state) => {
    const { publisher, lookup, useCase } = setup();
    lookup.addRound('r1', state);
    await expect(useCase.execute({ roundId: 'r1', requestedBy: 'bob' })).rejects.toThrow(ConflictError);
    expect(publisher.rounds).toHaveLength(0);
  });
});
