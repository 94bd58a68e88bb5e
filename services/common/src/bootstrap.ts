import { isUtf8 } from 'node:buffer';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Logger, Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { findUnstorableText } from '@cprec/contracts';

/** A refused body, as body-parser reports its own refusals (400 with the message shown). */
class BodyRefusedError extends Error {
  readonly status = 400;
  readonly expose = true;
}

/**
 * The JSON body parser's check of the raw bytes: bytes that are not UTF-8 are refused, as the
 * Kafka consumers refuse them (`decodeJson`), instead of being decoded with U+FFFD replacement
 * characters, which would act on something other than what was sent (the HTTP fuzz found an
 * operator round triggered with a mangled reason).
 */
function requireUtf8(_req: IncomingMessage, _res: ServerResponse, body: Buffer): void {
  if (!isUtf8(body)) throw new BodyRefusedError('malformed UTF-8: the body is not UTF-8 text');
}

/**
 * After parsing: a string storage cannot hold (an unpaired surrogate written as `\ud800`) is
 * refused here, with the field named, rather than accepted with a 2xx and dead-lettered by the
 * consumer of the command it became (the HTTP fuzz: `POST /v1/rounds` took `"reason":"\ud800"`).
 */
function refuseUnstorableBody(
  req: IncomingMessage & { body?: unknown },
  res: ServerResponse,
  next: () => void,
): void {
  const problem = req.body === undefined ? null : findUnstorableText(req.body);
  if (problem === null) return next();
  res.statusCode = 400;
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.end(JSON.stringify({ statusCode: 400, error: 'Bad Request', message: `invalid body: ${problem}` }));
}

/**
 * The JSON body checks every service's HTTP API shares: UTF-8 bytes, storable strings. Call it
 * before anything else registers middleware: it registers the JSON parser itself, so Nest does
 * not add its default one at init, and the check after it then runs on parsed bodies (middleware
 * runs in registration order).
 */
export function useJsonBodyChecks(app: NestExpressApplication): void {
  app.useBodyParser('json', { verify: requireUtf8 });
  app.use(refuseUnstorableBody);
}

/**
 * Starts a service: shutdown hooks so SIGTERM drains consumers and flushes buffers before exit,
 * and the shared JSON body checks.
 */
export async function bootstrapService(
  name: string,
  module: Type<unknown>,
  port: number,
  host = '127.0.0.1',
): Promise<NestExpressApplication> {
  const app = await NestFactory.create<NestExpressApplication>(module, { bufferLogs: false });
  app.enableShutdownHooks();
  useJsonBodyChecks(app);
  await app.listen(port, host);
  new Logger(name).log(`listening on http://${host}:${port}`);
  return app;
}
