/**
 * Why a message was refused, as a closed set: dead letters carry the kind next to their readable
 * reason, and metrics use the kind (never the reason text) as a label, so the number of label
 * values stays bounded whatever the input holds.
 */
export const REJECTION_KINDS = [
  /** No value (a tombstone) or an empty message. */
  'empty',
  /** Larger than the accepted message size. */
  'too_large',
  /** Not UTF-8, or not JSON. */
  'malformed',
  /** Does not match the schema (missing field, wrong type, unknown field, bad id). */
  'invalid',
  /** Valid JSON and schema, but storage cannot hold it (unpaired surrogates, dates beyond 2106). */
  'unstorable',
  /** Refused by a configured policy (domain allow-list, title length, timestamp in the future). */
  'policy',
  /** An id seen before with different content. */
  'conflict',
  /** Storage refused the row itself (found by bisecting a failed batch insert). */
  'storage_refused',
  /** The handler failed on it with an error that retrying cannot cure. */
  'unprocessable',
  /** The handler failed on it on every retry while its dependencies were up. */
  'retries_exhausted',
] as const;
export type RejectionKind = (typeof REJECTION_KINDS)[number];

export const isRejectionKind = (value: unknown): value is RejectionKind =>
  typeof value === 'string' && (REJECTION_KINDS as readonly string[]).includes(value);
