import type { RejectionKind } from './rejections';

/**
 * A parse outcome: errors are values with a readable reason, never thrown strings. A failure may
 * name its kind (a closed set, for dead letters and metric labels); without one it is `invalid`.
 */
export type ParseResult<T> = { ok: true; value: T } | { ok: false; reason: string; kind?: RejectionKind };

export const ok = <T>(value: T): ParseResult<T> => ({ ok: true, value });
export const fail = <T>(reason: string, kind?: RejectionKind): ParseResult<T> =>
  kind === undefined ? { ok: false, reason } : { ok: false, reason, kind };

/** The kind of a failed result (`invalid` when the failure did not say). */
export const rejectionKindOf = (result: { ok: false; kind?: RejectionKind }): RejectionKind =>
  result.kind ?? 'invalid';
