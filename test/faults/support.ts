import type { Producer } from 'kafkajs';
import type { DeadLetter } from '@cprec/contracts';
import type { Tap } from '../support/harness';

/** Shared helpers of the fault suite (test/faults). */

/** The sum of a Prometheus counter's samples whose labels include every `labels` pair. */
export async function metric(
  port: number,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = new Map<string, string>();
    for (const pair of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      have.set(pair[1]!, pair[2]!);
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) sum += Number(m[3]);
  }
  return sum;
}

export async function healthStatus(port: number): Promise<number> {
  return (await fetch(`http://127.0.0.1:${port}/health`)).status;
}

/**
 * Sends messages one at a time (a batch of several oversized ones would exceed the broker's
 * limit) to one partition, and returns each one's offset.
 */
export async function sendEach(
  producer: Producer,
  topic: string,
  messages: ReadonlyArray<{ key: string; value: Buffer | string | null }>,
  partition = 0,
): Promise<string[]> {
  const offsets: string[] = [];
  for (const m of messages) {
    const [meta] = await producer.send({
      topic,
      acks: -1,
      messages: [{ key: m.key, value: m.value, partition }],
    });
    offsets.push(meta!.baseOffset!);
  }
  return offsets;
}

/** The dead letters a tap has read, each with its (consumer, source topic, partition, offset). */
export function deadLetters(tap: Tap, topic: string): DeadLetter[] {
  return tap.values<DeadLetter>(topic);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Milliseconds since `start`, as seconds with one decimal, for the suite's printed measurements. */
export const seconds = (start: number) => `${((Date.now() - start) / 1000).toFixed(1)} s`;
