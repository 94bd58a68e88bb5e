import { INestApplication, Logger, Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';

/**
 * Starts a service: shutdown hooks so SIGTERM drains consumers and flushes buffers before exit.
 */
export async function bootstrapService(
  name: string,
  module: Type<unknown>,
  port: number,
  host = '127.0.0.1',
): Promise<INestApplication> {
  const app = await NestFactory.create(module, { bufferLogs: false });
  app.enableShutdownHooks();
  await app.listen(port, host);
  new Logger(name).log(`listening on http://${host}:${port}`);
  return app;
}
