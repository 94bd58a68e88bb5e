import type { Consumer, TopicPartitions } from 'kafkajs';

/**
 * Pauses or resumes fetching without ever throwing. kafkajs throws from `pause`/`resume`
 * ("Consumer group was not initialized, consumer#run must be called first") while it restarts a
 * crashed consumer — e.g. a flush that paused before a Kafka outage resumes after the crash — and
 * thrown from a timer or a promise callback that error ended the ingest process. A restarted
 * consumer fetches unpaused anyway, so a refused call is only reported. Returns whether it applied.
 */
export function setPaused(
  consumer: Pick<Consumer, 'pause' | 'resume'>,
  paused: boolean,
  topics: TopicPartitions[] | Array<{ topic: string }>,
  report: (err: Error) => void,
): boolean {
  try {
    if (paused) consumer.pause(topics);
    else consumer.resume(topics);
    return true;
  } catch (err) {
    report(err as Error);
    return false;
  }
}
