import 'reflect-metadata';
import { bootstrapService } from '@cprec/service-common';
import { IngestAppModule } from './app.module';
import { loadIngestConfig } from './config';

async function main(): Promise<void> {
  const config = loadIngestConfig();
  await bootstrapService('ingest', IngestAppModule, config.INGEST_PORT);
}

void main().catch((err: unknown) => {
  process.stderr.write(`ingest: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
