import { KafkaJSNonRetriableError } from 'kafkajs';
import { setPaused } from './consumer-flow';

const topics = [{ topic: 't' }];

describe('setPaused', () => {
  it('pauses and resumes through the consumer', () => {
    const calls: string[] = [];
    const consumer = { pause: () => void calls.push('pause'), resume: () => void calls.push('resume') };
    expect(setPaused(consumer, true, topics, () => undefined)).toBe(true);
    expect(setPaused(consumer, false, topics, () => undefined)).toBe(true);
    expect(calls).toEqual(['pause', 'resume']);
  });

  it('never throws while kafkajs restarts a crashed consumer (which used to end the ingest process)', () => {
    const notInitialised = () => {
      throw new KafkaJSNonRetriableError(
        'Consumer group was not initialized, consumer#run must be called first',
      );
    };
    const reported: string[] = [];
    const consumer = { pause: notInitialised, resume: notInitialised };
    expect(setPaused(consumer, false, topics, (e) => reported.push(e.message))).toBe(false);
    expect(setPaused(consumer, true, topics, (e) => reported.push(e.message))).toBe(false);
    expect(reported).toEqual([
      'Consumer group was not initialized, consumer#run must be called first',
      'Consumer group was not initialized, consumer#run must be called first',
    ]);
  });
});
