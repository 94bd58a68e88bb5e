import type { z } from 'zod';
import { ContractLimits, DEFAULT_LIMITS } from './limits';
import { InteractionEvent, InteractionEventSchema, ItemEvent, ItemEventSchema } from './events';
import { fail, ok, ParseResult } from './result';
import { acceptInteractionFast } from './fast-parse';
import { findUnstorableText } from './storable';
import { isUtf8 } from 'node:buffer';

/** Turns zod issues into one readable sentence naming each bad field. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const path = issue.path.length > 0 ? issue.path.join('.') : '(message)';
      return `${path}: ${issue.message}`;
    })
    .join('; ');
}

/** Validates an already-decoded value against a schema, returning a value or a reason. */
export function parseWith<S extends z.ZodType>(schema: S, value: unknown): ParseResult<z.infer<S>> {
  const result = schema.safeParse(value);
  return result.success ? ok(result.data) : fail(describeIssues(result.error));
}

/**
 * Decodes raw message bytes (UTF-8 JSON), applying the size limit before parsing anything. Bytes
 * that are not UTF-8 are refused rather than decoded with replacement characters (that would
 * store something other than what was sent), and so is any string — key or value, at any depth —
 * that storage cannot hold (an unpaired UTF-16 surrogate written as a `\ud800` escape).
 */
export function decodeJson(raw: Buffer | string | null, limits: ContractLimits): ParseResult<unknown> {
  if (raw === null) return fail('message has no value (tombstone or empty)', 'empty');
  const size = typeof raw === 'string' ? Buffer.byteLength(raw) : raw.length;
  if (size > limits.maxMessageBytes) {
    return fail(`message is ${size} bytes, larger than the limit of ${limits.maxMessageBytes}`, 'too_large');
  }
  if (typeof raw !== 'string' && !isUtf8(raw))
    return fail('malformed UTF-8: the message is not UTF-8 text', 'malformed');
  const text = typeof raw === 'string' ? raw : raw.toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch (err) {
    return fail(`malformed JSON: ${(err as Error).message}`, 'malformed');
  }
  const unstorable = findUnstorableText(value);
  return unstorable === null ? ok(value) : fail(unstorable, 'unstorable');
}

function checkCommon(
  domain: string,
  title: string | undefined,
  ts: number | undefined,
  limits: ContractLimits,
): ParseResult<never> | null {
  if (limits.domainAllowList.length > 0 && !limits.domainAllowList.includes(domain)) {
    return fail(
      `domain: '${domain}' is not in the allow-list (${limits.domainAllowList.join(', ')})`,
      'policy',
    );
  }
  if (title !== undefined && title.length > limits.maxTitleLength) {
    return fail(
      `title: ${title.length} characters, longer than the limit of ${limits.maxTitleLength}`,
      'policy',
    );
  }
  if (ts !== undefined && ts > limits.now() + limits.maxFutureSkewMs) {
    return fail(
      `ts: ${new Date(ts).toISOString()} lies more than ${limits.maxFutureSkewMs} ms in the future`,
      'policy',
    );
  }
  return null;
}

/** Full acceptance check for an interaction message as it arrives from Kafka. */
export function parseInteraction(
  raw: Buffer | string | null,
  limits: ContractLimits = DEFAULT_LIMITS,
): ParseResult<InteractionEvent> {
  const decoded = decodeJson(raw, limits);
  if (!decoded.ok) return decoded;
  // Hot path: the hand-written check accepts the common valid event without zod; whatever it
  // does not accept goes through the schema, which decides and words the reason.
  const fast = acceptInteractionFast(decoded.value);
  const parsed = fast !== null ? ok(fast) : parseWith(InteractionEventSchema, decoded.value);
  if (!parsed.ok) return parsed;
  const problem = checkCommon(parsed.value.domain, parsed.value.title, parsed.value.ts, limits);
  return problem ?? parsed;
}

/**
 * The same acceptance check through the zod schema only (no fast path): the reference that the
 * fast path is tested against, and the baseline the ingest benchmark compares with.
 */
export function parseInteractionWithSchema(
  raw: Buffer | string | null,
  limits: ContractLimits = DEFAULT_LIMITS,
): ParseResult<InteractionEvent> {
  const decoded = decodeJson(raw, limits);
  if (!decoded.ok) return decoded;
  const parsed = parseWith(InteractionEventSchema, decoded.value);
  if (!parsed.ok) return parsed;
  const problem = checkCommon(parsed.value.domain, parsed.value.title, parsed.value.ts, limits);
  return problem ?? parsed;
}

/** Full acceptance check for an item catalogue message as it arrives from Kafka. */
export function parseItem(
  raw: Buffer | string | null,
  limits: ContractLimits = DEFAULT_LIMITS,
): ParseResult<ItemEvent> {
  const decoded = decodeJson(raw, limits);
  if (!decoded.ok) return decoded;
  const parsed = parseWith(ItemEventSchema, decoded.value);
  if (!parsed.ok) return parsed;
  const problem = checkCommon(parsed.value.domain, parsed.value.title, parsed.value.ts, limits);
  return problem ?? parsed;
}
