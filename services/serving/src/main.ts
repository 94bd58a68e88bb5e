import 'reflect-metadata';
import { bootstrapService } from '@cprec/service-common';
import { ServingAppModule } from './app.module';
import { loadServingConfig } from './config';

async function main(): Promise<void> {
  const config = loadServingConfig();
  await bootstrapService('serving', ServingAppModule, config.SERVING_PORT);
}

void main().catch((err: unknown) => {
  process.stderr.write(`serving: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
