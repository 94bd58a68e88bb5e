import { PipeTransform } from '@nestjs/common';
import type { z } from 'zod';
import { parseOrThrow } from '../errors';

/** Validates a body or query with a zod schema; failures become 400 naming each bad field. */
export class ZodPipe<S extends z.ZodType> implements PipeTransform<unknown, z.infer<S>> {
  constructor(
    private readonly schema: S,
    private readonly what: string,
  ) {}

  transform(value: unknown): z.infer<S> {
    // express gives `{}` for a request without a body; a JSON `null` or array is refused by the schema.
    return parseOrThrow(this.schema, value ?? {}, this.what);
  }
}
