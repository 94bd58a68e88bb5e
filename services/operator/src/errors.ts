import type { z } from 'zod';
import { parseWith } from '@cprec/contracts';

/**
 * Use-case failures, free of HTTP: http/errors.filter.ts maps them to 400 / 404 / 409.
 */
export class ValidationError extends Error {
  override readonly name = 'ValidationError';
}

export class NotFoundError extends Error {
  override readonly name = 'NotFoundError';
}

export class ConflictError extends Error {
  override readonly name = 'ConflictError';
}

/** Parses `value` or throws a ValidationError naming every bad field ("target_domains.0: …"). */
export function parseOrThrow<S extends z.ZodType>(schema: S, value: unknown, what: string): z.infer<S> {
  const result = parseWith(schema, value);
  if (!result.ok) throw new ValidationError(`invalid ${what}: ${result.reason}`);
  return result.value;
}
