import type { InteractionEvent } from './events';
import { MAX_STORABLE_EPOCH_MS } from './storable';

/*
 * Hand-written acceptance check for InteractionEvent, used by `parseInteraction` before the zod
 * schema. Why hand-written: the ingest benchmark found zod's safeParse to be the largest parse
 * cost (~3 µs of ~11–16 µs per event, plus an output object per event for the GC), and every
 * message on the hot path is a small flat object whose rules fit in a few comparisons.
 *
 * It encodes exactly the rules of `InteractionEventSchema` (events.ts) — keep the two in step;
 * `fast-parse.spec.ts` property-tests that both make the same decision on random valid and invalid
 * messages. It only ever says "valid" or "not sure": the caller sends anything it does not accept
 * through the zod schema, which decides and words the reason, so dead-letter texts are the
 * schema's own.
 */

const ID_MAX_LENGTH = 256;
const DOMAIN_MAX_LENGTH = 64;
const PLATFORM_MAX_LENGTH = 64;
const TITLE_MAX_LENGTH = 1_000_000;
const EPOCH_MS_MAX = MAX_STORABLE_EPOCH_MS;

/** Id: 1–256 characters of printable ASCII without spaces (`/^[\x21-\x7e]+$/`). */
function isId(v: unknown): boolean {
  if (typeof v !== 'string') return false;
  const n = v.length;
  if (n < 1 || n > ID_MAX_LENGTH) return false;
  for (let i = 0; i < n; i++) {
    const c = v.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

const isLowerOrDigit = (c: number): boolean => (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39);

/** DomainSchema: `/^[a-z0-9][a-z0-9_-]{0,63}$/`. */
function isDomain(v: unknown): boolean {
  if (typeof v !== 'string') return false;
  const n = v.length;
  if (n < 1 || n > DOMAIN_MAX_LENGTH || !isLowerOrDigit(v.charCodeAt(0))) return false;
  for (let i = 1; i < n; i++) {
    const c = v.charCodeAt(i);
    if (!isLowerOrDigit(c) && c !== 0x5f /* _ */ && c !== 0x2d /* - */) return false;
  }
  return true;
}

/** zod 4's `.int()` is a safe integer (and rejects NaN/±Infinity, as `z.number()` does). */
function isNonNegativeSafeInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function isStringOfLength(v: unknown, min: number, max: number): boolean {
  return typeof v === 'string' && v.length >= min && v.length <= max;
}

/**
 * Returns the decoded value itself (typed) when it is a valid InteractionEvent, or null when it
 * is not — or when this check cannot tell cheaply (e.g. a key holding `undefined`, which only a
 * non-JSON caller can produce). No copy is made: the schema is strict, so a valid object has no
 * other keys and the schema's output would hold the same values.
 */
export function acceptInteractionFast(value: unknown): InteractionEvent | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const o = value as Record<string, unknown>;
  let required = 0;
  // for…in visits own and inherited enumerable keys; an unexpected inherited key only sends the
  // value down the zod path, never past it.
  for (const key in o) {
    const v = o[key];
    switch (key) {
      case 'event_id':
      case 'user_id':
      case 'item_id':
        if (!isId(v)) return null;
        required++;
        break;
      case 'domain':
        if (!isDomain(v)) return null;
        required++;
        break;
      case 'ts':
        if (!isNonNegativeSafeInt(v) || v > EPOCH_MS_MAX) return null;
        required++;
        break;
      case 'schema_version':
        if (v !== 1) return null;
        break;
      case 'platform':
        if (!isStringOfLength(v, 1, PLATFORM_MAX_LENGTH)) return null;
        break;
      case 'title':
        if (!isStringOfLength(v, 0, TITLE_MAX_LENGTH)) return null;
        break;
      case 'seq':
        if (!isNonNegativeSafeInt(v)) return null;
        break;
      default:
        return null; // unknown key: strict schema rejects it, zod words the reason
    }
  }
  return required === 5 ? (o as InteractionEvent) : null;
}
