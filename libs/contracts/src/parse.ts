import type { z } from 'zod';
import { ContractLimits, DEFAULT_LIMITS } from './limits';
import { InteractionEvent, InteractionEventSchema, ItemEvent, ItemEventSchema } from './events';
import { fail, ok, ParseResult } from './result';
import { acceptInteractionFast } from './fast-parse';

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

/** Decodes raw message bytes (UTF-8 JSON), applying the size limit before parsing anything. */
export function decodeJson(raw: Buffer | string | null, limits: ContractLimits): ParseResult<unknown> {
  if (raw === null) return fail('message has no value (tombstone or empty)');
  const size = typeof raw === 'string' ? Buffer.byteLength(raw) : raw.length;
  if (size > limits.maxMessageBytes) {
    return fail(`message is ${size} bytes, larger than the limit of ${limits.maxMessageBytes}`);
  }
  const text = typeof raw === 'string' ? raw : raw.toString('utf8');
  try {
    return ok(JSON.parse(text) as unknown);
  } catch (err) {
    return fail(`malformed JSON: ${(err as Error).message}`);
  }
}

function checkCommon(
  domain: string,
  title: string | undefined,
  ts: number | undefined,
  limits: ContractLimits,
): string | null {
  if (limits.domainAllowList.length > 0 && !limits.domainAllowList.includes(domain)) {
    return `domain: '${domain}' is not in the allow-list (${limits.domainAllowList.join(', ')})`;
  }
  if (title !== undefined && title.length > limits.maxTitleLength) {
    return `title: ${title.length} characters, longer than the limit of ${limits.maxTitleLength}`;
  }
  if (ts !== undefined && ts > limits.now() + limits.maxFutureSkewMs) {
    return `ts: ${new Date(ts).toISOString()} lies more than ${limits.maxFutureSkewMs} ms in the future`;
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
  return problem === null ? parsed : fail(problem);
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
  return problem === null ? parsed : fail(problem);
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
  return problem === null ? parsed : fail(problem);
}
