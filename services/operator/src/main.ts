import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { OperatorAppModule } from './app.module';
import { configureOperatorApp } from './app.setup';
import { loadOperatorConfig } from './config';

/**
 * Not bootstrapService from service-common: the operator must register OpenAPI and the static
 * dashboard between creating the app and listening.
 */
async function main(): Promise<void> {
  const config = loadOperatorConfig();
  const app = await NestFactory.create<NestExpressApplication>(OperatorAppModule, { bufferLogs: false });
  app.enableShutdownHooks();
  configureOperatorApp(app, config);
  await app.listen(config.OPERATOR_PORT, config.OPERATOR_HOST);
  const log = new Logger('operator');
  log.log(
    `listening on http://${config.OPERATOR_HOST}:${config.OPERATOR_PORT} (dashboard /, API docs /docs)`,
  );
  if (config.OPERATOR_TOKEN === null) log.warn('OPERATOR_TOKEN is not set: mutating endpoints answer 503');
}

void main().catch((err: unknown) => {
  process.stderr.write(`operator: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
